"""The small commands: up, clean, images, render-demo, report, compare, vm."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

from harness import options
from harness.backends.registry import (
    leftovers_everywhere,
    network_for,
    remove_run_everywhere,
    runs_on_machine,
)
from harness.cli.common import REPO, progress, settings_of, single_backend
from harness.errors import ConfigError, HarnessError
from harness.model.settings import (
    check_run_id,
    parse_number,
)
from harness.runtime.traffic import ping_stream
from harness.system import cleanup


def cmd_up(args: argparse.Namespace) -> int:
    """Bring the topology up, optionally send traffic, hold, and tear down (used by interruption tests)."""
    settings = settings_of(args)
    backend = single_backend(settings)
    hold = parse_number(args.hold, "--hold")
    with network_for(backend, settings.run, progress=progress) as network:
        with ping_stream(network, interval_s=0.01, size=56) if args.traffic else contextlib.nullcontext():
            if args.traffic:
                progress(f"{settings.run.run_id}: traffic running")
            time.sleep(hold)
    progress(f"{settings.run.run_id}: done")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove one run's leftovers (exact id), or every dead run's; a live run is never touched.
    With --inventory: what run --run-id left on the inventory's remote hosts (harness.cli.remote)."""
    if args.inventory:
        from harness.cli.remote import cmd_clean_remote

        return cmd_clean_remote(args)
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
            removed += [f"would remove {item}" for item in leftovers_everywhere(run_id)]
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


def cmd_images(args: argparse.Namespace) -> int:
    """Build the Docker backend's images (base image offline if needed); also tag them :demo for compose."""
    from harness.backends.docker import docker_client, docker_images

    tags = docker_images(progress)
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
    progress(f"report built in {time.monotonic() - started:.2f} s")
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
    progress(
        f"{len(rows)} metrics compared, {regressed} regressed, "
        f"{sum(row['ratio'] is None for row in rows)} without a verdict (tolerance {tolerance:g}, 95 % intervals)"
    )
    return 1 if regressed else 0


def cmd_vm(args: argparse.Namespace) -> int:
    """Run a command inside a guest with a stock Debian kernel (kernel WireGuard, netem); its exit status."""
    from harness.model.kinds import GuestKind
    from harness.vm import kernel, uml
    from harness.vm.runner import run_in_vm

    settings = settings_of(args)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.fetch and settings.vm.guest == GuestKind.UML:
        built = uml.build(kernel.default_cache(), progress)  # once; a second call finds it
        print(f"guest kernel: {built.describe()}: {built.binary} (built in {built.build_s} s)")
        return 0
    if args.fetch:
        found = kernel.resolve(settings.vm.kernel, kernel.default_cache(), progress)
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
    run = run_in_vm(settings.vm, command, rwdirs=rwdirs, cwd=Path.cwd(), run_id=settings.run.run_id, progress=progress)
    return run.returncode


def rerun_in_vm(args: argparse.Namespace, argv: list[str], extra_rwdirs: list[Path] = ()) -> int:
    """`sweep --vm`, `bench ... --vm`: the same command, without --vm, inside the guest (netns backend)."""
    from harness.vm.runner import rerun_in_guest

    return rerun_in_guest(
        settings_of(args),
        [sys.executable, "-m", "harness", *argv],
        rwdirs=[REPO, *extra_rwdirs],
        cwd=Path.cwd(),
        progress=progress,
    )


def vm_rwdirs(args: argparse.Namespace) -> list[Path]:
    """An --out outside the repository must be writable in the guest too (made here, checked there)."""
    out = getattr(args, "out", None)
    if not out:
        return []
    path = Path(out).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return [path]
