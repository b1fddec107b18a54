"""The fault catalogue: ways to break a path during a migration run, each of which must turn the proof red.

A fault is applied `at` seconds into the run by the FaultInjector (a worker of the migration
controller) through the hosts' ordinary interface, so it works on every backend, and undone when
the run ends. What was done, and when, goes into the evidence (`injected`).
"""

from __future__ import annotations

import signal
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.model.events import EventKind, EventSpec
from harness.model.kinds import Fault, WireGuardImpl
from harness.model.settings import FaultSpec
from harness.model.topology import PATH_TABLE, WG0_FWMARK, proxy_name
from harness.runtime.events import Blackhole
from harness.runtime.watchers import Worker

if TYPE_CHECKING:
    from harness.runtime.network import Network

COMMENT = "comps-fault"
PINNED_TABLE = 51899
PINNED_PRIORITY = 150  # before the demo's rule 200 (fwmark 51820 -> table 51821)
DOWN_FOR_S = 1.2  # of a 2 s run: the path loses most of the time the schedule gives it
RECOVERY_TIMEOUT_S = 5.0


class FaultAction(ABC):
    """One fault on one path: apply() breaks it, undo() repairs what can be repaired."""

    def __init__(self, network: Network, spec: FaultSpec) -> None:
        self.network, self.spec = network, spec
        self.path = spec.path if spec.path is not None else self.default_path(network)
        self.note = ""

    @staticmethod
    def default_path(network: Network) -> int:
        return network.topology.path_ids[-1]

    @abstractmethod
    def apply(self) -> None: ...

    def undo(self) -> None:  # noqa: B027 - the default for a fault with nothing to undo
        pass

    @property
    def proxy(self):
        return self.network.proxy(self.path)


class NatRemoved(FaultAction):
    """The proxy's MASQUERADE rules are flushed, and its flows stop being tracked: connection tracking
    would otherwise keep translating the flows it already knows, and the NAT would outlive its rules."""

    def _notrack(self) -> list[str]:
        return [
            "PREROUTING",
            "-i",
            proxy_name(self.path),
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            "CT",
            "--notrack",
        ]

    def apply(self) -> None:
        self._saved = self.proxy.exec(["iptables-save", "-t", "nat"], timeout=10).stdout
        self.proxy.exec(["iptables", "-t", "nat", "-F", "POSTROUTING"], timeout=10)
        self.proxy.exec(["iptables", "-t", "raw", "-I", *self._notrack()], timeout=10)

    def undo(self) -> None:
        self.proxy.exec(["iptables", "-t", "raw", "-D", *self._notrack()], timeout=10, check=False)
        self.proxy.exec(["iptables-restore"], input=self._saved, timeout=10, check=False)


class ForwardDrop(FaultAction):
    def _rule(self) -> list[str]:
        return ["FORWARD", "-m", "comment", "--comment", COMMENT, "-j", "DROP"]

    def apply(self) -> None:
        self.proxy.exec(["iptables", "-I", *self._rule()], timeout=10)

    def undo(self) -> None:
        self.proxy.exec(["iptables", "-D", *self._rule()], timeout=10, check=False)


class ReturnDrop(ForwardDrop):
    def _rule(self) -> list[str]:
        return [
            "FORWARD",
            "-i",
            "eth0",
            "-o",
            proxy_name(self.path),
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            "DROP",
        ]


class WireGuardKilled(FaultAction):
    def apply(self) -> None:
        name = proxy_name(self.path)
        if self.network.wireguard_impl == WireGuardImpl.KERNEL:
            self.proxy.netlink.link("del", index=self.proxy.link_index(name))
        elif not self.proxy.kill_process(f"wireguard-go-{name}", signal.SIGKILL):
            raise ConfigError(
                f"--fault {self.spec.describe()}: no wireguard-go of {name} runs on that proxy "
                "(this backend configures its own WireGuard)"
            )


class ProxyDownUp(FaultAction):
    """The proxy's tunnel down for DOWN_FOR_S, then up; the note says how long until it carried again."""

    def apply(self) -> None:
        proxy, name = self.proxy, proxy_name(self.path)
        index = proxy.link_index(name)
        proxy.netlink.link("set", index=index, state="down")
        time.sleep(DOWN_FOR_S)
        before = proxy.interface_counters(name).rx_packets
        proxy.netlink.link("set", index=index, state="up")
        up_at = time.monotonic()
        while time.monotonic() - up_at < RECOVERY_TIMEOUT_S:
            if proxy.interface_counters(name).rx_packets > before:
                self.note = f"carried again {1000 * (time.monotonic() - up_at):.0f} ms after coming back up"
                return
            time.sleep(0.002)
        self.note = f"carried nothing within {RECOVERY_TIMEOUT_S:g} s of coming back up"


