"""The ssh backend's commands: `preflight` (is every host of an inventory ready?) and `clean --inventory`.

Both read the inventory first and name a problem with it in one line before anything starts. Without
--inventory, `preflight` makes local SSH hosts (harness.backends.sshlab) and checks those: the same
code path, so a machine can show that the checks work before any real host exists.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.backends.remote import RemoteHosts, preflight, sweep_host
from harness.backends.sshlab import LocalSshHosts
from harness.cli.common import progress
from harness.errors import ConfigError
from harness.model.inventory import Inventory, load_inventory
from harness.model.kinds import wireguard_request
from harness.model.settings import check_run_id, new_run_id
from harness.model.topology import SERVER, proxy_name
from harness.system import cleanup
from harness.system.ssh import DryRun


@contextlib.contextmanager
def _workdir(run_id: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=cleanup.workdir_prefix(run_id)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _inventory(args: argparse.Namespace, run_id: str, workdir: Path) -> Iterator[Inventory]:
    if args.inventory:
        yield load_inventory(Path(args.inventory))
        return
    roles = [proxy_name(1), proxy_name(2), SERVER]
    progress(f"{run_id}: no --inventory: making local SSH hosts ({', '.join(roles)})")
    with LocalSshHosts(run_id, workdir, roles) as hosts:
        assert hosts.inventory is not None
        yield hosts.inventory


def cmd_preflight(args: argparse.Namespace) -> int:
    """Check every host of the inventory at once; one line per host, and one per problem. Exit 1 on any."""
    wireguard = wireguard_request(args.wireguard)
    if args.inventory:
        load_inventory(Path(args.inventory))  # a bad inventory is named before anything starts
    run_id = new_run_id()
    with _workdir(run_id) as workdir, _inventory(args, run_id, workdir) as inventory:
        dry_run = DryRun() if args.dry_run else None
        with RemoteHosts(inventory, run_id, workdir, dry_run=dry_run) as hosts:
            facts, found = preflight(hosts, wireguard)
            if dry_run is not None:
                print(dry_run.text())
                return 0
            for role, fact in facts.items():
                described = fact.describe(wireguard)
                versions = ", ".join(described["versions"].values())
                state = "not ready" if any(line.startswith(f"{role}: ") for line in found) else "ready"
                print(f"{role}: {state}: kernel {described['kernel']}, WireGuard {described['wireguard']}; {versions}")
            for line in found:
                print(line)
            hosts.each(lambda c: sweep_host(c, run_id))  # the check's own remote directory goes
    return 1 if found else 0


def cmd_clean_remote(args: argparse.Namespace) -> int:
    """What run --run-id left on every host of --inventory, removed (or listed with --dry-run)."""
    if args.run_id is None:
        raise ConfigError("--inventory: clean on remote hosts takes --run-id (the run whose leftovers go)")
    run_id = check_run_id(args.run_id, "--run-id")
    inventory = load_inventory(Path(args.inventory))
    own = new_run_id()
    with _workdir(own) as workdir, RemoteHosts(inventory, own, workdir, remote_dir=False) as hosts:
        if args.dry_run:
            for role in hosts.connections:
                print(f"would sweep {role} for processes tagged {run_id} and {cleanup.WORKDIR_PREFIX}{run_id}")
            return 0
        removed = hosts.each(lambda c: sweep_host(c, run_id))
    lines = [line for role in inventory.hosts for line in removed[role.role]]  # type: ignore[attr-defined]
    for line in lines:
        print(f"removed {line}")
    if not lines:
        print("nothing to clean")
    return 0
