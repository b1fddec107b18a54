"""Loss, duplication and reordering of the UDP probe, attributed to the nearest path switch (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.model.stats import summary


@dataclass(frozen=True)
class LossReport:
    sent: int
    received: int
    lost: int
    duplicated: int
    reordered: int
    reorder_depth_max: int
    switches: int
    lost_per_switch: list[int]
    loss_window_ms: list[float]
    lost_without_switch: int

    def to_dict(self) -> dict:
        return {
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "reorder_depth_max": self.reorder_depth_max,
            "switches": self.switches,
            "lost_per_switch": summary(self.lost_per_switch) if self.switches else None,
            "lost_per_switch_mean": round(sum(self.lost_per_switch) / self.switches, 4) if self.switches else None,
            "loss_window_ms": summary(self.loss_window_ms),
            "lost_without_switch": self.lost_without_switch,
        }


def analyze(probe: dict, switch_times: list[float], *, attribution_s: float = 0.5) -> LossReport:
    """`probe` is what probe.py send printed; `switch_times` are CLOCK_MONOTONIC seconds.

    A lost packet belongs to the switch nearest to its send time when that is within
    `attribution_s`; otherwise it counts as lost without a switch.
    """
    sent = int(probe["sent"])
    period = 1.0 / float(probe["rate"])
    start = float(probe["started_at"])
    echoes = probe["echoes"]
    seen = Counter(int(e[0]) for e in echoes)
    lost_seqs = [seq for seq in range(sent) if seq not in seen]
    reordered, depth, highest = 0, 0, -1
    for raw_seq, _, _ in sorted(echoes, key=lambda e: e[2]):
        seq = int(raw_seq)
        if seq < highest:
            reordered += 1
            depth = max(depth, highest - seq)
        highest = max(highest, seq)
    per_switch: list[list[float]] = [[] for _ in switch_times]
    unattributed = 0
    for seq in lost_seqs:
        sent_at = start + seq * period
        if switch_times:
            nearest = min(range(len(switch_times)), key=lambda i: abs(switch_times[i] - sent_at))
            if abs(switch_times[nearest] - sent_at) <= attribution_s:
                per_switch[nearest].append(sent_at)
                continue
        unattributed += 1
    windows = [round((max(t) - min(t) + period) * 1000, 3) for t in per_switch if t]
    return LossReport(
        sent=sent,
        received=len(seen),
        lost=len(lost_seqs),
        duplicated=sum(n - 1 for n in seen.values() if n > 1),
        reordered=reordered,
        reorder_depth_max=depth,
        switches=len(switch_times),
        lost_per_switch=[len(t) for t in per_switch],
        loss_window_ms=windows,
        lost_without_switch=unattributed,
    )
