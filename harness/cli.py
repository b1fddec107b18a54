"""The comps-harness command: bring a topology up, clean after crashes, sweep, report, compare, benchmark.

Options shared with pytest come from one table (harness.options). Long commands print progress
to stderr; results go to stdout (JSON with --json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import options
from harness.backends.registry import REGISTRY, network_for, remove_run_everywhere, runs_on_machine
from harness.errors import ConfigError, HarnessError, Interrupted, WaitTimeout, exit_code_of
from harness.model.records import load as load_records
from harness.model.schedule import MigrationPlan
from harness.model.settings import (
    Settings,
    check_run_id,
    new_run_id,
    parse_number,
)
from harness.model.stats import percentile
from harness.reporting.summary import sweep_verdict
from harness.runtime.migration import run_migration
from harness.runtime.traffic import ping_stream
from harness.system import cleanup, signals
from harness.vm.command import IN_VM_ENV

REPO = Path(__file__).resolve().parent.parent  # the source checkout: `sweep` runs its scenarios/
RUN_OPTIONS = ("--backend", "--paths", "--wireguard", "--run-id")
SWEEP_DEADLINE_S = 12 * 3600.0  # a sweep longer than this is stuck (each test has pytest-timeout's 600 s too)
TEARDOWN_DEADLINE_S = 300.0  # pytest's teardown after a SIGINT: every fixture's own time-outs fit in it


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    return options.settings_from(vars(args))


def _single_backend(settings: Settings) -> str:
    if len(settings.run.backends) != 1:
        raise ConfigError("--backend: this command takes one backend (netns or docker)")
    return settings.run.backends[0]


def _emit(result: dict, as_json: bool) -> None:
    print(json.dumps(result) if as_json else "\n".join(f"{k}: {v}" for k, v in result.items()))


def cmd_up(args: argparse.Namespace) -> int:
    """Bring the topology up, optionally send traffic, hold, and tear down (used by interruption tests)."""
    settings = _settings(args)
    backend = _single_backend(settings)
    hold = parse_number(args.hold, "--hold")
    with network_for(backend, settings.run, progress=_progress) as network:
        with ping_stream(network, interval_s=0.01, size=56) if args.traffic else contextlib.nullcontext():
            if args.traffic:
                _progress(f"{settings.run.run_id}: traffic running")
            time.sleep(hold)
    _progress(f"{settings.run.run_id}: done")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove one run's leftovers (exact id), or every dead run's; a live run is never touched."""
    if args.run_id is not None:
        check_run_id(args.run_id, "--run-id")
        targets = [args.run_id]
    else:
        runs = runs_on_machine()
        targets = sorted(run_id for run_id, live in runs.items() if not live)
        for directory in cleanup.stale_browser_dirs():  # they belong to no run id
            if args.dry_run:
                print(f"would remove directory {directory}")
            else:
                shutil.rmtree(directory, ignore_errors=True)
                print(f"removed directory {directory}")
        for path in cleanup.dead_wireguard_sockets():  # nobody listens: no live run owns them
            if args.dry_run:
                print(f"would remove socket {path}")
            else:
                Path(path).unlink(missing_ok=True)
                print(f"removed socket {path}")
        for run_id in sorted(run_id for run_id, live in runs.items() if live):
            print(f"left alone: run {run_id} (its harness process is alive)")
    removed, leftovers = [], []
    for run_id in targets:
        if args.dry_run:
            found = cleanup.find_leftovers(run_id).describe()
            found += [item for backend in REGISTRY.values() for item in backend.leftovers(run_id)]
            removed += [f"would remove {item}" for item in found]
            continue
        gone, left = remove_run_everywhere(run_id)
        removed += gone
        leftovers += left
    for item in removed:
        print(item if args.dry_run else f"removed {item}")
    for item in leftovers:
        print(f"still there: {item}", file=sys.stderr)
    if not removed and not leftovers:
        print("nothing to clean")
    return 1 if leftovers else 0


