"""Sequential repetitions shown correct by simulation: 2,000 runs of the procedure on known truths (fast, no root)."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.model import simulation
from harness.model.sequential import Decision, Design, StopReason, stop_reason, t_quantile
from harness.model.simulation import RUNS, normal, simulate
from harness.model.stats import t_975

PAGELOADS = json.loads((Path(__file__).parent / "data" / "pageloads.json").read_text())["load_ms"]


def resampled(page: str, effect: float = 1.0):
    return simulation.resampled(PAGELOADS[page], effect)


def test_t_quantiles_match_the_table_and_the_design_spends_alpha_once():
    for df in (1, 2, 5, 10, 29):
        assert t_quantile(0.05, df) == pytest.approx(t_975(df), abs=6e-4)
    design = Design()
    assert design.looks == (3, 6, 12) and Design(5, 20).looks == (5, 10, 20) and Design(3, 3).looks == (3,)
    assert sum(design.alpha_at(n) for n in design.looks) == pytest.approx(0.05)
    assert min(design.alpha_at(n) for n in design.looks) > 0.01  # Pocock: every look, the first too, gets a share
    with pytest.raises(ConfigError, match="--max-pairs"):
        Design(5, 4)
    with pytest.raises(ConfigError, match="--min-pairs"):
        Design(1, 4)


def test_no_effect_is_covered_and_mostly_decided_within():
    result = simulate(normal(0.0, 0.1), 1.0, 0.9, higher_is_better=True)
    assert result["coverage"] >= 0.94 and result["red"] <= 0.05
    assert result["decided"] >= 0.8 and result["pairs"] < 12, result


def test_an_effect_exactly_at_the_tolerance_rarely_gives_a_false_red():
    """The truth is within tolerance (the ratio is the limit itself): a red is a false red."""
    result = simulate(normal(math.log(0.9), 0.1), 0.9, 0.9, higher_is_better=True)
    assert result["coverage"] >= 0.94 and result["red"] <= 0.05, result
    assert result["pairs"] > 11, result  # undecidable: it runs to the maximum, as it must


def test_a_clear_effect_stops_early_as_a_significant_cost():
    result = simulate(normal(math.log(0.6), 0.1), 0.6, 0.9, higher_is_better=True)
    assert result["coverage"] >= 0.94 and result["red"] >= 0.99 and result["pairs"] < 5, result  # most at 3


@pytest.mark.parametrize("page", sorted(PAGELOADS))
def test_recorded_page_load_noise_keeps_coverage_and_false_reds(page):
    """Page loads are skewed and heavy-tailed, not normal: the coverage must hold on the real noise."""
    same = simulate(resampled(page), 1.0, 1.15, higher_is_better=False)
    assert same["coverage"] >= 0.94 and same["red"] <= 0.05, same
    slower = simulate(resampled(page, 1.6), 1.6, 1.15, higher_is_better=False)
    assert slower["coverage"] >= 0.94 and slower["red"] >= 0.5, slower


def test_the_bench_figures_meet_the_targets():
    figures = simulation.bench_figures(PAGELOADS)
    assert figures["coverage_sim"] >= 0.94 and figures["false_red_sim"] <= 0.05, figures


def test_a_plain_t_interval_read_at_every_pair_would_not_be_valid():
    """Why the design exists: stopping at the first pair whose fixed 95 % t interval excludes the truth's
    side, over 3..12 pairs, gives false reds well above 5 % at the tolerance."""
    rng = random.Random(7)
    red = 0
    for _ in range(RUNS):
        logs = [rng.gauss(math.log(0.9), 0.1) for _ in range(2)]
        for n in range(3, 13):
            logs.append(rng.gauss(math.log(0.9), 0.1))
            mean, half = statistics.fmean(logs), t_975(n - 1) * statistics.stdev(logs) / math.sqrt(n)
            if math.exp(mean + half) < 0.9:
                red += 1
                break
    assert red / RUNS > 0.07  # 0.082 with this seed


def test_why_a_condition_stopped():
    design = Design()
    assert stop_reason([Decision.UNDECIDED], 2, design) is None
    assert stop_reason([], 3, design) == StopReason.NOT_JUDGED
    assert stop_reason([Decision.WITHIN, Decision.BEYOND], 3, design) == StopReason.DECIDED
    assert stop_reason([Decision.WITHIN, Decision.BEYOND], 4, design) is None  # decisions count at looks only
    assert stop_reason([Decision.WITHIN, Decision.UNDECIDED], 6, design) is None
    assert stop_reason([Decision.UNDECIDED], 5, design, budget_left=False) == StopReason.BUDGET
    assert stop_reason([Decision.UNDECIDED], 12, design) == StopReason.MAX_PAIRS


def test_a_sequential_verdict_uses_the_designs_interval_and_says_why_it_stopped():
    from harness.measure.verdicts import metric_decisions, ratio_verdict, scenario_design, why_stopped
    from harness.model.metrics import PAGELOAD, THROUGHPUT
    from harness.model.settings import MeasureSettings

    assert scenario_design(MeasureSettings(), 0) == Design(3, 12)  # sequential by default
    assert scenario_design(MeasureSettings(max_pairs=0), 0) is None  # --max-pairs 0: fixed, as before
    assert scenario_design(MeasureSettings(repeat=3, max_pairs=12), 5) == Design(5, 12)  # page loads start at 5
    assert scenario_design(MeasureSettings(repeat=3, max_pairs=5), 5) is None
    with pytest.raises(ConfigError, match="--max-pairs 2: below --min-pairs 3"):
        MeasureSettings(repeat=3, max_pairs=2)
    base, value = [100.0, 102.0, 98.0], [99.0, 101.0, 98.5]
    fixed = ratio_verdict(base, value, limit=0.9, higher_is_better=True)
    design = Design(3, 12)
    sequential = ratio_verdict(base, value, limit=0.9, higher_is_better=True, design=design)
    assert sequential["ratio"] == fixed["ratio"] and sequential["low"] < fixed["low"]  # wider: it may stop early
    assert sequential["decision"] == "within" and why_stopped(sequential, True, design) == "decided"
    assert why_stopped(fixed, True, None) == "fixed pairs" and why_stopped(fixed, False, design) == "unproven"
    wide = ratio_verdict([100.0] * 4, [60.0, 140.0, 95.0, 105.0], limit=0.9, higher_is_better=True, design=design)
    assert wide["decision"] == "undecided" and why_stopped(wide, True, design) == "stopped early"
    figures = [{"tcp_up": {"bits_per_second": b}, "udp": {"bits_per_second": b}} for b in base]
    slower = [{"tcp_up": {"bits_per_second": v / 2}, "udp": {"bits_per_second": v}} for v in value]
    assert metric_decisions(THROUGHPUT, figures, slower, 0.9, design) == [Decision.BEYOND, Decision.WITHIN]
    assert metric_decisions(THROUGHPUT, figures, slower, None, design) == []  # not judged: nothing to decide
    loads = [{"loads": [{"url": "x/small.html", "load_ms": ms, "ok": True}]} for ms in base]
    assert metric_decisions(PAGELOAD, loads[:2], loads[:2], 1.15, design) == [Decision.UNDECIDED]  # below min
