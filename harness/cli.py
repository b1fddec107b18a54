"""The comps-harness command: bring a topology up, clean after crashes, benchmark bring-up.

Long commands print progress to stderr; results go to stdout (JSON with --json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import cleanup, signals
from harness.backends import network_for
from harness.errors import HarnessError
from harness.migration import run_migration
from harness.schedule import MECHANISMS, MigrationPlan
from harness.settings import BACKENDS, RUN_PREFIX, RunSettings, parse_backends, parse_intervals, parse_number
from harness.stats import percentile
from harness.traffic import ping_stream


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> RunSettings:
    kwargs = {"backends": (args.backend,), "paths": args.paths, "wireguard": args.wireguard}
    if getattr(args, "run_id", None):
        kwargs["run_id"] = args.run_id
    return RunSettings(**kwargs)


def cmd_up(args: argparse.Namespace) -> int:
    """Bring the topology up, optionally send traffic, hold, and tear down (used by interruption tests)."""
    settings = _settings(args)
    hold = parse_number(args.hold, "--hold")
    with network_for(args.backend, settings, progress=_progress) as network:
        with ping_stream(network, interval_s=0.01, size=56) if args.traffic else contextlib.nullcontext():
            if args.traffic:
                _progress(f"{settings.run_id}: traffic running")
            time.sleep(hold)
    _progress(f"{settings.run_id}: done")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    prefix = args.run_id or RUN_PREFIX
    removed = cleanup.remove_run(prefix)
    for item in removed:
        print(f"removed {item}")
    leftovers = cleanup.find_leftovers(prefix)
    for item in leftovers.describe():
        print(f"still there: {item}", file=sys.stderr)
    if not removed and not leftovers:
        print("nothing to clean")
    return 1 if leftovers else 0


def cmd_bench_bringup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.runs < 1:
        raise HarnessError("--runs must be at least 1")
    ups, downs = [], []
    for run in range(args.runs):
        network = network_for(args.backend, settings, run_id=f"{settings.run_id}-{run}")
        start = time.monotonic()
        with network:
            ups.append(time.monotonic() - start)
            start = time.monotonic()
        downs.append(time.monotonic() - start)
        _progress(f"bench bringup {run + 1}/{args.runs}: up {ups[-1]:.3f} s, down {downs[-1]:.3f} s")
    result = {"backend": args.backend, "paths": args.paths, "runs": args.runs,
              "wireguard": network.wireguard_impl,
              "up_median_s": round(statistics.median(ups), 4), "up_p95_s": round(percentile(ups, 95), 4),
              "down_median_s": round(statistics.median(downs), 4), "down_p95_s": round(percentile(downs, 95), 4)}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def cmd_bench_switching(args: argparse.Namespace) -> int:
    """Switch on a schedule while traffic flows; report how far actual switches were from planned."""
    settings = _settings(args)
    plan = MigrationPlan(interval=args.interval, duration=args.duration, mechanism=args.mechanism,
                         paths=tuple(range(1, settings.paths + 1)))
    with network_for(args.backend, settings, progress=_progress) as network:
        with ping_stream(network):
            evidence = run_migration(network, plan, progress=_progress)
    errors = evidence.timing_error_ms()
    result = {"backend": args.backend, "mechanism": args.mechanism, "interval_s": args.interval,
              "duration_s": args.duration, "wireguard": network.wireguard_impl,
              "planned_switches": evidence.planned_switches, "switches": len(evidence.switches),
              "timing_error_median_ms": errors["median"], "timing_error_p99_ms": errors["p99"],
              "timing_error_max_ms": errors["max"], "no_route_window_median_ms": evidence.no_route_ms()["median"],
              "endpoint_changes": evidence.endpoint_changes, "proof_failures": evidence.failures()}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def cmd_bench_migration(args: argparse.Namespace) -> int:
    """Throughput, page-load and loss cost of migrating at each interval, against a same-run baseline."""
    from harness.bench import BenchOptions, MigrationBench
    from harness.measure import OriginServices, require_measurement_tools
    from harness.results import ResultsWriter

    settings = _settings(args)
    if args.reps < 1:
        raise HarnessError("--reps must be at least 1")
    options = BenchOptions(intervals=parse_intervals(args.intervals), reps=args.reps,
                           iperf_seconds=parse_number(args.iperf_seconds, "--iperf-seconds"),
                           probe_rate=parse_number(args.probe_rate, "--probe-rate"))
    require_measurement_tools(browser=True)
    results = ResultsWriter(settings.run_dir, settings.run_id)
    with network_for(args.backend, settings, progress=_progress) as network:
        with OriginServices(network, file_sizes=()) as services:
            result = MigrationBench(network, services, options, results, _progress).run()
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    """Build the Docker backend's images (base image offline if needed); also tag them :demo for compose."""
    from harness.backends import docker_images
    from harness.dockerbackend import docker_client
    tags = docker_images(_progress)
    client = docker_client()
    for name, tag in tags.items():
        client.images.get(tag).tag(f"comps-harness/{name}", "demo")
        print(f"{name}: {tag} (also comps-harness/{name}:demo)")
    return 0


