"""One comparison method for every scenario: same-run baseline, interleaved repetitions, ratio verdicts (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def ratio_verdict(baseline: Sequence[float], condition: Sequence[float], *, limit: float | None,
                  higher_is_better: bool) -> dict:
    """Median of the condition over median of the baseline, checked against `limit` (None: report only)."""
    if not baseline or not condition:
        raise ValueError("a ratio needs measurements of both the baseline and the condition")
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
