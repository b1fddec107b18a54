"""Path events applied on a path's timeline while the session migrates, and undone (see harness.model.events).

Where each event acts, for path k (its link: the client's eth<k>, proxy k's eth1):
- `blackhole`, `flap`: the receiving end of each direction drops what arrives (iptables INPUT, tagged with the
  run's comment): the network ate it, the sender does not know. Up: proxy k; down: the client.
- `rate`, `trace`: the sending end's egress gets a tbf at the rate (a profile's own qdisc there keeps its
  delay and loss and gets the lower rate). A trace steps the rate every 100 ms from its file (Mahimahi's
  format, repeated when it ends); a slot without opportunities gets 0.05 Mbit/s, which the tbf's 50 ms
  queue limit turns into drops.
- `mtu`: with ICMP (the default), the sending end's route to the far end gets the MTU (`mtu lock`), so the
  sender fragments as it would once an ICMP "fragmentation needed" told it (WireGuard's outer packets carry
  no DF); `/noicmp`: the receiving end drops every packet longer than the MTU, silently.
- `rebind`: proxy k's NAT maps the session to a new source port: a MASQUERADE rule with `--random` ports
  goes first in its POSTROUTING, and its connection tracking table is flushed (ctnetlink, in its namespace).
- `conntrack-expiry`: proxy k's UDP conntrack timeouts are set to the idle time (per namespace sysctls).
- `rekey`: the client removes the peer and adds it again (keys and allowed IPs from the topology): the
  next packet makes a new handshake. Without a path: the inner session (wg0); with one: that path's tunnel.
  The note gives the ms until the client's `latest-handshake` showed it.
Every event's planned and applied times, and its end, go into the evidence (AppliedEvent).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyroute2.netlink.exceptions import NetlinkError

from harness.data import shipped_traces, trace_path
from harness.errors import BackendError, ConfigError, HarnessError
from harness.model.events import INSTANT, AppliedEvent, EventKind, EventSpec
from harness.model.profiles import TBF_LATENCY_MS, Shape, limited, qdisc_args
from harness.model.timeline import Direction
from harness.model.topology import CLIENT, proxy_name
from harness.model.traces import SLOT_MS, parse_trace, slot_rates
from harness.runtime.watchers import Worker
from harness.system import nslink, proc

if TYPE_CHECKING:
    from harness.runtime.hosts import Host
    from harness.runtime.network import Network

TBF_HANDLE = 0x10000  # 1:
TRACE_FLOOR_MBIT = 0.05  # a trace slot without opportunities (tbf needs a rate above 0)
MIN_BURST_BYTES = 2 * 1514  # a tbf's bucket holds at least two full frames
REBIND_PORTS = "20000-59999"
HANDSHAKE_TIMEOUT_S = 10.0
SERIES_S = 0.1  # the player samples the client's path counters this often (the report's event timelines)
REBIND_SEEN_S = 2.0  # for the server to hear the session from the proxy, before and after the rebinding
NETLINK_NETFILTER = 12
CT_DELETE = (1 << 8) | 2  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE: with no tuple, every entry
NLM_F_REQUEST_ACK = 0x1 | 0x4
NLMSG_ERROR = 2


def tag(network: Network) -> str:
    return f"comps-event-{network.run_id}"


def trace_file(arg: str, direction: str) -> Path:
    """The trace's file for `direction` (harness.data.trace_path), else one ConfigError naming --event."""
    path = trace_path(arg, direction)
    if path is None:
        shipped = ", ".join(shipped_traces())
        raise ConfigError(f"--event trace={arg}: no such trace file or shipped trace (shipped: {shipped})")
    return path


def load_trace(arg: str, direction: str) -> list[float]:
    """Mbit/s per 100 ms slot of the trace `arg` for `direction`; a bad file is one ConfigError naming it."""
    path = trace_file(arg, direction)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--event trace={arg}: cannot read {path}: {exc.strerror}") from None
    return slot_rates(parse_trace(text, f"--event trace {path}"))