def cmd_bench_bringup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    backend = _single_backend(settings)
    runs = int(parse_number(args.runs, "--runs"))
    ups, downs, wireguard = [], [], ""
    for run in range(runs):
        network = network_for(backend, settings.run, run_id=f"{settings.run.run_id}-{run}")
        start = time.monotonic()
        with network:
            ups.append(time.monotonic() - start)
            start = time.monotonic()
        downs.append(time.monotonic() - start)
        wireguard = network.wireguard_impl
        _progress(f"bench bringup {run + 1}/{runs}: up {ups[-1]:.3f} s, down {downs[-1]:.3f} s")
    _emit(
        {
            "backend": backend,
            "paths": settings.run.paths,
            "runs": runs,
            "wireguard": wireguard,
            "up_median_s": round(statistics.median(ups), 4),
            "up_p95_s": round(percentile(ups, 95), 4),
            "down_median_s": round(statistics.median(downs), 4),
            "down_p95_s": round(percentile(downs, 95), 4),
        },
        args.json,
    )
    return 0


def cmd_bench_switching(args: argparse.Namespace) -> int:
    """Switch on a schedule while traffic flows; report how far actual switches were from planned."""
    settings = _settings(args)
    backend = _single_backend(settings)
    plan_options = settings.plan
    if len(plan_options.intervals) != 1 or len(plan_options.mechanisms) != 1:
        raise ConfigError("bench switching takes one --interval and one --mechanism")
    plan = MigrationPlan(
        interval=plan_options.intervals[0],
        duration=plan_options.duration or 30.0,
        mechanism=plan_options.mechanisms[0],
        paths=tuple(range(1, settings.run.paths + 1)),
    )
    with network_for(backend, settings.run, progress=_progress) as network:
        with ping_stream(network):
            evidence = run_migration(network, plan, progress=_progress)
    errors = evidence.timing_error_ms()
    _emit(
        {
            "backend": backend,
            "mechanism": plan.mechanism,
            "interval_s": plan.interval,
            "duration_s": plan.duration,
            "wireguard": network.wireguard_impl,
            "planned_switches": evidence.planned_switches,
            "switches": len(evidence.switches),
            "timing_error_median_ms": errors["median"],
            "timing_error_p99_ms": errors["p99"],
            "timing_error_max_ms": errors["max"],
            "no_route_window_median_ms": evidence.no_route_ms()["median"],
            "endpoint_changes": evidence.endpoint_changes,
            "proof_failures": [str(failure) for failure in evidence.failures()],
        },
        args.json,
    )
    return 0


def cmd_bench_migration(args: argparse.Namespace) -> int:
    """Throughput, page-load and loss cost of migrating at each interval, against a same-run baseline."""
    from harness.measure.bench import MigrationBench
    from harness.measure.services import OriginServices, require_measurement_tools
    from harness.reporting.results import ResultsWriter

    settings = _settings(args)
    backend = _single_backend(settings)
    require_measurement_tools(browser=True)
    results = ResultsWriter(settings.run.run_dir, settings.run.run_id)
    with network_for(backend, settings.run, progress=_progress) as network:
        with OriginServices(network, file_sizes=()) as services:

            def record(scenario: str, condition: str, rep: int, result) -> None:
                results.measurement(scenario, "bench migration", condition, rep, network, result)

            result = MigrationBench(
                network, services, settings.plan.intervals, settings.measure, record, _progress
            ).run()
    result["results"] = str(results.path)
    _emit(result, args.json)
    return 0


def cmd_bench_proof(args: argparse.Namespace) -> int:
    """The healthy control, the fault catalogue, adherence and the capture cross-check (bench proof)."""
    from harness.backends.registry import check_backend
    from harness.measure import proofbench
    from harness.system.prereq import require_binaries

    settings = _settings(args)
    backend = _single_backend(settings)
    require_binaries(["tcpdump"] if backend == "netns" else [])
    prepared = check_backend(backend, settings.run, _progress)

    def new_network(case: str):
        return network_for(backend, settings.run, run_id=f"{settings.run.run_id}-{case}", prepared=prepared)

    _emit(proofbench.run(new_network, settings.tolerances, _progress), args.json)
    return 0


