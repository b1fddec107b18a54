"""Proof that a migration run really moved the traffic (pure: built from recorded facts).

Every migration test stores one `MigrationEvidence` with its results and fails on `failures()`,
which judges everything the evidence holds: switches done against planned (fewer and more),
delivery hop by hop on every scheduled path in both directions (from the data plane: the client's
and the proxies' tunnel counters and the server's own packet counters), adherence of the traffic
to the path the schedule named, the paths and moves the server saw, and faults met during the run.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from harness.model.events import AppliedEvent, parse_events
from harness.model.schedule import MigrationPlan
from harness.model.settings import Tolerances, parse_faults
from harness.model.stats import summary

# Packets that may be in flight between two hops when the counters are read (per hop and direction).
IN_FLIGHT_SLACK = 50
MIN_JUDGED_SWITCHES = 2  # outside the path events: fewer, and the proof has nothing to stand on
# A hop that loses more than its sibling paths' same hop in the same run: at least this many percentage points
# more (under iperf3 TCP, wireguard-go's congestion loss differed between the two paths' same hop by up to 3.8
# points in one run: 4.6 % against 0.8 %; 2 points gave 4 false reds in 10 healthy runs), and significant with
# a one-sided two-proportion z test at this z (p < 3e-5 for one of the ~12 hops of a run: a Bonferroni bound
# far below one false red in a thousand runs).
RELATIVE_LOSS_EXCESS = 0.06
RELATIVE_LOSS_Z = 4.0
AT_REST_PPS = 50.0  # below this the session is quiet at the last read: keepalives, a handshake
IN_FLIGHT_S = 0.005  # how long a packet may take from one hop's counter to the next one's, under load
DIRECTIONS = ("up", "down")
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
    LOW_ADHERENCE = "low-adherence"  # the session followed the schedule less closely than --min-adherence
    SESSION_SILENT = "session-silent"  # the session sent nothing in a path's windows: nothing to follow
    PINNED_SESSION = "pinned-session"  # a path carried less in its windows than any healthy run: pinned
    ENDPOINT_NEVER_MOVED = "endpoint-never-moved"
    PATH_NEVER_SEEN = "path-never-seen"  # the server never saw the client on a scheduled path
    FEW_ENDPOINT_MOVES = "few-endpoint-moves"
    BEHIND_SCHEDULE = "behind-schedule"  # the machine could not keep the schedule: not a verdict
    EVENTS_COVER_RUN = "events-cover-run"  # path events covered (almost) every switch: nothing left to judge
    UNCLASSIFIED = "unclassified"  # read from a results file written before codes existed


# What does not prove a migration without showing a broken path: the session follows the schedule, but less
# closely than the proof asks, or the machine could not keep the schedule. Such a run is unproven (it gets
# no cost), not failed. Everything else is a broken path or a broken testbed: failed.
UNPROVEN_CODES = frozenset(
    {
        ProofCode.LOW_ADHERENCE,
        ProofCode.SESSION_SILENT,
        ProofCode.FEW_ENDPOINT_MOVES,
        ProofCode.BEHIND_SCHEDULE,
        ProofCode.TOO_FEW_SWITCHES,
        ProofCode.EVENTS_COVER_RUN,
    }
)
# The pinned floor needs this many windows of a path with packets: in one window (a measurement that ended
# just after its only switch) healthy wireguard-go under a download stayed on the old path (up 0.05, down
# 0.02 in 0.78 s, 53 releases): one window cannot tell an implementation that has not followed yet from a pin.
MIN_FLOOR_WINDOWS = 2


def pinned_floor(paths: int) -> float:
    """The adherence below which a path counts as pinned away (failed), from --verdict-from-interval.

    The rule: a session that does not follow the schedule at all still lands about 1/N of its packets on
    each of N paths by chance (healthy runs under load at 0.1 s, the worst that follows, gave 0.36 and
    up with 2 paths); a session pinned to another path lands none after the pin (the catalogue's
    `pinned`, 0.5 s into a 2 s run at 0.1 s, leaves the path 0.19-0.20 over all its windows, from the
    windows before the pin, 0.27-0.28 on docker; pinned from the start, 0.00-0.05). The floor is 60 % of
    the chance level: 0.3 with 2 paths, between the two. Below --verdict-from-interval it is not judged: there a lagging
    wireguard-go under a download gave 0.17, as low as a pin."""
    return 0.6 / max(1, paths)


class ProofOutcome(StrEnum):
    """What a migrating repetition's evidence says of its figure: a cost, a broken path, or no proof."""

    PROVEN = "proven"  # the migration happened as scheduled, under that load: its figure is a cost
    FAILED = "failed"  # a broken path or testbed: the test fails with the proof's line
    UNPROVEN = "unproven"  # the session did not follow closely enough (or was not judged): no cost


