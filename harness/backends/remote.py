"""The inventory's hosts over SSH, as one group: connected together, checked before a run, swept by tag.

- `RemoteHosts` opens one ControlMaster per host in parallel (harness.system.ssh), makes the run's
  remote directory, and closes every connection however the run ends.
- `preflight` runs harness.model.preflight's facts script on every host at once (over stdin: nothing
  is copied, nothing changes) and returns the facts and one line per problem.
- `sweep` removes what a run left on a host: the processes whose environment carries the run's tag,
  and the run's remote directory. Only what carries the tag is touched; the sweep itself runs
  untagged, so it never matches itself. It needs a connection of its own (`clean` opens one), since
  the run's own connection may be what was lost.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import BackendError, ConfigError
from harness.model.inventory import Inventory
from harness.model.preflight import FACTS_SCRIPT, Facts, Needs, needs_of, parse_facts, problems
from harness.system.ssh import Connection, DryRun, in_parallel, remote_workdir

SWEEP_SCRIPT = r"""
tag="COMPS_HARNESS_RUN=$1"
for env in /proc/[0-9]*/environ; do
  pid=${env#/proc/}; pid=${pid%/environ}
  [ "$pid" = "$$" ] && continue
  if tr '\0' '\n' < "$env" 2>/dev/null | grep -qx -- "$tag"; then
    echo "process $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"
    kill -KILL "$pid" 2>/dev/null
  fi
done
if [ -d "/tmp/comps-harness-$1" ]; then rm -rf "/tmp/comps-harness-$1" && echo "directory /tmp/comps-harness-$1"; fi
true
"""


class RemoteHosts:
    """One connection per inventory host, for one run; a context manager that always closes them."""

    def __init__(self, inventory: Inventory, run_id: str, workdir: Path, *, dry_run: DryRun | None = None) -> None:
        self.inventory = inventory
        self.run_id = run_id
        self.connections = {host.role: Connection(host, run_id, workdir, dry_run=dry_run) for host in inventory.hosts}

    def __enter__(self) -> RemoteHosts:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        for connection in self.connections.values():  # from this thread: the masters' death signal follows it
            connection.start()
        self.each(lambda connection: connection.wait_ready())
        self.each(lambda c: c.run(["mkdir", "-p", "-m", "0700", remote_workdir(self.run_id)], timeout=15))

    def __getitem__(self, role: str) -> Connection:
        try:
            return self.connections[role]
        except KeyError:
            raise ConfigError(f"--inventory {self.inventory.source}: has no [{role}]") from None

    def each(self, call) -> dict[str, object]:
        return in_parallel(self.connections.values(), call)

    def close(self) -> None:
        errors = []
        for connection in self.connections.values():
            try:
                connection.close()
            except Exception as exc:  # every connection is closed, whatever one of them says
                errors.append(f"{connection.role}: {exc}")
        if errors:
            raise BackendError("closing ssh connections: " + "; ".join(errors))


def facts(connection: Connection, needs: Needs) -> Facts:
    result = connection.run(["sh", "-s", "--", *needs.tools], input=FACTS_SCRIPT, timeout=30)
    return parse_facts(result.stdout)


def preflight(
    hosts: RemoteHosts, wireguard: str, needs: dict[str, Needs] | None = None
) -> tuple[dict[str, Facts], list[str]]:
    """Every host's facts (in parallel) and the problems found, one line each, in the inventory's order."""
    wanted = {role: (needs or {}).get(role) or needs_of(role) for role in hosts.connections}
    found = hosts.each(lambda c: facts(c, wanted[c.role]))
    by_role: dict[str, Facts] = {role: found[role] for role in hosts.connections}  # type: ignore[misc]
    lines = [line for role, fact in by_role.items() for line in problems(role, fact, wanted[role], wireguard)]
    return by_role, lines


def sweep(connection: Connection, run_id: str) -> list[str]:
    """Remove what run `run_id` left on the connection's host; returns what was removed, a line each."""
    result = connection.run(["sh", "-s", "--", run_id], input=SWEEP_SCRIPT, timeout=30, tagged=False)
    return [f"{connection.role}: {line}" for line in result.stdout.splitlines() if line.strip()]
