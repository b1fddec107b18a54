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
    options.add_to_argparse(parser, [options.BY_FLAG["--vm"], *VM_OPTIONS])


def flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """A command's own flags, from the options table."""
    options.add_to_argparse(parser, options.named(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comps-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def run_options(p: argparse.ArgumentParser) -> None:
        options.add_to_argparse(p, options.named(RUN_OPTIONS))

    up = sub.add_parser("up", help="bring the topology up, hold it, tear it down")
    run_options(up)
    flags(up, "--hold", "--traffic")
    up.set_defaults(func=commands.cmd_up)

    clean = sub.add_parser("clean", help="remove what dead runs left (processes, work dirs, Docker objects)")
    options.add_to_argparse(
        clean,
        options.named(("--run-id",)),
        helps={"--run-id": "exactly this run (default: every run whose harness process is gone)"},
    )
    flags(clean, "--dry-run")
    clean.set_defaults(func=commands.cmd_clean)

    sweep = sub.add_parser(
        "sweep",
        help="run the migration scenarios across intervals and write the HTML report",
        epilog="Unknown options are passed on to pytest (e.g. -x).",
    )
    options.add_to_argparse(sweep, SWEEP_OPTIONS)
    flags(sweep, "--out", "--force", "--observe", "--strict")
    add_vm_flag(sweep)
    sweep.set_defaults(func=cmd_sweep, passthrough=True)

    report = sub.add_parser("report", help="rebuild the HTML report from a results file alone")
    report.add_argument("results", help="a results.jsonl")
    flags(report, "--out")
    report.set_defaults(func=commands.cmd_report)

    compare = sub.add_parser("compare", help="per-metric changes between two runs; exit 1 on a regression")
    compare.add_argument("old")
    compare.add_argument("new")
    flags(compare, "--tolerance")
    flags(compare, "--json")
    compare.set_defaults(func=commands.cmd_compare)

    images = sub.add_parser("images", help="build the Docker images (node, origin, browser)")
    images.set_defaults(func=commands.cmd_images)

    render_demo = sub.add_parser("render-demo", help="write the compose demo with fresh keys into a directory")
    options.add_to_argparse(render_demo, options.named(("--out",)), defaults={"--out": "reports/demo"})
    render_demo.set_defaults(func=commands.cmd_render_demo)

    vm = sub.add_parser(
        "vm",
        help="run a command in a guest with a stock Debian kernel (kernel WireGuard, netem)",
        epilog="The repository is writable in the guest at the same path; the command's exit "
        "status is passed back; Ctrl-C/SIGTERM power the guest off.",
    )
    options.add_to_argparse(vm, VM_OPTIONS)
    options.add_to_argparse(vm, options.named(("--run-id",)))
    flags(vm, "--rwdir")
    flags(vm, "--fetch")
    vm.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    vm.set_defaults(func=commands.cmd_vm)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bringup = bench_sub.add_parser("bringup", help="bring the topology up and down repeatedly")
    run_options(bringup)
    flags(bringup, "--runs", "--json")
    add_vm_flag(bringup)
    bringup.set_defaults(func=benches.cmd_bench_bringup)
    switching = bench_sub.add_parser("switching", help="timing error of path switches while traffic flows")
    run_options(switching)
    options.add_to_argparse(
        switching,
        options.named(("--intervals", "--duration", "--switch-mechanism")),
        defaults={"--intervals": "0.01", "--duration": "30"},
    )
    flags(switching, "--json")
    add_vm_flag(switching)
    switching.set_defaults(func=benches.cmd_bench_switching)
    migration = bench_sub.add_parser("migration", help="throughput, page-load and loss ratios against a baseline")
    run_options(migration)
    options.add_to_argparse(
        migration,
        options.named(("--intervals", "--repeat", "--iperf-seconds", "--probe-rate", "--page-timeout")),
        defaults={"--intervals": "0.01,0.1", "--repeat": "5"},
    )
    flags(migration, "--json")
    add_vm_flag(migration)
    migration.set_defaults(func=benches.cmd_bench_migration)
    proof = bench_sub.add_parser("proof", help="the proof against the fault catalogue, adherence, captures")
    run_options(proof)
    options.add_to_argparse(proof, options.in_sections("tolerances"))
    flags(proof, "--json")
    add_vm_flag(proof)
    proof.set_defaults(func=benches.cmd_bench_proof)
    observer = bench_sub.add_parser("observer", help="what each proxy sees, by interval and strategy")
    run_options(observer)
    flags(observer, "--json")
    add_vm_flag(observer)
    paths = bench_sub.add_parser("paths", help="apply a path profile and measure each path's RTT, rate and loss")
    run_options(paths)
    options.add_to_argparse(paths, options.named(("--profile", "--profiles")), defaults={"--profile": "asymmetric"})
    flags(paths, "--json")
    add_vm_flag(paths)
    paths.set_defaults(func=benches.cmd_bench_paths)
    fidelity = bench_sub.add_parser(
        "fidelity",
        help="kernel WireGuard (in a guest) vs wireguard-go in each "
        "sticky-source mode: the same migration side by side",
    )
    options.add_to_argparse(fidelity, options.named(("--run-id", "--repeat", "--iperf-seconds")))
    options.add_to_argparse(fidelity, VM_OPTIONS)
    flags(fidelity, "--json")
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
