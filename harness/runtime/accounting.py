"""Counters from the data plane, read on every host at once: what each path carried, hop by hop.

The client's and the proxies' tunnel interfaces count the session's packets (netlink, in-process);
the server counts what its wg0 port received from and sent to each proxy's address (accounting
rules in its own iptables, installed at bring-up: they count and never decide). A snapshot reads
all of them in parallel and records how far apart the reads were.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.model.evidence import PathDelivery, PathUse, ProofCode, ProofFailure, SessionDelivery
from harness.model.topology import SERVER_PORT, Topology, proxy_name
from harness.runtime.hosts import LinkCounters

if TYPE_CHECKING:
    from harness.runtime.hosts import HostsView

SESSION = 0  # key of the client's wg0 (the session itself) beside the paths 1..N in client counters
CHAIN_IN, CHAIN_OUT = "COMPS-ACCT-IN", "COMPS-ACCT-OUT"
COMMENT = "comps-path-{path}-{direction}"
_COUNTER_LINE = re.compile(r'^\[(\d+):(\d+)\] -A COMPS-ACCT-(?:IN|OUT) .*--comment "?comps-path-(\d+)-(up|down)"?')


def accounting_rules(topology: Topology) -> str:
    """iptables-restore input (--noflush) for the server: one counting rule per path and direction."""
    lines = [
        "*filter",
        f":{CHAIN_IN} - [0:0]",
        f":{CHAIN_OUT} - [0:0]",
        f"-I INPUT 1 -j {CHAIN_IN}",
        f"-I OUTPUT 1 -j {CHAIN_OUT}",
    ]
    for path in topology.path_ids:
        proxy = topology.proxy_backbone_address(path).ip
        lines.append(
            f"-A {CHAIN_IN} -s {proxy}/32 -p udp -m udp --dport {SERVER_PORT} -m comment --comment "
            + COMMENT.format(path=path, direction="up")
        )
        lines.append(
            f"-A {CHAIN_OUT} -d {proxy}/32 -p udp -m udp --sport {SERVER_PORT} -m comment --comment "
            + COMMENT.format(path=path, direction="down")
        )
    return "\n".join(lines + ["COMMIT", ""])


def parse_counters(text: str) -> dict[tuple[int, str], int]:
    """(path, 'up'|'down') -> packets, from `iptables-save -c -t filter` (the accounting rules only)."""
    found: dict[tuple[int, str], int] = {}
    for line in text.splitlines():
        match = _COUNTER_LINE.match(line.strip())
        if match:
            found[(int(match.group(3)), match.group(4))] = int(match.group(1))
    return found


def install(network: HostsView) -> None:
    network.server.exec(["iptables-restore", "--noflush"], input=accounting_rules(network.topology), timeout=15)


@dataclass(frozen=True)
class Snapshot:
    """Counters of every host at one moment (monotonic time at the middle of the reads)."""

    at: float
    skew_ms: float
    client: dict[int, LinkCounters]  # SESSION (wg0) and the paths' wgnets
    proxy: dict[int, LinkCounters]  # the proxies' tunnels (wgnetK)
    proxy_outer: dict[int, LinkCounters]  # the proxies' underlay links towards the client
    server: dict[tuple[int, str], int]
    server_session: LinkCounters | None = None  # the server's wg0
    problems: list[ProofFailure] = field(default_factory=list)


class CounterReader:
    """Reads snapshots with one worker thread per host, so that all hosts are read at the same moment.

    Each read opens its host's netlink handle in its pool thread and closes it again (a socket per
    host and snapshot costs well under a millisecond; handles kept per pool thread would pile up
    over the many runs of one topology).
    """

    def __init__(self, network: HostsView) -> None:
        self.network = network
        self.paths = network.topology.path_ids
        self._pool = ThreadPoolExecutor(max_workers=len(self.paths) + 2, thread_name_prefix="counters")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> CounterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _timed(self, read):
        started = time.monotonic()
        try:
            value, problem = read(), None
        except (HarnessError, OSError) as exc:
            value, problem = None, str(exc)
        finished = time.monotonic()
        self.network.drop_thread_netlink()  # pool threads are reused elsewhere: no handle stays open
        return started, finished, value, problem

    def _client(self) -> dict[int, LinkCounters]:
        return client_counters(self.network)

    def _proxy(self, path: int) -> tuple[LinkCounters, LinkCounters | None]:
        proxy, tunnel = self.network.proxy(path), proxy_name(path)
        outer = self.network.topology.proxy_client_device(path)
        counters = proxy.counters_by_name([tunnel, outer])
        if tunnel not in counters:
            proxy.link_index(tunnel)  # raises, naming the missing tunnel
        return counters[tunnel], counters.get(outer)

    def _server(self) -> tuple[dict[tuple[int, str], int], LinkCounters]:
        out = self.network.server.exec(["iptables-save", "-c", "-t", "filter"], timeout=10)
        return parse_counters(out.stdout), self.network.server.interface_counters("wg0")

    def snapshot(self) -> Snapshot:
        jobs = {
            "client": self._pool.submit(self._timed, self._client),
            "server": self._pool.submit(self._timed, self._server),
        }
        for k in self.paths:
            jobs[k] = self._pool.submit(self._timed, lambda k=k: self._proxy(k))
        done = {name: job.result() for name, job in jobs.items()}
        starts, ends = [d[0] for d in done.values()], [d[1] for d in done.values()]
        problems = []
        for name, (_, _, _, problem) in done.items():
            if problem is None:
                continue
            if isinstance(name, int):
                text = (
                    f"path {name}: the proxy's tunnel {proxy_name(name)} cannot be read "
                    f"(its WireGuard is gone?): {problem}"
                )
                problems.append(ProofFailure(ProofCode.TUNNEL_UNREADABLE, text, name))
            else:
                text = f"the {name}'s counters cannot be read: {problem}"
                problems.append(ProofFailure(ProofCode.COUNTERS_UNREADABLE, text))
        server, server_session = done["server"][2] or ({}, None)
        return Snapshot(
            at=(min(starts) + max(ends)) / 2,
            skew_ms=round((max(ends) - min(starts)) * 1000, 3),
            client=done["client"][2] or {},
            proxy={k: done[k][2][0] for k in self.paths if done[k][2] is not None},
            proxy_outer={k: done[k][2][1] for k in self.paths if done[k][2] is not None and done[k][2][1]},
            server=server,
            server_session=server_session,
            problems=problems,
        )


def client_counters(network: HostsView) -> dict[int, LinkCounters]:
    """The client's wg0 (as SESSION) and wgnet counters, from one netlink dump."""
    names = {"wg0": SESSION, **{proxy_name(k): k for k in network.topology.path_ids}}
    return {names[name]: counter for name, counter in network.client.counters_by_name(list(names)).items()}


