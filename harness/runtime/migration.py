"""The migration controller: moves the client's session between paths on a schedule, and records proof.

Two switch mechanisms:
- ``netlink``: one atomic route replace in table 51821 through pyroute2 (no window without a route);
- ``script``: the demo's ``migrate.sh <interval>``, unchanged, at ``/etc/wireguard/migrate.sh`` in
  the client (delete, then add: a short window without a route).

Both produce the same switch log, because the log comes from a netlink monitor of the client's
routing table, not from the switcher. WireGuard's sticky source is released as `sticky_source`
says (harness.model.kinds.StickySource): the default uses what the client itself can see.

The proof comes from the data plane: counters of every hop (client, proxies, server) read at the
window's edges, all hosts at once; the client's own counters at every switch (adherence); the
server's view of the client's endpoint (the sampler). Together: the run's `MigrationEvidence`.
"""

from __future__ import annotations

import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence

from harness.data import MIGRATE_SCRIPT
from harness.errors import MigrationError
from harness.model.evidence import MigrationEvidence, SwitchRecord
from harness.model.kinds import Mechanism, StickySource, WireGuardImpl, choose
from harness.model.schedule import MigrationPlan
from harness.runtime import accounting
from harness.runtime.events import EventPlayer
from harness.runtime.faults import FaultInjector
from harness.runtime.hosts import LinkCounters
from harness.runtime.network import Network
from harness.runtime.watchers import (
    ClientWatcher,
    EndpointSampler,
    MonitorFactory,
    RouteMonitor,
    ScheduleRunner,
    Worker,
)

SCRIPT_PATH_IN_CLIENT = "/etc/wireguard/migrate.sh"
GIL_SWITCH_S = 0.0002
END_GRACE_S = 0.005  # run() lasts this much past the plan: the switch due at its end is made before the stop
DRAIN_TIMEOUT_S = 0.5  # for the route monitor to log the switcher's last switches
READY_TIMEOUT_S = 30.0  # for the workers' warm-up (a thread's first netlink requests)


def quiet_collector() -> None:
    """Collect once, then freeze what lives (the bring-up's objects) out of the collector's reach until the
    controller exits: a full collection over them stopped every thread for 2 s in a UML guest, mid-schedule."""
    gc.collect()
    gc.freeze()


def resolve_sticky_source(requested: str, wireguard: str) -> StickySource:
    """auto: none for kernel WireGuard (it re-routes by itself), the client's own view for wireguard-go."""
    mode = choose(StickySource, requested, "--sticky-source")
    if mode != StickySource.AUTO:
        return mode
    return StickySource.OFF if wireguard == WireGuardImpl.KERNEL else StickySource.CLIENT


