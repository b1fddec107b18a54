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
from enum import StrEnum
from typing import Any

from harness.model.schedule import MigrationPlan
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


class ProofCode(StrEnum):
    """Why a run does not prove migration: one code per check, so tests match codes, not prose."""

    SWITCH_REFUSED = "switch-refused"  # the client's kernel refused a switch (a runtime fault)
    TUNNEL_UNREADABLE = "tunnel-unreadable"  # a proxy's tunnel counters could not be read
    COUNTERS_UNREADABLE = "counters-unreadable"  # a host's counters could not be read
    TOO_FEW_SWITCHES = "too-few-switches"
    TOO_MANY_SWITCHES = "too-many-switches"  # something else rewrote the client's path table
    PATH_CARRIED_NOTHING = "path-carried-nothing"
    PATH_DELIVERED_NOTHING = "path-delivered-nothing"
    HOP_LOSS = "hop-loss"
    SESSION_LOSS = "session-loss"
    LOW_ADHERENCE = "low-adherence"
    ENDPOINT_NEVER_MOVED = "endpoint-never-moved"
    PATH_NEVER_SEEN = "path-never-seen"  # the server never saw the client on a scheduled path
    FEW_ENDPOINT_MOVES = "few-endpoint-moves"
    BEHIND_SCHEDULE = "behind-schedule"  # the machine could not keep the schedule: not a verdict
    UNCLASSIFIED = "unclassified"  # read from a results file written before codes existed


@dataclass(frozen=True)
class ProofFailure:
    """One reason a run does not prove migration: the check's code, where, the figure and its limit."""

    code: ProofCode
    text: str
    path: int | None = None
    direction: str | None = None
    figure: float | None = None
    limit: float | None = None
    hop: str | None = None  # the receiving end of the hop that lost packets (server, proxy, client)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def read(cls, data: object) -> ProofFailure:
        """From a results file: a dict (schema 3), or the plain text of earlier versions."""
        if isinstance(data, dict):
            return cls(**{**data, "code": ProofCode(data.get("code", ProofCode.UNCLASSIFIED))})
        return cls(ProofCode.UNCLASSIFIED, str(data))


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

    def problems(self, path: int, max_loss: float, scheduled: bool) -> list[ProofFailure]:
        """Why this path's delivery fails (empty when it holds), naming the hop and direction."""
        reasons = []
        for direction, hops in HOPS.items():
            counts = self.counts(direction)
            if scheduled and counts[-1] == 0:
                text = (
                    f"path {path} delivered nothing {direction} "
                    f"({hops[0][0]} sent {counts[0]}, {hops[2][0]} received 0)"
                )
                reasons.append(ProofFailure(ProofCode.PATH_DELIVERED_NOTHING, text, path, direction, 0.0, None))
                continue
            for (giver, _), (taker, _), before, after in zip(hops, hops[1:], counts, counts[1:]):
                lost = before - after
                if lost > max_loss * before + IN_FLIGHT_SLACK:
                    text = (
                        f"path {path} {direction}: {taker} received {after} of the {before} packets "
                        f"the {giver} passed on ({lost / before:.0%} lost, limit {max_loss:.0%})"
                    )
                    reasons.append(
                        ProofFailure(ProofCode.HOP_LOSS, text, path, direction, lost / before, max_loss, taker)
                    )
        return reasons


@dataclass(frozen=True)
class SessionDelivery:
    """The session end to end: the client's wg0 and the server's wg0, both directions (packet deltas)."""

    up_sent: int = 0
    up_delivered: int = 0
    down_sent: int = 0
    down_delivered: int = 0

    def problems(self, max_loss: float) -> list[ProofFailure]:
        reasons = []
        for direction, sent, delivered, giver, taker in (
            ("up", self.up_sent, self.up_delivered, "client", "server"),
            ("down", self.down_sent, self.down_delivered, "server", "client"),
        ):
            lost = sent - delivered
            if lost > max_loss * sent + IN_FLIGHT_SLACK:
                text = (
                    f"the session lost {lost} of {sent} packets {direction} ({lost / sent:.0%}, limit "
                    f"{max_loss:.0%}): the {taker}'s wg0 received {delivered} of what the {giver}'s sent"
                )
                reasons.append(ProofFailure(ProofCode.SESSION_LOSS, text, None, direction, lost / sent, max_loss))
        return reasons