def check_traces(events: tuple[EventSpec, ...]) -> None:
    """Before anything starts: every trace an event names exists and parses."""
    for event in events:
        if event.kind == EventKind.TRACE and event.trace is not None:
            for direction in directions(event):
                load_trace(event.trace, direction)


def directions(spec: EventSpec) -> tuple[str, ...]:
    return ("up", "down") if spec.direction == Direction.BOTH else (str(spec.direction),)


class EventAction:
    """One event on one path: begin() at its time, step() for what changes within it, end() undoes it."""

    def __init__(self, network: Network, spec: EventSpec) -> None:
        self.network, self.spec = network, spec
        self.path = spec.path if spec.path is not None else network.topology.path_ids[-1]
        self.link = network.topology.path_link(self.path)
        self.note = ""
        self._rules: list[tuple[Host, list[str]]] = []

    # -- the two ends of a direction ---------------------------------------------------------
    def sender(self, direction: str) -> tuple[Host, str]:
        if direction == "up":
            return self.network.client, self.link.a_ifname
        return self.network.proxy(self.path), self.link.b_ifname

    def receiver(self, direction: str) -> tuple[Host, str]:
        if direction == "up":
            return self.network.proxy(self.path), self.link.b_ifname
        return self.network.client, self.link.a_ifname

    def far_address(self, direction: str) -> str:
        """The receiving end's address on the path's link (what the sender routes to)."""
        address = self.link.b_address if direction == "up" else self.link.a_address
        assert address is not None
        return str(address.ip)

    # -- iptables rules with the run's tag ---------------------------------------------------
    def add_rule(self, host: Host, rule: list[str], table: str = "filter") -> None:
        """Insert `rule` (its chain first) with the run's tag; end() deletes it."""
        chain, *match = rule
        body = [chain, "-m", "comment", "--comment", tag(self.network), *match]
        host.exec(["iptables", "-t", table, "-I", *body], timeout=10)
        self._rules.append((host, ["iptables", "-t", table, "-D", *body]))

    def drop_rules(self) -> None:
        while self._rules:
            host, argv = self._rules.pop()
            host.exec(argv, timeout=10, check=False)

    def blackhole(self) -> None:
        for direction in directions(self.spec):
            host, device = self.receiver(direction)
            self.add_rule(host, ["INPUT", "-i", device, "-j", "DROP"])

    # -- the lifecycle -------------------------------------------------------------------------
    def begin(self) -> None:
        """Apply the event (each kind its own)."""

    def step(self, offset_s: float) -> float | None:
        """Called at the offsets it returns (s after begin); None: nothing more until the end."""
        return None

    def end(self) -> None:
        self.drop_rules()


class Blackhole(EventAction):
    def begin(self) -> None:
        self.blackhole()


class Flap(EventAction):
    """Down (blackholed) for the first half of every period, up for the second."""

    def begin(self) -> None:
        self.blackhole()
        self.flaps = 1

    def step(self, offset_s: float) -> float | None:
        period = self.spec.period_s or 1.0
        if self._rules:
            self.drop_rules()
        else:
            self.blackhole()
            self.flaps += 1
        self.note = f"{self.flaps} outages of {period / 2:g} s"
        return (int(offset_s / (period / 2) + 1e-6) + 1) * period / 2


