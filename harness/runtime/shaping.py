"""Path profiles applied with tc, verified by measurement, and undone.

Each path's link between the client and proxy k is shaped at its two ends, egress each way: `up`
on the client's end (eth<k>), `down` on the proxy's (eth1); the origin link at the server (`up`,
towards the Internet) and the origin (`down`). Steps (a profile that varies over time) are
applied by a worker with `tc qdisc replace` on the profile's clock. After applying, `verify`
measures every path: RTT with ping from the client to the proxy's address on that link, rate with
a UDP stream each way over that link alone (offered above the spec), loss with the pings; a figure
off its spec by more than 10 % (+1 ms for times; for loss: outside its 95 % binomial interval) fails
the set-up with the numbers.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import BackendError, HarnessError, PrerequisiteError
from harness.model.profiles import PathProfile, Profile, Shape, qdisc_args
from harness.model.stats import wilson_interval
from harness.model.topology import CLIENT, ORIGIN, SERVER, proxy_name
from harness.runtime.network import Network
from harness.system.prereq import available_qdiscs

RELATIVE_TOLERANCE = 0.10
ABSOLUTE_TOLERANCE_MS = 1.0
VERIFY_PORT = 5299  # iperf3 on the proxy, for the verification only
VERIFY_RULE_PRIORITY = 90  # before the demo's rules (100 and up)
DRAIN_TIMEOUT_S = 3.0
DRAINED_PACKETS = 10
PING_COUNT = 100
IPERF_SECONDS = 3


def require_qdiscs(profile: Profile, path_ids: tuple[int, ...]) -> None:
    """netem for delay, jitter or loss; tbf for a rate alone. One line naming the way out when absent."""
    have = available_qdiscs()
    if profile.needs_netem(path_ids) and have is not None and "netem" not in have:
        raise PrerequisiteError(
            f"--profile {profile.name} needs netem (delay, jitter or loss), which this kernel lacks "
            f"(it has {', '.join(have) or 'no qdisc'}): run it in a guest with a stock kernel, "
            f"add --vm (or: comps-harness vm -- ...)"
        )
    if profile.shaped(path_ids) and have is not None and not {"tbf", "netem"} & set(have):
        raise PrerequisiteError(f"--profile {profile.name} needs tbf or netem; this kernel has neither")


@dataclass(frozen=True)
class Target:
    host: str
    device: str
    shape_of: Callable[[PathProfile], Shape]
    which: str  # "path k up", ...


def targets(network: Network, profile: Profile) -> list[tuple[Target, PathProfile]]:
    out = []
    for k in network.topology.path_ids:
        link = network.topology.path_link(k)
        out.append((Target(CLIENT, link.a_ifname, lambda p: p.up, f"path {k} up"), profile.path(k)))
        out.append((Target(proxy_name(k), link.b_ifname, lambda p: p.down, f"path {k} down"), profile.path(k)))
    origin = network.topology.origin_link()
    out.append((Target(SERVER, origin.b_ifname, lambda p: p.up, "origin up"), profile.origin))
    out.append((Target(ORIGIN, origin.a_ifname, lambda p: p.down, "origin down"), profile.origin))
    return out


class ShapedPaths:
    """Apply `profile` for as long as the block runs (and its steps, on a worker); undo everything."""

    def __init__(self, network: Network, profile: Profile) -> None:
        self.network, self.profile = network, profile
        self._applied: list[Target] = []
        self._stop = threading.Event()
        self._stepper: threading.Thread | None = None
        self.step_errors: list[str] = []

    def _host(self, name: str):
        return self.network.hosts[name]

    def _set(self, target: Target, shape: Shape) -> None:
        args = qdisc_args(shape)
        host = self._host(target.host)
        if args is None:
            host.exec(["tc", "qdisc", "del", "dev", target.device, "root"], check=False, timeout=10)
            return
        result = host.exec(["tc", "qdisc", "replace", "dev", target.device, "root", *args], check=False, timeout=10)
        if result.returncode != 0:
            raise BackendError(
                f"{target.which}: tc refused `{' '.join(args)}` on {target.host}/{target.device}: "
                f"{result.stderr.strip()}"
            )

    def __enter__(self) -> ShapedPaths:
        require_qdiscs(self.profile, self.network.topology.path_ids)
        planned = targets(self.network, self.profile)
        try:
            for target, path in planned:
                if path.shaped:
                    self._set(target, target.shape_of(path))
                    self._applied.append(target)
                    # what impairments (runtime/links.py) compose with
                    self.network.shapes[(target.host, target.device)] = target.shape_of(path)
            self.network.settlers.append(self.drain)
            stepped = [(target, path) for target, path in planned if path.steps]
            if stepped:
                self._stepper = threading.Thread(
                    target=self._run_steps, args=(stepped,), name="profile-steps", daemon=True
                )
                self._stepper.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _run_steps(self, stepped: list[tuple[Target, PathProfile]]) -> None:
        start = time.monotonic()
        due = sorted(
            (step.at_s, i, target, path, step) for i, (target, path) in enumerate(stepped) for step in path.steps
        )
        cycle = 0
        while not self._stop.is_set():
            for at, _, target, path, step in due:
                when = start + cycle * path.period_s + at
                if self._stop.wait(max(0.0, when - time.monotonic())):
                    return
                try:
                    self._set(target, target.shape_of(step))
                except HarnessError as exc:  # recorded; the link keeps its last shape
                    self.step_errors.append(str(exc))
                    return
            cycle += 1  # (each path repeats on its own period; the longest sets the loop's pace)

    def backlog(self) -> int:
        """Packets queued now in the profile's qdiscs (`tc -s qdisc show`: backlog <bytes>b <packets>p)."""
        total = 0
        for target in self._applied:
            shown = (
                self._host(target.host)
                .exec(["tc", "-s", "qdisc", "show", "dev", target.device, "root"], check=False, timeout=10)
                .stdout
            )
            total += sum(int(n) for n in re.findall(r"backlog \S+ (\d+)p", shown))
        return total

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait (at most `timeout`) until the shaped queues are about empty."""
        deadline = time.monotonic() + timeout
        while self.backlog() > DRAINED_PACKETS and time.monotonic() < deadline:
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.network.shapes = {}
        if self.drain in self.network.settlers:
            self.network.settlers.remove(self.drain)
        if self._stepper is not None:
            self._stepper.join(timeout=5)
        while self._applied:
            target = self._applied.pop()
            self._host(target.host).exec(["tc", "qdisc", "del", "dev", target.device, "root"], check=False, timeout=10)


def within(measured: float, spec: float, absolute: float = 0.0) -> bool:
    return abs(measured - spec) <= RELATIVE_TOLERANCE * spec + absolute


def _ping_rtt(network: Network, address: str) -> tuple[float | None, int, int]:
    out = network.client.exec(
        ["ping", "-n", "-c", str(PING_COUNT), "-i", "0.02", "-W", "2", address], check=False, timeout=60
    ).stdout
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    return (statistics.median(times) if times else None), PING_COUNT, len(times)


UDP_PAYLOAD = 1200
WIRE_OVERHEAD = 14 + 20 + 8  # Ethernet, IPv4 and UDP headers: what tc's rate counts besides the payload
OFFERED = 1.25  # offered load over the spec: the shaper, not the sender, sets what arrives
UDP_WIRE = (UDP_PAYLOAD + WIRE_OVERHEAD) / UDP_PAYLOAD
TCP_WIRE = (1448 + 14 + 20 + 32) / 1448  # a full TCP segment at MTU 1500 (timestamps on) and its headers


def _iperf_end(network: Network, address: str, options: list[str], reverse: bool) -> dict | None:
    argv = ["iperf3", "-c", address, "-p", str(VERIFY_PORT), *options, "-t", str(IPERF_SECONDS), "-J"]
    out = network.client.exec(argv + (["-R"] if reverse else []), check=False, timeout=IPERF_SECONDS + 60)
    try:
        return json.loads(out.stdout)["end"]
    except (ValueError, KeyError):
        return None


def _shaped_rate_mbit(
    network: Network, address: str, spec_mbit: float, loss: float, reverse: bool
) -> tuple[float | None, str]:
    """The rate the link's shaper gives, and how it was measured: from a UDP stream offered above it, what
    arrived, in wire bits, over the share the profile's loss lets through (TCP would measure its own loss
    response instead). Where the sender could not even offer the spec (a system call per datagram is
    slow in a UML guest: ~25 Mbit/s there), a lossless link is measured with TCP, whose few large writes
    fill it; a lossy one cannot be, and its figure says so."""
    end = _iperf_end(network, address, ["-u", "-b", f"{spec_mbit * OFFERED:g}M", "-l", str(UDP_PAYLOAD)], reverse)
    judged = udp_rate(end, spec_mbit, loss)
    if judged is not None:
        return judged
    offered = offered_mbit(end)
    end = _iperf_end(network, address, [], reverse)
    if end is None or "sum_received" not in end:
        return None, "tcp"
    return end["sum_received"]["bits_per_second"] * TCP_WIRE / 1e6, f"tcp (udp's sender offered {offered:.1f})"


def offered_mbit(end: dict) -> float:
    """What a UDP run's sender offered, in wire Mbit/s."""
    return end.get("sum_sent", end["sum_received"])["bits_per_second"] * UDP_WIRE / 1e6


