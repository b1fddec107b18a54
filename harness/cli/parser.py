"""The command line: every subcommand, its options from the one options table, and the function it runs."""

from __future__ import annotations

import argparse

from harness import options
from harness.cli import bench as benches
from harness.cli import commands
from harness.cli.common import VM_OPTIONS
from harness.cli.merge import cmd_bench_shards, cmd_merge
from harness.cli.sweep import SWEEP_OPTIONS, cmd_sweep

RUN_OPTIONS = ("--backend", "--paths", "--wireguard", "--run-id", "--inventory")


def add_vm_flag(parser: argparse.ArgumentParser) -> None:
    options.add_to_argparse(parser, [options.BY_FLAG["--vm"], *VM_OPTIONS])


# bench name, help, the command, its own options from the table and their defaults there
BENCHES = (
    ("bringup", "bring the topology up and down repeatedly", benches.cmd_bench_bringup, options.named(("--runs",)), {}),
    (
        "switching",
        "timing error of path switches while traffic flows",
        benches.cmd_bench_switching,
        options.named(("--intervals", "--duration", "--switch-mechanism")),
        {"--intervals": "0.01", "--duration": "30"},
    ),
    (
        "migration",
        "throughput, page-load and loss ratios against a baseline",
        benches.cmd_bench_migration,
        options.named(("--intervals", "--repeat", "--iperf-seconds", "--probe-rate", "--page-timeout")),
        {"--intervals": "0.01,0.1", "--min-pairs": "5"},
    ),
    (
        "proof",
        "the proof against the fault catalogue, adherence, captures",
        benches.cmd_bench_proof,
        options.in_sections("tolerances"),
        {},
    ),
    ("observer", "what each proxy sees, by interval and strategy", benches.cmd_bench_observer, [], {}),
    (
        "adherence",
        "adherence up and down under each load, interval and sticky-source mode (kernel WireGuard in a guest)",
        benches.cmd_bench_adherence,
        options.named(("--repeat",)),
        {"--min-pairs": "1"},
    ),
    (
        "paths",
        "apply a path profile and measure each path's RTT, rate and loss",
        benches.cmd_bench_paths,
        options.named(("--profile", "--profiles")),
        {"--profile": "asymmetric"},
    ),
    (
        "budget",
        "the default main job within its default --budget, timed, and the sequential procedure simulated",
        benches.cmd_bench_budget,
        options.named(("--out",)),
        {},
    ),
    (
        "shards",
        "runs nothing: the main job's tests split into shards, the longest shard's predicted time and the balance",
        cmd_bench_shards,
        options.named(("--shards", "--shard-durations")),
        {},
    ),
    (
        "events",
        "each path event with alternate at 0.1 s and without migration, interleaved: loss, stall, recovery, survival",
        benches.cmd_bench_events,
        options.named(("--event", "--pairs")),
        {},
    ),
    (
        "fidelity",
        "kernel WireGuard (in a guest) vs wireguard-go in each sticky-source mode: the same migration side by side",
        benches.cmd_bench_fidelity,
        options.named(("--repeat", "--iperf-seconds")),
        {},
    ),
)


def flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """A command's own flags, from the options table."""
    options.add_to_argparse(parser, options.named(names))


def _preflight(args: argparse.Namespace) -> int:
    from harness.cli.remote import cmd_preflight  # the ssh pieces load only for this command

    return cmd_preflight(args)


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
    flags(clean, "--dry-run", "--inventory")
    clean.set_defaults(func=commands.cmd_clean)

    check = sub.add_parser(
        "preflight", help="check the ssh backend's hosts (tools, root, WireGuard, forwarding, ports)"
    )
    options.add_to_argparse(check, options.named(("--wireguard",)))
    flags(check, "--inventory", "--dry-run")
    check.set_defaults(func=_preflight)

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

    merge = sub.add_parser("merge", help="join the shards of one sweep (--shard K/N) into one run and one report")
    merge.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a shard's run directory (or its results.jsonl)")
    flags(merge, "--out", "--force")
    merge.set_defaults(func=cmd_merge)

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
    for name, help, func, own, defaults in BENCHES:
        command = bench_sub.add_parser(name, help=help)
        if name in ("fidelity", "adherence"):  # networks of their own: one per implementation, netns in the guest
            options.add_to_argparse(command, [*options.named(("--run-id",)), *VM_OPTIONS])
        elif name in ("budget", "shards"):  # the main job as it is: no option of the run
            pass
        else:
            options.add_to_argparse(command, options.named(RUN_OPTIONS))
            add_vm_flag(command)
        options.add_to_argparse(command, own, defaults=defaults)
        flags(command, "--json")
        command.set_defaults(func=func)
    return parser


def attach_negative_values(argv: list[str]) -> list[str]:
    """`--weights -1,2` -> `--weights=-1,2`: argparse would take '-1,2' for an option and say only
    "expected one argument"; attached, the value reaches the option's own check, which names it."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in options.BY_FLAG and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out