class Shaped(EventAction):
    """What sets a rate on the sending ends (`rate`, `trace`): composed with a profile's qdisc there."""

    def __init__(self, network: Network, spec: EventSpec) -> None:
        super().__init__(network, spec)
        self._set: list[tuple[Host, str, Shape | None]] = []

    def set_rate(self, direction: str, mbit: float, slot_s: float | None = None) -> None:
        """The sending end of `direction` at `mbit` (a profile's own rate there stays the limit if lower).
        With `slot_s` (a trace's steps): every change refills tbf's bucket, which a saturated link spends at
        once, so the rate is lowered by one bucket per slot and a slot delivers what the trace offers in it
        (without it, +16 % at 2 Mbit/s with a 4 kB bucket every 100 ms)."""
        host, device = self.sender(direction)
        base = self.network.shapes.get((host.name, device))
        if base is None or not base.needs_netem:  # a tbf alone: over netlink, well under 1 ms on any backend
            mbit = min(mbit, base.rate_mbit or mbit) if base else mbit
            burst = max(MIN_BURST_BYTES, int(mbit * 1e6 * 0.004) // 8)
            if slot_s is not None:
                mbit = max(TRACE_FLOOR_MBIT, mbit - burst * 8 / 1e6 / slot_s)
            self._tbf(host, device, mbit, burst)
            if all(entry[:2] != (host, device) for entry in self._set):
                self._set.append((host, device, base))
            return
        args = qdisc_args(limited(base, mbit))
        assert args is not None
        result = host.exec(["tc", "qdisc", "replace", "dev", device, "root", *args], check=False, timeout=10)
        if result.returncode != 0:
            raise BackendError(
                f"--event {self.spec.describe()}: tc refused `{' '.join(args)}`: {result.stderr.strip()}"
            )
        if all(entry[:2] != (host, device) for entry in self._set):
            self._set.append((host, device, base))

    def _tbf(self, host: Host, device: str, mbit: float, burst: int) -> None:
        """A tbf (its bucket ~4 ms of the rate, at least two frames), set through the host's netlink: a step
        of a trace every 100 ms cannot wait for a `docker exec tc`."""
        try:
            host.netlink.tc(
                "replace",
                "tbf",
                host.link_index(device),
                TBF_HANDLE,
                rate=int(mbit * 1e6 / 8),
                burst=burst,
                latency=f"{TBF_LATENCY_MS}ms",
            )
        except NetlinkError as exc:
            raise BackendError(
                f"--event {self.spec.describe()}: tbf at {mbit:g} Mbit/s on {host.name}/{device}: {exc}"
            ) from None

    def end(self) -> None:
        while self._set:
            host, device, base = self._set.pop()
            restore = qdisc_args(base) if base is not None else None
            argv = ["tc", "qdisc", "replace" if restore else "del", "dev", device, "root", *(restore or [])]
            host.exec(argv, check=False, timeout=10)
        super().end()


class Rate(Shaped):
    def begin(self) -> None:
        for direction in directions(self.spec):
            self.set_rate(direction, self.spec.rate_mbit or 1.0)


class Trace(Shaped):
    """The trace's rate per 100 ms slot, stepped on the sending ends; the slot's start is on the event's clock."""

    def begin(self) -> None:
        assert self.spec.trace is not None
        self.rates = {direction: load_trace(self.spec.trace, direction) for direction in directions(self.spec)}
        self.slots = 0
        # per direction, (s after begin, bytes the receiving end's link had received): what was delivered per
        # slot, on the replay's own clock (harness.model.traces.replay_errors checks it against the file)
        self.delivered: dict[str, list[tuple[float, int]]] = {direction: [] for direction in self.rates}
        self.started = time.monotonic()
        self.step(0.0)

    def _sample(self) -> None:
        at = time.monotonic() - self.started
        for direction in self.rates:
            host, device = self.receiver(direction)
            self.delivered[direction].append((round(at, 4), host.interface_counters(device).rx_bytes))

    def end(self) -> None:
        self._sample()
        super().end()

    def step(self, offset_s: float) -> float | None:
        self._sample()
        slot = round(offset_s * 1000 / SLOT_MS)
        for direction, rates in self.rates.items():
            self.set_rate(direction, max(TRACE_FLOOR_MBIT, rates[slot % len(rates)]), slot_s=SLOT_MS / 1000)
        self.slots += 1
        self.note = f"{self.slots} slots of {SLOT_MS} ms replayed"
        return (slot + 1) * SLOT_MS / 1000


class Mtu(EventAction):
    def begin(self) -> None:
        mtu = self.spec.mtu or 1280
        self._routes: list[tuple[Host, list[str]]] = []
        for direction in directions(self.spec):
            if self.spec.icmp:
                host, device = self.sender(direction)
                route = [f"{self.far_address(direction)}/32", "dev", device]
                host.exec(["ip", "route", "replace", *route, "mtu", "lock", str(mtu)], timeout=10)
                self._routes.append((host, ["ip", "route", "del", *route]))
            else:
                host, device = self.receiver(direction)
                self.add_rule(
                    host, ["INPUT", "-i", device, "-m", "length", "--length", f"{mtu + 1}:65535", "-j", "DROP"]
                )

    def end(self) -> None:
        for host, argv in reversed(getattr(self, "_routes", [])):
            host.exec(argv, timeout=10, check=False)
        super().end()


def flush_conntrack(host: Host) -> None:
    """Delete every IPv4 connection tracking entry in `host`'s namespace (ctnetlink; no conntrack tool)."""
    sock = nslink.netlink_socket(host.netns_path(), NETLINK_NETFILTER)
    try:
        sock.settimeout(2.0)
        sock.bind((0, 0))
        message = struct.pack("=IHHII", 20, CT_DELETE, NLM_F_REQUEST_ACK, 1, 0) + struct.pack(
            "=BBH", socket.AF_INET, 0, 0
        )
        sock.send(message)
        reply = sock.recv(4096)
    except OSError as exc:
        raise BackendError(f"{host.name}: cannot flush its connection tracking table: {exc}") from None
    finally:
        sock.close()
    _, kind = struct.unpack_from("=IH", reply)
    if kind == NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", reply, 16)
        if code not in (0, -2):  # -ENOENT: nothing to delete
            raise BackendError(f"{host.name}: flushing its connection tracking table failed (errno {-code})")


class Rebind(EventAction):
    def begin(self) -> None:
        proxy = self.network.proxy(self.path)
        spec = self.network.topology.wireguard_of(proxy.name, proxy_name(self.path))
        out = spec.masquerade_out or "eth0"
        self.add_rule(
            proxy,
            ["POSTROUTING", "-o", out, "-p", "udp", "-j", "MASQUERADE", "--to-ports", REBIND_PORTS, "--random"],
            table="nat",
        )
        address = self.network.topology.proxy_backbone_address(self.path).ip
        before = self._port_seen(address, None)
        started = time.monotonic()
        flush_conntrack(proxy)
        after = self._port_seen(address, before)
        if after is None or before is None:
            self.note = f"proxy {self.path}'s NAT flushed; the server saw no new source port from it within 2 s"
        else:
            waited = 1000 * (time.monotonic() - started)
            self.note = f"proxy {self.path}'s source port {before} -> {after} ({waited:.0f} ms after the flush)"

    def _port_seen(self, address, other: int | None, timeout: float = REBIND_SEEN_S) -> int | None:
        """The port the server sees the client's session come from via this proxy (another than `other`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            endpoint = self.network.server_endpoint()
            if endpoint is not None and endpoint[0] == address and endpoint[1] != other:
                return endpoint[1]
            time.sleep(0.005)
        return None


CONNTRACK_TIMEOUTS = ("net.netfilter.nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout_stream")


def sysctl(host: Host, args: list[str]) -> str:
    """sysctl in the host's network namespace alone (a container's /proc/sys is read-only inside it)."""
    argv = ["nsenter", f"--net={host.netns_path()}", "sysctl", *args]
    return proc.run(argv, where=host.name, env=host.env(), timeout=10).stdout


class ConntrackExpiry(EventAction):
    def begin(self) -> None:
        proxy = self.network.proxy(self.path)
        self._saved = {key: sysctl(proxy, ["-n", key]).strip() for key in CONNTRACK_TIMEOUTS}
        idle = max(1, round(self.spec.idle_s or 1))
        sysctl(proxy, ["-q", "-w", *(f"{key}={idle}" for key in CONNTRACK_TIMEOUTS)])
        now = ", ".join(sysctl(proxy, ["-n", key]).strip() for key in CONNTRACK_TIMEOUTS)
        self.note = f"proxy {self.path}'s UDP mappings expire after {idle} s idle (read back: {now})"

    def end(self) -> None:
        proxy = self.network.proxy(self.path)
        saved = getattr(self, "_saved", {})
        if saved:
            sysctl(proxy, ["-q", "-w", *(f"{key}={value}" for key, value in saved.items())])
        super().end()


class Rekey(EventAction):
    def __init__(self, network: Network, spec: EventSpec) -> None:
        super().__init__(network, spec)
        self.ifname = "wg0" if spec.path is None else proxy_name(self.path)

    def begin(self) -> None:
        client, topology, keys = self.network.client, self.network.topology, self.network.keys
        (peer,) = topology.wireguard_of(CLIENT, self.ifname).peers
        public = keys.public(peer.host, peer.ifname)
        started = time.monotonic()
        client.exec(["wg", "set", self.ifname, "peer", public, "remove"], timeout=10)
        add = ["wg", "set", self.ifname, "peer", public, "allowed-ips", ",".join(map(str, peer.allowed_ips))]
        if peer.endpoint is not None:
            add += ["endpoint", f"{peer.endpoint[0]}:{peer.endpoint[1]}"]
        client.exec(add, timeout=10)
        deadline = started + HANDSHAKE_TIMEOUT_S
        while time.monotonic() < deadline:
            shown = client.exec(["wg", "show", self.ifname, "latest-handshakes"], timeout=10).stdout.split()
            if public in shown and shown[shown.index(public) + 1] != "0":
                self.note = f"new handshake on {self.ifname} {1000 * (time.monotonic() - started):.0f} ms after"
                return
            time.sleep(0.02)
        self.note = f"no new handshake on {self.ifname} within {HANDSHAKE_TIMEOUT_S:g} s"


ACTIONS: dict[EventKind, type[EventAction]] = {
    EventKind.BLACKHOLE: Blackhole,
    EventKind.FLAP: Flap,
    EventKind.RATE: Rate,
    EventKind.TRACE: Trace,
    EventKind.REBIND: Rebind,
    EventKind.CONNTRACK_EXPIRY: ConntrackExpiry,
    EventKind.REKEY: Rekey,
    EventKind.MTU: Mtu,
}


class EventPlayer(Worker):
    """Plays the plan's events on their clock during a run (t0: the run's start); `undo_all()` ends what is
    still on when the run stops. `edges` is called (with the offset) as each event begins and ends: the
    controller reads every hop's counters there, so that the proof can judge the time outside the events."""

    def __init__(
        self,
        network: Network,
        specs: tuple[EventSpec, ...],
        start: float,
        edge: Callable[[float, bool], None] | None = None,
    ) -> None:
        super().__init__("event-player")
        self.actions = [ACTIONS[spec.kind](network, spec) for spec in sorted(specs, key=lambda s: s.at)]
        self.t0 = start
        self.edge = edge
        self.records: dict[int, dict] = {}
        self._on: list[EventAction] = []
        self.network = network
        # every SERIES_S: (s after the start, [[path, packets up, packets down, bytes up, bytes down], ...]),
        # cumulative, of what each path delivered: up, what proxy k's tunnel received; down, what the client's
        # wgnetK received (a packet a dead path ate counts nowhere): the timeline the report draws
        self.series: list[tuple[float, list[list[int]]]] = []

    def _sample(self, now: float) -> None:
        row = []
        for k in self.network.topology.path_ids:
            name = proxy_name(k)
            up = self.network.proxy(k).counters_by_name([name]).get(name)
            down = self.network.client.counters_by_name([name]).get(name)
            if up is not None and down is not None:
                row.append([k, up.rx_packets, down.rx_packets, up.rx_bytes, down.rx_bytes])
        self.series.append((round(now, 4), row))

    def run(self) -> None:
        order = itertools.count()
        due: list[tuple[float, int, str, EventAction | None]] = [
            (action.spec.at, next(order), "begin", action) for action in self.actions
        ]
        due.append((0.0, next(order), "sample", None))
        heapq.heapify(due)
        while due:
            at, _, phase, item = heapq.heappop(due)
            if self.stopping.wait(max(0.0, self.t0 + at - time.monotonic())):
                return
            now = time.monotonic() - self.t0
            if item is None:  # the timeline's sample
                self._sample(now)
                heapq.heappush(due, (at + SERIES_S, next(order), "sample", None))
                continue
            action = item
            key = id(action)
            if phase == "begin":
                if self.edge is not None:
                    self.edge(now, True)
                self.records[key] = {"applied_s": round(now, 4)}
                self._on.append(action)
                action.begin()
                if action.spec.kind in INSTANT:  # on for as long as it took (a rekey: until the handshake)
                    done = time.monotonic() - self.t0
                    self.records[key].update(ended_s=round(done, 4), ended_by="instant")
                    if self.edge is not None:
                        self.edge(done, False)
                end = action.spec.end
                nxt = action.step(0.0) if action.spec.kind == EventKind.FLAP else None
                if action.spec.kind == EventKind.TRACE:
                    nxt = SLOT_MS / 1000
                if nxt is not None and (end is None or action.spec.at + nxt < end):
                    heapq.heappush(due, (action.spec.at + nxt, next(order), "step", action))
                if end is not None:
                    heapq.heappush(due, (end, next(order), "end", action))
            elif phase == "step" and action in self._on:
                nxt = action.step(now - action.spec.at)
                end = action.spec.end
                if nxt is not None and (end is None or action.spec.at + nxt < end):
                    heapq.heappush(due, (action.spec.at + nxt, next(order), "step", action))
            elif phase == "end" and action in self._on:
                self._end(action, planned=True)
        self.stopping.wait()

    def _end(self, action: EventAction, *, planned: bool) -> None:
        """Undo `action`; it ended when its undoing was done (a rule's removal through docker exec takes
        ~100 ms): the session's recovery is counted from there, not from when the undoing began."""
        self._on.remove(action)
        try:
            action.end()
        finally:
            offset = time.monotonic() - self.t0
            record = self.records.setdefault(id(action), {})
            if record.get("ended_by") != "instant":
                record["ended_s"] = round(offset, 4)
                record["ended_by"] = "plan" if planned else "run end"
            if planned and self.edge is not None:
                self.edge(offset, False)

    def undo_all(self) -> list[str]:
        """End what is still on (after the worker stopped); the errors of undoing, as lines."""
        problems = []
        while self._on:
            action = self._on[-1]
            try:
                self._end(action, planned=False)
            except HarnessError as exc:
                problems.append(f"undoing {action.spec.describe()}: {exc}")
        return problems

    def applied(self) -> list[AppliedEvent]:
        out = []
        for action in self.actions:
            record = self.records.get(id(action))
            out.append(
                AppliedEvent(
                    event=action.spec.describe(),
                    kind=str(action.spec.kind),
                    path=action.path,
                    direction=str(action.spec.direction),
                    planned_s=action.spec.at,
                    planned_end_s=action.spec.end,
                    applied_s=None if record is None else record.get("applied_s"),
                    ended_s=None if record is None else record.get("ended_s"),
                    ended_by=None if record is None else record.get("ended_by"),
                    note=action.note,
                    delivered=getattr(action, "delivered", {}),
                )
            )
        return out
