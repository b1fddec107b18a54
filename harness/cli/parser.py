"""The command line: every subcommand, its options from the one options table, and the function it runs."""

from __future__ import annotations

import argparse

from harness import options
from harness.cli import bench as benches
from harness.cli import commands
from harness.cli.common import VM_OPTIONS
from harness.cli.sweep import SWEEP_OPTIONS, cmd_sweep

RUN_OPTIONS = ("--backend", "--paths", "--wireguard", "--run-id")


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
    up.set_defaults(func=commands.cmd_up)

    clean = sub.add_parser("clean", help="remove what dead runs left (processes, work dirs, Docker objects)")
    clean.add_argument("--run-id", help="exactly this run (default: every run whose harness process is gone)")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    clean.set_defaults(func=commands.cmd_clean)

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
    report.set_defaults(func=commands.cmd_report)

    compare = sub.add_parser("compare", help="per-metric changes between two runs; exit 1 on a regression")
    compare.add_argument("old")
    compare.add_argument("new")
    compare.add_argument(
        "--tolerance",
        default="0.9",
        help="worst acceptable NEW/OLD ratio for higher-is-better metrics (1/x for the others)",
    )
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=commands.cmd_compare)

    images = sub.add_parser("images", help="build the Docker images (node, origin, browser)")
    images.set_defaults(func=commands.cmd_images)

    render_demo = sub.add_parser("render-demo", help="write the compose demo with fresh keys into a directory")
    render_demo.add_argument("--out", default="reports/demo", help="the demo's directory (default reports/demo)")
    render_demo.set_defaults(func=commands.cmd_render_demo)

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
    vm.set_defaults(func=commands.cmd_vm)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bringup = bench_sub.add_parser("bringup", help="bring the topology up and down repeatedly")
    run_options(bringup)
    bringup.add_argument("--runs", default="10")
    bringup.add_argument("--json", action="store_true")
    add_vm_flag(bringup)
    bringup.set_defaults(func=benches.cmd_bench_bringup)
    switching = bench_sub.add_parser("switching", help="timing error of path switches while traffic flows")
    run_options(switching)
    options.add_to_argparse(
        switching,
        options.named(("--intervals", "--duration", "--switch-mechanism")),
        defaults={"--intervals": "0.01", "--duration": "30"},
    )
    switching.add_argument("--json", action="store_true")
    add_vm_flag(switching)
    switching.set_defaults(func=benches.cmd_bench_switching)
    migration = bench_sub.add_parser("migration", help="throughput, page-load and loss ratios against a baseline")
    run_options(migration)
    options.add_to_argparse(
        migration,
        options.named(("--intervals", "--repeat", "--iperf-seconds", "--probe-rate", "--page-timeout")),
        defaults={"--intervals": "0.01,0.1", "--repeat": "5"},
    )
    migration.add_argument("--json", action="store_true")
    add_vm_flag(migration)
    migration.set_defaults(func=benches.cmd_bench_migration)
    proof = bench_sub.add_parser("proof", help="the proof against the fault catalogue, adherence, captures")
    run_options(proof)
    options.add_to_argparse(proof, options.in_sections("tolerances"))
    proof.add_argument("--json", action="store_true")
    add_vm_flag(proof)
    proof.set_defaults(func=benches.cmd_bench_proof)
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
    paths.set_defaults(func=benches.cmd_bench_paths)
    fidelity = bench_sub.add_parser(
        "fidelity",
        help="kernel WireGuard (in a guest) vs wireguard-go in each "
        "sticky-source mode: the same migration side by side",
    )
    options.add_to_argparse(fidelity, options.named(("--run-id", "--repeat", "--iperf-seconds")))
    options.add_to_argparse(fidelity, VM_OPTIONS)
    fidelity.add_argument("--json", action="store_true")
    fidelity.set_defaults(func=benches.cmd_bench_fidelity)
    observer.set_defaults(func=benches.cmd_bench_observer)
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
