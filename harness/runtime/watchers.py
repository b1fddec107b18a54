"""The migration controller's workers: the switcher, the route monitor, and the two watchers.

Each is a daemon thread with a stop flag whose error is raised in the controlling thread by stop().
The route monitor turns changes of the client's table 51821 into the switch log (for both switch
mechanisms); the endpoint sampler records where the server believes the client is (evidence only,
and the `oracle` sticky-source mode); the client watcher sees, from the client alone, which wgnet
the session leaves on.
"""

from __future__ import annotations

import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE, RTMGRP_IPV4_ROUTE
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from harness.errors import HarnessError, MigrationError
from harness.model.evidence import ProofCode, ProofFailure
from harness.model.schedule import MigrationPlan
from harness.model.topology import PATH_TABLE, proxy_name
from harness.runtime.network import Network
from harness.system import nslink
from harness.vm.command import IN_VM_ENV

POLL_STOP_S = 0.05
SPIN_S = 0.0005
MAX_FAULTS = 20


class Worker:
    """A daemon thread with a stop flag; errors are kept and raised by stop().

    Before its loop a worker warms up (`warm`: opens its netlink handles, makes its first read) and then
    says it is ready: the controller starts the schedule's clock only when every worker is, since a
    thread's first netlink request costs tens of ms where process creation is slow (a UML guest), and
    the first switches ran hundreds of ms late while the workers started beside them."""

    def __init__(self, name: str) -> None:
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.exit_hooks: list[Callable[[], None]] = []  # run in the thread as it ends (close its handles)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float) -> None:
        """Until the worker warmed up (or failed: then its error is raised by stop())."""
        if not self.ready.wait(timeout):
            raise MigrationError(f"{self._thread.name} was not ready {timeout:g} s after it started")

    def _main(self) -> None:
        try:
            self.warm()
            self.ready.set()
            self.run()
        except BaseException as exc:  # kept, and raised in the controlling thread
            self.error = exc
        finally:
            self.ready.set()
            for hook in self.exit_hooks:
                hook()

    def warm(self) -> None:
        """What the worker does once before it is ready (nothing by default)."""

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.ident is None:  # never started (the controller failed while entering)
            return
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            raise MigrationError(f"{self._thread.name} did not stop")
        if self.error is not None:
            raise MigrationError(f"{self._thread.name} failed: {self.error}") from self.error


def hurry() -> bool:
    """In a guest, the calling thread at nice -20, for the two threads whose timing is the schedule's: the
    switcher and the route monitor. On one busy CPU (a UML guest) a woken thread otherwise waited for the
    next 10 ms tick: switches ran 10-20 ms late and adherence at 0.1 s fell to 0.95; at -20 it is 1.0
    there. On the host (several CPUs, where they keep time at nice 0) nothing changes. False where it is
    not done or not permitted (no CAP_SYS_NICE): then the thread runs as it was."""
    if not os.environ.get(IN_VM_ENV):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -20)
    except OSError:
        return False
    return True


MonitorFactory = Callable[[str, dict, Callable[[float, int, "float | None"], None]], "Worker"]


class RouteMonitor(Worker):
    """Watches the default route of table 51821 in the client's namespace; each new one is a switch."""

    def __init__(
        self, netns_path: str, path_of_index: dict[int, int], on_switch: Callable[[float, int, float | None], None]
    ) -> None:
        super().__init__("route-monitor")
        self.path_of_index = path_of_index
        self.on_switch = on_switch
        self.marshal = MarshalRtnl()
        self.sock = nslink.netlink_socket(netns_path)
        self.sock.bind((0, RTMGRP_IPV4_ROUTE))  # subscribed before start() returns: nothing is missed

    def warm(self) -> None:
        """One route message parsed: pyroute2 builds its decoders on first use, tens of ms in a UML guest,
        which at the first switch held the GIL while the switcher was due."""
        hurry()
        msg = rtmsg()
        msg["family"] = socket.AF_INET
        msg["attrs"] = [["RTA_TABLE", PATH_TABLE], ["RTA_OIF", 1]]
        msg["header"]["type"] = RTM_NEWROUTE
        msg.encode()
        for parsed in self.marshal.parse(msg.data):
            parsed.get_attr("RTA_OIF")

    def run(self) -> None:
        marshal = self.marshal
        deleted_at: float | None = None
        try:
            while not self.stopping.is_set():
                ready, _, _ = select.select([self.sock], [], [], POLL_STOP_S)
                if not ready:
                    continue
                data = self.sock.recv(65536)
                now = time.monotonic()
                for msg in marshal.parse(data):
                    if msg.get_attr("RTA_TABLE") != PATH_TABLE or msg["dst_len"] != 0:
                        continue
                    kind = msg["header"]["type"]
                    if kind == RTM_DELROUTE:
                        deleted_at = now
                    elif kind == RTM_NEWROUTE:
                        path = self.path_of_index.get(msg.get_attr("RTA_OIF"))
                        if path is None:
                            raise MigrationError(f"table {PATH_TABLE} got a route via an unknown interface")
                        gap = None if deleted_at is None else (now - deleted_at) * 1000
                        deleted_at = None
                        self.on_switch(now, path, gap)
        finally:
            self.sock.close()


