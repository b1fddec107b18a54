"""Measurements with real tools, run inside the hosts: iperf3, the UDP probe, HTTP downloads, Chromium.

`OriginServices` starts what `origin` serves (web pages and files, iperf3, the probe's echo).
`measure_condition` runs one measurement under one migration plan (strategy none = baseline)
and returns its figures together with the migration evidence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import MeasurementError
from harness.measure import iperf
from harness.measure.loss import analyze
from harness.measure.verdicts import judge_repetitions, metric_decisions, scenario_design
from harness.model.evidence import MigrationEvidence, ProofOutcome
from harness.model.metrics import METRICS, PAGELOAD, TCP_DOWN, TCP_UP, THROUGHPUT_KINDS, UDP, Scenario, series
from harness.model.schedule import MIN_SPAN_S, MigrationPlan, baseline_of, measurement_span
from harness.model.sequential import Decision, Design, StopReason, stop_reason
from harness.model.settings import FaultSpec, MeasureSettings, Tolerances
from harness.runtime import content
from harness.runtime.migration import MigrationController
from harness.runtime.network import Network
from harness.system import prereq, proc
from harness.system.wait import wait_until

log = logging.getLogger(__name__)
HTTP_PORT = 8080
IPERF_ATTEMPTS = 4
IPERF_RETRY_S = 0.3
PROBE_PORT = 9000
RECORDING_PORT = 9001  # the recording echo (probe_both_ways), one per stream
PROBE_SCRIPT = "agents/probe.py"
BROWSER_MODULE = "harness.agents.browser"


def require_measurement_tools(browser: bool = False) -> None:
    prereq.require_binaries(["iperf3", "curl", "ss"] + (["chromedriver"] if browser else []))
    if browser:
        prereq.require_any_binary(("chromium", "chromium-browser", "google-chrome"))


class BrowserSession:
    """One Chromium kept for a test's page loads (the browser agent with --serve).

    Starting Chromium costs 10-15 s on two loaded cores, against 1-2 s for a page set: one browser
    per condition spent most of a page-load test starting browsers. It runs inside the client
    (namespaces), or here driving the chromedriver that the Docker backend runs in the client's
    namespace; either way Chromium's traffic leaves from the client. It dies with the harness."""

    START_TIMEOUT_S = 120.0

    def __init__(self, network: Network, *, timeout: float, screenshots: Path, profile: Path) -> None:
        args = ["--serve", "--timeout", f"{timeout:g}", "--screenshots", str(screenshots), "--profile", str(profile)]
        args += ["--reachable", str(network.topology.origin_address().ip)]
        remote = network.browser_url()
        argv = (
            network.client.command_prefix() + network.client.python() + ["-m", BROWSER_MODULE, *args]
            if remote is None
            else [sys.executable, "-m", BROWSER_MODULE, "--remote", remote, *args]
        )
        self.log_path = network.workdir / "browser-agent.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=proc.tagged_env(network.run_id),
                start_new_session=True,
                preexec_fn=proc.die_with_parent,
            )
        try:
            self._answer(self.START_TIMEOUT_S)
        except MeasurementError:
            self.close()
            raise

    def running(self) -> bool:
        return self.process.poll() is None

    def _said(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        said = [line for line in lines if line.startswith("browser agent:")]
        return said[-1] if said else " | ".join(lines[-3:])

    def _answer(self, timeout: float):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            state = f"exit {self.process.poll()}" if self.process.poll() is not None else f"no answer in {timeout:g} s"
            raise MeasurementError(f"the browser run failed ({state}): {self._said()}")
        return json.loads(line)

    def loads(self, urls: list[str], timeout: float) -> list[dict]:
        try:
            self.process.stdin.write(json.dumps(urls) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise MeasurementError(f"the browser run failed (exit {self.process.poll()}): {self._said()}") from None
        return self._answer(timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(OSError):
            self.process.stdout.close()


DOWNLOAD_MAX_S = 240.0  # curl's --max-time for one download


@dataclass
class OriginServices:
    network: Network
    file_sizes: tuple[int, ...] = (content.MB, 10 * content.MB)
    _browser: BrowserSession | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        return str(self.network.topology.origin_address().ip)

    def url(self, path: str) -> str:
        return f"http://{self.address}:{HTTP_PORT}/{path}"

    def __enter__(self) -> OriginServices:
        origin = self.network.origin
        www = self.network.workdir / "www"
        self.paths = content.generate(www, self.file_sizes)
        origin.spawn(
            origin.python() + ["-m", "http.server", "--bind", self.address, "--directory", str(www), str(HTTP_PORT)],
            name="http",
        )
        self._iperf_server = self._start_iperf_server()
        origin.spawn(origin.python(PROBE_SCRIPT) + ["echo", "--port", str(PROBE_PORT)], name="probe-echo")
        # under TCG a spawn of ss takes seconds: the deadlines leave room for that
        wait_until(lambda: self._listening(), timeout=60, interval=0.05, what="origin services listening")
        return self

    def _listening(self) -> bool:
        out = self.network.origin.exec(["ss", "-H", "-ltnu"], timeout=30).stdout
        return all(f":{port} " in out for port in (HTTP_PORT, iperf.IPERF_PORT, PROBE_PORT))

    def __exit__(self, *exc: object) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        self.network.origin.stop_processes()

    # -- measurements (run in the client) --------------------------------------------------
    def _start_iperf_server(self):
        return self.network.origin.spawn(["iperf3", "-s", "-p", str(iperf.IPERF_PORT)], name="iperf3")

    def iperf3(self, seconds: float, *, reverse: bool = False, udp_rate: str | None = None) -> iperf.IperfResult:
        """One iperf3 run. The server takes a moment to accept the next test after one ends, and
        iperf3 3.12's server sometimes exits after a test: those (and only those) are retried, with
        a fresh server when it died; the retries are counted in the result."""
        argv = iperf.client_argv(self.address, seconds=seconds, reverse=reverse, udp_rate=udp_rate)
        for attempt in range(IPERF_ATTEMPTS):
            started = time.monotonic()  # places the series on the migration's clock (switch markers)
            out = self.network.client.exec(argv, check=False, timeout=seconds + 30)
            try:
                return dataclasses.replace(iperf.parse(out.stdout), started_monotonic=started, retries=attempt)
            except MeasurementError as error:
                if not any(text in str(error) for text in iperf.RETRYABLE) or attempt == IPERF_ATTEMPTS - 1:
                    raise
                if not self._iperf_server.running():
                    log.warning("iperf3 server exited (%s); starting a new one", self._iperf_server.log_tail(2))
                    self._iperf_server = self._start_iperf_server()
                wait_until(self._listening, timeout=60, interval=0.05, what="the iperf3 server listening")
                time.sleep(IPERF_RETRY_S)
        raise MeasurementError(f"iperf3 gave no result in {IPERF_ATTEMPTS} attempts")

    def throughput(self, seconds: float, kinds: tuple[str, ...] = THROUGHPUT_KINDS, udp_rate: str = "50M") -> dict:
        """Of `kinds`, one after the other: TCP upload, TCP download (-R), UDP at `udp_rate`."""
        options = {TCP_UP: {}, TCP_DOWN: {"reverse": True}, UDP: {"udp_rate": udp_rate}}
        return {kind: self.iperf3(seconds, **options[kind]).to_dict() for kind in kinds}

    def probe(self, seconds: float, rate: float) -> dict:
        out = self.network.client.exec(
            self.network.client.python(PROBE_SCRIPT)
            + [
                "send",
                "--to",
                self.address,
                "--port",
                str(PROBE_PORT),
                "--rate",
                f"{rate:g}",
                "--seconds",
                f"{seconds:g}",
            ],
            timeout=seconds + 30,
        )
        return json.loads(out.stdout)

    def probe_both_ways(self, seconds: float, rate: float, size: int = 200) -> dict:
        """The probe, with a recording echo of its own: what `probe` gives, and `received_up`, [seq, received_at]
        of every packet that reached the origin, so that what was lost up is told apart from what was lost down
        (one kernel's CLOCK_MONOTONIC on both sides: the hosts share this machine's kernel)."""
        origin, client = self.network.origin, self.network.client
        echo = origin.spawn(
            origin.python(PROBE_SCRIPT) + ["echo", "--port", str(RECORDING_PORT), "--record"],
            name="probe-record",
            stdout=subprocess.PIPE,
        )
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(echo.popen.stdout.read()), daemon=True)
        reader.start()
        try:
            argv = ["send", "--to", self.address, "--port", str(RECORDING_PORT), "--rate", f"{rate:g}"]
            argv += ["--seconds", f"{seconds:g}", "--size", str(size)]
            out = client.exec(client.python(PROBE_SCRIPT) + argv, timeout=seconds + 30)
        finally:
            echo.send_signal(signal.SIGTERM)  # it prints what it received and exits (the pipe closes)
            reader.join(timeout=10)
            echo.stop(timeout=5)
        if reader.is_alive() or not chunks:
            raise MeasurementError("the recording echo did not report what it received within 10 s")
        try:
            received = json.loads(chunks[0])["received"]
        except (ValueError, KeyError):
            raise MeasurementError(f"the recording echo's report is unreadable: {echo.log_tail()}") from None
        return {**json.loads(out.stdout), "size": size, "received_up": received}

    def download(self, path: str, max_seconds: float = DOWNLOAD_MAX_S) -> dict:
        """One download of `path` with curl; one that fails or outlasts `max_seconds` is a MeasurementError
        (curl's partial figures of a transfer it gave up on are no download time)."""
        out = self.network.client.exec(
            [
                "curl",
                "-sS",
                "--max-time",
                f"{max_seconds:g}",
                "-o",
                "/dev/null",
                "-H",
                "Cache-Control: no-cache",
                "-w",
                "%{http_code} %{size_download} %{time_total}",
                self.url(path),
            ],
            check=False,
            timeout=max_seconds + 60,
        )
        try:
            code, size, seconds = out.stdout.split()
        except ValueError:
            raise MeasurementError(f"download of {path} failed: {out.stderr.strip()}") from None
        if out.returncode != 0:
            raise MeasurementError(f"download of {path} failed (curl exit {out.returncode}): {out.stderr.strip()}")
        if code != "200":
            raise MeasurementError(f"download of {path}: HTTP {code}")
        return {"path": path, "bytes": int(size), "seconds": float(seconds)}

    def page_loads(self, pages: list[str], *, timeout: float, screenshots: Path) -> list[dict]:
        """One load of each page in the test's browser (started on first use, kept until the services end)."""
        if self._browser is None or not self._browser.running():
            self._browser = BrowserSession(
                self.network, timeout=timeout, screenshots=screenshots, profile=self.network.workdir / "browser"
            )
            self._browser.loads([self.url(pages[0])], timeout * 2 + 60)  # warm-up, not measured: every
            # measured condition then meets a browser in the same state
        return self._browser.loads([self.url(p) for p in pages], timeout * len(pages) + 60)

    def page_set(self, pages: list[str], *, timeout: float, screenshots: Path) -> dict:
        """One load of each page, as measurement figures; a load that failed is a MeasurementError naming it."""
        loads = self.page_loads(pages, timeout=timeout, screenshots=screenshots)
        failed = [load for load in loads if not load["ok"]]
        if failed:
            raise MeasurementError(
                f"page load failed: {failed[0]['url']}: {failed[0]['reason']} (screenshot {failed[0]['screenshot']})"
            )
        return {"loads": loads}


@dataclass
class ConditionResult:
    plan: MigrationPlan
    figures: dict
    evidence: MigrationEvidence


def measure_condition(network: Network, plan: MigrationPlan, measure: Callable[[], dict]) -> ConditionResult:
    """Run `measure` while `plan` migrates the client (strategy none: the baseline). A measurement that fails
    (a page load that timed out) still ends its migration: the error carries the evidence, and its line gains
    the proof's when that names a broken path (the likelier cause than the tool)."""
    failed = None
    with MigrationController(network, plan) as controller:
        try:
            figures = measure()
        except MeasurementError as error:
            failed = error
    evidence = controller.result()
    if failed is not None:
        proof = evidence.judge() if evidence.planned_switches else None  # a baseline proves nothing
        broken = proof is not None and proof.outcome == ProofOutcome.FAILED
        said = f"{failed}; the migration's proof: {proof.reason}" if broken else str(failed)
        error = MeasurementError(said)
        error.evidence = evidence
        raise error from failed
    return ConditionResult(plan, figures, evidence)


def loss_figures(probe: dict, evidence: MigrationEvidence, interval: float | None) -> dict:
    attribution = (interval / 2) if interval else 0.5
    return analyze(probe, evidence.switch_times_monotonic(), attribution_s=attribution).to_dict()


def measure_loss(
    network: Network, services: OriginServices, plan: MigrationPlan, *, seconds: float, rate: float
) -> ConditionResult:
    """The UDP probe for `seconds` at `rate` packets/s under `plan`; figures = the loss attributed to switches."""
    plan = for_measurement(plan, seconds)
    result = measure_condition(network, plan, lambda: services.probe(seconds, rate))
    result.figures = {"loss": loss_figures(result.figures, result.evidence, plan.interval), "probe_rate": rate}
    return result


def page_load_ms(results: list[ConditionResult], page: str) -> list[float]:
    """The load-event time of `page` in each of `results` (page_set figures; the mean over its rounds)."""
    return series(PAGELOAD, [r.figures for r in results]).get(page, [])


PAGE_NAMES = [f"{name}.html" for name in content.PAGES]


def scenario_measure(
    services: OriginServices,
    scenario: Scenario,
    settings: MeasureSettings,
    kinds: tuple[str, ...] = THROUGHPUT_KINDS,
    give_up_s: float | None = None,
    span_s: float = MIN_SPAN_S,
) -> tuple[Callable[[], dict], float]:
    """What one repetition of a measuring scenario runs, and about how many seconds of traffic it makes:
    the scenarios and the fault checks of their proofs (test_faults) measure with this very function.
    `give_up_s` bounds each page load and download (a fault check's stalled transfer need not run out);
    page sets and download sets repeat for `span_s` (measurement_span of the plan)."""
    if scenario == Scenario.THROUGHPUT:
        seconds = settings.iperf_seconds
        return lambda: services.throughput(seconds, kinds, udp_rate=settings.udp_rate), len(kinds) * seconds
    if scenario == Scenario.PAGELOAD:
        shots = services.network.workdir / "screenshots"
        timeout = min(settings.page_timeout, give_up_s or settings.page_timeout)

        def page_set() -> list[dict]:
            return services.page_set(PAGE_NAMES, timeout=timeout, screenshots=shots)["loads"]

        return lambda: in_rounds("loads", page_set, span_s), max(10.0, span_s)
    if scenario == Scenario.DOWNLOAD:
        files = [content.file_name(int(mb * content.MB)) for mb in settings.download_mb]

        def download_set() -> list[dict]:
            return [services.download(name, give_up_s or DOWNLOAD_MAX_S) for name in files]

        return lambda: in_rounds("downloads", download_set, span_s), max(10.0, span_s)
    raise MeasurementError(f"no repeated measurement for scenario {scenario}")


def in_rounds(key: str, one_round: Callable[[], list[dict]], span_s: float) -> dict:
    """`one_round` (a page set, a download set) again and again until `span_s` have passed (at least once):
    figures {key: every transfer, each with its "round"; "rounds": how many}. The metrics take the mean per
    page or file of one measurement (harness.model.metrics)."""
    started, done, rounds = time.monotonic(), [], 0
    while rounds == 0 or time.monotonic() - started < span_s:
        done += [{**item, "round": rounds} for item in one_round()]
        rounds += 1
    return {key: done, "rounds": rounds}


def interleave(
    network: Network,
    plan: MigrationPlan,
    repeat: int,
    measure: Callable[[], dict],
    on_result: Callable[[str, int, ConditionResult], None],
) -> tuple[list[ConditionResult], ...]:
    """Baseline and `plan` measured alternately `repeat` times; every result is handed to `on_result` at once."""
    baseline: list[ConditionResult] = []
    migrating: list[ConditionResult] = []
    for _ in range(repeat):
        _measure_pair(network, plan, measure, on_result, baseline, migrating)
    return baseline, migrating


def _measure_pair(
    network: Network,
    plan: MigrationPlan,
    measure: Callable[[], dict],
    on_result: Callable[[str, int, ConditionResult], None],
    baseline: list[ConditionResult],
    migrating: list[ConditionResult],
) -> None:
    """One pair: the baseline, then `plan`, each appended and handed to `on_result` at once."""
    rep = len(migrating)
    for condition, bucket in (("baseline", baseline), (plan.label, migrating)):
        result = measure_condition(network, baseline_of(plan) if condition == "baseline" else plan, measure)
        bucket.append(result)
        on_result(condition, rep, result)


def interleave_until(
    network: Network,
    plan: MigrationPlan,
    design: Design,
    measure: Callable[[], dict],
    on_result: Callable[[str, int, ConditionResult], None],
    decisions: Callable[[list[ConditionResult], list[ConditionResult]], list[Decision] | None],
    may_spend: Callable[[float], bool] | None = None,
) -> Pairs:
    """Pairs of baseline and `plan`, as `interleave`, until `decisions` (the judged metrics' decisions on the
    pairs so far, asked after every pair; None: the proof does not hold) say to stop, from the design's
    minimum on, or the design's maximum. A repetition whose proof does not hold stops the condition at once:
    its migration is unproven (or failed) whatever the next pairs show. At an undecided look the next look's
    pairs are taken only when `may_spend` (the time budget) grants their time, at this condition's own pace.
    Returns the pairs, each pair's seconds and why it stopped."""
    baseline: list[ConditionResult] = []
    migrating: list[ConditionResult] = []
    seconds: list[float] = []
    while True:
        started = time.monotonic()
        _measure_pair(network, plan, measure, on_result, baseline, migrating)
        seconds.append(time.monotonic() - started)
        decided = decisions(baseline, migrating)
        if decided is None:  # an unproven repetition leaves the condition unproven, whatever follows
            return Pairs(baseline, migrating, design, StopReason.UNPROVEN, seconds)
        n = len(migrating)
        if n < design.min_pairs:
            continue
        following = design.next_look(n) if n in design.looks else None
        affordable = following is None or may_spend is None or may_spend((following - n) * statistics.fmean(seconds))
        reason = stop_reason(decided, n, design, budget_left=affordable)
        if reason is not None:
            return Pairs(baseline, migrating, design, reason, seconds)


@dataclass
class Pairs:
    """A scenario's interleaved pairs: the results, and with a sequential design, the design and why it stopped."""

    baseline: list[ConditionResult]
    migrating: list[ConditionResult]
    design: Design | None = None
    stopped: StopReason | None = None
    pair_seconds: list[float] = field(default_factory=list)

    def properties(self) -> list[tuple[str, object]]:
        """What the test's JUnit properties say of its pairs (the durations table reads pairs and pair_s)."""
        pair_s = round(sum(self.pair_seconds) / len(self.pair_seconds), 3) if self.pair_seconds else None
        return [("pairs", len(self.migrating)), ("stopped", str(self.stopped or "fixed pairs")), ("pair_s", pair_s)]


def measured_pairs(
    services: OriginServices,
    plan: MigrationPlan,
    scenario: Scenario,
    settings: MeasureSettings,
    tolerances: Tolerances,
    on_result: Callable[[str, int, ConditionResult], None],
    may_spend: Callable[[float], bool] | None = None,
) -> Pairs:
    """A measuring scenario's pairs under `plan`: fixed at --min-pairs (at least the scenario's own minimum),
    or, with --max-pairs above it, sequential: pairs are added while a judged metric is undecided and the
    migration is proven, up to --max-pairs and while `may_spend` (the --budget) grants the time, with the
    group-sequential design's intervals."""
    measure, seconds = scenario_measure(services, scenario, settings, span_s=measurement_span(plan))
    plan = for_measurement(plan, seconds)
    metric = next(m for m in METRICS if m.scenario == scenario)
    design = scenario_design(settings, metric.min_pairs)
    if design is None:
        started = time.monotonic()
        baseline, migrating = interleave(
            services.network, plan, max(settings.repeat, metric.min_pairs), measure, on_result
        )
        return Pairs(baseline, migrating, pair_seconds=[(time.monotonic() - started) / max(1, len(migrating))])
    limit = metric.limit(tolerances) if metric.judged_at(plan.interval, tolerances) else None

    def decisions(baseline: list[ConditionResult], migrating: list[ConditionResult]) -> list[Decision] | None:
        if judge_repetitions([r.evidence for r in migrating], tolerances).outcome != ProofOutcome.PROVEN:
            return None  # more pairs would not make a cost of an unproven migration
        return metric_decisions(metric, [r.figures for r in baseline], [r.figures for r in migrating], limit, design)

    return interleave_until(services.network, plan, design, measure, on_result, decisions, may_spend)


def for_measurement(plan: MigrationPlan, seconds: float) -> MigrationPlan:
    """`plan` lasting long enough for a measurement of about `seconds` (it stops when the measurement ends)."""
    return dataclasses.replace(plan, duration=max(plan.duration, seconds * 2 + 10))


FAULT_GIVE_UP_S = 10.0  # a healthy page or file loads in well under this; a fault's stall then ends early


def measure_with_fault(
    services: OriginServices, scenario: Scenario, fault: FaultSpec, settings: MeasureSettings, interval: float = 0.1
) -> ConditionResult:
    """One migrating repetition of `scenario`'s own measurement (TCP upload alone for throughput) with `fault`
    applied: what the proof of a measuring scenario must turn red (test_faults, bench proof). A measurement the
    fault broke (a page load that timed out) gives its evidence with figures {"error": its line}."""
    plan = MigrationPlan(interval=interval, duration=2.0, paths=services.network.topology.path_ids, faults=(fault,))
    measure, seconds = scenario_measure(
        services, scenario, settings, kinds=(TCP_UP,), give_up_s=FAULT_GIVE_UP_S, span_s=measurement_span(plan)
    )
    plan = for_measurement(plan, seconds)
    try:
        return measure_condition(services.network, plan, measure)
    except MeasurementError as error:
        if error.evidence is None:
            raise
        return ConditionResult(plan, {"error": str(error)}, error.evidence)
