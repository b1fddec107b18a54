"""The inventory's hosts over SSH, as one group: connected together, checked before a run, swept by tag.

- `RemoteHosts` opens one ControlMaster per host in parallel (harness.system.ssh), makes the run's
  remote directory, and closes every connection however the run ends.
- `preflight` runs harness.model.preflight's facts script on every host at once (over stdin: nothing
  is copied, nothing changes) and returns the facts and one line per problem.
- `SshHost` is a remote machine behind the `Host` interface (harness.runtime.hosts): its commands
  and processes go through its connection, its counters come from one `cat /proc/net/dev`, its
  links, addresses and routes are `ip` commands, and its WireGuard config (private key included)
  goes over stdin to `wg setconf IF /dev/stdin`, never to a file. It has no netlink: code that
  reaches for one on a remote host gets an error naming the host, not a local socket.
- `sweep` removes what a run left on a host: the processes whose environment carries the run's tag,
  the interfaces whose alias is the run's tag, the iptables rules whose comment is, and the run's
  remote directory. Only what carries the tag is touched; the sweep itself runs
  untagged, so it never matches itself. It needs a connection of its own (`clean` opens one), since
  the run's own connection may be what was lost.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import NoReturn

from harness.errors import BackendError, ConfigError
from harness.model.inventory import Inventory
from harness.model.preflight import FACTS_SCRIPT, Facts, Needs, needs_of, parse_facts, problems
from harness.runtime.hosts import Host, LinkCounters, parse_net_dev
from harness.system import proc
from harness.system.ssh import Connection, DryRun, in_parallel, remote_workdir
from harness.wireguard.state import parse_endpoints

# $1: the run id. Its processes first (a wireguard-go takes its device with it), then the interfaces whose
# alias is the run's tag, the iptables rules whose comment is, and the run's directory. Every match is
# exact (the tag ends the alias; the comment is quoted), so run abc-1 never takes abc-12's.
SWEEP_SCRIPT = r"""
tag="COMPS_HARNESS_RUN=$1"
mark="comps-harness:$1"
for env in /proc/[0-9]*/environ; do
  pid=${env#/proc/}; pid=${pid%/environ}
  [ "$pid" = "$$" ] && continue
  if tr '\0' '\n' < "$env" 2>/dev/null | grep -qx -- "$tag"; then
    echo "process $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"
    kill -KILL "$pid" 2>/dev/null
  fi
done
ip -o link show 2>/dev/null | while IFS= read -r line; do
  case $line in *"alias $mark") ;; *) continue ;; esac
  name=$(printf '%s\n' "$line" | awk -F': ' '{ split($2, n, "@"); print n[1] }')
  ip link del dev "$name" 2>/dev/null && echo "interface $name"
done
for table in filter nat; do
  rules=$(iptables-save -t "$table" 2>/dev/null | grep -F -- "--comment \"$mark\"" | sed 's/^-A /-D /')
  [ -n "$rules" ] || continue
  printf '*%s\n%s\nCOMMIT\n' "$table" "$rules" | iptables-restore --noflush &&
    printf '%s\n' "$rules" | sed "s/^-D /iptables rule ($table) /"