def session_delivery(before: Snapshot, after: Snapshot) -> SessionDelivery | None:
    """The session end to end: what the client's wg0 sent and the server's wg0 received, and back."""
    parts = (before.client.get(SESSION), after.client.get(SESSION), before.server_session, after.server_session)
    if any(part is None for part in parts):
        return None
    c0, c1, s0, s1 = parts
    return SessionDelivery(
        up_sent=c1.tx_packets - c0.tx_packets,
        up_delivered=s1.rx_packets - s0.rx_packets,
        down_sent=s1.tx_packets - s0.tx_packets,
        down_delivered=c1.rx_packets - c0.rx_packets,
    )


def path_use(before: Snapshot, after: Snapshot) -> dict[int, PathUse]:
    """Bytes and packets each proxy's tunnel moved (both directions) between two snapshots."""

    def moved(start: LinkCounters | None, end: LinkCounters | None) -> tuple[int, int]:
        if start is None or end is None:
            return 0, 0
        return (
            end.rx_bytes + end.tx_bytes - start.rx_bytes - start.tx_bytes,
            end.rx_packets + end.tx_packets - start.rx_packets - start.tx_packets,
        )

    use = {}
    for k, end in after.proxy.items():
        if k in before.proxy:
            outer = moved(before.proxy_outer.get(k), after.proxy_outer.get(k))
            use[k] = PathUse(*moved(before.proxy[k], end), *outer)
    return use


def delivery(before: Snapshot, after: Snapshot) -> dict[int, PathDelivery]:
    """Per path, the session's packets at each hop between two snapshots (paths with every counter read)."""
    result = {}
    for k in after.proxy:
        parts = (before.client.get(k), after.client.get(k), before.proxy.get(k), after.proxy.get(k))
        server = [side.server.get((k, d)) for side in (before, after) for d in ("up", "down")]
        if any(part is None for part in parts) or any(value is None for value in server):
            continue
        c0, c1, p0, p1 = parts
        result[k] = PathDelivery(
            up_sent=c1.tx_packets - c0.tx_packets,
            up_entered=p1.rx_packets - p0.rx_packets,
            up_delivered=server[2] - server[0],
            down_sent=server[3] - server[1],
            down_entered=p1.tx_packets - p0.tx_packets,
            down_delivered=c1.rx_packets - c0.rx_packets,
        )
    return result