@dataclass(frozen=True)
class Proof:
    """The judgement of one run's evidence: its outcome, why (one line), and its adherence per direction."""

    outcome: ProofOutcome
    reason: str = ""
    failures: tuple[ProofFailure, ...] = ()
    adherence_up: float | None = None
    adherence_down: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "reason": self.reason,
            "failures": [asdict(failure) for failure in self.failures],
            "adherence_up": self.adherence_up,
            "adherence_down": self.adherence_down,
        }


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

    def __add__(self, other: PathDelivery) -> PathDelivery:
        """Two stretches of one run together (the time outside its events)."""
        return PathDelivery(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(PathDelivery)))

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


def in_flight(packets: int, duration_s: float, skew_ms: float) -> int:
    """Packets that may be between two hops when the run's last counters are read: the run's own packet rate
    over the read skew plus IN_FLIGHT_S, and a few more (keepalives, a handshake)."""
    rate = packets / duration_s if duration_s > 0 else 0.0
    return math.ceil(rate * (skew_ms / 1000 + IN_FLIGHT_S)) + 5


def relative_loss(
    delivery: dict[int, PathDelivery], scheduled: list[int], slack: dict[str, int] | None = None
) -> list[ProofFailure]:
    """Hops that lost significantly more than the same hop of the other scheduled paths in the same run.

    Congestion and queueing loss hit every path alike, so a path is judged against its siblings: its loss
    (less `slack`, per direction: what may be in flight, see in_flight) against theirs pooled, with a one-sided
    two-proportion z test, and only when the excess is also at least RELATIVE_LOSS_EXCESS (tiny differences
    over huge counts are significant and harmless). The absolute --max-path-loss limit stays as the upper
    bound (PathDelivery.problems)."""
    reasons = []
    paths = [path for path in scheduled if path in delivery]
    for direction, hops in HOPS.items():
        allowed = (slack or {}).get(direction, IN_FLIGHT_SLACK)
        for position in range(len(hops) - 1):
            counts = {}
            for path in paths:
                row = delivery[path].counts(direction)
                before, after = row[position], row[position + 1]
                counts[path] = (max(0, before - after - allowed), before)
            for path, (lost, total) in counts.items():
                others = [counts[other] for other in paths if other != path]
                other_lost, other_total = sum(o[0] for o in others), sum(o[1] for o in others)
                if not total or not other_total:
                    continue
                z = two_proportion_z(lost, total, other_lost, other_total)
                rate, other_rate = lost / total, other_lost / other_total
                if z >= RELATIVE_LOSS_Z and rate - other_rate >= RELATIVE_LOSS_EXCESS:
                    giver, taker = hops[position][0], hops[position + 1][0]
                    text = (
                        f"path {path} {direction}: {taker} lost {rate:.1%} of what the {giver} passed on, against "
                        f"{other_rate:.1%} on the other paths' same hop in this run (z = {z:.1f}, limit "
                        f"{RELATIVE_LOSS_Z:g} and {RELATIVE_LOSS_EXCESS:.0%} more)"
                    )
                    reasons.append(
                        ProofFailure(
                            ProofCode.HOP_LOSS, text, path, direction, rate, other_rate + RELATIVE_LOSS_EXCESS, taker
                        )
                    )
    return reasons