class RouteRefused(FaultAction):
    """The client's own tunnel to the path goes down: the kernel refuses every switch to it."""

    def apply(self) -> None:
        client = self.network.client
        client.netlink.link("set", index=client.link_index(proxy_name(self.path)), state="down")

    def undo(self) -> None:
        client = self.network.client
        client.netlink.link("set", index=client.link_index(proxy_name(self.path)), state="up")


class Pinned(FaultAction):
    """A policy rule ahead of the demo's sends wg0's packets into one wgnet, whatever table 51821 says."""

    @staticmethod
    def default_path(network: Network) -> int:
        return network.topology.path_ids[0]

    def apply(self) -> None:
        client = self.network.client
        client.netlink.route(
            "replace", dst="0.0.0.0/0", oif=client.link_index(proxy_name(self.path)), table=PINNED_TABLE
        )
        client.netlink.rule("add", priority=PINNED_PRIORITY, fwmark=WG0_FWMARK, fwmask=0xFFFFFFFF, table=PINNED_TABLE)

    def undo(self) -> None:
        client = self.network.client
        client.exec(["ip", "rule", "del", "priority", str(PINNED_PRIORITY)], timeout=10, check=False)
        client.exec(["ip", "route", "flush", "table", str(PINNED_TABLE)], timeout=10, check=False)


class ForeignWriter(FaultAction):
    """Another process in the client rewrites table 51821 every 5 ms."""

    @staticmethod
    def default_path(network: Network) -> int:
        return network.topology.path_ids[0]

    def apply(self) -> None:
        loop = f"while :; do ip route replace default dev {proxy_name(self.path)} table {PATH_TABLE}; sleep 0.005; done"
        self.process = self.network.client.spawn(["sh", "-c", loop], name="foreign-writer")

    def undo(self) -> None:
        self.process.stop()


class Blackholed(FaultAction):
    """The `blackhole` path event (harness.runtime.events) from its time to the run's end, as a fault: the
    same mechanism that --event blackhole uses, which the proof judges apart, must turn it red here."""

    def apply(self) -> None:
        spec = EventSpec(EventKind.BLACKHOLE, self.spec.at, None, self.path)
        self._event = Blackhole(self.network, spec)
        self._event.begin()

    def undo(self) -> None:
        self._event.end()


ACTIONS: dict[Fault, type[FaultAction]] = {
    Fault.NAT_REMOVED: NatRemoved,
    Fault.FORWARD_DROP: ForwardDrop,
    Fault.RETURN_DROP: ReturnDrop,
    Fault.WIREGUARD_KILLED: WireGuardKilled,
    Fault.PROXY_DOWN_UP: ProxyDownUp,
    Fault.ROUTE_REFUSED: RouteRefused,
    Fault.PINNED: Pinned,
    Fault.FOREIGN_WRITER: ForeignWriter,
    Fault.BLACKHOLE: Blackholed,
}


class FaultInjector(Worker):
    """Applies the plan's faults on time during a run; `undo_all()` repairs them afterwards."""

    def __init__(self, network: Network, specs: tuple[FaultSpec, ...], start: float) -> None:
        super().__init__("fault-injector")
        self.actions = [ACTIONS[spec.name](network, spec) for spec in sorted(specs, key=lambda s: s.at)]
        self.t0 = start
        self.applied: list[FaultAction] = []
        self.injected: list[str] = []

    def run(self) -> None:
        for action in self.actions:
            if self.stopping.wait(max(0.0, self.t0 + action.spec.at - time.monotonic())):
                return
            applied_at = time.monotonic() - self.t0
            self.applied.append(action)
            action.apply()
            note = f": {action.note}" if action.note else ""
            self.injected.append(f"{action.spec.name} on path {action.path} at {applied_at:.3f} s{note}")
        # A process a fault started dies with the thread that spawned it (PR_SET_PDEATHSIG): stay alive.
        self.stopping.wait()

    def undo_all(self) -> None:
        while self.applied:
            self.applied.pop().undo()
