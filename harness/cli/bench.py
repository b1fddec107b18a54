"""`comps-harness bench ...`: each parses its settings, builds what it needs, runs the measuring layer's bench
(harness.measure, one module per bench) and prints its result."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from harness.backends.registry import check_backend, network_for
from harness.cli.common import REPO, emit, progress, settings_of, single_backend
from harness.errors import ConfigError
from harness.model.schedule import MigrationPlan
from harness.model.settings import parse_number
from harness.system.prereq import require_binaries
from harness.vm.command import IN_VM_ENV


def cmd_bench_bringup(args: argparse.Namespace) -> int:
    from harness.measure import bringup

    settings = settings_of(args)
    backend = single_backend(settings)
    runs = int(parse_number(args.runs, "--runs"))
    if backend == "ssh" and settings.run.inventory is None:
        return _bench_bringup_local_ssh(settings, runs, args.json)

    def new_network(run: int):
        return network_for(backend, settings.run, run_id=f"{settings.run.run_id}-{run}")

    emit({"backend": backend, "paths": settings.run.paths, **bringup.bench(new_network, runs, progress)}, args.json)
    return 0


def _bench_bringup_local_ssh(settings, runs: int, as_json: bool) -> int:
    """Bring-up over ssh on local SSH hosts started once (their start is `hosts_s`, apart), interleaved with
    the namespace backend's bring-up: the cost of driving the hosts over SSH, in the same invocation."""
    import tempfile
    import time

    from harness.backends.registry import Prepared
    from harness.backends.sshlab import LocalSshHosts
    from harness.measure import bringup
    from harness.model.topology import SERVER, proxy_name
    from harness.system import cleanup

    run_id = settings.run.run_id
    roles = [*(proxy_name(k) for k in range(1, settings.run.paths + 1)), SERVER]
    workdir = Path(tempfile.mkdtemp(prefix=cleanup.workdir_prefix(run_id)))
    try:
        checked = check_backend("ssh", settings.run, progress)
        started = time.monotonic()
        with LocalSshHosts(run_id, workdir, roles) as lab:
            hosts_s = time.monotonic() - started
            prepared = Prepared(checked.wireguard, {**checked.extra, "inventory": lab.inventory, "lab": lab})
            figures = bringup.interleaved(
                {
                    "ssh": lambda run: network_for("ssh", settings.run, run_id=f"{run_id}-s{run}", prepared=prepared),
                    "netns": lambda run: network_for("netns", settings.run, run_id=f"{run_id}-n{run}"),
                },
                runs,
                progress,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    netns = figures["netns"]
    result = {"backend": "ssh", "paths": settings.run.paths, **figures["ssh"], "hosts_s": round(hosts_s, 4)}
    result |= {"netns_up_median_s": netns["up_median_s"], "netns_down_median_s": netns["down_median_s"]}
    result["netns_wireguard"] = netns["wireguard"]
    emit(result, as_json)
    return 0


def cmd_bench_switching(args: argparse.Namespace) -> int:
    """Switch on a schedule while traffic flows; report how far actual switches were from planned."""
    from harness.measure import switching

    settings = settings_of(args)
    backend = single_backend(settings)
    plan_options = settings.plan
    if len(plan_options.intervals) != 1 or len(plan_options.mechanisms) != 1:
        raise ConfigError("bench switching takes one --interval and one --mechanism")
    plan = MigrationPlan(
        interval=plan_options.intervals[0],
        duration=plan_options.duration or 30.0,
        mechanism=plan_options.mechanisms[0],
        paths=tuple(range(1, settings.run.paths + 1)),
    )
    with network_for(backend, settings.run, progress=progress) as network:
        emit({"backend": backend, **switching.bench(network, plan, progress)}, args.json)
    return 0


def cmd_bench_migration(args: argparse.Namespace) -> int:
    """Throughput, page-load and loss cost of migrating at each interval, against a same-run baseline."""
    from harness.measure.bench import MigrationBench
    from harness.measure.services import OriginServices, require_measurement_tools
    from harness.reporting.results import ResultsWriter

    settings = settings_of(args)
    backend = single_backend(settings)
    require_measurement_tools(browser=True)
    results = ResultsWriter(settings.run.run_dir, settings.run.run_id)
    with network_for(backend, settings.run, progress=progress) as network:
        with OriginServices(network, file_sizes=()) as services:

            def record(scenario: str, condition: str, rep: int, result) -> None:
                results.measurement(scenario, "bench migration", condition, rep, network, result)

            result = MigrationBench(
                network, services, settings.plan.intervals, settings.measure, record, progress
            ).run()
    emit({**result, "results": str(results.path)}, args.json)
    return 0


def cmd_bench_proof(args: argparse.Namespace) -> int:
    """The healthy control, the fault catalogue, adherence and the capture cross-check (bench proof)."""
    from harness.measure import proofbench

    settings = settings_of(args)
    backend = single_backend(settings)
    require_binaries(["tcpdump"] if backend == "netns" else [])
    prepared = check_backend(backend, settings.run, progress)

    def new_network(case: str):
        return network_for(backend, settings.run, run_id=f"{settings.run.run_id}-{case}", prepared=prepared)

    emit(proofbench.run(new_network, settings.tolerances, progress), args.json)
    return 0


def cmd_bench_observer(args: argparse.Namespace) -> int:
    """What each proxy sees, for alternate and weighted-random at 0.1 and 1 s (bench observer)."""
    from harness.measure import observe
    from harness.measure.services import OriginServices, require_measurement_tools

    settings = settings_of(args)
    backend = single_backend(settings)
    require_measurement_tools(browser=True)
    require_binaries(["tcpdump"] if backend == "netns" else [])
    with network_for(backend, settings.run, progress=progress) as network:
        with OriginServices(network, file_sizes=()) as services:
            emit(observe.bench(services, progress), args.json)
    return 0


def cmd_bench_fidelity(args: argparse.Namespace) -> int:
    """wireguard-go in each sticky-source mode on the host, kernel WireGuard in a guest: the same migration."""
    from harness.measure import fidelity
    from harness.reporting.results import ResultsWriter

    settings = settings_of(args)
    results = ResultsWriter(settings.run.run_dir, settings.run.run_id)

    def recorder(network):
        def record(scenario: str, condition: str, rep: int, result) -> None:
            results.measurement(scenario, "bench fidelity", condition, rep, network, result)

        return record

    return _emit_guest_aware(fidelity.bench(settings, repo=REPO, recorder=recorder, progress=progress), results, args)


def _emit_guest_aware(result: dict, results, args: argparse.Namespace) -> int:
    """A bench with a guest part: in the guest, its result goes back to the host as one JSON line."""
    if os.environ.get(IN_VM_ENV):
        print(json.dumps(result))
        return 0
    emit({**result, "results": str(results.path)}, args.json)
    return 0


def cmd_bench_adherence(args: argparse.Namespace) -> int:
    """Adherence up and down under each load, interval and sticky-source mode; kernel WireGuard in a guest."""
    from harness.measure import adherence
    from harness.measure.services import require_measurement_tools
    from harness.reporting.results import ResultsWriter

    settings = settings_of(args)
    if not os.environ.get(IN_VM_ENV):
        require_measurement_tools(browser=True)
    results = ResultsWriter(settings.run.run_dir, settings.run.run_id)

    def record(network, condition: str, result) -> None:
        results.measurement("adherence", "bench adherence", condition, 0, network, result)

    return _emit_guest_aware(adherence.bench(settings, repo=REPO, record=record, progress=progress), results, args)


def cmd_bench_paths(args: argparse.Namespace) -> int:
    """Apply a path profile and measure what each path really does (bench paths)."""
    from harness.data import PROFILES_FILE
    from harness.measure import paths
    from harness.model.profiles import choose_profiles, load_profiles
    from harness.runtime.shaping import require_qdiscs

    settings = settings_of(args)
    backend = single_backend(settings)
    more = Path(args.profiles) if args.profiles else None
    profiles = choose_profiles(args.profile, load_profiles(PROFILES_FILE, more))
    if len(profiles) != 1:
        raise ConfigError("--profile: bench paths takes one profile")
    (profile,) = profiles
    require_qdiscs(profile, tuple(range(1, settings.run.paths + 1)))
    with network_for(backend, settings.run, progress=progress) as network:
        result = paths.bench(network, profile, progress)
    emit({"backend": backend, **result}, args.json)
    return 0 if result["within_spec"] else 1


def cmd_bench_events(args: argparse.Namespace) -> int:
    """Each event (--event, default the bench's eight) with and without migration, interleaved (bench events):
    one object per event, keyed by its name, and "run" (backend, WireGuard, results file). Exit 1 when a
    session did not survive an event with migration."""
    from harness.measure import eventbench
    from harness.measure.lived import summarize
    from harness.measure.services import OriginServices
    from harness.reporting.results import ResultsWriter
    from harness.runtime.events import check_traces

    settings = settings_of(args)
    backend = single_backend(settings)
    pairs = int(parse_number(args.pairs, "--pairs"))
    specs = settings.plan.events or eventbench.default_events()
    check_traces(specs)
    results = ResultsWriter(settings.run.run_dir, settings.run.run_id)
    out: dict = {}
    with network_for(backend, settings.run, progress=progress) as network:
        with OriginServices(network, file_sizes=()) as services:
            for spec in specs:
                key = eventbench.key_of(spec, specs)
                progress(f"bench events: {spec.describe()} ({pairs} pairs)")

                def record(event: str, condition: str, rep: int, result, key=key) -> None:
                    results.measurement("path-events", f"bench events {key}", condition, rep, network, result)
                    lost = result.figures.get("lost_up", "?"), result.figures.get("lost_down", "?")
                    progress(f"bench events: {key} {condition} pair {rep + 1}/{pairs}: lost up/down {lost}")

                without, with_, migrating = eventbench.measure_event(services, spec, pairs, record)
                proofs = [(str(p.outcome), p.reason) for p in (r.evidence.judge() for r in migrating)]
                out[key] = {"event": spec.describe(), **summarize(without, with_, proofs)}
    run = {"backend": backend, "wireguard": network.wireguard_impl, "pairs": pairs, "results": str(results.path)}
    emit({**out, "run": run}, args.json)
    return 0 if all(entry["session_survived_with"] for entry in out.values()) else 1


MAIN_BUDGET = "4m45s"  # the main job's --budget: the same as bootstrap.sh's MAIN_BUDGET
BENCH_BUDGET_DEADLINE_S = 3600.0  # a main job still running after an hour is stuck


def cmd_bench_budget(args: argparse.Namespace) -> int:
    """The default main job with its default budget (a sweep, netns), timed, and the sequential procedure
    simulated: wall_s, budget_s, conditions, decided_share, mean_pairs, coverage_sim, false_red_sim."""
    import subprocess
    import sys
    import time

    from harness.cli.budgetbench import figures_of_run
    from harness.model.settings import new_run_id, parse_duration

    out = Path(args.out).absolute() if args.out else REPO / "reports" / f"bench-budget-{new_run_id()}"
    argv = [sys.executable, "-m", "harness", "sweep", "--budget", MAIN_BUDGET, "--out", str(out)]
    progress(f"bench budget: the main job, {' '.join(argv[2:])}")
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, stdout=sys.stderr, check=False, timeout=BENCH_BUDGET_DEADLINE_S)
    wall = time.monotonic() - started
    result = {
        "wall_s": round(wall, 1),
        "budget_s": parse_duration(MAIN_BUDGET, "--budget"),
        **figures_of_run(out / "results.jsonl", REPO / "tests" / "data" / "pageloads.json"),
        "exit_status": done.returncode,
        "report": str(out / "report.html"),
    }
    emit(result, args.json)
    return 0 if done.returncode == 0 else 1
