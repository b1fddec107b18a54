"""The pytest plugin: options, run settings, and fixtures that own a topology per test.

Thin by design: the library does the work; this maps options to RunSettings and resources to fixtures.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from harness import signals
from harness.backends import check_backend, network_for
from harness.errors import ConfigError, HarnessError
from harness.content import MB
from harness.measure import OriginServices, require_measurement_tools
from harness.network import Network
from harness.results import ResultsWriter
from harness.schedule import MECHANISMS, STRATEGIES, MigrationPlan, parse_fixed, parse_weights
from harness.settings import RunSettings, parse_backends, parse_intervals, parse_number, parse_rate

_unwind = None
SETTINGS = pytest.StashKey[RunSettings]()
PLANS = pytest.StashKey[list]()
TOLERANCES = pytest.StashKey[dict]()
RESULTS = pytest.StashKey[ResultsWriter]()
DEFAULT_INTERVALS = "0.01,0.1,1"
MIN_DURATION_S = 2.0
SWITCHES_PER_RUN = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("comps-harness")
    group.addoption("--backend", default="netns", help="netns | docker | all, or a comma list (default netns)")
    group.addoption("--paths", default="2", help="number of proxy paths (2..8, default 2)")
    group.addoption("--wireguard", default="auto", help="auto | kernel | userspace (wireguard-go)")
    group.addoption("--run-id", default=None, help="run id to use (default: a fresh one)")
    group.addoption("--results-dir", default="reports", help="results go to DIR/<run id>/ (default reports)")
    group.addoption("--intervals", default=DEFAULT_INTERVALS,
                    help=f"migration intervals in seconds, comma separated (default {DEFAULT_INTERVALS})")
    group.addoption("--strategy", default="alternate", help=f"comma list of {', '.join(STRATEGIES)}")
    group.addoption("--switch-mechanism", default="netlink",
                    help="netlink (atomic route replace), script (the demo's migrate.sh), or both")
    group.addoption("--seed", default="1", help="seed of the random strategies (default 1)")
    group.addoption("--jitter", default="0", help="random shift of each switch, +- seconds (default 0)")
    group.addoption("--weights", default=None, help="weighted-random: per-path weights (default: flat Dirichlet)")
    group.addoption("--fixed", default=None, help="fixed strategy: TIME:PATH,... (seconds after start)")
    group.addoption("--duration", default="auto",
                    help=f"seconds each migration runs (auto: {SWITCHES_PER_RUN} intervals, at least "
                         f"{MIN_DURATION_S:g} s)")
    group.addoption("--switch-tolerance", default="0.1",
                    help="fraction of planned switches that may be missing before the proof fails (default 0.1)")
    group.addoption("--repeat", default="3", help="interleaved repetitions of baseline and migration (default 3)")
    group.addoption("--throughput-tolerance", default="0.90",
                    help="throughput with migration must be >= this x baseline (default 0.90)")
    group.addoption("--verdict-from-interval", default="0.1",
                    help="throughput verdicts apply to intervals >= this many seconds; below: reported (default 0.1)")
    group.addoption("--pageload-tolerance", default="1.15",
                    help="page-load and download median must be <= this x baseline (default 1.15)")
    group.addoption("--max-lost-per-switch", default="0",
                    help="probe packets that may be lost per switch with the atomic mechanism (default 0)")
    group.addoption("--probe-rate", default="2000", help="UDP probe packets per second (default 2000)")
    group.addoption("--iperf-seconds", default="2", help="seconds per iperf3 run (default 2)")
    group.addoption("--udp-rate", default="50M", help="iperf3 UDP offered rate (default 50M)")
    group.addoption("--page-timeout", default="30", help="seconds a page load may take before it fails (default 30)")
    group.addoption("--download-sizes", default="1,10", help="download file sizes in MB (default 1,10; 100 also works)")
    group.addoption("--sweep-progress", action="store_true",
                    help="print a progress line per test to stderr: done/total, elapsed, estimate left")
    group.addoption("--degrade-drop", default="0.05",
                    help="share of packets the degraded-path loss scenario drops on the last proxy (default 0.05)")
    group.addoption("--degrade-rate", default="20mbit",
                    help="rate limit of the last proxy in the degraded-path throughput scenario (tc rate, default 20mbit)")


def _migration_plans(config: pytest.Config, paths: tuple[int, ...]) -> list[MigrationPlan]:
    """Every (strategy, interval, mechanism) the options ask for, validated before anything starts."""
    option = config.getoption
    mechanisms = MECHANISMS if option("--switch-mechanism") == "both" else \
        tuple(m.strip() for m in option("--switch-mechanism").split(","))
    strategies = tuple(s.strip() for s in option("--strategy").split(","))
    weights = parse_weights(option("--weights")) if option("--weights") else None
    fixed = parse_fixed(option("--fixed")) if option("--fixed") else ()
    try:
        seed = int(option("--seed"))
    except ValueError:
        raise ConfigError(f"--seed {option('--seed')!r} is not an integer") from None
    jitter = parse_number(option("--jitter"), "--jitter", allow_zero=True)
    fixed_duration = None if option("--duration") == "auto" else parse_number(option("--duration"), "--duration")
    plans = []
    for strategy in strategies:
        for interval in parse_intervals(option("--intervals")):
            duration = fixed_duration or max(MIN_DURATION_S, SWITCHES_PER_RUN * interval)
            for mechanism in mechanisms:
                plans.append(MigrationPlan(strategy=strategy, interval=interval, paths=paths, duration=duration,
                                           jitter=jitter, seed=seed, weights=weights, fixed=fixed,
                                           mechanism=mechanism))
    return plans


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
    kwargs["results_dir"] = Path(config.getoption("--results-dir"))
    try:
        settings = config.stash[SETTINGS] = RunSettings(**kwargs)
        config.stash[PLANS] = _migration_plans(config, tuple(range(1, settings.paths + 1)))
        tolerance = float(config.getoption("--switch-tolerance"))
        if not 0 <= tolerance < 1:
            raise ConfigError(f"--switch-tolerance {tolerance} must be at least 0 and below 1")
        option = config.getoption
        repeat = int(option("--repeat"))
        if repeat < 1:
            raise ConfigError(f"--repeat {repeat} must be at least 1")
        degrade_drop = parse_number(option("--degrade-drop"), "--degrade-drop")
        if degrade_drop >= 1:
            raise ConfigError(f"--degrade-drop {option('--degrade-drop')} must be below 1 (a share of packets)")
        config.stash[TOLERANCES] = {
            "switches": tolerance, "repeat": repeat,
            "throughput": parse_number(option("--throughput-tolerance"), "--throughput-tolerance"),
            "verdict_from_interval": parse_number(option("--verdict-from-interval"), "--verdict-from-interval",
                                                   allow_zero=True),
            "pageload": parse_number(option("--pageload-tolerance"), "--pageload-tolerance"),
            "max_lost_per_switch": parse_number(option("--max-lost-per-switch"), "--max-lost-per-switch",
                                                 allow_zero=True),
            "probe_rate": parse_number(option("--probe-rate"), "--probe-rate"),
            "iperf_seconds": parse_number(option("--iperf-seconds"), "--iperf-seconds"),
            "udp_rate": option("--udp-rate"),
            "page_timeout": parse_number(option("--page-timeout"), "--page-timeout"),
            "download_mb": tuple(parse_number(x, "--download-sizes") for x in option("--download-sizes").split(",")),
            "degrade_drop": degrade_drop,
            "degrade_rate": parse_rate(option("--degrade-rate"), "--degrade-rate"),
        }
    except ValueError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    except HarnessError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    config.stash[RESULTS] = ResultsWriter(settings.run_dir, settings.run_id)
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
    if "migration_plan" in metafunc.fixturenames:
        plans = metafunc.config.stash[PLANS]
        metafunc.parametrize("migration_plan", plans, ids=[plan.label for plan in plans])


DESELECTED = pytest.StashKey[list]()
PROGRESS = pytest.StashKey[dict]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """The run record: the exact command, its options and the environment (reports reproduce runs from it)."""
    config = session.config
    if config.stash.get(RESULTS, None) is None:
        return
    options = {name: value for name, value in vars(config.option).items()
               if isinstance(value, (str, int, float, bool, type(None)))}
    config.stash[RESULTS].record("run", argv=[sys.executable, "-m", "pytest", *config.invocation_params.args],
                                 cwd=str(config.invocation_params.dir), options=options,
                                 backends=list(config.stash[SETTINGS].backends))


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[PROGRESS] = {"items": list(session.items), "done": 0, "started": time.monotonic(),
                                      "seconds": defaultdict(list)}


def estimate_left(remaining: list[str], seconds: dict[str, list[float]]) -> float | None:
    """Seconds the `remaining` tests (by function name) should take, from those of the same function
    that finished (the mean of all finished tests for a function not seen yet); None before any finished."""
    finished = [s for values in seconds.values() for s in values]
    if not finished:
        return None
    overall = sum(finished) / len(finished)
    return sum(sum(seconds[name]) / len(seconds[name]) if seconds.get(name) else overall for name in remaining)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem) -> None:
    config = item.config
    if not config.getoption("--sweep-progress"):
        return
    state = config.stash[PROGRESS]
    elapsed = time.monotonic() - state["started"]
    remaining = [i.originalname or i.name for i in state["items"][state["done"]:]]
    left = estimate_left(remaining, state["seconds"])
    left_text = "" if left is None else f", about {_minutes(left)} left"
    print(f"[{state['done'] + 1}/{len(state['items'])}] {item.nodeid} ({_minutes(elapsed)} so far{left_text})",
          file=sys.stderr, flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Every test outcome is also a record, so a report's verdict table and its figures come from one file."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _record_outcome(item, report)
    if report.when == "call":
        _attach_plots(item, report)
    state = item.config.stash[PROGRESS]
    state.setdefault("running", 0.0)
    state["running"] += report.duration
    if report.when == "teardown":
        state["done"] += 1
        state["seconds"][item.originalname or item.name].append(state.pop("running"))
        if report.failed:
            _record_outcome(item, report)


def _attach_plots(item: pytest.Item, report: pytest.TestReport) -> None:
    """With pytest-html (`pytest --html=FILE`), a measurement test's plots go into its row of that report."""
    if not item.config.pluginmanager.hasplugin("html"):
        return
    from pytest_html import extras
    from harness.report import charts_svg
    records = item.config.stash[RESULTS].measurements_of(item.name)
    if records:
        report.extras = [*getattr(report, "extras", []), *(extras.html(chart) for chart in charts_svg(records))]


