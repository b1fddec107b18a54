"""What a session lives through when a path misbehaves, with and without migration (bench events, the
path-events scenarios).

Each event is played on path 1, the path the session keeps when it does not migrate, so that "without"
is a single-path user living through the same event and "with" is the same session split by alternate
at 0.1 s. The load is the probe (500 packets/s each way, 200 bytes; 1,300 for `mtu`, so that its packets
do not fit the lowered MTU), for as long as the event and SURVIVAL_S after it. Per pair (baseline first,
interleaved): lost packets and the longest stall each way, the recovery after the event's end, whether the
session survived, endpoint moves and the path the server ended on (harness.measure.lived).
The verdict per event (harness.measure.lived.summarize) compares the pairs' differences (with - without) of
the packets lost both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.measure.lived import SURVIVAL_S, lived_through
from harness.measure.services import ConditionResult, OriginServices, interleave
from harness.model.events import EventKind, EventSpec, parse_events
from harness.model.schedule import MigrationPlan

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
