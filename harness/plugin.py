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
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import options
from harness.backends.registry import Prepared, check_backend, network_for, sweep_child_runs
from harness.data import DURATIONS_FILE
from harness.errors import HarnessError
from harness.measure.services import OriginServices, require_measurement_tools
from harness.measure.verdicts import judge_repetitions
from harness.model import budget as budgets
from harness.model import shards
from harness.model.events import check_events
from harness.model.evidence import ProofOutcome
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


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("comps-harness")
    options.add_to_pytest(group)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--vm: the same pytest command, without --vm, inside the guest; its exit status is ours."""
    if not config.getoption("vm") or os.environ.get(IN_VM_ENV):
        return None
    from harness.vm.runner import rerun_in_guest

    try:
        return rerun_in_guest(
            options.settings_from(_raw_options(config)),
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


def _raw_options(config: pytest.Config) -> dict[str, Any]:
    return {option.dest: config.getoption(option.dest) for option in options.for_pytest()}


def pytest_configure(config: pytest.Config) -> None:
    """Parse the options once into the session's state, registered as a plugin of its own."""
    try:
        settings = options.settings_from(_raw_options(config))
        state = HarnessSession(config, settings, options.plans_of(settings), options.path_profiles(settings.run))
    except HarnessError as exc:
        raise pytest.UsageError(f"comps-harness: {exc}") from None
    config.stash[SESSION] = state
    config.pluginmanager.register(state, "comps-harness-session")


def session_of(config: pytest.Config) -> HarnessSession:
    return config.stash[SESSION]


def _run_fields(config: pytest.Config, settings: Settings) -> dict[str, Any]:
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
        "backends": list(settings.run.backends),
        "settings": recorded(settings),
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


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("backend") if callspec is not None else None


def one_interval(plans: list) -> list:
    """The plans of the longest interval only: a self-check that shows a verdict can turn red needs one
    interval, not every interval of the sweep (its five interleaved pairs cost ~30 s each)."""
    longest = max((plan.interval for plan in plans if plan.interval), default=None)
    return [plan for plan in plans if plan.interval == longest] if longest else plans


def estimate_left(remaining: list[str], seconds: dict[str, list[float]]) -> float | None:
    """Seconds the `remaining` tests (by function name) should take, from those of the same function
    that finished (the mean of all finished tests for a function not seen yet); None before any finished."""
    finished = [s for values in seconds.values() for s in values]
    if not finished:
        return None
    overall = sum(finished) / len(finished)
    return sum(sum(seconds[name]) / len(seconds[name]) if seconds.get(name) else overall for name in remaining)


def _interval_of(item: pytest.Item) -> float | None:
    callspec = getattr(item, "callspec", None)
    plan = callspec.params.get("migration_plan") if callspec is not None else None
    return plan.interval if plan is not None else None


def outcome_of(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo | None) -> Outcome:
    """A verdict (passed, failed), unjudged (passed, but measured without a verdict), an infrastructure error
    (a HarnessError, or a failure outside the test's call), or skipped."""
    if report.passed:
        if ("verdict", "unproven") in item.user_properties:
            return Outcome.UNPROVEN
        return Outcome.UNJUDGED if ("verdict", "unjudged") in item.user_properties else Outcome.PASSED
    if report.skipped:
        return Outcome.SKIPPED
    infrastructure = call is not None and call.excinfo is not None and call.excinfo.errisinstance(HarnessError)
    return Outcome.FAILED if report.when == "call" and not infrastructure else Outcome.ERROR


@dataclass
class Progress:
    """--sweep-progress: what has finished, how long each test function took, the worst outcome so far."""

    items: list[pytest.Item] = field(default_factory=list)
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    running: float = 0.0  # the current test's phases so far
    worst: Outcome = Outcome.PASSED


