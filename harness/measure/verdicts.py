"""One comparison method for every scenario: same-run baseline, interleaved repetitions, ratio verdicts (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from harness.errors import MeasurementError


def ratio_verdict(baseline: Sequence[float], condition: Sequence[float], *, limit: float | None,
                  higher_is_better: bool) -> dict:
    """Median of the condition over median of the baseline, checked against `limit` (None: report only)."""
    if not baseline or not condition:
        raise MeasurementError("a ratio needs measurements of both the baseline and the condition")
    base, value = statistics.median(baseline), statistics.median(condition)
    ratio = value / base if base else float("inf")
    if limit is None:
        ok, rule = True, "reported only"
    elif higher_is_better:
        ok, rule = ratio >= limit, f">= {limit:g} x baseline"
    else:
        ok, rule = ratio <= limit, f"<= {limit:g} x baseline"
    return {"ratio": round(ratio, 4), "baseline_median": base, "median": value, "limit": limit, "rule": rule,
            "ok": ok, "baseline": list(baseline), "values": list(condition)}


def describe(name: str, verdict: dict) -> str:
    return (f"{name}: {verdict['ratio']:.3f} x baseline ({verdict['median']:.4g} vs {verdict['baseline_median']:.4g}, "
            f"rule {verdict['rule']})")


THROUGHPUT_KINDS = ("tcp_up", "tcp_down", "udp")


def throughput_verdicts(baseline: Sequence[dict], condition: Sequence[dict], *, limit: float | None) -> dict:
    """Per iperf3 kind (tcp_up, tcp_down, udp): the ratio verdict of bits/s; `*` are measure() figures."""
    return {kind: ratio_verdict([f[kind]["bits_per_second"] for f in baseline],
                                [f[kind]["bits_per_second"] for f in condition], limit=limit, higher_is_better=True)
            for kind in THROUGHPUT_KINDS if baseline and kind in baseline[0]}


def loss_verdict(loss: dict, max_lost_per_switch: float) -> dict:
    """The atomic-switch rule: at most `max_lost_per_switch` probe packets lost at any switch."""
    if not loss["switches"]:
        return {"ok": False, "reason": "no switch happened while the probe ran", "worst": None}
    worst = loss["lost_per_switch"]["max"]
    ok = worst <= max_lost_per_switch
    reason = (f"up to {worst} probe packets lost per switch (limit {max_lost_per_switch:g}); "
              f"{loss['lost']} of {loss['sent']} lost in all, {loss['lost_without_switch']} away from any switch")
    return {"ok": ok, "reason": reason, "worst": worst}
