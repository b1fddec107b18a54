"""One comparison method for every scenario: same-run baseline, interleaved repetitions, ratio verdicts (pure)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from harness.errors import MeasurementError
from harness.model.evidence import MigrationEvidence, Proof, ProofOutcome
from harness.model.metrics import THROUGHPUT, THROUGHPUT_KINDS, Metric
from harness.model.sequential import Decision, Design, decide, look
from harness.model.settings import MeasureSettings, Tolerances
from harness.model.stats import RatioEstimate, paired_ratio


def ratio_verdict(
    baseline: Sequence[float],
    condition: Sequence[float],
    *,
    limit: float | None,
    higher_is_better: bool,
    unit: str = "",
    scale: float = 1.0,
    design: Design | None = None,
) -> dict:
    """The paired ratio condition/baseline (repetition i of each measured back to back) with its 95 %
    interval, judged against `limit` (None: measured, not judged). With a sequential `design` the interval
    is the design's at the pairs measured (valid although the data chose how many).

    A verdict fails only when the whole interval lies beyond the limit: the cost is then significant,
    not noise. With one pair there is no interval, and the point estimate decides (said so).
    """
    if not baseline or not condition:
        raise MeasurementError("a ratio needs measurements of both the baseline and the condition")
    estimate = paired_ratio(baseline, condition)
    logs = pair_logs(baseline, condition)
    if design is not None and len(logs) >= design.min_pairs:
        estimate = design_estimate(design, logs, estimate.ratio)
    base, value = statistics.median(baseline), statistics.median(condition)
    worse_bound = estimate.high if higher_is_better else estimate.low
    if worse_bound is None:
        worse_bound = estimate.ratio
    if limit is None:
        judged, ok, rule = False, True, "measured, not judged at this interval"
    elif higher_is_better:
        judged, ok, rule = True, not worse_bound < limit, f">= {limit:g}x baseline"
    else:
        judged, ok, rule = True, not worse_bound > limit, f"<= {limit:g}x baseline"
    return {
        "ratio": estimate.ratio,
        "low": estimate.low,
        "high": estimate.high,
        "n": estimate.n,
        "baseline_median": base,
        "median": value,
        "limit": limit,
        "rule": rule,
        "judged": judged,
        "ok": ok,
        "unit": unit,
        "scale": scale,
        "higher_is_better": higher_is_better,
        "decision": str(decision_of(estimate, limit, higher_is_better)),
        "sequential": design.to_dict() if design is not None else None,
        "baseline": list(baseline),
        "values": list(condition),
    }


def pair_logs(baseline: Sequence[float], condition: Sequence[float]) -> list[float]:
    """The log ratios condition/baseline of the pairs whose both sides are positive."""
    return [math.log(c / b) for b, c in zip(baseline, condition) if b > 0 and c > 0]


def design_estimate(design: Design, logs: list[float], ratio: float) -> RatioEstimate:
    """The point `ratio` with the design's interval at len(logs) pairs."""
    at = look(design, logs)
    return RatioEstimate(ratio, round(at.low, 4), round(at.high, 4), at.n)


def decision_of(estimate: RatioEstimate, limit: float | None, higher_is_better: bool) -> Decision:
    """Within, beyond or undecided: where the interval lies against the limit (no interval: undecided)."""
    if limit is None or estimate.low is None or estimate.high is None:
        return Decision.UNDECIDED
    return decide(estimate.low, estimate.high, limit, higher_is_better)


def scenario_design(settings: MeasureSettings, min_pairs: int) -> Design | None:
    """The sequential design of a scenario whose conditions get at least `min_pairs` pairs (None: fixed)."""
    start = max(settings.repeat, min_pairs)
    return Design(start, settings.max_pairs) if settings.max_pairs > start else None


def metric_decisions(
    metric: Metric, baseline: Sequence[dict], condition: Sequence[dict], limit: float | None, design: Design
) -> list[Decision]:
    """Per item of `metric` (a page, a file, an iperf3 kind): the design's decision on the pairs so far
    ([] when the metric is not judged here: nothing to decide)."""
    if limit is None:
        return []
    items: dict[str, tuple[list[float], list[float]]] = {}
    for base, value in zip(baseline, condition):
        base_values = dict(metric.values(base))
        for item, raw in metric.values(value):
            if item in base_values:
                items.setdefault(item, ([], []))[0].append(base_values[item])
                items[item][1].append(raw)
    decisions = []
    for pairs in items.values():
        logs = pair_logs(*pairs)
        enough = len(logs) >= design.min_pairs
        estimate = design_estimate(design, logs, 1.0) if enough else RatioEstimate(1.0, None, None, len(logs))
        decisions.append(decision_of(estimate, limit, metric.higher_is_better))
    return decisions