def _record_outcome(item: pytest.Item, report: pytest.TestReport) -> None:
    params = getattr(item, "callspec", None)
    params = params.params if params is not None else {}
    plan = params.get("migration_plan")
    reason = ""
    if report.failed or report.skipped:
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash is not None else str(report.longrepr)
        reason = reason.splitlines()[0][:500] if reason else ""
    item.config.stash[RESULTS].record(
        "test", test=item.nodeid, scenario=item.originalname or item.name, phase=report.when,
        outcome=report.outcome, reason=reason, duration_s=round(report.duration, 3),
        backend=params.get("backend"), interval=plan.interval if plan is not None else None,
        strategy=plan.strategy if plan is not None else None,
        mechanism=params.get("mechanism") or (plan.mechanism if plan is not None else None),
        label=plan.label if plan is not None else None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Docker-only scenarios (the compose demo) leave the run, with a line saying so, without docker."""
    if "docker" in config.stash[SETTINGS].backends:
        return
    dropped = [item for item in items if item.get_closest_marker("docker_only")]
    if dropped:
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=dropped)
        config.stash[DESELECTED] = [item.nodeid for item in dropped]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    dropped = config.stash.get(DESELECTED, [])
    if dropped:
        terminalreporter.write_line(f"comps-harness: {len(dropped)} Docker-only scenario(s) not run, because "
                                    f"--backend does not include docker: {', '.join(dropped)}", yellow=True)


@pytest.fixture(scope="session")
def run_settings(request: pytest.FixtureRequest) -> RunSettings:
    return request.config.stash[SETTINGS]


@pytest.fixture(scope="session")
def backend_ready(backend: str, run_settings: RunSettings, request: pytest.FixtureRequest) -> str:
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
def network(backend: str, backend_ready: str, run_settings: RunSettings) -> Network:
    """A freshly built topology for one test, removed afterwards whatever happened."""
    run_id = f"{run_settings.run_id}-{next(_counter)}"
    with network_for(backend, run_settings, run_id=run_id) as net:
        yield net


@pytest.fixture(scope="session")
def results(request: pytest.FixtureRequest) -> ResultsWriter:
    """The run's results file (reports/<run id>/results.jsonl), appended as results come in."""
    return request.config.stash[RESULTS]


@pytest.fixture(scope="session")
def tolerances(request: pytest.FixtureRequest) -> dict:
    return request.config.stash[TOLERANCES]


@pytest.fixture
def origin_services(network: Network, tolerances: dict) -> OriginServices:
    """Web pages, files, iperf3 and the probe echo on `origin`, for one test."""
    try:
        require_measurement_tools(browser=False)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    with OriginServices(network, file_sizes=tuple(int(mb * MB) for mb in tolerances["download_mb"])) as services:
        yield services


@pytest.fixture
def record_condition(results: ResultsWriter, network: Network, request: pytest.FixtureRequest):
    """Write one measurement (one condition, one repetition) to the results file as it is produced."""
    def record(scenario: str, condition: str, rep: int, result) -> None:
        results.measurement(scenario, request.node.name, condition, rep, network, result)
    return record