done
if [ -d "/tmp/comps-harness-$1" ]; then rm -rf "/tmp/comps-harness-$1" && echo "directory /tmp/comps-harness-$1"; fi
true
"""


class SshHost(Host):
    """One inventory host behind the Host interface; every call goes over its run's connection."""

    def __init__(self, connection: Connection, log_dir: Path) -> None:
        super().__init__(connection.role, connection.run_id, log_dir, pid=0)
        self.connection = connection

    def _not_here(self, what: str) -> NoReturn:
        raise BackendError(f"{self.name} is a remote host (ssh): it has no {what} on this machine")

    def command_prefix(self) -> list[str]:
        self._not_here("local command prefix")

    def netns_path(self) -> str:
        self._not_here("network namespace")

    def path(self, inside: str) -> Path:
        self._not_here(f"local path for {inside}")

    def python(self, script: str | None = None) -> list[str]:
        self._not_here("copy of the harness to run")

    def exec(
        self,
        argv: list[str],
        *,
        timeout: float = 30.0,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> proc.CommandResult:
        return self.connection.run(argv, env=env, timeout=timeout, check=check, input=input)

    def spawn(
        self, argv: list[str], *, name: str, env: dict[str, str] | None = None, stdout: int | None = None
    ) -> proc.Process:
        process = self.connection.spawn(
            argv, name=f"{self.name}/{name}", env=env, log_path=self.log_dir / f"{self.name}-{name}.log", stdout=stdout
        )
        self._processes.append(process)
        return process

    def write_file(self, path: str, data: str, mode: int = 0o600) -> None:
        """The file written by the host's own shell from stdin (created with `mode`, never wider)."""
        script = 'umask 077; cat > "$0" && chmod "$1" "$0"'
        self.exec(["sh", "-c", script, path, f"{mode:o}"], input=data, timeout=15)

    def counters_by_name(self, names: list[str]) -> dict[str, LinkCounters]:
        wanted = set(names)
        text = self.exec(["cat", "/proc/net/dev"], timeout=10).stdout
        return {name: counters for name, counters in parse_net_dev(text).items() if name in wanted}

    def wg_endpoints(self, ifname: str) -> dict[str, tuple[IPv4Address, int] | None]:
        return parse_endpoints(self.exec(["wg", "show", ifname, "endpoints"], timeout=10).stdout)

    def reset_peer_endpoint(self, ifname: str, public_key: str, endpoint: tuple[IPv4Address, int]) -> None:
        self.exec(["wg", "set", ifname, "peer", public_key, "endpoint", f"{endpoint[0]}:{endpoint[1]}"], timeout=10)

    def has_link(self, ifname: str) -> bool:
        return self.exec(["ip", "link", "show", "dev", ifname], check=False, timeout=10).returncode == 0

    def add_wireguard_link(self, ifname: str) -> None:
        self.exec(["ip", "link", "add", "dev", ifname, "type", "wireguard"], timeout=10)

    def address_up(self, ifname: str, address: IPv4Interface, mtu: int) -> None:
        batch = f"address add {address} dev {ifname}\nlink set dev {ifname} mtu {int(mtu)} up\n"
        self.exec(["ip", "-batch", "-"], input=batch, timeout=10)

    def replace_route(
        self, dst: str, *, dev: str | None = None, gateway: str | None = None, table: int | None = None
    ) -> None:
        argv = ["ip", "route", "replace", dst]
        argv += ["via", gateway] if gateway is not None else []
        argv += ["dev", dev] if dev is not None else []
        argv += ["table", str(table)] if table is not None else []
        self.exec(argv, timeout=10)

    def wireguard_socket_exists(self, ifname: str) -> bool:
        return self.exec(["test", "-S", f"/run/wireguard/{ifname}.sock"], check=False, timeout=10).returncode == 0

    def wireguard_ready(self, ifname: str) -> bool:
        script = 'test -S "/run/wireguard/$0.sock" && ip link show dev "$0" >/dev/null'
        return self.exec(["sh", "-c", script, ifname], check=False, timeout=10).returncode == 0

    def set_wireguard(self, ifname: str, setconf: str) -> None:
        """The config, private key included, on `wg setconf`'s stdin: it never lands on the host's disk."""
        self.exec(["wg", "setconf", ifname, "/dev/stdin"], input=setconf, timeout=15)

    def wireguard_up(self, ifname: str, setconf: str, address: IPv4Interface, mtu: int) -> None:
        """set_wireguard and address_up in one round trip (the config on stdin, as there)."""
        script = 'wg setconf "$0" /dev/stdin && ip address add "$1" dev "$0" && ip link set dev "$0" mtu "$2" up'
        self.exec(["sh", "-c", script, ifname, str(address), str(int(mtu))], input=setconf, timeout=15)


@dataclass(frozen=True)
class CounterRead:
    """Interface counters of several hosts read at once, with how far apart the reads may have been.

    Each host's moment is known only to lie in its command's span (sent .. answered, this machine's
    clock): `skew_s` is the spread of the spans' midpoints, `uncertainty_s` the largest half span.
    A proof that compares hops of different hosts records both."""

    counters: dict[str, dict[str, LinkCounters]]
    skew_s: float
    uncertainty_s: float


def read_skew(spans: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """(skew, uncertainty) of reads that ran in these (start, end) spans."""
    if not spans:
        return 0.0, 0.0
    middles = [(start + end) / 2 for start, end in spans.values()]
    return max(middles) - min(middles), max((end - start) / 2 for start, end in spans.values())


class RemoteHosts:
    """One connection per inventory host, for one run; a context manager that always closes them."""

    def __init__(
        self,
        inventory: Inventory,
        run_id: str,
        workdir: Path,
        *,
        dry_run: DryRun | None = None,
        remote_dir: bool = True,
    ) -> None:
        """`remote_dir`: make the run's directory on every host (a sweep's own connections make none)."""
        self.inventory = inventory
        self.run_id = run_id
        self.remote_dir = remote_dir
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
        if self.remote_dir:
            self.each(lambda c: c.run(["mkdir", "-p", "-m", "0700", remote_workdir(self.run_id)], timeout=15))

    def __getitem__(self, role: str) -> Connection:
        try:
            return self.connections[role]
        except KeyError:
            raise ConfigError(f"--inventory {self.inventory.source}: has no [{role}]") from None

    def each(self, call) -> dict[str, object]:
        return in_parallel(self.connections.values(), call)

    def read_counters(self, names: dict[str, list[str]], hosts: dict[str, Host] | None = None) -> CounterRead:
        """The named interfaces' counters of every role in `names`, read in parallel (a thread per host)."""
        by_role = hosts or {role: SshHost(self[role], Path("/nonexistent")) for role in names}

        def read(role: str) -> tuple[dict[str, LinkCounters], tuple[float, float]]:
            start = time.monotonic()
            found = by_role[role].counters_by_name(names[role])
            return found, (start, time.monotonic())

        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            results = dict(zip(names, pool.map(read, names), strict=True))
        skew, uncertainty = read_skew({role: span for role, (_, span) in results.items()})
        return CounterRead({role: found for role, (found, _) in results.items()}, skew, uncertainty)

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


def sweep_host(connection: Connection, run_id: str) -> list[str]:
    """Remove what run `run_id` left on the connection's host; returns what was removed, a line each."""
    result = connection.run(["sh", "-s", "--", run_id], input=SWEEP_SCRIPT, timeout=30, tagged=False)
    return [f"{connection.role}: {line}" for line in result.stdout.splitlines() if line.strip()]
