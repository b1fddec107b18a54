"""The pytest plugin: options, run settings, and fixtures that own a topology per test.

Thin by design: the library does the work; this maps options to RunSettings and resources to fixtures.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from harness import options
from harness.backends.registry import Prepared, check_backend, network_for, sweep_child_runs
from harness.errors import HarnessError
from harness.measure.services import OriginServices, require_measurement_tools
from harness.model.kinds import Outcome
from harness.model.profiles import Profile
from harness.model.records import TestRecord
from harness.model.settings import MeasureSettings, RunSettings, Settings, Tolerances, recorded
from harness.reporting.results import ResultsWriter
from harness.runtime.content import MB
from harness.runtime.network import Network
from harness.runtime.shaping import ShapedPaths, require_qdiscs, verify
from harness.system import signals
from harness.vm.command import IN_VM_ENV

_unwind = None
SETTINGS = pytest.StashKey[Settings]()
PLANS = pytest.StashKey[list]()
PROFILES = pytest.StashKey[tuple]()
PROFILE_CHECKS = pytest.StashKey[dict]()
RESULTS = pytest.StashKey[ResultsWriter]()
SWEPT = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("comps-harness")
    options.add_to_pytest(group)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--vm: the same pytest command, without --vm, inside the guest; its exit status is ours."""
    if not config.getoption("vm") or os.environ.get(IN_VM_ENV):
        return None
    from harness.vm.runner import rerun_in_guest

    raw = {option.dest: config.getoption(option.dest) for option in options.for_pytest()}
    try:
        return rerun_in_guest(
            options.settings_from(raw),
            [sys.executable, "-m", "pytest", *config.invocation_params.args],
            rwdirs=[config.rootpath],
            cwd=config.invocation_params.dir,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except HarnessError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    except KeyboardInterrupt:
        print("comps-harness: interrupted; the guest was powered off", file=sys.stderr)
        return pytest.ExitCode.INTERRUPTED


def pytest_configure(config: pytest.Config) -> None:
    global _unwind
    raw = {option.dest: config.getoption(option.dest) for option in options.for_pytest()}
    try:
        settings = config.stash[SETTINGS] = options.settings_from(raw)
        config.stash[PLANS] = options.plans_of(settings)
        config.stash[PROFILES] = options.path_profiles(settings.run)
        config.stash[PROFILE_CHECKS] = {}
    except HarnessError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    config.stash[RESULTS] = ResultsWriter(settings.run.run_dir, settings.run.run_id, run=_run_fields(config))
    # SIGTERM unwinds like Ctrl-C, so fixture finalizers remove what the run built.
    _unwind = signals.interrupts_unwind()
    _unwind.__enter__()


def _run_fields(config: pytest.Config) -> dict:
    """The run record: the exact command, its options and the backends (reports reproduce runs from it)."""
    values = {
        name: value
        for name, value in vars(config.option).items()
        if isinstance(value, (str, int, float, bool, type(None)))
    }
    argv = list(config.invocation_params.args)
    given = os.environ.get("COMPS_HARNESS_REPRODUCE")  # set by `comps-harness sweep`: its own command
    reproduce = json.loads(given) if given else [sys.executable, "-m", "pytest", *without_run_naming(argv)]
    return {
        "argv": [sys.executable, "-m", "pytest", *argv],
        "cwd": str(config.invocation_params.dir),
        "options": values,
        "backends": list(config.stash[SETTINGS].run.backends),
        "settings": recorded(config.stash[SETTINGS]),
        "reproduce": reproduce,
    }


def without_run_naming(argv: list[str]) -> list[str]:
    """argv without the options that name a run (--run-id, --run-dir), so a rerun makes a new one."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--run-id", "--run-dir"):
            skip = True
        elif not arg.startswith(("--run-id=", "--run-dir=")):
            out.append(arg)
    return out


def pytest_unconfigure(config: pytest.Config) -> None:
    global _unwind
    if _unwind is not None:
        _unwind.__exit__(None, None, None)
        _unwind = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = metafunc.config.stash[SETTINGS].run.backends
        metafunc.parametrize("backend", backends, ids=list(backends), scope="session")
    if "path_profile" in metafunc.fixturenames:
        profiles = metafunc.config.stash[PROFILES]
        if [profile.name for profile in profiles] != ["lan"]:  # lan alone: the ids stay as they were
            metafunc.parametrize("path_profile", profiles, ids=[profile.name for profile in profiles])
    if "migration_plan" in metafunc.fixturenames:
        plans = metafunc.config.stash[PLANS]
        if "mechanism" in metafunc.fixturenames or metafunc.definition.get_closest_marker("atomic_switch"):
            # the test chooses the mechanism itself (or needs the atomic one): one plan per interval,
            # not one per --switch-mechanism, so no two ids run the same thing
            plans = [plan for plan in plans if plan.mechanism == "netlink"]
        if metafunc.definition.get_closest_marker("one_interval"):
            plans = one_interval(plans)
        metafunc.parametrize("migration_plan", plans, ids=[plan.label for plan in plans])


def one_interval(plans: list) -> list:
    """The plans of the longest interval only: a self-check that shows a verdict can turn red needs one
    interval, not every interval of the sweep (its five interleaved pairs cost ~30 s each)."""
    longest = max((plan.interval for plan in plans if plan.interval), default=None)
    return [plan for plan in plans if plan.interval == longest] if longest else plans


DESELECTED = pytest.StashKey[list]()
PROGRESS = pytest.StashKey[dict]()


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[PROGRESS] = {
        "items": list(session.items),
        "done": 0,
        "started": time.monotonic(),
        "seconds": defaultdict(list),
    }


def estimate_left(remaining: list[str], seconds: dict[str, list[float]]) -> float | None:
    """Seconds the `remaining` tests (by function name) should take, from those of the same function
    that finished (the mean of all finished tests for a function not seen yet); None before any finished."""
    finished = [s for values in seconds.values() for s in values]
    if not finished:
        return None
    overall = sum(finished) / len(finished)
    return sum(sum(seconds[name]) / len(seconds[name]) if seconds.get(name) else overall for name in remaining)


def _progress_line(item: pytest.Item, outcome: str, seconds: float) -> None:
    """--sweep-progress: one line per finished test, with its outcome, and an estimate of what is left."""
    state = item.config.stash[PROGRESS]
    elapsed = time.monotonic() - state["started"]
    remaining = [i.originalname or i.name for i in state["items"][state["done"] :]]
    left = estimate_left(remaining, state["seconds"])
    left_text = "" if left is None else f", about {_minutes(left)} left"
    print(
        f"[{state['done']}/{len(state['items'])}] {outcome:8} {item.nodeid} ({seconds:.1f} s; "
        f"{_minutes(elapsed)} so far{left_text})",
        file=sys.stderr,
        flush=True,
    )


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Every test outcome is also a record, so a report's verdict table and its figures come from one file."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _record_outcome(item, report, call)
    if report.when == "call":
        _attach_plots(item, report)
    state = item.config.stash[PROGRESS]
    state.setdefault("running", 0.0)
    state["running"] += report.duration
    worst = state.setdefault("outcome", Outcome.PASSED)
    this = _outcome(item, report, call)
    if this != Outcome.PASSED and (worst in (Outcome.PASSED, Outcome.UNJUDGED) or this == Outcome.ERROR):
        state["outcome"] = this
    if report.when == "teardown":
        state["done"] += 1
        seconds = state.pop("running")
        state["seconds"][item.originalname or item.name].append(seconds)
        if report.failed:
            _record_outcome(item, report, call)
        if item.config.getoption("--sweep-progress"):
            _progress_line(item, state.pop("outcome"), seconds)
        state.pop("outcome", None)


def _attach_plots(item: pytest.Item, report: pytest.TestReport) -> None:
    """With pytest-html (`pytest --html=FILE`), a measurement test's plots go into its row of that report."""
    if not item.config.pluginmanager.hasplugin("html"):
        return
    from pytest_html import extras

    from harness.reporting.report import charts_svg

    records = item.config.stash[RESULTS].measurements_of(item.name)
    if records:
        report.extras = [*getattr(report, "extras", []), *(extras.html(chart) for chart in charts_svg(records))]


def _outcome(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo | None) -> Outcome:
    if report.passed:
        return Outcome.UNJUDGED if ("verdict", "unjudged") in item.user_properties else Outcome.PASSED
    if report.skipped:
        return Outcome.SKIPPED
    infrastructure = call is not None and call.excinfo is not None and call.excinfo.errisinstance(HarnessError)
    return Outcome.FAILED if report.when == "call" and not infrastructure else Outcome.ERROR


def _record_outcome(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo | None = None) -> None:
    """Scenarios (marker `network`) only: a unit-test run writes nothing."""
    if item.get_closest_marker("network") is None:
        return
    params = getattr(item, "callspec", None)
    params = params.params if params is not None else {}
    plan = params.get("migration_plan")
    reason = ""
    if report.failed or report.skipped:
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr)
        reason = reason.splitlines()[0][:500] if reason else ""
    results = item.config.stash[RESULTS]
    outcome = _outcome(item, report, call)
    detail = str(report.longrepr)[-4000:] if outcome == Outcome.ERROR else ""
    results.write(
        TestRecord(
            run_id=results.run_id,
            time=round(time.time(), 3),
            test=item.nodeid,
            scenario=item.originalname or item.name,
            phase=report.when,
            outcome=outcome,
            reason=reason,
            duration_s=round(report.duration, 3),
            check="research" if item.get_closest_marker("measurement") else "proof",
            detail=detail,
            backend=params.get("backend"),
            interval=plan.interval if plan is not None else None,
            profile=params["path_profile"].name if "path_profile" in params else "lan",
            strategy=plan.strategy if plan is not None else None,
            mechanism=params.get("mechanism") or (plan.mechanism if plan is not None else None),
            label=plan.label if plan is not None else None,
        )
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Docker-only scenarios (the compose demo) leave the run, with a line saying so, without docker."""
    if "docker" in config.stash[SETTINGS].run.backends:
        return
    dropped = [item for item in items if item.get_closest_marker("docker_only")]
    if dropped:
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=dropped)
        config.stash[DESELECTED] = [item.nodeid for item in dropped]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove what this session's own child runs left (`<run id>-...`): a test killed by its time-out
    cannot tear down what its child harness made (a guest's work dir, a topology)."""
    if not any(item.get_closest_marker("network") for item in session.items):
        return
    run = session.config.stash[SETTINGS].run
    session.config.stash[SWEPT] = sweep_child_runs(run.run_id, run.backends)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    swept = config.stash.get(SWEPT, [])
    if swept:
        terminalreporter.write_line(
            f"comps-harness: removed what this session's killed tests left: {'; '.join(swept)}", yellow=True
        )
    results = config.stash.get(RESULTS, None)
    if results is not None and results.written:
        terminalreporter.write_line(
            f"comps-harness: results in {results.path} (report: comps-harness report {results.path})"
        )
    dropped = config.stash.get(DESELECTED, [])
    if dropped:
        terminalreporter.write_line(
            f"comps-harness: {len(dropped)} Docker-only scenario(s) not run, because "
            f"--backend does not include docker: {', '.join(dropped)}",
            yellow=True,
        )


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> Settings:
    return request.config.stash[SETTINGS]


@pytest.fixture(scope="session")
def run_settings(settings: Settings) -> RunSettings:
    return settings.run


@pytest.fixture(scope="session")
def child_run_ids(run_settings: RunSettings) -> Callable[[], str]:
    """New run ids for the harness processes a scenario starts: `<this run's id>-<n>`, so the end of the
    session finds (and removes) what the child of a killed test left, and nothing of another run."""
    counter = itertools.count(1)
    return lambda: f"{run_settings.run_id}-{next(counter)}"


@pytest.fixture(scope="session")
def observe(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--observe"))


@pytest.fixture(scope="session")
def tolerances(settings: Settings) -> Tolerances:
    return settings.tolerances


@pytest.fixture(scope="session")
def measure_settings(settings: Settings) -> MeasureSettings:
    return settings.measure


@pytest.fixture(scope="session")
def backend_ready(backend: str, run_settings: RunSettings, request: pytest.FixtureRequest) -> Prepared:
    """Check the backend's prerequisites once (docker: build missing images, with progress); a missing
    piece is an error naming it, never a skip."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def progress(message: str) -> None:
        if reporter is not None:
            reporter.write_line(f"comps-harness: {message}")

    try:
        return check_backend(backend, run_settings, progress)
    except HarnessError as exc:
        pytest.fail(f"backend {backend} cannot run: {exc}", pytrace=False)


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def path_profile(request: pytest.FixtureRequest) -> Profile:
    """The path profile of this test (parametrized by --profile; lan, unshaped, when only that)."""
    return request.config.stash[PROFILES][0]


@pytest.fixture
def network(
    backend: str,
    backend_ready: Prepared,
    run_settings: RunSettings,
    path_profile: Profile,
    request: pytest.FixtureRequest,
) -> Network:
    """A freshly built topology for one test, its paths shaped by the test's profile, removed afterwards
    whatever happened. A profile is verified by measurement on its first network of the session (per
    backend); a path off its spec fails the set-up with the numbers."""
    run_id = f"{run_settings.run_id}-{next(_counter)}"
    path_ids = tuple(range(1, run_settings.paths + 1))
    shaped = path_profile.shaped(path_ids)
    if shaped:
        try:
            require_qdiscs(path_profile, path_ids)  # before anything is built
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    with network_for(backend, run_settings, run_id=run_id, prepared=backend_ready) as net:
        net.profile = path_profile.name
        with ShapedPaths(net, path_profile) if shaped else contextlib.nullcontext():
            if shaped:
                _check_profile(request, net, path_profile, backend)
            yield net


def _check_profile(request: pytest.FixtureRequest, net: Network, profile: Profile, backend: str) -> None:
    checks = request.config.stash[PROFILE_CHECKS]
    if (backend, profile.name) not in checks:
        checks[(backend, profile.name)] = verify(net, profile)
        request.config.stash[RESULTS].profile_check(net, checks[(backend, profile.name)])
    failures = checks[(backend, profile.name)]["failures"]
    if failures:
        pytest.fail(f"path profile {profile.name} is not what it says: {'; '.join(failures)}", pytrace=False)


@pytest.fixture(scope="session")
def results(request: pytest.FixtureRequest) -> ResultsWriter:
    """The run's results file (reports/<run id>/results.jsonl), appended as results come in."""
    return request.config.stash[RESULTS]


@pytest.fixture
def origin_services(network: Network, measure_settings: MeasureSettings) -> OriginServices:
    """Web pages, files, iperf3 and the probe echo on `origin`, for one test."""
    try:
        require_measurement_tools(browser=False)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    with OriginServices(network, file_sizes=tuple(int(mb * MB) for mb in measure_settings.download_mb)) as services:
        yield services


@pytest.fixture
def record_condition(results: ResultsWriter, network: Network, request: pytest.FixtureRequest):
    """Write one measurement (one condition, one repetition) to the results file as it is produced."""

    def record(scenario: str, condition: str, rep: int, result) -> None:
        results.measurement(scenario, request.node.name, condition, rep, network, result)

    return record
