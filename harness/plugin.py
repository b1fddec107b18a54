"""The pytest plugin: options, run settings, and fixtures that own a topology per test.

Thin by design: the library does the work; this maps options to RunSettings and resources to fixtures.
"""

from __future__ import annotations

import pytest

from harness import signals
from harness.backends import check_backend, network_for
from harness.errors import HarnessError
from harness.network import Network
from harness.settings import RunSettings, parse_backends

_unwind = None
SETTINGS = pytest.StashKey[RunSettings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("comps-harness")
    group.addoption("--backend", default="netns", help="netns | docker | all, or a comma list (default netns)")
    group.addoption("--paths", default="2", help="number of proxy paths (2..8, default 2)")
    group.addoption("--wireguard", default="auto", help="auto | kernel | userspace (wireguard-go)")
    group.addoption("--run-id", default=None, help="run id to use (default: a fresh one)")


def pytest_configure(config: pytest.Config) -> None:
    global _unwind
    try:
        kwargs = {"backends": parse_backends(config.getoption("--backend")),
                  "paths": int(config.getoption("--paths")),
                  "wireguard": config.getoption("--wireguard")}
    except ValueError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    if config.getoption("--run-id"):
        kwargs["run_id"] = config.getoption("--run-id")
    try:
        config.stash[SETTINGS] = RunSettings(**kwargs)
    except HarnessError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    # SIGTERM unwinds like Ctrl-C, so fixture finalizers remove what the run built.
    _unwind = signals.interrupts_unwind()
    _unwind.__enter__()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _unwind
    if _unwind is not None:
        _unwind.__exit__(None, None, None)
        _unwind = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = metafunc.config.stash[SETTINGS].backends
        metafunc.parametrize("backend", backends, ids=list(backends), scope="session")


@pytest.fixture(scope="session")
def run_settings(request: pytest.FixtureRequest) -> RunSettings:
    return request.config.stash[SETTINGS]


@pytest.fixture(scope="session")
def backend_ready(backend: str, run_settings: RunSettings) -> str:
    """Check the backend's prerequisites once; a missing piece is an error naming it, never a skip."""
    try:
        return check_backend(backend, run_settings)
    except HarnessError as exc:
        pytest.fail(f"backend {backend} cannot run: {exc}", pytrace=False)


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def network(backend: str, backend_ready: str, run_settings: RunSettings) -> Network:
    """A freshly built topology for one test, removed afterwards whatever happened."""
    run_id = f"{run_settings.run_id}-{next(_counter)}"
    with network_for(backend, run_settings, run_id=run_id) as net:
        yield net
