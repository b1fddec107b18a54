"""What a session lives through when a path misbehaves, with and without migration (bench events, the
path-events scenarios).

Each event is played on path 1, the path the session keeps when it does not migrate, so that "without"
is a single-path user living through the same event and "with" is the same session split by alternate
at 0.1 s. The load is the probe (500 packets/s each way, 200 bytes; 1,300 for `mtu`, so that its packets
do not fit the lowered MTU), for as long as the event and SURVIVAL_S after it. Per pair (baseline first,
interleaved): lost packets and the longest stall each way, the recovery after the event's end, whether the
session survived, endpoint moves and the path the server ended on (harness.measure.lived).

The verdict per event compares the pairs' differences (with - without) of the packets lost both ways:
their median's distribution-free interval wholly above 0 is "more", wholly below "less", else "the same".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from harness.measure.lived import SURVIVAL_S, lived_through
from harness.measure.services import ConditionResult, OriginServices, interleave
from harness.model.events import EventKind, EventSpec, parse_events
from harness.model.schedule import MigrationPlan
from harness.model.stats import median_interval

EVENTS = (
    "blackhole@1.5+1.5:1",
    "flap=0.4@1.5+2:1",
    "rate=0.5@1.5+1.5:1",
    "trace=wifi-dropouts@0.5+9.5:1",
    "rebind@2:1",
    "conntrack-expiry=1@1+3:1",
    "rekey@2",
    "mtu=1280/noicmp@1.5+1.5:1",
)
PROBE_RATE = 500.0
PROBE_SIZE = 200
MTU_PROBE_SIZE = 1300
INTERVAL_S = 0.1
Recorder = Callable[[str, str, int, ConditionResult], None]  # event, condition, repetition, result


def default_events() -> tuple[EventSpec, ...]:
    return parse_events(",".join(EVENTS), "the bench's events")


def key_of(spec: EventSpec, specs: tuple[EventSpec, ...]) -> str:
    """The event's name, or its whole description where two events share a name."""
    same = [s for s in specs if s.kind == spec.kind]
    return str(spec.kind) if len(same) == 1 else spec.describe()


def stream_seconds(spec: EventSpec) -> float:
    end = spec.end if spec.end is not None else spec.at
    return end + SURVIVAL_S + 0.5


def figures_of(result: ConditionResult, server_path: int | None) -> dict[str, Any]:
    """The probe's raw stream replaced by what the session lived through in the event's window."""
    evidence = result.evidence
    (applied,) = evidence.events
    window = applied.window(evidence.duration_s)
    if window is None:
        return {"error": f"{applied.event} was never applied"}
    start, end = (evidence.started_monotonic + t for t in window)
    lived = lived_through(result.figures, start, end)
    return {
        **lived,
        "event": applied.event,
        "applied_s": applied.applied_s,
        "note": applied.note,
        "endpoint_moves": evidence.endpoint_changes,
        "server_path": server_path,
    }


def measure_event(
    services: OriginServices, spec: EventSpec, pairs: int, record: Recorder | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[ConditionResult]]:
    """`pairs` interleaved pairs of one event: (without, with) figures, and the migrating results (their proof)."""
    network = services.network
    seconds = stream_seconds(spec)
    plan = MigrationPlan(interval=INTERVAL_S, paths=network.topology.path_ids, duration=seconds + 2, events=(spec,))
    size = MTU_PROBE_SIZE if spec.kind == EventKind.MTU else PROBE_SIZE

    def measure() -> dict:
        return services.probe_both_ways(seconds, PROBE_RATE, size)

    def on_result(condition: str, rep: int, result: ConditionResult) -> None:
        result.figures = figures_of(result, network.path_of_endpoint(network.server_endpoint()))
        if record is not None:
            record(str(spec.kind), condition, rep, result)

    baseline, migrating = interleave(network, plan, pairs, measure, on_result)
    return [r.figures for r in baseline], [r.figures for r in migrating], migrating


def _median(values: list[float]) -> float | None:
    return None if not values else round(statistics.median(values), 3)


def _ci(values: list[float]) -> list[float] | None:
    if not values:
        return None
    low, high, _ = median_interval(values)
    return [round(low, 3), round(high, 3)]


def summarize(
    without: list[dict[str, Any]], with_: list[dict[str, Any]], proofs: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The bench's object for one event (the issue's fields, medians with their intervals as *_ci); `proofs`:
    each migrating pair's (outcome, reason). A pair whose migration is not proven makes the verdict unproven:
    its figures are reported, and no cost is drawn from them."""
    out: dict[str, Any] = {"n": min(len(without), len(with_))}
    sides = {"with": with_, "without": without}
    for name, pick in (
        ("lost_up", lambda f: f["lost_up"]),
        ("lost_down", lambda f: f["lost_down"]),
        ("stall_ms", lambda f: max(f["stall_ms_up"], f["stall_ms_down"])),
        ("recovery_ms", lambda f: _worst(f["recovery_ms_up"], f["recovery_ms_down"])),
    ):
        for side, rows in sides.items():
            values = [v for row in rows if "error" not in row and (v := pick(row)) is not None]
            out[f"{name}_{side}"] = _median(values)
            out[f"{name}_{side}_ci"] = _ci(values)
    for side, rows in sides.items():
        out[f"session_survived_{side}"] = bool(rows) and all(row.get("session_survived") is True for row in rows)
        out[f"endpoint_moves_{side}"] = _median([row.get("endpoint_moves", 0) for row in rows])
        out[f"server_path_{side}"] = sorted({row.get("server_path") for row in rows}, key=str)
    diffs = [
        (w["lost_up"] + w["lost_down"]) - (b["lost_up"] + b["lost_down"])
        for b, w in zip(without, with_)
        if "error" not in b and "error" not in w
    ]
    out["lost_difference"] = _median(diffs)
    out["lost_difference_ci"] = _ci(diffs)
    out["ci_coverage"] = median_interval(diffs)[2] if diffs else None
    out["verdict"] = verdict(diffs)
    if proofs is not None:
        out["proofs"] = [outcome for outcome, _ in proofs]
        unproven = [reason or outcome for outcome, reason in proofs if outcome != "proven"]
        if unproven:
            out["verdict"] = f"unproven: {unproven[0]}"
    out["notes"] = sorted({row.get("note", "") for row in with_ + without if row.get("note")})
    return out


def _worst(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if len(known) == len(values) else None


def verdict(diffs: list[float]) -> str:
    """Whether migrating made the event cost more packets, fewer, or the same (the interval holds 0)."""
    if not diffs:
        return "unmeasured"
    low, high, coverage = median_interval(diffs)
    if coverage < 0.95:
        return f"undecided: {len(diffs)} pairs give a {coverage:.0%} interval (6 give 97%)"
    if low > 0:
        return "more"
    if high < 0:
        return "less"
    return "the same"
