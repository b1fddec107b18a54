"""Proof that a migration run really moved the traffic (pure: built from recorded facts).

Every migration test stores one `MigrationEvidence` with its results and fails on `failures()`,
which judges everything the evidence holds: switches done against planned (fewer and more),
delivery hop by hop on every scheduled path in both directions (from the data plane: the client's
and the proxies' tunnel counters and the server's own packet counters), adherence of the traffic
to the path the schedule named, the paths and moves the server saw, and faults met during the run.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.model.settings import Tolerances
from harness.model.stats import summary

# Packets that may be in flight between two hops when the counters are read (per hop and direction).
IN_FLIGHT_SLACK = 50
HOPS = {
    "up": (("client", "sent"), ("proxy", "entered"), ("server", "delivered")),
    "down": (("server", "sent"), ("proxy", "entered"), ("client", "delivered")),
}


@dataclass(frozen=True)
class SwitchRecord:
    """One path switch as seen in the client's routing table (times in s after the run started)."""

    actual_s: float
    from_path: int | None
    to_path: int
    planned_s: float | None = None
    no_route_ms: float | None = None  # the delete-then-add window of the demo's script

    @property
    def error_ms(self) -> float | None:
        return None if self.planned_s is None else (self.actual_s - self.planned_s) * 1000


@dataclass(frozen=True)
class PathUse:
    """What one proxy carried for the client during the run (deltas of its counters): the session's
    packets in its tunnel, and the frames on its underlay link towards the client (outer, as captured)."""

    bytes: int
    packets: int
    outer_bytes: int = 0
    outer_packets: int = 0


@dataclass(frozen=True)
class PathDelivery:
    """Packets of the client's session on one path, counted at each hop (deltas over the run).

    up: the client's wgnetK sent them, the proxy took them out of its tunnel, the server's wg0 port
    received them from the proxy's address. down: the server sent them to the proxy, the proxy put
    them into its tunnel, the client's wgnetK received them.
    """

    up_sent: int = 0
    up_entered: int = 0
    up_delivered: int = 0
    down_sent: int = 0
    down_entered: int = 0
    down_delivered: int = 0

    def counts(self, direction: str) -> tuple[int, int, int]:
        return (
            (self.up_sent, self.up_entered, self.up_delivered)
            if direction == "up"
            else (self.down_sent, self.down_entered, self.down_delivered)
        )

    def problems(self, path: int, max_loss: float, scheduled: bool) -> list[str]:
        """Why this path's delivery fails (empty when it holds), naming the hop and direction."""
        reasons = []
        for direction, hops in HOPS.items():
            counts = self.counts(direction)
            if scheduled and counts[-1] == 0:
                reasons.append(
                    f"path {path} delivered nothing {direction} "
                    f"({hops[0][0]} sent {counts[0]}, {hops[2][0]} received 0)"
                )
                continue
            for (giver, _), (taker, _), before, after in zip(hops, hops[1:], counts, counts[1:]):
                lost = before - after
                if lost > max_loss * before + IN_FLIGHT_SLACK:
                    reasons.append(
                        f"path {path} {direction}: {taker} received {after} of the {before} packets "
                        f"the {giver} passed on ({lost / before:.0%} lost, limit {max_loss:.0%})"
                    )
        return reasons


@dataclass(frozen=True)
class SessionDelivery:
    """The session end to end: the client's wg0 and the server's wg0, both directions (packet deltas)."""

    up_sent: int = 0
    up_delivered: int = 0
    down_sent: int = 0
    down_delivered: int = 0

    def problems(self, max_loss: float) -> list[str]:
        reasons = []
        for direction, sent, delivered, giver, taker in (
            ("up", self.up_sent, self.up_delivered, "client", "server"),
            ("down", self.down_sent, self.down_delivered, "server", "client"),
        ):
            lost = sent - delivered
            if lost > max_loss * sent + IN_FLIGHT_SLACK:
                reasons.append(
                    f"the session lost {lost} of {sent} packets {direction} ({lost / sent:.0%}, limit "
                    f"{max_loss:.0%}): the {taker}'s wg0 received {delivered} of what the {giver}'s sent"
                )
        return reasons