class BurstPoller(Worker):
    """A worker that polls fast (`period_s`) for `window_s` after each switch, when late packets can
    re-pin wireguard-go's source, and slowly (`idle_period_s`) otherwise, so that a run without
    switches (the baseline) costs next to no CPU on machines where the tunnels are CPU-bound."""

    def __init__(self, name: str, period_s: float, idle_period_s: float, window_s: float) -> None:
        super().__init__(name)
        self.period_s, self.idle_period_s, self.window_s = period_s, idle_period_s, window_s
        self.last_switch = -math.inf

    def switched(self, at: float) -> None:
        self.last_switch = at

    def period(self) -> float:
        return self.period_s if time.monotonic() - self.last_switch < self.window_s else self.idle_period_s


class EndpointSampler(BurstPoller):
    """Polls where the server believes the client is, and counts the moves between proxies."""

    def __init__(
        self,
        network: Network,
        period_s: float,
        on_sample: Callable[[int], None],
        *,
        idle_period_s: float = 0.02,
        window_s: float = 0.05,
    ) -> None:
        super().__init__("endpoint-sampler", period_s, idle_period_s, window_s)
        self.network = network
        self.on_sample = on_sample
        self.samples = 0
        self.changes = 0
        self.paths_seen: list[int] = []
        self.moves: list[tuple[float, int]] = []  # (monotonic time of the sample, path) at every change

    def warm(self) -> None:
        self.network.path_of_endpoint(self.network.server_endpoint())

    def run(self) -> None:
        last = None
        while not self.stopping.wait(self.period()):
            path = self.network.path_of_endpoint(self.network.server_endpoint())
            self.samples += 1
            if path is None:
                continue
            if path not in self.paths_seen:
                self.paths_seen.append(path)
            if path != last:
                self.moves.append((time.monotonic(), path))
            if last is not None and path != last:
                self.changes += 1
            last = path
            self.on_sample(path)


class ClientWatcher(BurstPoller):
    """Watches, from the client's own namespace only, which wgnet its session leaves on.

    wireguard-go pins the session's source to the path it last *received* on; a packet from the
    server arriving on a path other than the current route re-pins it there, and the client's next
    packets leave there too. Either (a receive or a send on another wgnet) calls `on_stray(path)`.
    """

    def __init__(
        self,
        network: Network,
        route_path: Callable[[], int],
        on_stray: Callable[[int], None],
        *,
        period_s: float = 0.002,
        idle_period_s: float = 0.01,
        window_s: float = 0.1,
    ) -> None:
        super().__init__("client-watcher", period_s, idle_period_s, window_s)
        self.network, self.route_path, self.on_stray = network, route_path, on_stray
        self.names = {proxy_name(k): k for k in network.topology.path_ids}

    def warm(self) -> None:
        self.network.client.counters_by_name(list(self.names))

    def run(self) -> None:
        last: dict[str, int] = {}
        while not self.stopping.wait(self.period()):
            current = self.route_path()
            counters = self.network.client.counters_by_name(list(self.names))
            for name, counter in counters.items():
                moved = counter.tx_packets + counter.rx_packets
                grew = name in last and moved > last[name]
                last[name] = moved
                if grew and self.names[name] != current:
                    self.on_stray(self.names[name])


class ScheduleRunner(Worker):
    """Applies the planned switches with atomic route replaces, on time; a refused switch is a fault.

    It warms up (its own netlink handle, one request through it) and waits for `begin(t0)`: the schedule's
    clock starts once the switcher can switch at once."""

    def __init__(self, network: Network, plan: MigrationPlan) -> None:
        super().__init__("switcher")
        self.network, self.plan, self.t0 = network, plan, 0.0
        self.faults: list[ProofFailure] = []
        self.late_ms: list[float] = []  # per switch made: how long after its planned time the route was in place
        self._begun = threading.Event()

    def begin(self, t0: float) -> None:
        self.t0 = t0
        self._begun.set()

    def warm(self) -> None:
        """The start path's route, set by this thread's own handle: its first replace costs what later
        ones do not (tens of ms in a UML guest), and the route monitor is not listening yet."""
        hurry()
        self.network.route_to(self.plan.start_path)

    def run(self) -> None:
        while not self._begun.wait(POLL_STOP_S):
            if self.stopping.is_set():
                return
        for switch in self.plan.switches():
            if self._sleep_until(self.t0 + switch.at):
                return
            try:
                self.network.route_to(switch.path)
                self.late_ms.append((time.monotonic() - self.t0 - switch.at) * 1000)
            except (NetlinkError, OSError, HarnessError) as exc:
                reason = os.strerror(exc.code) if isinstance(exc, NetlinkError) else str(exc)
                if len(self.faults) < MAX_FAULTS:
                    text = (
                        f"path {switch.path}: the switch at {switch.at:g} s was refused by the client's "
                        f"kernel ({reason})"
                    )
                    self.faults.append(ProofFailure(ProofCode.SWITCH_REFUSED, text, switch.path))

    def _sleep_until(self, due: float) -> bool:
        """Wait for `due` (monotonic); the last SPIN_S in a tight loop, as sleeps wake late. True: stop."""
        while (left := due - time.monotonic()) > SPIN_S:
            if self.stopping.wait(min(left - SPIN_S, POLL_STOP_S)):
                return True
        while time.monotonic() < due:
            pass
        return self.stopping.is_set()
