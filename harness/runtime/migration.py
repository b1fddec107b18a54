"""The migration controller: moves the client's session between paths on a schedule, and records proof.

Two switch mechanisms:
- ``netlink``: one atomic route replace in table 51821 through pyroute2 (no window without a route);
- ``script``: the demo's ``migrate.sh <interval>``, unchanged, at ``/etc/wireguard/migrate.sh`` in
  the client (delete, then add: a short window without a route).

Both produce the same switch log, because the log comes from a netlink monitor of the client's
routing table, not from the switcher. After each switch WireGuard's sticky source is released (see
harness.wireguard.uapi): by the switcher for ``netlink``, by the monitor for ``script``.

Meanwhile a sampler polls the server's view of the client's endpoint, and the proxies' counters are
read before and after: together they are the `MigrationEvidence` of the run.
"""

from __future__ import annotations

import math
import select
import sys
import threading
import time
from collections.abc import Callable

from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE, RTMGRP_IPV4_ROUTE
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from harness.data import MIGRATE_SCRIPT
from harness.errors import MigrationError
from harness.model.evidence import MigrationEvidence, PathUse, SwitchRecord
from harness.model.kinds import Mechanism, WireGuardImpl
from harness.model.schedule import MigrationPlan
from harness.model.topology import PATH_TABLE
from harness.runtime.network import Network
from harness.system import nslink

SCRIPT_PATH_IN_CLIENT = "/etc/wireguard/migrate.sh"
POLL_STOP_S = 0.05
SPIN_S = 0.0005
GIL_SWITCH_S = 0.0002


class _Worker:
    """A daemon thread with a stop flag; errors are kept and raised by stop()."""

    def __init__(self, name: str) -> None:
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # kept, and raised in the controlling thread
            self.error = exc

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            raise MigrationError(f"{self._thread.name} did not stop")
        if self.error is not None:
            raise MigrationError(f"{self._thread.name} failed: {self.error}") from self.error


MonitorFactory = Callable[[str, dict, Callable[[float, int, "float | None"], None]], "_Worker"]


class RouteMonitor(_Worker):
    """Watches the default route of table 51821 in the client's namespace; each new one is a switch."""

    def __init__(self, netns_path: str, path_of_index: dict[int, int],
                 on_switch: Callable[[float, int, float | None], None]) -> None:
        super().__init__("route-monitor")
        self.path_of_index = path_of_index
        self.on_switch = on_switch
        self.sock = nslink.netlink_socket(netns_path)
        self.sock.bind((0, RTMGRP_IPV4_ROUTE))  # subscribed before start() returns: nothing is missed

    def run(self) -> None:
        marshal = MarshalRtnl()
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


class EndpointSampler(_Worker):
    """Polls where the server believes the client is, and counts the moves between proxies.

    Fast (`period_s`) for `window_s` after each switch, when late packets on the old path can
    re-pin wireguard-go's source; slowly (`idle_period_s`) otherwise, so that a run without
    switches (the baseline) costs next to no CPU on machines where the tunnels are CPU-bound.
    """

    def __init__(self, network: Network, period_s: float, on_sample: Callable[[int], None], *,
                 idle_period_s: float = 0.02, window_s: float = 0.05) -> None:
        super().__init__("endpoint-sampler")
        self.network = network
        self.period_s, self.idle_period_s, self.window_s = period_s, idle_period_s, window_s
        self.on_sample = on_sample
        self.samples = 0
        self.changes = 0
        self.paths_seen: list[int] = []
        self.last_switch = -math.inf

    def switched(self, at: float) -> None:
        self.last_switch = at

    def _period(self) -> float:
        return self.period_s if time.monotonic() - self.last_switch < self.window_s else self.idle_period_s

    def run(self) -> None:
        last = None
        while not self.stopping.wait(self._period()):
            path = self.network.path_of_endpoint(self.network.server_endpoint())
            self.samples += 1
            if path is None:
                continue
            if path not in self.paths_seen:
                self.paths_seen.append(path)
            if last is not None and path != last:
                self.changes += 1
            last = path
            self.on_sample(path)


class _ScheduleRunner(_Worker):
    """Applies the planned switches with atomic route replaces, on time."""

    def __init__(self, network: Network, plan: MigrationPlan, start: float) -> None:
        super().__init__("switcher")
        self.network, self.plan, self.t0 = network, plan, start

    def run(self) -> None:
        for switch in self.plan.switches():
            if self._sleep_until(self.t0 + switch.at):
                return
            self.network.set_path(switch.path)

    def _sleep_until(self, due: float) -> bool:
        """Wait for `due` (monotonic); the last SPIN_S in a tight loop, as sleeps wake late. True: stop."""
        while (left := due - time.monotonic()) > SPIN_S:
            if self.stopping.wait(min(left - SPIN_S, POLL_STOP_S)):
                return True
        while time.monotonic() < due:
            pass
        return self.stopping.is_set()


