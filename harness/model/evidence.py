"""Proof that a migration run really moved the traffic (pure: built from recorded facts).

Every migration test stores one `MigrationEvidence` with its results and fails on `failures()`:
fewer switches than planned (beyond a tolerance), a scheduled path that carried nothing, or a
server that never saw the client's endpoint move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.model.stats import summary


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
    """What one proxy carried for the client during the run (deltas of its counters)."""

    bytes: int
    packets: int


@dataclass
class MigrationEvidence:
    plan: dict
    duration_s: float
    planned_switches: int
    scheduled_paths: list[int]
    switches: list[SwitchRecord] = field(default_factory=list)
    per_path: dict[int, PathUse] = field(default_factory=dict)
    endpoint_changes: int = 0
    endpoint_samples: int = 0
    endpoint_paths: list[int] = field(default_factory=list)
    sticky_guard: bool = False
    started_monotonic: float = 0.0  # CLOCK_MONOTONIC at the start: switch times are relative to it
    guard_releases: int = 0

    # -- derived figures -------------------------------------------------------------------
    def switch_times_monotonic(self) -> list[float]:
        return [self.started_monotonic + s.actual_s for s in self.switches]

    def split_ratio(self) -> dict[int, float]:
        total = sum(use.bytes for use in self.per_path.values())
        return {path: (use.bytes / total if total else 0.0) for path, use in sorted(self.per_path.items())}

    def longest_on_one_path_s(self) -> float:
        times = [0.0, *(s.actual_s for s in self.switches), self.duration_s]
        return max(b - a for a, b in zip(times, times[1:]))

    def timing_error_ms(self) -> dict:
        return summary([e for s in self.switches if (e := s.error_ms) is not None])

    def no_route_ms(self) -> dict:
        return summary([s.no_route_ms for s in self.switches if s.no_route_ms is not None])

    def failures(self, switch_tolerance: float = 0.1) -> list[str]:
        """Why this run does not prove migration (empty when it does)."""
        reasons = []
        needed = self.planned_switches * (1 - switch_tolerance)
        if len(self.switches) < needed:
            reasons.append(f"only {len(self.switches)} of {self.planned_switches} planned switches happened "
                           f"(tolerance {switch_tolerance:.0%})")
        for path in self.scheduled_paths:
            use = self.per_path.get(path)
            if use is None or use.bytes == 0 or use.packets == 0:
                reasons.append(f"path {path} was scheduled but carried nothing")
        if self.planned_switches and self.endpoint_changes == 0:
            reasons.append(f"the server never saw the client's endpoint move ({self.endpoint_samples} samples, "
                           f"paths seen: {self.endpoint_paths or 'none'})")
        return reasons

    def to_dict(self) -> dict:
        data = asdict(self)
        data["per_path"] = {str(k): asdict(v) for k, v in sorted(self.per_path.items())}
        data["split_ratio"] = {str(k): round(v, 4) for k, v in self.split_ratio().items()}
        data["longest_on_one_path_s"] = round(self.longest_on_one_path_s(), 4)
        data["timing_error_ms"] = self.timing_error_ms()
        data["no_route_ms"] = self.no_route_ms()
        return data