def cmd_bench_observer(args: argparse.Namespace) -> int:
    """What each proxy sees, for alternate and weighted-random at 0.1 and 1 s (bench observer)."""
    from harness.measure import observe
    from harness.measure.services import OriginServices, require_measurement_tools
    from harness.system.prereq import require_binaries

    settings = _settings(args)
    backend = _single_backend(settings)
    require_measurement_tools(browser=True)
    require_binaries(["tcpdump"] if backend == "netns" else [])
    with network_for(backend, settings.run, progress=_progress) as network:
        with OriginServices(network, file_sizes=()) as services:
            _emit(observe.bench(services, _progress), args.json)
    return 0


def cmd_bench_fidelity(args: argparse.Namespace) -> int:
    """wireguard-go in each sticky-source mode on the host, kernel WireGuard in a guest: the same migration."""
    import dataclasses

    from harness.measure import fidelity
    from harness.measure.services import OriginServices
    from harness.model.kinds import StickySource
    from harness.reporting.results import ResultsWriter
    from harness.vm.runner import prepare, run_in_vm

    settings = _settings(args)
    reps = settings.measure.repeat
    in_guest = os.environ.get(IN_VM_ENV)
    if in_guest:  # the guest's part: kernel WireGuard, no release at all
        implementations = [("kernel", StickySource.OFF)]
        intervals = fidelity.intervals_for(in_guest)
    else:
        guest = prepare(settings.vm, _progress)
        intervals = fidelity.intervals_for(guest.accel)
        implementations = [("wireguard-go", mode) for mode in fidelity.HOST_MODES]
    results = ResultsWriter(settings.run.run_dir, settings.run.run_id)
    runs = {}
    for implementation, mode in implementations:
        run = dataclasses.replace(
            settings.run, wireguard=implementation, run_id=f"{settings.run.run_id}-{implementation}-{mode}"
        )
        with network_for("netns", run, progress=_progress) as network:
            with OriginServices(network, file_sizes=()) as services:

                def record(scenario: str, condition: str, rep: int, result) -> None:
                    results.measurement(scenario, "bench fidelity", condition, rep, network, result)

                name = "kernel" if implementation == "kernel" else f"wireguard-go/{mode}"
                runs[name] = fidelity.measure_run(
                    network,
                    services,
                    intervals,
                    mode,
                    throughput_reps=0 if in_guest == "tcg" else reps,
                    iperf_seconds=settings.measure.iperf_seconds,
                    progress=_progress,
                    record=record,
                )
    if in_guest:
        print(json.dumps({"runs": runs}))
        return 0
    _progress("bench fidelity: the kernel WireGuard run, in the guest")
    inner = run_in_vm(
        settings.vm,
        [
            sys.executable,
            "-m",
            "harness",
            "bench",
            "fidelity",
            "--json",
            "--reps",
            str(reps),
            "--run-id",
            f"{settings.run.run_id}-guest",
        ],
        rwdirs=[REPO],
        cwd=REPO,
        run_id=settings.run.run_id,
        progress=_progress,
        capture=True,
        guest=guest,
    )
    lines = [line for line in (inner.stdout or "").splitlines() if line.startswith("{")]
    if inner.returncode != 0 or not lines:
        raise HarnessError(f"bench fidelity: the guest's run exited {inner.returncode} without results")
    runs = {**json.loads(lines[-1])["runs"], **runs}
    _emit(
        {
            "vm": {"accel": str(guest.accel), "kernel": guest.kernel.describe(), "boot_s": inner.boot_s},
            "intervals": [f"{interval:g}" for interval in intervals],
            "reps": reps,
            "runs": runs,
            "results": str(results.path),
        },
        args.json,
    )
    return 0