@dataclass
class MigrationEvidence:
    plan: MigrationPlan
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
    faults: list[ProofFailure] = field(default_factory=list)  # what went wrong on a path during the run
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

    def switcher_behind(self, tolerance: float = 0.1) -> str | None:
        """Why the switcher itself did not keep the schedule (too few switches made, or made more than a
        quarter of an interval late at the median), or None: then the migration did not happen as
        scheduled, whatever the traffic shares say."""
        interval_s = self.plan.interval
        made, planned = len(self.applied_late_ms), self.planned_switches
        refused = any(fault.code == ProofCode.SWITCH_REFUSED for fault in self.faults)
        if not planned or not made or refused:
            return None
        median = statistics.median(self.applied_late_ms)
        if made < planned * (1 - tolerance) or median > interval_s * 1000 / 4:
            return (
                f"the machine could not follow a {interval_s:g} s schedule (the switcher made {made} of "
                f"{planned} planned switches, {median:.0f} ms late at the median)"
            )
        return None

    def behind_schedule(self, tolerance: float = 0.1) -> str | None:
        """Why the machine itself could not keep the schedule (e.g. an emulated guest), or None.

        The switcher applies every planned switch in turn, as soon as it is due; on a machine that
        is too slow it falls behind (fewer switches made than planned before the run ends, or made
        a good part of an interval late); or it makes them all and the watchers, polling on the same
        slow machine, see too few of them (the route monitor's switches, the server's endpoint
        sampled less than twice an interval)."""
        interval_s = self.plan.interval
        made, planned, seen = len(self.applied_late_ms), self.planned_switches, len(self.switches)
        refused = any(fault.code == ProofCode.SWITCH_REFUSED for fault in self.faults)
        if not planned or not made or refused:
            return None
        switcher = self.switcher_behind(tolerance)
        if switcher:
            return switcher
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

    def failures(self, tolerances: Tolerances | None = None) -> list[ProofFailure]:
        """Why this run does not prove migration (empty when it does).

        When the machine could not keep the schedule (behind_schedule), the checks that depend on
        timing (switch count, adherence, endpoint moves) give way to one line that says so: they
        would judge the machine, not migration. At the intervals the proof judges, a switcher that was
        late is that line even when the other checks pass. Faults and lost packets are judged as ever."""
        rules = tolerances or Tolerances()
        reasons = list(self.faults)
        timing: list[ProofFailure] = []
        done, planned = len(self.switches), self.planned_switches
        if done < planned * (1 - rules.switches):
            text = f"only {done} of {planned} planned switches happened (tolerance {rules.switches:.0%})"
            timing.append(ProofFailure(ProofCode.TOO_FEW_SWITCHES, text, figure=done, limit=planned))
        elif done > planned * (1 + rules.switches) + 1:
            text = (
                f"{done} switches happened where {planned} were planned: something else rewrote the "
                f"client's path table (tolerance {rules.switches:.0%})"
            )
            reasons.append(ProofFailure(ProofCode.TOO_MANY_SWITCHES, text, figure=done, limit=planned))
        for path in self.scheduled_paths:
            use = self.per_path.get(path)
            if use is None or use.bytes == 0 or use.packets == 0:
                text = f"path {path} was scheduled but carried nothing"
                reasons.append(ProofFailure(ProofCode.PATH_CARRIED_NOTHING, text, path, figure=0))
        for path, delivery in sorted(self.delivery.items()):
            reasons += delivery.problems(path, rules.max_path_loss, path in self.scheduled_paths)
        # Shares are judged where a schedule can be followed closely (--verdict-from-interval, 0.1 s):
        # below it a switch window holds a handful of packets and they are recorded, not judged.
        strict = self.plan.interval >= rules.verdict_from_interval
        if self.session is not None:
            reasons += self.session.problems(rules.max_path_loss)
        for path in self.scheduled_paths if planned and strict else ():
            adherence = self.adherence(path)
            if adherence is not None and adherence < rules.min_adherence:
                text = (
                    f"path {path} carried only {adherence:.0%} of the session's packets in the windows "
                    f"the schedule gave it (limit {rules.min_adherence:.0%})"
                )
                timing.append(ProofFailure(ProofCode.LOW_ADHERENCE, text, path, None, adherence, rules.min_adherence))
        if planned:
            unseen = sorted(set(self.scheduled_paths) - set(self.endpoint_paths))
            if self.endpoint_changes == 0:
                text = (
                    f"the server never saw the client's endpoint move ({self.endpoint_samples} samples, "
                    f"paths seen: {self.endpoint_paths or 'none'})"
                )
                timing.append(ProofFailure(ProofCode.ENDPOINT_NEVER_MOVED, text, figure=0))
            elif unseen:
                text = (
                    f"the server never saw the client on path {', '.join(map(str, unseen))} "
                    f"(paths seen: {self.endpoint_paths})"
                )
                timing.append(ProofFailure(ProofCode.PATH_NEVER_SEEN, text, unseen[0]))
            elif strict and self.endpoint_changes < rules.min_endpoint_moves * planned:
                text = (
                    f"the server saw the client's endpoint move {self.endpoint_changes} times for "
                    f"{planned} planned switches (limit {rules.min_endpoint_moves:.0%} of them)"
                )
                moves = self.endpoint_changes / planned
                timing.append(
                    ProofFailure(ProofCode.FEW_ENDPOINT_MOVES, text, figure=moves, limit=rules.min_endpoint_moves)
                )
        # A late switcher is named at the intervals the proof judges even when the shares still pass: the
        # migration did not happen as scheduled. Watchers starved by a slow machine only excuse failures.
        behind = (
            self.behind_schedule(rules.switches)
            if timing
            else (self.switcher_behind(rules.switches) if strict else None)
        )
        if behind:
            text = (
                f"{behind}: not a verdict on migration ({done} of {planned} planned switches seen, "
                f"{self.endpoint_changes} endpoint moves)"
            )
            return [*reasons, ProofFailure(ProofCode.BEHIND_SCHEDULE, text)]
        return reasons + timing

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plan"] = self.plan.describe()
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