def cmd_render_demo(args: argparse.Namespace) -> int:
    from harness import demo
    out = Path(args.out)
    demo.render(out)
    print(f"wrote the compose demo's configs with fresh keys to {out} (ignored by git; never commit them)")
    return 0


REPO = Path(__file__).resolve().parent.parent
SWEEP_DEFAULT_INTERVALS = "0.01,0.1,1"


def cmd_sweep(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """Every migration scenario across the intervals through pytest, then the HTML report of its results."""
    from harness import report
    parse_intervals(args.intervals)  # bad input stops here, before anything starts
    parse_backends(args.backend)
    if args.repeat < 1:
        raise HarnessError("--repeat must be at least 1")
    out = Path(args.out) if args.out else REPO / "reports" / RunSettings().run_id
    run_id = out.name
    RunSettings(run_id=run_id)  # validates the name
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", str(REPO / "scenarios"),
            "-m", "migration", "--backend", args.backend, "--intervals", args.intervals, "--strategy", args.strategy,
            "--repeat", str(args.repeat), "--run-id", run_id, "--results-dir", str(out.parent), "--sweep-progress",
            "--junitxml", str(out / "junit.xml"), *pytest_args]
    _progress(f"sweep {run_id}: {' '.join(argv[1:])}")
    status = subprocess.call(argv, cwd=REPO)
    results = out / "results.jsonl"
    if not results.exists():
        raise HarnessError(f"the sweep produced no results ({results} is missing); pytest exited {status}")
    path = report.write(results)
    print(f"report: {path}\nresults: {results}\npytest exit status: {status}")
    return status