def cmd_bench_paths(args: argparse.Namespace) -> int:
    """Apply a path profile and measure what each path really does (bench paths)."""
    from harness.data import PROFILES_FILE
    from harness.model.profiles import choose_profiles, load_profiles
    from harness.runtime.shaping import ShapedPaths, require_qdiscs, verify
    from harness.vm.facts import environment

    settings = _settings(args)
    backend = _single_backend(settings)
    profiles = choose_profiles(
        args.profile, load_profiles(PROFILES_FILE, Path(args.profiles) if args.profiles else None)
    )
    if len(profiles) != 1:
        raise ConfigError("--profile: bench paths takes one profile")
    (profile,) = profiles
    require_qdiscs(profile, tuple(range(1, settings.run.paths + 1)))
    with network_for(backend, settings.run, progress=_progress) as network:
        with ShapedPaths(network, profile):
            result = verify(network, profile, _progress)
    env = environment()
    _emit(
        {
            "profile": profile.name,
            "description": profile.description,
            "backend": backend,
            "paths": result["paths"],
            "within_spec": not result["failures"],
            "failures": result["failures"],
            "machine": {"vm": env["vm"], "qdiscs": env["qdiscs"], "kernel": env["kernel"]},
        },
        args.json,
    )
    return 0 if not result["failures"] else 1


def cmd_images(args: argparse.Namespace) -> int:
    """Build the Docker backend's images (base image offline if needed); also tag them :demo for compose."""
    from harness.backends.docker import docker_client, docker_images

    tags = docker_images(_progress)
    client = docker_client()
    for name, tag in tags.items():
        client.images.get(tag).tag(f"comps-harness/{name}", "demo")
        print(f"{name}: {tag} (also comps-harness/{name}:demo)")
    return 0


def cmd_render_demo(args: argparse.Namespace) -> int:
    from harness.backends import compose
    from harness.data import DEMO_DIR

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_DIR / "docker-compose.yml", out / "docker-compose.yml")
    compose.render(out / "config")
    print(f"wrote the compose demo with fresh keys to {out} (docker-compose.yml and config/; never commit config/)")
    return 0


def run_id_for(out: Path) -> str:
    """A run id from an output directory's name: its letters, digits and dashes (any name is accepted)."""
    text = re.sub(r"[^A-Za-z0-9-]+", "-", out.name).strip("-")
    return text or new_run_id()


SWEEP_OPTIONS = [
    option
    for option in options.OPTIONS
    if option.section in ("plan", "measure", "tolerances")
    or option.flag in ("--backend", "--paths", "--wireguard", "--profile", "--profiles")
]


def cmd_sweep(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """Every migration scenario across the intervals through pytest, then the HTML report of its results."""
    from harness.reporting import report

    _settings(args)  # bad input stops here, before anything starts
    if not (REPO / "scenarios").is_dir():
        raise HarnessError(f"sweep runs the scenarios of a source checkout; {REPO / 'scenarios'} is missing")
    out = Path(args.out).absolute() if args.out else REPO / "reports" / new_run_id()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"--out {out} is not empty: pick a new directory, or add --force to replace its results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("results.jsonl", "junit.xml", "report.html"):
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror})") from None
    run_id = run_id_for(out)
    given = options.passthrough_argv(vars(args), SWEEP_OPTIONS) + (["--observe"] if args.observe else [])
    # pytest's own terminal output is off: the progress lines and the summary below say it all
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        str(REPO / "scenarios"),
        "-m",
        "migration",
        *given,
        "--run-id",
        run_id,
        "--run-dir",
        str(out),
        "--sweep-progress",
        "--junitxml",
        str(out / "junit.xml"),
        *pytest_args,
    ]
    reproduce = ["comps-harness", "sweep", *given, *pytest_args] + (["--strict"] if args.strict else [])
    if os.environ.get(IN_VM_ENV):  # a sweep --vm: its rerun boots a guest again, as this one did
        reproduce += ["--vm", *options.passthrough_argv(vars(args), VM_OPTIONS)]
    env = {**os.environ, "COMPS_HARNESS_REPRODUCE": json.dumps(reproduce)}
    _progress(f"sweep {run_id} into {out}: {shlex.join(reproduce)}")
    status = _run_forwarding_signals(argv, env)
    results = out / "results.jsonl"
    if not results.exists():
        raise HarnessError(f"the sweep produced no results ({results} is missing); pytest exited {status}")
    path = report.write(results, records=options.with_recorded_settings(load_records(results)))
    verdict = sweep_verdict(load_records(results), strict=args.strict)
    for line in verdict.lines:
        print(line)
    print(f"report: {path}\nresults: {results}")
    if status not in (0, 1):  # pytest itself failed (usage, internal error, nothing collected)
        return status
    return verdict.exit_status