class HarnessSession:
    """Everything one pytest session of the harness knows, in one object registered as a plugin: the parsed
    settings and plans, the results file, the profile checks, progress, and what the session removed."""

    def __init__(self, config: pytest.Config, settings: Settings, plans: list, profiles: tuple[Profile, ...]):
        self.config = config
        self.settings = settings
        self.plans = plans
        self.profiles = profiles
        self.profile_checks: dict[tuple[str, str], dict] = {}
        run = settings.run
        self.results = ResultsWriter(
            run.run_dir,
            run.run_id,
            run=_run_fields(config, settings),
            sweep_id=run.sweep_id,
            shard=str(run.shard or "1/1"),
        )
        self.progress = Progress()
        self.deselected: list[str] = []
        self.not_over_ssh = 0  # scenarios left out over ssh (not marked ssh yet)
        self.swept: list[str] = []
        self.networks = itertools.count(1)  # run ids of the tests' networks: <run id>-<n>
        self.budget: budgets.Budget | None = None  # --budget, planned once the tests are collected
        self.durations: dict[str, dict[str, float]] = {}  # per test: its fixed part and pair (durations.json)
        # SIGTERM unwinds like Ctrl-C, so fixture finalizers remove what the run built.
        self._unwind = signals.interrupts_unwind()
        self._unwind.__enter__()

    # -- hooks ----------------------------------------------------------------------------------
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._unwind.__exit__(None, None, None)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "backend" in metafunc.fixturenames:
            backends = self.settings.run.backends
            metafunc.parametrize("backend", backends, ids=list(backends), scope="session")
        if "path_profile" in metafunc.fixturenames and [p.name for p in self.profiles] != ["lan"]:
            # lan alone: the ids stay as they were
            metafunc.parametrize("path_profile", self.profiles, ids=[profile.name for profile in self.profiles])
        if "migration_plan" in metafunc.fixturenames:
            plans = self.plans
            if "mechanism" in metafunc.fixturenames or metafunc.definition.get_closest_marker("atomic_switch"):
                # the test chooses the mechanism itself (or needs the atomic one): one plan per interval,
                # not one per --switch-mechanism, so no two ids run the same thing
                plans = [plan for plan in plans if plan.mechanism == "netlink"]
            if metafunc.definition.get_closest_marker("one_interval"):
                plans = one_interval(plans)
            metafunc.parametrize("migration_plan", plans, ids=[plan.label for plan in plans])

    @pytest.hookimpl(trylast=True)  # after -k and -m deselected: a shard splits what the sweep selected
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Docker-only scenarios (the compose demo) leave the run, with a line saying so, without docker; with
        --shard K/N only the K-th part of what is left stays (every shard computes the same split)."""
        if "docker" not in self.settings.run.backends:
            dropped = [item for item in items if item.get_closest_marker("docker_only")]
            if dropped:
                items[:] = [item for item in items if item not in dropped]
                config.hook.pytest_deselected(items=dropped)
                self.deselected = [item.nodeid for item in dropped]
        if "ssh" in self.settings.run.backends:
            # over ssh run only the scenarios marked for it so far (docs/remote.md says which and why)
            not_yet = [item for item in items if _backend_of(item) == "ssh" and not item.get_closest_marker("ssh")]
            if not_yet:
                items[:] = [item for item in items if item not in not_yet]
                config.hook.pytest_deselected(items=not_yet)
                self.not_over_ssh = len(not_yet)
        self._shard(config, items)

    def _shard(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """--shard K/N: keep the K-th part (model.shards.partition); the run record keeps the sweep's tests."""
        run = self.settings.run
        recorded = [item.nodeid for item in items if item.get_closest_marker("network")]
        sweep: dict = {"collected": recorded}  # the sweep id and shard: on every record, the run record's too
        if run.shard is not None:
            table = budgets.read_table(run.shard_durations or DURATIONS_FILE)
            parts = shards.partition(
                [item.nodeid for item in items], table, run.shard.count, self.settings.measure.repeat
            )
            keep = set(parts[run.shard.index - 1])
            others = [item for item in items if item.nodeid not in keep]
            items[:] = [item for item in items if item.nodeid in keep]
            if others:
                config.hook.pytest_deselected(items=others)
            sweep["durations"] = str(run.shard_durations or "shipped")
        sweep["tests"] = [item.nodeid for item in items if item.get_closest_marker("network")]
        self.results.add_run_fields(sweep=sweep)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        measure = self.settings.measure
        if measure.budget_s is not None:
            begun = self.config.getoption("--budget-from")
            elapsed = max(0.0, time.time() - float(begun)) if begun else 0.0
            table = budgets.read_table(measure.durations or DURATIONS_FILE)
            measuring = [item for item in session.items if item.get_closest_marker("measurement")]
            judged_from = self.settings.tolerances.verdict_from_interval
            below = {item.name for item in measuring if (_interval_of(item) or judged_from) < judged_from}
            costs = {item.name for item in measuring} - below
            order = budgets.run_order([item.name for item in session.items], costs, below)
            session.items.sort(key=lambda item: order.index(item.name))
            self.budget = budgets.Budget.plan(measure.budget_s, elapsed, order, table, measure.repeat)
            if self.budget.planned_s() > self.budget.left_s():
                print(
                    f"comps-harness: --budget {measure.budget_s:g} s: the minimum pairs of these {len(order)} tests "
                    f"take about {self.budget.planned_s():.0f} s: the last ones will be skipped (budget)",
                    file=sys.stderr,
                    flush=True,
                )
        self.progress = Progress(items=list(session.items))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """--budget: a test whose minimum no longer fits in what is left is skipped, with the figures."""
        if self.budget is not None:
            reason = self.budget.start(item.name)
            if reason:
                pytest.skip(reason)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """Every test outcome is also a record, so a report's verdict table and its figures come from one file."""
        report = (yield).get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self._record_outcome(item, report, call)
        if report.when == "call":
            self._attach_plots(item, report)
        state = self.progress
        state.running += report.duration
        this = outcome_of(item, report, call)
        quiet = (Outcome.PASSED, Outcome.UNJUDGED, Outcome.UNPROVEN)
        if this != Outcome.PASSED and (state.worst in quiet or this == Outcome.ERROR):
            state.worst = this
        if report.when == "teardown":
            state.done += 1
            seconds, state.running = state.running, 0.0
            state.seconds[item.originalname or item.name].append(seconds)
            if state.worst != Outcome.SKIPPED:
                self._note_duration(item, seconds)
            if report.failed:
                self._record_outcome(item, report, call)
            if self.config.getoption("--sweep-progress"):
                self._progress_line(item, state.worst, seconds)
            state.worst = Outcome.PASSED

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Remove what this session's own child runs left (`<run id>-...`): a test killed by its time-out
        cannot tear down what its child harness made (a guest's work dir, a topology)."""
        if any(item.get_closest_marker("network") for item in session.items):
            self.swept = sweep_child_runs(self.settings.run.run_id, self.settings.run.backends)
        if self.durations and self.settings.run.run_dir is not None:
            path = self.settings.run.run_dir / "durations.json"
            path.write_text(budgets.table_json(self.durations, f"run {self.settings.run.run_id}"))

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        if self.swept:
            terminalreporter.write_line(
                f"comps-harness: removed what this session's killed tests left: {'; '.join(self.swept)}", yellow=True
            )
        if self.results.written:
            terminalreporter.write_line(
                f"comps-harness: results in {self.results.path} (report: comps-harness report {self.results.path})"
            )
        if self.deselected:
            terminalreporter.write_line(
                f"comps-harness: {len(self.deselected)} Docker-only scenario(s) not run, because "
                f"--backend does not include docker: {', '.join(self.deselected)}",
                yellow=True,
            )
        if self.not_over_ssh:
            terminalreporter.write_line(
                f"comps-harness: {self.not_over_ssh} scenario(s) not run over ssh: they do not run there yet "
                "(marker ssh; docs/remote.md)",
                yellow=True,
            )

    # -- helpers ---------------------------------------------------------------------------------
    def _note_duration(self, item: pytest.Item, seconds: float) -> None:
        """A test that ran (not skipped): its fixed part and its pair, from the pairs its properties name."""
        if item.get_closest_marker("network") is None:
            return
        properties = dict(item.user_properties)
        pairs, pair_s = properties.get("pairs"), properties.get("pair_s")
        paired = float(pair_s) * int(pairs) if pairs and pair_s else 0.0
        self.durations[item.name] = {
            "fixed_s": round(max(0.0, seconds - paired), 2),
            "pair_s": round(float(pair_s), 2) if pair_s else 0.0,
            "pairs": int(pairs) if pairs else 0,
        }

    def _progress_line(self, item: pytest.Item, outcome: Outcome, seconds: float) -> None:
        """--sweep-progress: one line per finished test, with its outcome, and an estimate of what is left."""
        state = self.progress
        elapsed = time.monotonic() - state.started
        remaining = [i.originalname or i.name for i in state.items[state.done :]]
        left = estimate_left(remaining, state.seconds)
        if self.budget is not None and left is not None:  # what does not fit is skipped
            left = max(0.0, min(left, self.budget.left_s()))
        left_text = "" if left is None else f", about {budgets.minutes_text(left)} left"
        if self.budget is not None:
            left_text += f", budget left {budgets.minutes_text(self.budget.left_s())}"
        print(
            f"[{state.done}/{len(state.items)}] {outcome:8} {item.nodeid} ({seconds:.1f} s; "
            f"{budgets.minutes_text(elapsed)} so far{left_text})",
            file=sys.stderr,
            flush=True,
        )

    def _attach_plots(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """With pytest-html (`pytest --html=FILE`), a measurement test's plots go into its row of that report."""
        if not self.config.pluginmanager.hasplugin("html"):
            return
        from pytest_html import extras

        from harness.reporting.report import charts_svg

        records = self.results.measurements_of(item.name)
        if records:
            report.extras = [*getattr(report, "extras", []), *(extras.html(chart) for chart in charts_svg(records))]

    def _record_outcome(self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo | None) -> None:
        """Scenarios (marker `network`) only: a unit-test run writes nothing."""
        if item.get_closest_marker("network") is None:
            return
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        plan = params.get("migration_plan")
        reason = ""
        if report.failed or report.skipped:
            crash = getattr(report.longrepr, "reprcrash", None)
            if isinstance(report.longrepr, tuple):  # a skip: (file, line, "Skipped: why")
                reason = str(report.longrepr[2]).removeprefix("Skipped: ")
            else:
                reason = crash.message if crash is not None else str(report.longrepr)
            reason = reason.splitlines()[0][:500] if reason else ""
        elif ("verdict", "unproven") in item.user_properties:
            reason = f"unproven: {dict(item.user_properties).get('unproven', '')}"
        outcome = outcome_of(item, report, call)
        self.results.write(
            TestRecord(
                run_id=self.results.run_id,
                time=round(time.time(), 3),
                test=item.nodeid,
                scenario=item.originalname or item.name,
                phase=report.when,
                outcome=outcome,
                reason=reason,
                duration_s=round(report.duration, 3),
                # a measuring test failed by its proof (not by a research verdict) is the harness's own check
                check="research"
                if item.get_closest_marker("measurement") and ("proof", "failed") not in item.user_properties
                else "proof",
                detail=str(report.longrepr)[-4000:] if outcome == Outcome.ERROR else "",
                backend=params.get("backend"),
                interval=plan.interval if plan is not None else None,
                profile=params["path_profile"].name if "path_profile" in params else "lan",
                strategy=plan.strategy if plan is not None else None,
                mechanism=params.get("mechanism") or (plan.mechanism if plan is not None else None),
                label=plan.label if plan is not None else None,
                params=callspec.id if callspec is not None else "",
                expects_red=item.get_closest_marker("expect_red") is not None,
            )
        )


SESSION = pytest.StashKey[HarnessSession]()


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> Settings:
    return session_of(request.config).settings


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


@pytest.fixture
def path_profile(request: pytest.FixtureRequest) -> Profile:
    """The path profile of this test (parametrized by --profile; lan, unshaped, when only that)."""
    return session_of(request.config).profiles[0]


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
    run_id = f"{run_settings.run_id}-{next(session_of(request.config).networks)}"
    path_ids = tuple(range(1, run_settings.paths + 1))
    shaped = path_profile.shaped(path_ids)
    try:
        check_events(path_profile.events, path_ids, None)
    except HarnessError as exc:
        pytest.fail(f"--profile {path_profile.name}: {exc}", pytrace=False)
    if shaped:
        try:
            require_qdiscs(path_profile, path_ids)  # before anything is built
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
    with network_for(backend, run_settings, run_id=run_id, prepared=backend_ready) as net:
        net.profile = path_profile.name
        net.profile_events = path_profile.events
        with ShapedPaths(net, path_profile) if shaped else contextlib.nullcontext():
            if shaped:
                _check_profile(request, net, path_profile, backend)
            yield net


def _check_profile(request: pytest.FixtureRequest, net: Network, profile: Profile, backend: str) -> None:
    state = session_of(request.config)
    checks = state.profile_checks
    if (backend, profile.name) not in checks:
        checks[(backend, profile.name)] = verify(net, profile)
        state.results.profile_check(net, checks[(backend, profile.name)])
    failures = checks[(backend, profile.name)]["failures"]
    if failures:
        pytest.fail(f"path profile {profile.name} is not what it says: {'; '.join(failures)}", pytrace=False)


@pytest.fixture(scope="session")
def results(request: pytest.FixtureRequest) -> ResultsWriter:
    """The run's results file (reports/<run id>/results.jsonl), appended as results come in."""
    return session_of(request.config).results


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
def record_condition(results: ResultsWriter, network: Network, request: pytest.FixtureRequest, tolerances: Tolerances):
    """Write one measurement (one condition, one repetition) to the results file as it is produced, a
    migrating one with its proof (judged with the same rules as test_migration_moves_the_traffic)."""

    def record(scenario: str, condition: str, rep: int, result) -> None:
        proof = result.evidence.judge(tolerances) if result.plan.switches() else None
        results.measurement(scenario, request.node.name, condition, rep, network, result, proof)

    return record


@pytest.fixture(scope="session")
def may_spend(request: pytest.FixtureRequest) -> Callable[[float], bool] | None:
    """--budget: whether a running condition may spend that many more seconds (None: no budget)."""
    budget = session_of(request.config).budget
    return None if budget is None else budget.may_spend


@pytest.fixture
def proof_gate(tolerances: Tolerances, request: pytest.FixtureRequest) -> Callable[[list], bool]:
    """The one path from a measurement to its verdict: `proof_gate(migrating)` judges every migrating
    repetition's evidence (harness.measure.verdicts.judge_repetitions). Failed: the test fails with the
    proof's line. Unproven: the test passes as `unproven`, with the reason, and returns False (no cost,
    no ratio verdict). Proven: True. The outcome and the adherence go into the test's JUnit properties."""

    def gate(migrating: list) -> bool:
        proof = judge_repetitions([result.evidence for result in migrating], tolerances)
        request.node.user_properties += [
            ("proof", str(proof.outcome)),
            ("adherence_up", proof.adherence_up),
            ("adherence_down", proof.adherence_down),
        ]
        if proof.outcome == ProofOutcome.FAILED:
            pytest.fail(f"migration did not happen as planned: {proof.reason}", pytrace=False)
        if proof.outcome == ProofOutcome.UNPROVEN:
            request.node.user_properties += [("verdict", "unproven"), ("unproven", proof.reason)]
            return False
        return True

    return gate