def cmd_report(args: argparse.Namespace) -> int:
    from harness import report
    results = Path(args.results)
    if not results.is_file():
        raise HarnessError(f"{results} is not a results file")
    started = time.monotonic()
    path = report.write(results, Path(args.out) if args.out else None)
    _progress(f"report built in {time.monotonic() - started:.2f} s")
    print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness import runcompare
    from harness.results import load
    tolerance = parse_number(args.tolerance, "--tolerance")
    if tolerance > 1:
        raise HarnessError(f"--tolerance {args.tolerance} must be at most 1 (e.g. 0.9: 10 % worse is a regression)")
    records = []
    for name in (args.old, args.new):
        path = Path(name)
        if not path.is_file():
            raise HarnessError(f"{path} is not a results file")
        records.append(load(path))
    rows = runcompare.compare(*records, tolerance=tolerance)
    if not rows:
        raise HarnessError("the two runs have no metric in common (different scenarios, backends or intervals?)")
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(runcompare.describe(row))
    regressed = sum(row["regressed"] for row in rows)
    _progress(f"{len(rows)} metrics compared, {regressed} regressed (tolerance {tolerance:g}, 95 % bootstrap intervals)")
    return 1 if regressed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comps-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def topology_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=BACKENDS, default="netns")
        p.add_argument("--paths", type=int, default=2)
        p.add_argument("--wireguard", default="auto", help="auto | kernel | userspace")

    up = sub.add_parser("up", help="bring the topology up, hold it, tear it down")
    topology_options(up)
    up.add_argument("--hold", default="5", help="seconds to hold the topology")
    up.add_argument("--traffic", action="store_true", help="ping the origin through wg0 while holding")
    up.add_argument("--run-id")
    up.set_defaults(func=cmd_up)

    clean = sub.add_parser("clean", help="remove what crashed runs left (processes, work dirs)")
    clean.add_argument("--run-id", help="a run id or prefix (default: every run)")
    clean.set_defaults(func=cmd_clean)

    sweep = sub.add_parser("sweep", help="run the migration scenarios across intervals and write the HTML report",
                           epilog="Unknown options are passed on to pytest (e.g. -x, --throughput-tolerance 0.8).")
    sweep.add_argument("--backend", default="netns", help="netns, docker, all or a comma list (default netns)")
    sweep.add_argument("--intervals", default=SWEEP_DEFAULT_INTERVALS,
                       help=f"seconds between switches, comma separated (default {SWEEP_DEFAULT_INTERVALS})")
    sweep.add_argument("--strategy", default="alternate")
    sweep.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per condition (default 3)")
    sweep.add_argument("--out", help="output directory (default reports/<new run id>/); its name is the run id")
    sweep.set_defaults(func=cmd_sweep, passthrough=True)

    report = sub.add_parser("report", help="rebuild the HTML report from a results file alone")
    report.add_argument("results", help="a results.jsonl")
    report.add_argument("--out", help="the HTML file (default: report.html beside the results)")
    report.set_defaults(func=cmd_report)

    compare = sub.add_parser("compare", help="per-metric changes between two runs; exit 1 on a regression")
    compare.add_argument("old")
    compare.add_argument("new")
    compare.add_argument("--tolerance", default="0.9",
                         help="worst acceptable NEW/OLD ratio for higher-is-better metrics (1/x for the others)")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)

    images = sub.add_parser("images", help="build the Docker images (node, origin, browser)")
    images.set_defaults(func=cmd_images)

    render_demo = sub.add_parser("render-demo", help="write the compose demo's configs with fresh keys")
    render_demo.add_argument("--out", default=str(REPO / "docker" / "demo" / "config"))
    render_demo.set_defaults(func=cmd_render_demo)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bringup = bench_sub.add_parser("bringup", help="bring the topology up and down repeatedly")
    topology_options(bringup)
    bringup.add_argument("--runs", type=int, default=10)
    bringup.add_argument("--json", action="store_true")
    bringup.set_defaults(func=cmd_bench_bringup)
    switching = bench_sub.add_parser("switching", help="timing error of path switches while traffic flows")
    topology_options(switching)
    switching.add_argument("--interval", type=float, default=0.01, help="seconds between switches")
    switching.add_argument("--duration", type=float, default=30.0, help="seconds to switch for")
    switching.add_argument("--mechanism", choices=MECHANISMS, default="netlink")
    switching.add_argument("--json", action="store_true")
    switching.set_defaults(func=cmd_bench_switching)
    migration = bench_sub.add_parser("migration", help="throughput, page-load and loss ratios against a baseline")
    topology_options(migration)
    migration.add_argument("--intervals", default="0.01,0.1", help="seconds between switches, comma separated")
    migration.add_argument("--reps", type=int, default=5, help="interleaved repetitions per condition")
    migration.add_argument("--iperf-seconds", default="2")
    migration.add_argument("--probe-rate", default="2000", help="UDP probe packets per second")
    migration.add_argument("--json", action="store_true")
    migration.set_defaults(func=cmd_bench_migration)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with signals.interrupts_unwind():
            return args.func(args, extra) if getattr(args, "passthrough", False) else args.func(args)
    except HarnessError as exc:
        print(f"comps-harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"comps-harness: interrupted ({exc or 'SIGINT'}); everything it created was removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