def _run_forwarding_signals(argv: list[str], env: dict[str, str]) -> int:
    """Run pytest in its own session; a SIGINT/SIGTERM here is passed on, and pytest's teardown awaited."""
    child = subprocess.Popen(argv, cwd=REPO, start_new_session=True, env=env)
    try:
        with signals.interrupts_unwind():
            return child.wait(SWEEP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        _stop_pytest(child)
        raise WaitTimeout(
            f"sweep: pytest was still running after {SWEEP_DEADLINE_S / 3600:g} h; it was stopped "
            "and its topologies torn down"
        ) from None
    except KeyboardInterrupt as exc:
        received = signal.Signals(exit_code_of(exc) - 128)
        _progress(f"sweep: {received.name} received; waiting for pytest to tear down")
        _stop_pytest(child)
        raise Interrupted(received) from None


def _stop_pytest(child: subprocess.Popen) -> None:
    """SIGINT (pytest's fixtures tear down), then SIGKILL to its session if teardown does not end in time."""
    with signals.deferred():
        child.send_signal(signal.SIGINT)
        try:
            child.wait(TEARDOWN_DEADLINE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.model.records import load
    from harness.reporting import report

    results = Path(args.results)
    if not results.is_file():
        raise HarnessError(f"{results} is not a results file")
    if not load(results):
        raise HarnessError(f"{results} holds no comps-harness records")
    started = time.monotonic()
    path = report.write(results, Path(args.out) if args.out else None, options.with_recorded_settings(load(results)))
    _progress(f"report built in {time.monotonic() - started:.2f} s")
    print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.model.records import load
    from harness.reporting import compare

    tolerance = parse_number(args.tolerance, "--tolerance")
    if tolerance > 1:
        raise ConfigError(f"--tolerance {args.tolerance} must be at most 1 (e.g. 0.9: 10 % worse is a regression)")
    records = []
    for name in (args.old, args.new):
        path = Path(name)
        if not path.is_file():
            raise HarnessError(f"{path} is not a results file")
        records.append(load(path))
    rows = compare.compare(*records, tolerance=tolerance)
    if not rows:
        raise HarnessError("the two runs have no metric in common (different scenarios, backends or intervals?)")
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(compare.describe(row))
    regressed = sum(row["regressed"] for row in rows)
    _progress(
        f"{len(rows)} metrics compared, {regressed} regressed, "
        f"{sum(row['ratio'] is None for row in rows)} without a verdict (tolerance {tolerance:g}, 95 % intervals)"
    )
    return 1 if regressed else 0


VM_OPTIONS = options.in_sections("vm")


def cmd_vm(args: argparse.Namespace) -> int:
    """Run a command inside a guest with a stock Debian kernel (kernel WireGuard, netem); its exit status."""
    from harness.vm import kernel
    from harness.vm.runner import run_in_vm

    settings = _settings(args)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.fetch:
        found = kernel.resolve(settings.vm.kernel, kernel.default_cache(), _progress)
        print(f"guest kernel: {found.describe()}: {found.image}")
        return 0
    if not command:
        raise ConfigError("vm: give the command after --, e.g. comps-harness vm -- uname -r")
    rwdirs = [REPO]
    for text in args.rwdir or ():
        directory = Path(text).absolute()
        if not directory.is_dir():
            raise ConfigError(f"--rwdir {text}: not a directory")
        rwdirs.append(directory)
    run = run_in_vm(settings.vm, command, rwdirs=rwdirs, cwd=Path.cwd(), run_id=settings.run.run_id, progress=_progress)
    return run.returncode


def rerun_in_vm(args: argparse.Namespace, argv: list[str], extra_rwdirs: list[Path] = ()) -> int:
    """`sweep --vm`, `bench ... --vm`: the same command, without --vm, inside the guest (netns backend)."""
    from harness.vm.runner import rerun_in_guest

    return rerun_in_guest(
        _settings(args),
        [sys.executable, "-m", "harness", *argv],
        rwdirs=[REPO, *extra_rwdirs],
        cwd=Path.cwd(),
        progress=_progress,
    )


def _vm_rwdirs(args: argparse.Namespace) -> list[Path]:
    """An --out outside the repository must be writable in the guest too (made here, checked there)."""
    out = getattr(args, "out", None)
    if not out:
        return []
    path = Path(out).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return [path]


def add_vm_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vm",
        action="store_true",
        help="run this command inside a guest with a stock Debian kernel (kernel WireGuard, netem); netns backend only",
    )
    options.add_to_argparse(parser, VM_OPTIONS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comps-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def run_options(p: argparse.ArgumentParser) -> None:
        options.add_to_argparse(p, options.named(RUN_OPTIONS))

    up = sub.add_parser("up", help="bring the topology up, hold it, tear it down")
    run_options(up)
    up.add_argument("--hold", default="5", help="seconds to hold the topology")
    up.add_argument("--traffic", action="store_true", help="ping the origin through wg0 while holding")
    up.set_defaults(func=cmd_up)

    clean = sub.add_parser("clean", help="remove what dead runs left (processes, work dirs, Docker objects)")
    clean.add_argument("--run-id", help="exactly this run (default: every run whose harness process is gone)")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    clean.set_defaults(func=cmd_clean)

    sweep = sub.add_parser(
        "sweep",
        help="run the migration scenarios across intervals and write the HTML report",
        epilog="Unknown options are passed on to pytest (e.g. -x).",
    )
    options.add_to_argparse(sweep, SWEEP_OPTIONS)
    sweep.add_argument("--out", help="output directory (default reports/<new run id>/); its name is the run id")
    sweep.add_argument("--force", action="store_true", help="replace the results of a non-empty --out")
    sweep.add_argument(
        "--observe",
        action="store_true",
        help="capture on every proxy during the migration tests: the report's 'What each proxy sees'",
    )
    sweep.add_argument(
        "--strict",
        action="store_true",
        help="research verdicts beyond tolerance fail the sweep too (default: listed, exit 0)",
    )
    add_vm_flag(sweep)
    sweep.set_defaults(func=cmd_sweep, passthrough=True)

    report = sub.add_parser("report", help="rebuild the HTML report from a results file alone")
    report.add_argument("results", help="a results.jsonl")
    report.add_argument("--out", help="the HTML file (default: report.html beside the results)")
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="per-metric changes between two runs; exit 1 on a regression")
    compare.add_argument("old")
    compare.add_argument("new")
    compare.add_argument(
        "--tolerance",
        default="0.9",
        help="worst acceptable NEW/OLD ratio for higher-is-better metrics (1/x for the others)",
    )
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)

    images = sub.add_parser("images", help="build the Docker images (node, origin, browser)")
    images.set_defaults(func=cmd_images)

    render_demo = sub.add_parser("render-demo", help="write the compose demo with fresh keys into a directory")
    render_demo.add_argument("--out", default="reports/demo", help="the demo's directory (default reports/demo)")
    render_demo.set_defaults(func=cmd_render_demo)

    vm = sub.add_parser(
        "vm",
        help="run a command in a guest with a stock Debian kernel (kernel WireGuard, netem)",
        epilog="The repository is writable in the guest at the same path; the command's exit "
        "status is passed back; Ctrl-C/SIGTERM power the guest off.",
    )
    options.add_to_argparse(vm, VM_OPTIONS)
    options.add_to_argparse(vm, options.named(("--run-id",)))
    vm.add_argument(
        "--rwdir",
        action="append",
        help="another directory writable in the guest (repeatable; the repository always is)",
    )
    vm.add_argument("--fetch", action="store_true", help="only fetch the kernel into the cache (idempotent)")
    vm.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    vm.set_defaults(func=cmd_vm)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bringup = bench_sub.add_parser("bringup", help="bring the topology up and down repeatedly")
    run_options(bringup)
    bringup.add_argument("--runs", default="10")
    bringup.add_argument("--json", action="store_true")
    add_vm_flag(bringup)
    bringup.set_defaults(func=cmd_bench_bringup)
    switching = bench_sub.add_parser("switching", help="timing error of path switches while traffic flows")
    run_options(switching)
    options.add_to_argparse(
        switching,
        options.named(("--intervals", "--duration", "--switch-mechanism")),
        defaults={"--intervals": "0.01", "--duration": "30"},
    )
    switching.add_argument("--json", action="store_true")
    add_vm_flag(switching)
    switching.set_defaults(func=cmd_bench_switching)
    migration = bench_sub.add_parser("migration", help="throughput, page-load and loss ratios against a baseline")
    run_options(migration)
    options.add_to_argparse(
        migration,
        options.named(("--intervals", "--repeat", "--iperf-seconds", "--probe-rate", "--page-timeout")),
        defaults={"--intervals": "0.01,0.1", "--repeat": "5"},
    )
    migration.add_argument("--json", action="store_true")
    add_vm_flag(migration)
    migration.set_defaults(func=cmd_bench_migration)
    proof = bench_sub.add_parser("proof", help="the proof against the fault catalogue, adherence, captures")
    run_options(proof)
    options.add_to_argparse(proof, options.in_sections("tolerances"))
    proof.add_argument("--json", action="store_true")
    add_vm_flag(proof)
    proof.set_defaults(func=cmd_bench_proof)
    observer = bench_sub.add_parser("observer", help="what each proxy sees, by interval and strategy")
    run_options(observer)
    observer.add_argument("--json", action="store_true")
    add_vm_flag(observer)
    paths = bench_sub.add_parser("paths", help="apply a path profile and measure each path's RTT, rate and loss")
    run_options(paths)
    paths.add_argument("--profile", default="asymmetric", help="the profile to check (default asymmetric)")
    paths.add_argument("--profiles", help="a TOML file of more profiles (see harness/data/profiles/profiles.toml)")
    paths.add_argument("--json", action="store_true")
    add_vm_flag(paths)
    paths.set_defaults(func=cmd_bench_paths)
    fidelity = bench_sub.add_parser(
        "fidelity",
        help="kernel WireGuard (in a guest) vs wireguard-go in each "
        "sticky-source mode: the same migration side by side",
    )
    options.add_to_argparse(fidelity, options.named(("--run-id", "--repeat", "--iperf-seconds")))
    options.add_to_argparse(fidelity, VM_OPTIONS)
    fidelity.add_argument("--json", action="store_true")
    fidelity.set_defaults(func=cmd_bench_fidelity)
    observer.set_defaults(func=cmd_bench_observer)
    return parser


def _attach_negative_values(argv: list[str]) -> list[str]:
    """`--weights -1,2` -> `--weights=-1,2`: argparse would take '-1,2' for an option and say only
    "expected one argument"; attached, the value reaches the option's own check, which names it."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in options.BY_FLAG and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(_attach_negative_values(sys.argv[1:] if argv is None else argv))
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with signals.interrupts_unwind():
            if getattr(args, "vm", False) and not os.environ.get(IN_VM_ENV):
                return rerun_in_vm(args, list(sys.argv[1:] if argv is None else argv), _vm_rwdirs(args))
            return args.func(args, extra) if getattr(args, "passthrough", False) else args.func(args)
    except HarnessError as exc:
        print(f"comps-harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        code = exit_code_of(exc)
        print(f"comps-harness: interrupted ({exc or 'SIGINT'}); everything it created was removed", file=sys.stderr)
        return code
    except BrokenPipeError:
        sys.stderr.close()  # `comps-harness compare ... | head`: the reader left; nothing more to say
        return 0


if __name__ == "__main__":
    sys.exit(main())