class MigrationController:
    """Run a MigrationPlan on a built network; use as a context manager, then read `.evidence`."""

    def __init__(self, network: Network, plan: MigrationPlan, *, endpoint_poll_s: float = 0.002,
                 sticky_guard: bool | None = None, monitor: MonitorFactory | None = None) -> None:
        unknown = set(plan.paths) - set(network.topology.path_ids)
        if unknown:
            raise MigrationError(f"the plan names paths {sorted(unknown)}, but the topology has "
                                 f"{list(network.topology.path_ids)}")
        self.network = network
        self.plan = plan
        self.monitor_factory = monitor or RouteMonitor
        self.endpoint_poll_s = endpoint_poll_s
        # wireguard-go re-pins its source to whichever path a packet last came in on (kernel WireGuard
        # re-routes when the route's device changed); the guard gives wireguard-go the kernel's behaviour
        self.sticky_guard = network.wireguard_impl == WireGuardImpl.WIREGUARD_GO if sticky_guard is None else sticky_guard
        self.guard_releases = 0
        self._route_path = plan.start_path
        self.evidence: MigrationEvidence | None = None
        self._observed: list[tuple[float, int, float | None]] = []
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._script = None
        self.start = 0.0
        self._switch_interval = sys.getswitchinterval()

    # -- monitor callback ------------------------------------------------------------------
    def _on_switch(self, at: float, path: int, no_route_ms: float | None) -> None:
        self._route_path = path
        self._sampler.switched(at)
        if self.plan.mechanism == Mechanism.SCRIPT:
            self.network.release_sticky_source()
        with self._lock:
            self._observed.append((at, path, no_route_ms))

    def _on_endpoint(self, path: int) -> None:
        """The server heard the client on another path than the route says: release the sticky source."""
        if self.sticky_guard and path != self._route_path:
            self.network.release_sticky_source()
            self.guard_releases += 1

    def _path_use(self) -> dict[int, PathUse]:
        transfer = self.network.path_transfer()
        packets = self.network.path_packets()
        return {k: PathUse(transfer[k].total, packets[k]) for k in self.network.topology.path_ids}

    def __enter__(self) -> MigrationController:
        client = self.network.client
        self.network.set_path(self.plan.start_path)
        if self.plan.mechanism == Mechanism.SCRIPT:
            client.write_file(SCRIPT_PATH_IN_CLIENT, MIGRATE_SCRIPT.read_text(), mode=0o755)
        path_of_index = {self.network.path_ifindex(k): k for k in self.network.topology.path_ids}
        self._before = self._path_use()
        monitor = self.monitor_factory(client.netns_path(), path_of_index, self._on_switch)
        sampler = self._sampler = EndpointSampler(self.network, self.endpoint_poll_s, self._on_endpoint)
        self._workers = [monitor, sampler]
        # threads hand the GIL over every 5 ms by default: far too coarse for 10 ms switching
        sys.setswitchinterval(GIL_SWITCH_S)
        monitor.start()
        sampler.start()
        self.start = time.monotonic()
        if self.plan.mechanism == Mechanism.NETLINK:
            runner = _ScheduleRunner(self.network, self.plan, self.start)
            self._workers.append(runner)
            runner.start()
        else:
            self._script = client.spawn([SCRIPT_PATH_IN_CLIENT, f"{self.plan.interval:g}"], name="migrate")
        return self

    def run(self, progress: Callable[[str], None] | None = None) -> None:
        """Let the plan run for its duration (the controller must have been entered)."""
        end = self.start + self.plan.duration
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))
            if self._script is not None and not self._script.running():
                raise MigrationError(f"migrate.sh exited early: {self._script.log_tail()}")
            if progress:
                progress(f"migration {self.plan.label}: {max(0.0, end - time.monotonic()):.0f} s left")

    def __exit__(self, *exc: object) -> None:
        stopped_at = time.monotonic()
        if self._script is not None:
            self._script.stop()
        errors = []
        for worker in reversed(self._workers):
            try:
                worker.stop()
            except MigrationError as error:
                errors.append(error)
        sys.setswitchinterval(self._switch_interval)
        if exc[0] is not None:
            return
        if errors:
            raise errors[0]
        self.evidence = self._evidence(stopped_at)

    def result(self) -> MigrationEvidence:
        """The evidence, once the controller has exited without an error."""
        if self.evidence is None:
            raise MigrationError(f"migration {self.plan.label} produced no evidence (it did not finish)")
        return self.evidence

    def _evidence(self, stopped_at: float) -> MigrationEvidence:
        after = self._path_use()
        plan = self.plan
        # a measurement may end before the plan's duration: only what was due by then was asked for
        planned = [p for p in plan.switches() if p.at <= stopped_at - self.start]
        observed = [item for item in self._observed if item[0] <= stopped_at]
        if plan.mechanism == Mechanism.SCRIPT and observed:  # the script starts at once, then every interval
            first = observed[0][0] - self.start
            planned_at = [first + k * plan.interval for k in range(len(observed))]
        else:
            planned_at = [p.at for p in planned]
        records, current = [], plan.start_path
        for i, (at, path, gap) in enumerate(observed):
            records.append(SwitchRecord(actual_s=round(at - self.start, 6), from_path=current, to_path=path,
                                        planned_s=round(planned_at[i], 6) if i < len(planned_at) else None,
                                        no_route_ms=None if gap is None else round(gap, 3)))
            current = path
        sampler = self._sampler
        scheduled = sorted({plan.start_path, *(p.path for p in planned)})
        return MigrationEvidence(
            plan=plan.describe(), duration_s=round(stopped_at - self.start, 4), planned_switches=len(planned),
            started_monotonic=self.start,
            scheduled_paths=scheduled, switches=records,
            per_path={k: PathUse(after[k].bytes - self._before[k].bytes, after[k].packets - self._before[k].packets)
                      for k in after},
            endpoint_changes=sampler.changes, endpoint_samples=sampler.samples, endpoint_paths=sampler.paths_seen,
            sticky_guard=self.sticky_guard, guard_releases=self.guard_releases)


def run_migration(network: Network, plan: MigrationPlan,
                  progress: Callable[[str], None] | None = None) -> MigrationEvidence:
    """Run `plan` for its duration on `network` and return its evidence."""
    with MigrationController(network, plan) as controller:
        controller.run(progress)
    return controller.result()

