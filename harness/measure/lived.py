"""What the session lived through during a path event, from the probe and its recording echo (pure).

The probe sends packet `seq` at `started_at + seq / rate`; the recording echo kept when each reached the
origin (up), and the probe when each echo came back (down). On one kernel's clock (the hosts share it),
per direction, from the event's start until SURVIVAL_S after its end:
- lost: up, the packets sent that never reached the origin; down, those that reached it and never came back;
- the longest stall: the longest run of consecutive lost packets of that direction, in ms of sending time
  (up: the probe's send times; down: the origin's receive times, when it sent the echo);
- recovery: ms from the event's end until the first packet delivered after it (up: received at the origin;
  down: an echo back at the client) that was sent after the end;
- survived: both directions delivered again within SURVIVAL_S of the end (nothing is restarted meanwhile).

`summarize` turns pairs of these (without and with migration) into medians with distribution-free intervals
and a verdict: the pairs' differences (with - without) of the packets lost both ways, whose median's
interval wholly above 0 is "more", wholly below "less", else "the same" (fewer than 6 pairs: undecided).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from harness.model.stats import median_interval

SURVIVAL_S = 5.0


def _longest_run_ms(times: Sequence[float], lost: Sequence[bool], period: float) -> float:
    """The longest stretch of consecutive lost packets (in order), from its first to its last, plus one period."""
    longest, first = 0.0, None
    for at, gone in zip(times, lost):
        if gone:
            first = at if first is None else first
            longest = max(longest, at - first + period)
        else:
            first = None
    return round(longest * 1000, 3)


def lived_through(probe: dict[str, Any], start: float, end: float, survival_s: float = SURVIVAL_S) -> dict[str, Any]:
    """`probe` as OriginServices.probe_both_ways gives it; `start`, `end`: the event's window (CLOCK_MONOTONIC)."""
    sent, rate, t0 = int(probe["sent"]), float(probe["rate"]), float(probe["started_at"])
    period = 1.0 / rate
    horizon = end + survival_s
    up_at = {int(seq): float(at) for seq, at in probe["received_up"]}
    down_at: dict[int, float] = {}
    for seq, _, echoed_at in probe["echoes"]:
        down_at.setdefault(int(seq), float(echoed_at))
    span = [seq for seq in range(sent) if start <= t0 + seq * period < horizon]
    up_lost = [seq not in up_at for seq in span]
    reached = sorted((up_at[seq], seq) for seq in span if seq in up_at)
    down_lost = [seq not in down_at for _, seq in reached]
    after_up = [up_at[seq] for seq in range(sent) if seq in up_at and t0 + seq * period >= end]
    after_down = [at for seq, at in down_at.items() if seq in up_at and up_at[seq] >= end]
    recovery_up = round((min(after_up) - end) * 1000, 3) if after_up else None
    recovery_down = round((min(after_down) - end) * 1000, 3) if after_down else None
    covered = t0 + sent * period >= horizon  # the stream lasted long enough to tell
    survived = all(r is not None and r <= survival_s * 1000 for r in (recovery_up, recovery_down))
    return {
        "sent": len(span),
        "lost_up": sum(up_lost),
        "lost_down": sum(down_lost),
        "stall_ms_up": _longest_run_ms([t0 + seq * period for seq in span], up_lost, period),
        "stall_ms_down": _longest_run_ms([at for at, _ in reached], down_lost, period),
        "recovery_ms_up": recovery_up,
        "recovery_ms_down": recovery_down,
        "session_survived": survived if (survived or covered) else None,
        "window_s": [round(start - t0, 3), round(end - t0, 3)],
    }


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