class MigrationController:
    """Run a MigrationPlan on a built network; use as a context manager, then read `.result()`."""

    def __init__(
        self,
        network: Network,
        plan: MigrationPlan,
        *,
        sticky_source: str | None = None,
        endpoint_poll_s: float = 0.002,
        monitor: MonitorFactory | None = None,
    ) -> None:
        unknown = set(plan.paths) - set(network.topology.path_ids)
        if unknown:
            raise MigrationError(
                f"the plan names paths {sorted(unknown)}, but the topology has {list(network.topology.path_ids)}"
            )
        self.network = network
        self.plan = plan
        self.sticky_source = resolve_sticky_source(sticky_source or plan.sticky_source, network.wireguard_impl)
        self.monitor_factory = monitor or RouteMonitor
        self.endpoint_poll_s = endpoint_poll_s
        self.releases = 0
        self._route_path = plan.start_path
        self.evidence: MigrationEvidence | None = None
        self._observed: list[tuple[float, int, float | None, dict[int, LinkCounters]]] = []
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        self._runner: ScheduleRunner | None = None
        self._injector: FaultInjector | None = None
        self._player: EventPlayer | None = None
        self._edges: list[tuple[float, int, accounting.Snapshot]] = []  # (monotonic, +1 begins / -1 ends, counters)
        self._watcher: ClientWatcher | None = None
        self._script = None
        self.start = 0.0
        self._end: tuple[float, LinkCounters | None] = (0.0, None)
        self._switch_interval = sys.getswitchinterval()

    # -- sticky source -----------------------------------------------------------------------
    def _release(self) -> None:
        self.network.release_sticky_source()
        with self._lock:
            self.releases += 1

    def _on_switch(self, at: float, path: int, no_route_ms: float | None) -> None:
        self._route_path = path
        if self.sticky_source != StickySource.OFF:
            self._release()
        self._sampler.switched(at)
        if self._watcher is not None:
            self._watcher.switched(at)
        sample = accounting.client_counters(self.network)  # adherence: the window's edge
        with self._lock:
            self._observed.append((at, path, no_route_ms, sample))

    def _on_endpoint(self, path: int) -> None:
        """oracle mode: the server heard the client on another path than the route says."""
        if self.sticky_source == StickySource.ORACLE and path != self._route_path:
            self._release()

    def _on_stray(self, path: int) -> None:
        """client mode: the client's session left on another wgnet than the route says."""
        if path != self._route_path:
            self._release()

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> MigrationController:
        network, client = self.network, self.network.client
        if self.plan.mechanism == Mechanism.NETLINK:  # the switcher sets the start path as it warms up
            self._runner = ScheduleRunner(network, self.plan)
            self._runner.exit_hooks.append(network.drop_thread_netlink)
            self._runner.start()
            try:
                self._runner.wait_ready(READY_TIMEOUT_S)
            finally:
                failed = self._runner.error is not None or not self._runner.ready.is_set()
                errors = self._stop_switching() if failed else []
            if errors:
                raise errors[0]
        else:
            network.route_to(self.plan.start_path)
        if self.sticky_source != StickySource.OFF:
            network.release_sticky_source()  # start from a released source, not counted as a switch's
        if self.plan.mechanism == Mechanism.SCRIPT:
            client.write_file(SCRIPT_PATH_IN_CLIENT, MIGRATE_SCRIPT.read_text(), mode=0o755)
        path_of_index = {network.path_ifindex(k): k for k in network.topology.path_ids}
        self._reader = accounting.CounterReader(network)
        try:
            monitor = self.monitor_factory(client.netns_path(), path_of_index, self._on_switch)
            sampler = self._sampler = EndpointSampler(network, self.endpoint_poll_s, self._on_endpoint)
            self._workers = [monitor, sampler]
            if self.sticky_source == StickySource.CLIENT and self.plan.switches():  # one path: nothing strays
                self._watcher = ClientWatcher(network, lambda: self._route_path, self._on_stray)
                self._workers.append(self._watcher)
            # threads hand the GIL over every 5 ms by default: far too coarse for 10 ms switching
            sys.setswitchinterval(GIL_SWITCH_S)
            for worker in self._workers:
                worker.exit_hooks.append(network.drop_thread_netlink)
                worker.start()
            for worker in self._workers:
                worker.wait_ready(READY_TIMEOUT_S)
            quiet_collector()
            self._before = self._reader.snapshot()
            self.start = time.monotonic()
            if self.plan.faults:
                self._injector = FaultInjector(network, self.plan.faults, self.start)
                self._injector.exit_hooks.append(network.drop_thread_netlink)
                self._injector.start()
            events = self.plan.events + network.profile_events  # the run's own, and its path profile's
            if events:
                self._player = EventPlayer(network, events, self.start, edge=self._edge)
                self._player.exit_hooks.append(network.drop_thread_netlink)
                self._player.start()
            if self._runner is not None:
                self._runner.begin(self.start)
            else:
                self._script = client.spawn([SCRIPT_PATH_IN_CLIENT, f"{self.plan.interval:g}"], name="migrate")
        except BaseException:
            self._stop_everything()
            raise
        return self

    def run(self, progress: Callable[[str], None] | None = None) -> None:
        """Let the plan run for its duration (the controller must have been entered)."""
        end = self.start + self.plan.duration + END_GRACE_S  # a switch due at the end is made, not raced
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))
            if self._script is not None and not self._script.running():
                raise MigrationError(f"migrate.sh exited early: {self._script.log_tail()}")
            if progress:
                progress(f"migration {self.plan.label}: {max(0.0, end - time.monotonic()):.0f} s left")

    def _stop_switching(self) -> list[MigrationError]:
        """Stop what changes the network (the switcher or script, the fault injector)."""
        errors = []
        if self._script is not None:
            self._script.stop()
        for worker in (self._runner, self._injector, self._player):
            if worker is None:
                continue
            try:
                worker.stop()
            except MigrationError as error:
                errors.append(error)
        return errors

    def _stop_everything(self) -> list[MigrationError]:
        errors = self._stop_switching()
        for worker in reversed(self._workers):
            try:
                worker.stop()
            except MigrationError as error:
                errors.append(error)
        sys.setswitchinterval(self._switch_interval)
        gc.unfreeze()
        self._reader.close()
        if self._injector is not None:
            self._injector.undo_all()
        if self._player is not None:
            errors += [MigrationError(problem) for problem in self._player.undo_all()]
        return errors

    def __exit__(self, *exc: object) -> None:
        stopped_at = time.monotonic()
        errors = self._stop_switching()
        seen_until = self._drain_monitor()
        if exc[0] is None:
            self.network.settle()  # packets still queued on a shaped link are in flight, not lost
        if exc[0] is None:  # how fast the session still moves as the far edge is read: what may be in flight
            self._end = (time.monotonic(), accounting.client_counters(self.network).get(accounting.SESSION))
        after = self._reader.snapshot() if exc[0] is None else None  # the window's far edge, all hosts at once
        errors += self._stop_everything()
        if exc[0] is not None:
            return
        if errors:
            raise errors[0]
        self.evidence = self._evidence(stopped_at, after, seen_until)

    def _edge(self, offset: float, opening: bool) -> None:
        """An event begins or ends (the player's thread): every hop's counters, so the proof can judge apart."""
        snapshot = self._reader.snapshot()
        with self._lock:
            self._edges.append((snapshot.at, 1 if opening else -1, snapshot))

    def _event_spans(self, before: accounting.Snapshot, after: accounting.Snapshot):
        """(outside, inside): the stretches between counter reads outside every event and inside one."""
        points = [(before.at, 0, before), *sorted(self._edges, key=lambda e: e[0]), (after.at, 0, after)]
        outside, inside, depth = [], [], 0
        for (_, delta, a), (_, _, b) in zip(points, points[1:]):
            depth += delta
            (inside if depth > 0 else outside).append((a, b))
        return outside, inside

    def _drain_monitor(self) -> float:
        """Once nothing switches any more: until the route monitor has logged every switch the switcher made
        (its notification comes a moment after the route; DRAIN_TIMEOUT_S at most). A switch due as the run
        stopped is made but would otherwise be cut from the log, and its traffic counted in the window
        before it, against adherence. Returns the time up to which the log is complete."""
        made = len(self._runner.late_ms) if self._runner is not None else 0
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._observed) >= made:
                    break
            time.sleep(0.001)
        return time.monotonic()

    def result(self) -> MigrationEvidence:
        """The evidence, once the controller has exited without an error."""
        if self.evidence is None:
            raise MigrationError(f"migration {self.plan.label} produced no evidence (it did not finish)")
        return self.evidence

    # -- evidence --------------------------------------------------------------------------------
    def _named_path(self, offset_s: float, route_path: int) -> int:
        """The path the schedule names `offset_s` after the start (the script is its own schedule)."""
        if self.plan.mechanism == Mechanism.SCRIPT:
            return route_path
        named = self.plan.start_path
        for switch in self.plan.switches():
            if switch.at > offset_s:
                break
            named = switch.path
        return named

    def _windows(
        self,
        observed: list,
        before: accounting.Snapshot,
        after: accounting.Snapshot,
        events: Sequence[tuple[float, float]] = (),
    ) -> dict[str | None, list[tuple[int, float, int]]]:
        """Per direction (None: both together, "up", "down"): (named path, its share of the session's packets,
        the session's packets) for every stretch between switches: the named wgnet's packets over the
        client's wg0 packets (a packet lost before any wgnet counts against the path). Up counts what the
        client sent, down what it received: the client's counters alone."""
        counts: dict[str | None, Callable[[LinkCounters], int]] = {
            None: lambda c: c.tx_packets + c.rx_packets,
            "up": lambda c: c.tx_packets,
            "down": lambda c: c.rx_packets,
        }
        edges = [(before.at, self.plan.start_path, before.client)]
        edges += [(at, path, sample) for at, path, _, sample in observed]
        edges.append((after.at, edges[-1][1], after.client))
        windows: dict[str | None, list[tuple[int, float, int]]] = {key: [] for key in (*counts, "event")}
        for (t0, route_path, start), (t1, _, end) in zip(edges, edges[1:]):
            named = self._named_path((t0 + t1) / 2 - self.start, route_path)
            during = any(a < t1 and t0 < b for a, b in events)  # on while an event was: reported apart
            for key, count in counts.items():
                if during and key is not None:
                    continue
                moved = {k: count(counter) - count(start[k]) for k, counter in end.items() if k in start}
                total = moved.get(accounting.SESSION, 0)  # the session's packets, as the client's wg0 counts them
                if total > 0:
                    share = round(min(1.0, max(0, moved.get(named, 0)) / total), 4)
                    windows["event" if during else key].append((named, share, total))
        return windows

    def _end_rate(self, after: accounting.Snapshot) -> dict[str, float] | None:
        """Packets/s of the session (the client's wg0) per direction just before the last read."""
        at, start = self._end
        end = after.client.get(accounting.SESSION)
        if start is None or end is None or after.at <= at:
            return None
        seconds = after.at - at
        return {
            "up": round(max(0, end.tx_packets - start.tx_packets) / seconds, 1),
            "down": round(max(0, end.rx_packets - start.rx_packets) / seconds, 1),
        }

    def _follow(self, observed: list, stopped_at: float) -> list[tuple[float | None, int]]:
        """Per switch: ms until the server's endpoint was on the new path, and its flips back before the next."""
        times = [at for at, *_ in observed] + [stopped_at]
        moves = self._sampler.moves
        result = []
        for (at, path, *_), until in zip(observed, times[1:]):
            during = [(t, p) for t, p in moves if at <= t < until]
            already = [p for t, p in moves if t < at][-1:] == [path]  # the endpoint was there before the route
            first = at if already else next((t for t, p in during if p == path), None)
            flips = sum(1 for t, p in during if first is not None and t > first and p != path)
            result.append((None if first is None else round((first - at) * 1000, 3), flips))
        return result

    def _evidence(self, stopped_at: float, after: accounting.Snapshot, seen_until: float) -> MigrationEvidence:
        plan, before = self.plan, self._before
        # a measurement may end before the plan's duration: only what was due by then was asked for
        planned = [p for p in plan.switches() if p.at <= stopped_at - self.start]
        observed = [item for item in self._observed if item[0] <= seen_until]
        if plan.mechanism == Mechanism.SCRIPT and observed:
            # migrate.sh switches when it starts (a docker exec takes a while), then sleeps the interval
            # each loop and spends a few ms on `ip` besides: its own cycle is what it promised
            first = observed[0][0] - self.start
            spacing = [b[0] - a[0] for a, b in zip(observed, observed[1:])]
            cycle = max(plan.interval, statistics.median(spacing)) if spacing else plan.interval
            count = 1 + int((stopped_at - observed[0][0]) / cycle + 1e-9)
            planned_at = [first + k * plan.interval for k in range(max(count, len(observed)))]
            planned = plan.switches()[:count]
        else:
            planned_at = [p.at for p in planned]
        records, current = [], plan.start_path
        for i, (at, path, gap, _) in enumerate(observed):
            records.append(
                SwitchRecord(
                    actual_s=round(at - self.start, 6),
                    from_path=current,
                    to_path=path,
                    planned_s=round(planned_at[i], 6) if i < len(planned_at) else None,
                    no_route_ms=None if gap is None else round(gap, 3),
                )
            )
            current = path
        sampler = self._sampler
        scheduled = sorted({plan.start_path, *(p.path for p in planned)})
        faults = [*(self._runner.faults if self._runner else []), *before.problems, *after.problems]
        applied = self._player.applied() if self._player is not None else []
        spans = [w for e in applied if (w := e.window(stopped_at - self.start)) is not None]
        on = [(self.start + a, self.start + b) for a, b in spans]
        windows = self._windows(observed, before, after, on)
        outside, inside = self._event_spans(before, after)
        delivery, event_delivery = (_sum_delivery(stretches) for stretches in (outside, inside))
        session, event_session = (_sum_session(stretches) for stretches in (outside, inside))
        during = [p for p in planned if any(a <= p.at <= b for a, b in spans)]
        moves = [t for t, _ in self._sampler.moves if any(a <= t <= b for a, b in on)]
        return MigrationEvidence(
            plan=plan,
            duration_s=round(stopped_at - self.start, 4),
            planned_switches=len(planned),
            started_monotonic=self.start,
            scheduled_paths=scheduled,
            switches=records,
            per_path=accounting.path_use(before, after),
            endpoint_changes=sampler.changes,
            endpoint_samples=sampler.samples,
            endpoint_paths=sampler.paths_seen,
            sticky_source=str(self.sticky_source),
            releases=self.releases,
            delivery=delivery,
            session=session,
            windows=windows[None],
            windows_up=windows["up"],
            windows_down=windows["down"],
            endpoint_follow=self._follow(observed, max(seen_until, after.at)),
            read_skew_ms=max(before.skew_ms, after.skew_ms),
            end_rate_pps=self._end_rate(after),
            faults=faults,
            injected=self._injector.injected if self._injector else [],
            applied_late_ms=[round(late, 3) for late in self._runner.late_ms] if self._runner else [],
            events=applied,
            event_delivery=event_delivery,
            event_session=event_session,
            event_windows=windows["event"],
            event_planned_switches=len(during),
            event_endpoint_changes=min(len(moves), sampler.changes),
            edge_skews_ms=[round(snapshot.skew_ms, 3) for _, _, snapshot in self._edges],
            path_series=self._player.series if self._player is not None else [],
        )


def _sum_delivery(stretches: list) -> dict:
    """Per path, the hops' packets over the stretches (pairs of snapshots) added up."""
    total: dict = {}
    for a, b in stretches:
        for path, part in accounting.delivery(a, b).items():
            total[path] = total[path] + part if path in total else part
    return total


def _sum_session(stretches: list):
    parts = [part for a, b in stretches if (part := accounting.session_delivery(a, b)) is not None]
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def run_migration(
    network: Network,
    plan: MigrationPlan,
    progress: Callable[[str], None] | None = None,
    *,
    sticky_source: str | None = None,
) -> MigrationEvidence:
    """Run `plan` for its duration on `network` and return its evidence."""
    with MigrationController(network, plan, sticky_source=sticky_source) as controller:
        controller.run(progress)
    return controller.result()