def why_stopped(verdict: dict, proven: bool, design: Design | None, budgeted: bool = False) -> str:
    """Why a cost row has the pairs it has: unproven, fixed pairs, not judged, decided, max pairs, budget (the
    run's --budget ended it undecided before --max-pairs) or stopped early (so did an interruption)."""
    if not proven:
        return "unproven"
    if design is None:
        return "fixed pairs"
    if not verdict.get("judged", True):
        return "not judged"
    if verdict.get("decision") != str(Decision.UNDECIDED) and verdict["n"] in design.looks:
        return "decided"
    if verdict["n"] >= design.max_pairs:
        return "max pairs"
    return "budget" if budgeted else "stopped early"


def describe(name: str, verdict: dict) -> str:
    """One line with the effect, its interval, n and the medians in their unit."""
    estimate = RatioEstimate(verdict["ratio"], verdict.get("low"), verdict.get("high"), verdict.get("n", 0))
    scale, unit = verdict.get("scale", 1.0), verdict.get("unit", "")
    if not verdict.get("judged", True):
        outcome = "not judged"
    elif verdict["ok"]:
        outcome = "within" if point_within(verdict) else "beyond the limit, but not significantly"
    else:
        outcome = "significantly beyond the limit"
    return (
        f"{name}: {estimate.describe()} ({verdict['median'] / scale:.4g} vs {verdict['baseline_median'] / scale:.4g}"
        f"{' ' + unit if unit else ''}; rule {verdict['rule']}: {outcome})"
    )


def point_within(verdict: dict) -> bool:
    """Whether the point estimate (not its interval) is within the verdict's limit."""
    limit = verdict["limit"]
    return verdict["ratio"] >= limit if verdict.get("higher_is_better", True) else verdict["ratio"] <= limit


def throughput_verdicts(
    baseline: Sequence[dict], condition: Sequence[dict], *, limit: float | None, design: Design | None = None
) -> dict:
    """Per iperf3 kind (tcp_up, tcp_down, udp): the ratio verdict of bits/s; `*` are measure() figures."""
    return {
        kind: ratio_verdict(
            [f[kind]["bits_per_second"] for f in baseline],
            [f[kind]["bits_per_second"] for f in condition],
            limit=limit,
            higher_is_better=THROUGHPUT.higher_is_better,
            unit=THROUGHPUT.unit,
            scale=THROUGHPUT.scale,
            design=design,
        )
        for kind in THROUGHPUT_KINDS
        if baseline and kind in baseline[0]
    }


def loss_verdict(loss: dict, max_lost_per_switch: float) -> dict:
    """The atomic-switch rule: at most `max_lost_per_switch` probe packets lost at any switch."""
    if not loss["switches"]:
        return {"ok": False, "reason": "no switch happened while the probe ran", "worst": None}
    worst = loss["lost_per_switch"]["max"]
    ok = worst <= max_lost_per_switch
    reason = (
        f"up to {worst} probe packets lost per switch (limit {max_lost_per_switch:g}); "
        f"{loss['lost']} of {loss['sent']} lost in all, {loss['lost_without_switch']} away from any switch"
    )
    return {"ok": ok, "reason": reason, "worst": worst}


def judge_repetitions(evidence: Sequence[MigrationEvidence], tolerances: Tolerances) -> Proof:
    """The proof of a condition from its migrating repetitions, each judged with the proof of
    test_migration_moves_the_traffic: failed when any failed (its line, with the repetition), unproven
    when any is unproven (the lowest adherence named), else proven. Adherence: the minimum over them."""
    if not evidence:
        return Proof(ProofOutcome.UNPROVEN, "no migrating repetition was measured")
    proofs = [e.judge(tolerances) for e in evidence]

    def lowest(direction: str) -> float | None:
        values = [v for p in proofs if (v := getattr(p, f"adherence_{direction}")) is not None]
        return min(values) if values else None

    up, down = lowest("up"), lowest("down")
    for outcome in (ProofOutcome.FAILED, ProofOutcome.UNPROVEN):
        found = [(i, p) for i, p in enumerate(proofs) if p.outcome == outcome]
        if found:
            # a failure: the first; unproven: the one that followed least (its lowest adherence)
            i, proof = found[0] if outcome == ProofOutcome.FAILED else min(found, key=lambda item: _weakest(item[1]))
            failures = tuple(f for _, p in found for f in p.failures)
            reason = proof.reason if len(proofs) == 1 else f"repetition {i + 1} of {len(proofs)}: {proof.reason}"
            return Proof(outcome, reason, failures, up, down)
    return Proof(ProofOutcome.PROVEN, "", (), up, down)


def _weakest(proof: Proof) -> float:
    figures = [f.figure for f in proof.failures if f.figure is not None]
    return min(figures) if figures else 1.0