def two_proportion_z(lost_a: int, n_a: int, lost_b: int, n_b: int) -> float:
    """The pooled two-proportion z statistic of rate a over rate b (0 when both are 0 or both are 1)."""
    pooled = (lost_a + lost_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return 0.0 if spread == 0 else (lost_a / n_a - lost_b / n_b) / spread


@dataclass(frozen=True)
class SessionDelivery:
    """The session end to end: the client's wg0 and the server's wg0, both directions (packet deltas)."""

    up_sent: int = 0
    up_delivered: int = 0
    down_sent: int = 0
    down_delivered: int = 0

    def __add__(self, other: SessionDelivery) -> SessionDelivery:
        return SessionDelivery(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(SessionDelivery)))

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
    # adherence windows: (the path the schedule named, share of the session's packets on it, packets), both
    # directions together (windows), and per direction from the client's own counters: up, what its wgnets
    # sent of what its wg0 sent; down, what its wgnets received of what its wg0 received (which proxy
    # delivered the session). Only the client's counters: the same holds when the server is a remote host.
    windows: list[tuple[int, float, int]] = field(default_factory=list)
    windows_up: list[tuple[int, float, int]] = field(default_factory=list)
    windows_down: list[tuple[int, float, int]] = field(default_factory=list)
    # per switch the route monitor saw: ms until the server's endpoint was on the new path (None: not
    # before the next switch), and how often it flipped back to another path before that next switch
    endpoint_follow: list[tuple[float | None, int]] = field(default_factory=list)
    read_skew_ms: float = 0.0  # how far apart the counter reads of the hosts were (end of the run)
    # packets/s of the session per direction as the last counters were read (None: not measured, older results)
    end_rate_pps: dict[str, float] | None = None
    faults: list[ProofFailure] = field(default_factory=list)  # what went wrong on a path during the run
    injected: list[str] = field(default_factory=list)  # faults the plan asked for (--fault), as applied
    applied_late_ms: list[float] = field(default_factory=list)  # per switch the switcher made: ms after its time
    # --event: what the paths did (AppliedEvent), and the time they were on for, reported apart: `delivery`,
    # `session` and the windows above hold the time outside every event (what the proof judges); the
    # event_* fields hold the events' own time (expected loss, not a broken proof)
    events: list[AppliedEvent] = field(default_factory=list)
    event_delivery: dict[int, PathDelivery] = field(default_factory=dict)
    event_session: SessionDelivery | None = None
    event_windows: list[tuple[int, float, int]] = field(default_factory=list)
    event_planned_switches: int = 0  # planned switches inside an event: the endpoint cannot follow to a dead path
    event_endpoint_changes: int = 0
    # the skew (ms) of every counter read at an event's edge: each such read mid-stream leaves packets in
    # flight between two hops, on either side of it, like the last read (in_flight_slack counts them all)
    edge_skews_ms: list[float] = field(default_factory=list)
    # every 0.1 s while events ran: (s after the start, [[path, packets up, packets down, bytes up, bytes
    # down], ...]), cumulative, of what each path delivered (up: its proxy's tunnel received; down: the
    # client's wgnet received): the timeline the report draws under each event
    path_series: list[tuple[float, list[list[int]]]] = field(default_factory=list)

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

    def _windows_of(self, direction: str | None) -> list[tuple[int, float, int]]:
        if direction is None:
            return self.windows
        return self.windows_up if direction == "up" else self.windows_down

    @property
    def directed(self) -> bool:
        """Whether adherence was kept per direction (results written before that hold both together)."""
        return bool(self.windows_up or self.windows_down)

    def adherence(self, path: int | None = None, direction: str | None = None) -> float | None:
        """The share of the session's packets (as the client's wg0 counts them; `direction` up or down, or
        None for both together) that used the path the schedule named: over every window, or over the
        windows that named `path`."""
        windows = [w for w in self._windows_of(direction) if path is None or w[0] == path]
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
                if self.silent_in(path):
                    text = (
                        f"path {path} carried nothing, and the session sent nothing in the windows the schedule "
                        "gave it (its traffic had stalled): nothing to follow"
                    )
                    timing.append(ProofFailure(ProofCode.SESSION_SILENT, text, path, figure=0))
                    continue
                text = f"path {path} was scheduled but carried nothing"
                reasons.append(ProofFailure(ProofCode.PATH_CARRIED_NOTHING, text, path, figure=0))
        absolute = []
        for path, delivery in sorted(self.delivery.items()):
            absolute += delivery.problems(path, rules.max_path_loss, path in self.scheduled_paths)
        judged = {(f.path, f.direction, f.hop) for f in absolute}
        reasons += absolute + [
            f
            for f in (
                relative_loss(self.delivery, self.scheduled_paths, self.in_flight_slack()) if self.at_rest() else []
            )
            if (f.path, f.direction, f.hop) not in judged and (f.path, f.direction, None) not in judged
        ]
        # Shares are judged where a schedule can be followed closely (--verdict-from-interval, 0.1 s):
        # below it a switch window holds a handful of packets and they are recorded, not judged.
        strict = self.plan.interval >= rules.verdict_from_interval
        if self.session is not None:
            reasons += self.session.problems(rules.max_path_loss)
        floor = pinned_floor(len(self.scheduled_paths))
        for path in self.scheduled_paths if planned else ():
            for direction in DIRECTIONS if self.directed else (None,):
                adherence = self.adherence(path, direction)
                where = f" {direction}" if direction else ""
                windows = sum(1 for w in self._windows_of(direction) if w[0] == path)
                pinned = (
                    strict
                    and adherence is not None
                    and adherence < floor
                    and windows >= MIN_FLOOR_WINDOWS
                    and self.still_away(path, floor)
                )
                if pinned:  # far below what a healthy implementation that follows reaches: a pinned session
                    text = (
                        f"path {path} carried only {adherence:.0%} of the session's packets{where} in the windows "
                        f"the schedule gave it, below the {floor:.0%} that a session not following at all "
                        "still reaches: the session is pinned to another path"
                    )
                    reasons.append(ProofFailure(ProofCode.PINNED_SESSION, text, path, direction, adherence, floor))
                elif strict and adherence is not None and adherence < rules.min_adherence:  # includes a lone window
                    text = (
                        f"path {path} carried only {adherence:.0%} of the session's packets{where} in the windows "
                        f"the schedule gave it (limit {rules.min_adherence:.0%})"
                    )
                    timing.append(
                        ProofFailure(ProofCode.LOW_ADHERENCE, text, path, direction, adherence, rules.min_adherence)
                    )
        # a path the session was silent in is named once, as such: the server cannot have seen the client on it
        silent = {f.path for f in timing if f.code == ProofCode.SESSION_SILENT}
        judged_switches = planned - self.event_planned_switches  # outside the events: where moves can be seen
        judged_moves = self.endpoint_changes - self.event_endpoint_changes
        if planned and self.events and judged_switches < MIN_JUDGED_SWITCHES:
            text = (
                f"path events covered {self.event_planned_switches} of the {planned} planned switches: too little "
                "outside them to judge (the proof judges the time outside the events)"
            )
            timing.append(ProofFailure(ProofCode.EVENTS_COVER_RUN, text, figure=judged_switches))
        if planned and not silent:
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
            elif strict and judged_switches > 0 and judged_moves < rules.min_endpoint_moves * judged_switches:
                apart = " outside the events" if self.events else ""
                text = (
                    f"the server saw the client's endpoint move {judged_moves} times for "
                    f"{judged_switches} planned switches{apart} (limit {rules.min_endpoint_moves:.0%} of them)"
                )
                moves = judged_moves / judged_switches
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

    def silent_in(self, path: int) -> bool:
        """Whether the client's wg0 counted no packet of the session in any window the schedule gave `path`
        (windows recorded): then a path that carried nothing shows a stalled session, not a broken path. A
        forward-drop on path 2 that ate a download's SYN and its retransmission left the session silent
        for the rest of the 2 s run, and path 1 carried nothing."""
        windows = [packets for named, _, packets in self.windows if named == path]
        return bool(windows) and not any(windows)

    def still_away(self, path: int, floor: float) -> bool:
        """Whether the session was still away from `path` in the last window the schedule gave it (both
        directions together): a pin lasts, a lag does not. A healthy wireguard-go under iperf3 at 1 s once
        stayed on the old path for 0.9 s of one window (up 0.09) and followed in the next (0.99): low
        adherence, unproven; the catalogue's `pinned` leaves every window after the pin near 0."""
        windows = [share for named, share, packets in self.windows if named == path and packets]
        return not windows or windows[-1] < floor

    def at_rest(self) -> bool:
        """Whether the session was quiet as the last counters were read (the relative loss check needs it:
        with a stream still running, docker's slow reads put 150 packets between two hops' counters), or
        its rate was not measured (older results)."""
        return self.end_rate_pps is None or all(rate < AT_REST_PPS for rate in self.end_rate_pps.values())

    def in_flight_slack(self) -> dict[str, int]:
        """Per direction, the packets that may be in flight between two hops at the last read (in_flight), at
        the session's average rate over the run; the relative check is judged only at rest (at_rest)."""
        slack = {}
        for direction in DIRECTIONS:
            if self.session is not None:
                packets = self.session.up_sent if direction == "up" else self.session.down_sent
            else:
                packets = sum(d.counts(direction)[0] for d in self.delivery.values())
            reads = [self.read_skew_ms, *self.edge_skews_ms]
            slack[direction] = sum(in_flight(packets, self.duration_s, skew) for skew in reads)
        return slack

    def judge(self, tolerances: Tolerances | None = None) -> Proof:
        """Whether this run's figure may stand as a cost: proven, failed (a broken path: the proof's first
        line says where), or unproven (the session did not follow the schedule closely enough, the machine
        could not keep it, or the interval is below --verdict-from-interval, where nothing is judged)."""
        rules = tolerances or Tolerances()
        failures = self.failures(rules)
        up, down = self.adherence(direction="up"), self.adherence(direction="down")
        if not self.directed:
            up = down = self.adherence()
        broken = [f for f in failures if f.code not in UNPROVEN_CODES]
        if broken:
            return Proof(ProofOutcome.FAILED, broken[0].text, tuple(failures), up, down)
        if failures:
            return Proof(ProofOutcome.UNPROVEN, unproven_reason(failures[0]), tuple(failures), up, down)
        if self.planned_switches and self.plan.interval < rules.verdict_from_interval:
            reason = (
                f"below --verdict-from-interval {rules.verdict_from_interval:g} s: adherence "
                f"{_share(up)} up, {_share(down)} down, recorded and not judged"
            )
            return Proof(ProofOutcome.UNPROVEN, reason, (), up, down)
        return Proof(ProofOutcome.PROVEN, "", (), up, down)

    def follow_summary(self) -> dict[str, Any]:
        """How the server's endpoint followed the switches: ms until it did, flips back, switches it missed."""
        followed = [ms for ms, _ in self.endpoint_follow if ms is not None]
        return {
            "switches": len(self.endpoint_follow),
            "missed": sum(1 for ms, _ in self.endpoint_follow if ms is None),
            "follow_ms": summary(followed),
            "flips_back": sum(flips for _, flips in self.endpoint_follow),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationEvidence:
        """Back from `to_dict` (a results file's record), so that reports judge with the very same proof."""
        described = data.get("plan") or {}
        faults = described.get("faults") or []
        events = described.get("events") or []
        plan = MigrationPlan(
            strategy=described.get("strategy", "alternate"),
            interval=described.get("interval_s", 0.1),
            paths=tuple(described.get("paths") or (1, 2)),
            duration=described.get("duration_s", 2.0),
            jitter=described.get("jitter_s", 0.0),
            seed=described.get("seed", 0),
            weights=tuple(described["weights"]) if described.get("weights") else None,
            mechanism=described.get("mechanism", "netlink"),
            sticky_source=described.get("sticky_source", "auto"),
            faults=parse_faults(",".join(faults), "the recorded plan's faults") if faults else (),
            events=parse_events(",".join(events), "the recorded plan's events") if events else (),
        )
        names = {f.name for f in fields(cls)} - {"plan"}
        kept = {name: data[name] for name in names if name in data}

        def tuples(key: str) -> list[tuple[Any, ...]]:
            return [tuple(item) for item in kept.get(key, [])]

        return cls(
            **{
                **kept,
                "plan": plan,
                "switches": [SwitchRecord(**s) for s in kept.get("switches", [])],
                "per_path": {int(k): PathUse(**v) for k, v in kept.get("per_path", {}).items()},
                "delivery": {int(k): PathDelivery(**v) for k, v in kept.get("delivery", {}).items()},
                "session": SessionDelivery(**kept["session"]) if kept.get("session") else None,
                "windows": tuples("windows"),
                "windows_up": tuples("windows_up"),
                "windows_down": tuples("windows_down"),
                "endpoint_follow": tuples("endpoint_follow"),
                "faults": [ProofFailure.read(f) for f in kept.get("faults", [])],
                "events": [AppliedEvent.from_dict(e) for e in kept.get("events", [])],
                "event_delivery": {int(k): PathDelivery(**v) for k, v in kept.get("event_delivery", {}).items()},
                "event_session": SessionDelivery(**kept["event_session"]) if kept.get("event_session") else None,
                "event_windows": tuples("event_windows"),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plan"] = self.plan.describe()
        data["per_path"] = {str(k): asdict(v) for k, v in sorted(self.per_path.items())}
        data["split_ratio"] = {str(k): round(v, 4) for k, v in self.split_ratio().items()}
        data["longest_on_one_path_s"] = round(self.longest_on_one_path_s(), 4)
        data["timing_error_ms"] = self.timing_error_ms()
        data["no_route_ms"] = self.no_route_ms()
        data["delivery"] = {str(k): asdict(v) for k, v in sorted(self.delivery.items())}
        data["event_delivery"] = {str(k): asdict(v) for k, v in sorted(self.event_delivery.items())}
        data["events"] = [event.to_dict() for event in self.events]
        data["adherence_by_path"] = {
            str(k): None if (a := self.adherence(k)) is None else round(a, 4) for k in self.scheduled_paths
        }
        adherence = self.adherence()
        data["adherence"] = None if adherence is None else round(adherence, 4)
        for direction in DIRECTIONS if self.directed else ():
            value = self.adherence(direction=direction)
            data[f"adherence_{direction}"] = None if value is None else round(value, 4)
            data[f"adherence_{direction}_by_path"] = {
                str(k): None if (a := self.adherence(k, direction)) is None else round(a, 4)
                for k in self.scheduled_paths
            }
        data["endpoint_follow_summary"] = self.follow_summary()
        return data


def _share(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def unproven_reason(failure: ProofFailure) -> str:
    """The short line an unproven cost shows instead of a ratio, e.g. 'path 1 adherence up 0.49 < 0.6'."""
    if failure.code == ProofCode.LOW_ADHERENCE and failure.figure is not None and failure.limit is not None:
        where = f" {failure.direction}" if failure.direction else ""
        return f"path {failure.path} adherence{where} {failure.figure:.2f} < {failure.limit:g}"
    if failure.code == ProofCode.FEW_ENDPOINT_MOVES and failure.figure is not None:
        return f"endpoint moves {failure.figure:.2f} per switch < {failure.limit:g}"
    return failure.text