@dataclass
class MigrationEvidence:
    plan: dict[str, Any]
    duration_s: float
    planned_switches: int
    scheduled_paths: list[int]
    switches: list[SwitchRecord] = field(default_factory=list)
    per_path: dict[int, PathUse] = field(default_factory=dict)
    endpoint_changes: int = 0
    endpoint_samples: int = 0
    endpoint_paths: list[int] = field(default_factory=list)
    sticky_source: str = "off"  # how the client's sticky source was released (see harness.runtime.migration)
    started_monotonic: float = 0.0  # CLOCK_MONOTONIC at the start: switch times are relative to it
    releases: int = 0  # sticky-source releases during the run
    delivery: dict[int, PathDelivery] = field(default_factory=dict)
    session: SessionDelivery | None = None
    # adherence windows: (the path the schedule named, share of the session's packets on it, packets)
    windows: list[tuple[int, float, int]] = field(default_factory=list)
    read_skew_ms: float = 0.0  # how far apart the counter reads of the hosts were (end of the run)
    faults: list[str] = field(default_factory=list)  # what went wrong on a path during the run
    injected: list[str] = field(default_factory=list)  # faults the plan asked for (--fault), as applied
    applied_late_ms: list[float] = field(default_factory=list)  # per switch the switcher made: ms after its time

    # -- derived figures -------------------------------------------------------------------
    def switch_times_monotonic(self) -> list[float]:
        return [self.started_monotonic + s.actual_s for s in self.switches]

    def split_ratio(self) -> dict[int, float]:
        total = sum(use.bytes for use in self.per_path.values())
        return {path: (use.bytes / total if total else 0.0) for path, use in sorted(self.per_path.items())}

    def longest_on_one_path_s(self) -> float:
        times = [0.0, *(s.actual_s for s in self.switches), self.duration_s]
        return max(b - a for a, b in zip(times, times[1:]))

    def timing_error_ms(self) -> dict[str, Any]:
        return summary([e for s in self.switches if (e := s.error_ms) is not None])

    def no_route_ms(self) -> dict[str, Any]:
        return summary([s.no_route_ms for s in self.switches if s.no_route_ms is not None])

    def adherence(self, path: int | None = None) -> float | None:
        """The share of the session's packets (both directions, as the client's wg0 counts them) that used
        the path the schedule named: over every window, or over the windows that named `path`."""
        windows = [w for w in self.windows if path is None or w[0] == path]
        total = sum(packets for _, _, packets in windows)
        if not total:
            return None
        return sum(share * packets for _, share, packets in windows) / total

    def behind_schedule(self, tolerance: float = 0.1) -> str | None:
        """Why the machine itself could not keep the schedule (e.g. an emulated guest), or None.

        The switcher applies every planned switch in turn, as soon as it is due; on a machine that
        is too slow it falls behind (fewer switches made than planned before the run ends, or made
        a good part of an interval late); or it makes them all and the watchers, polling on the same
        slow machine, see too few of them (the route monitor's switches, the server's endpoint
        sampled less than twice an interval)."""
        interval_s = self.plan.get("interval_s") or 0
        made, planned, seen = len(self.applied_late_ms), self.planned_switches, len(self.switches)
        if not planned or not interval_s or not made or any("refused" in fault for fault in self.faults):
            return None
        median = statistics.median(self.applied_late_ms)
        if made < planned * (1 - tolerance) or median > interval_s * 1000 / 4:
            return (
                f"the machine could not follow a {interval_s:g} s schedule (the switcher made {made} of "
                f"{planned} planned switches, {median:.0f} ms late at the median)"
            )
        if seen < made * (1 - tolerance):
            return (
                f"the machine could not keep up with a {interval_s:g} s schedule (the switcher made {made} "
                f"switches; the route monitor, polling on the same machine, saw {seen})"
            )
        if self.duration_s and self.endpoint_samples < 2 * self.duration_s / interval_s:
            return (
                f"the machine could not keep up with a {interval_s:g} s schedule (the server's endpoint was "
                f"sampled {self.endpoint_samples} times in {self.duration_s:g} s, less than twice an interval)"
            )
        return None

    def failures(self, tolerances: Tolerances | None = None) -> list[str]:
        """Why this run does not prove migration (empty when it does).

        When the machine could not keep the schedule (behind_schedule), the checks that depend on
        timing (switch count, adherence, endpoint moves) give way to one line that says so: they
        would judge the machine, not migration. Faults and lost packets are judged as ever."""
        rules = tolerances or Tolerances()
        reasons = list(self.faults)
        timing: list[str] = []
        done, planned = len(self.switches), self.planned_switches
        if done < planned * (1 - rules.switches):
            timing.append(f"only {done} of {planned} planned switches happened (tolerance {rules.switches:.0%})")
        elif done > planned * (1 + rules.switches) + 1:
            reasons.append(
                f"{done} switches happened where {planned} were planned: something else rewrote the "
                f"client's path table (tolerance {rules.switches:.0%})"
            )
        for path in self.scheduled_paths:
            use = self.per_path.get(path)
            if use is None or use.bytes == 0 or use.packets == 0:
                reasons.append(f"path {path} was scheduled but carried nothing")
        for path, delivery in sorted(self.delivery.items()):
            reasons += delivery.problems(path, rules.max_path_loss, path in self.scheduled_paths)
        # Shares are judged where a schedule can be followed closely (--verdict-from-interval, 0.1 s):
        # below it a switch window holds a handful of packets and they are recorded, not judged.
        strict = (self.plan.get("interval_s") or 0) >= rules.verdict_from_interval
        if self.session is not None:
            reasons += self.session.problems(rules.max_path_loss)
        for path in self.scheduled_paths if planned and strict else ():
            adherence = self.adherence(path)
            if adherence is not None and adherence < rules.min_adherence:
                timing.append(
                    f"path {path} carried only {adherence:.0%} of the session's packets in the windows "
                    f"the schedule gave it (limit {rules.min_adherence:.0%})"
                )
        if planned:
            unseen = sorted(set(self.scheduled_paths) - set(self.endpoint_paths))
            if self.endpoint_changes == 0:
                timing.append(
                    f"the server never saw the client's endpoint move ({self.endpoint_samples} samples, "
                    f"paths seen: {self.endpoint_paths or 'none'})"
                )
            elif unseen:
                timing.append(
                    f"the server never saw the client on path {', '.join(map(str, unseen))} "
                    f"(paths seen: {self.endpoint_paths})"
                )
            elif strict and self.endpoint_changes < rules.min_endpoint_moves * planned:
                timing.append(
                    f"the server saw the client's endpoint move {self.endpoint_changes} times for "
                    f"{planned} planned switches (limit {rules.min_endpoint_moves:.0%} of them)"
                )
        behind = self.behind_schedule(rules.switches) if timing else None
        if behind:
            return reasons + [
                f"{behind}: not a verdict on migration ({done} of {planned} planned switches seen, "
                f"{self.endpoint_changes} endpoint moves)"
            ]
        return reasons + timing

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_path"] = {str(k): asdict(v) for k, v in sorted(self.per_path.items())}
        data["split_ratio"] = {str(k): round(v, 4) for k, v in self.split_ratio().items()}
        data["longest_on_one_path_s"] = round(self.longest_on_one_path_s(), 4)
        data["timing_error_ms"] = self.timing_error_ms()
        data["no_route_ms"] = self.no_route_ms()
        data["delivery"] = {str(k): asdict(v) for k, v in sorted(self.delivery.items())}
        data["adherence_by_path"] = {
            str(k): None if (a := self.adherence(k)) is None else round(a, 4) for k in self.scheduled_paths
        }
        adherence = self.adherence()
        data["adherence"] = None if adherence is None else round(adherence, 4)
        return data