def udp_rate(end: dict | None, spec_mbit: float, loss: float) -> tuple[float | None, str] | None:
    """A UDP run's verdict on the shaper's rate (wire Mbit/s over the loss's share, and how), or None where a
    lossless link must be measured with TCP because the sender could not offer the spec (pure)."""
    if end is None or "sum_received" not in end:
        return None, "udp"
    received = end["sum_received"]["bits_per_second"] * UDP_WIRE / 1e6 / max(1e-9, 1 - loss)
    offered = offered_mbit(end)
    if offered >= spec_mbit:
        return received, "udp"
    if loss > 0:
        return received, f"udp, whose sender offered only {offered:.1f} Mbit/s"
    return None


def verify(network: Network, profile: Profile, progress: Callable[[str], None] = lambda line: None) -> dict:
    """Measure every shaped path's RTT, rate each way and loss; {"paths": {...}, "failures": [...]}."""
    paths, failures = {}, []
    for k in network.topology.path_ids:
        path = profile.path(k)
        if not (path.up.shaped or path.down.shaped):
            continue
        link = network.topology.path_link(k)
        address = str(link.b_address.ip)
        proxy = network.proxy(k)
        # The client sends everything unmarked into wg0 (the demo's rules); for the check alone, the
        # proxy's address on this link is looked up in the main table, i.e. over the link itself.
        rule = ["rule", "add", "to", f"{address}/32", "lookup", "main", "priority", str(VERIFY_RULE_PRIORITY)]
        network.client.exec(["ip", *rule], timeout=10)
        server = proxy.spawn(["iperf3", "-s", "-p", str(VERIFY_PORT), "--bind", address], name="verify-iperf3")
        try:
            time.sleep(0.3)
            rtt, sent, received = _ping_rtt(network, address)
            (up, up_by), (down, down_by) = (
                (None, "")
                if side.rate_mbit is None
                else _shaped_rate_mbit(network, address, side.rate_mbit, side.expected_loss(), reverse=reverse)
                for side, reverse in ((path.up, False), (path.down, True))
            )
        finally:
            server.stop()
            network.client.exec(["ip", "rule", "del", *rule[2:]], timeout=10, check=False)
        spec_loss = 1 - (1 - path.up.expected_loss()) * (1 - path.down.expected_loss())  # a ping crosses both
        low, high = wilson_interval(sent - received, sent)
        entry = {
            "spec": {
                "rtt_ms": path.rtt_ms,
                "rate_mbit": path.up.rate_mbit,
                "rate_mbit_down": path.down.rate_mbit,
                "loss": round(spec_loss, 4),
            },
            "rtt_ms": None if rtt is None else round(rtt, 3),
            "rate_mbit": None if up is None else round(up, 2),
            "rate_mbit_down": None if down is None else round(down, 2),
            "loss": round((sent - received) / sent, 4),
            "loss_interval": [round(low, 4), round(high, 4)],
            "pings": sent,
            "rate_by": {"up": up_by, "down": down_by},
        }
        if rtt is None or not within(rtt, path.rtt_ms, ABSOLUTE_TOLERANCE_MS):
            failures.append(f"path {k}: RTT {entry['rtt_ms']} ms, spec {path.rtt_ms:g} ms (±10 % + 1 ms)")
        for direction, measured, spec, by in (
            ("up", up, path.up.rate_mbit, up_by),
            ("down", down, path.down.rate_mbit, down_by),
        ):
            if spec is not None and (measured is None or not within(measured, spec)):
                failures.append(
                    f"path {k} {direction}: {measured if measured is None else round(measured, 2)} "
                    f"Mbit/s, spec {spec:g} Mbit/s (±10 %; by {by})"
                )
        if not low <= spec_loss <= high:
            failures.append(
                f"path {k}: loss {entry['loss']:.2%} [{low:.2%}, {high:.2%}] over {sent} pings, spec {spec_loss:.2%}"
            )
        paths[str(k)] = entry
        progress(
            f"profile {profile.name}: path {k}: RTT {entry['rtt_ms']} ms (spec {path.rtt_ms:g}), "
            f"up {entry['rate_mbit']} / down {entry['rate_mbit_down']} Mbit/s, loss {entry['loss']:.2%}"
        )
    return {
        "profile": profile.name,
        "paths": paths,
        "failures": failures,
        "checked_at": time.time(),
        "method": "rtt: median of 100 pings over the link; rate: a UDP stream offered at 1.25x the spec, what "
        "arrived in wire bits over (1 - the profile's loss); where its sender could not offer the spec, a "
        "lossless link by TCP in wire bits (rate_by says which); loss: pings, Wilson 95 % interval",
    }
