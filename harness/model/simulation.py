"""The sequential procedure simulated on known truths: the coverage of its intervals and its false reds (pure).

Shared by the unit tests (tests/test_sequential.py) and `comps-harness bench budget` (coverage_sim,
false_red_sim): 2,000 runs per case, a fixed seed, each run measured pair by pair until the procedure stops.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable

from harness.model.sequential import Decision, Design, Look, decide, look, stop_reason

RUNS = 2000
SEED = 20261202
Draw = Callable[[random.Random], Callable[[], float]]  # a seeded source of per-pair log ratios


def sequential(
    design: Design, draw: Callable[[], float], limit: float, higher_is_better: bool
) -> tuple[Look, Decision, int]:
    """One condition measured pair by pair until the procedure stops: (final interval, decision, pairs)."""
    logs: list[float] = []
    while True:
        logs.append(draw())
        if len(logs) < design.min_pairs:
            continue
        interval: Look = look(design, logs)
        decision = decide(interval.low, interval.high, limit, higher_is_better)
        if stop_reason([decision], len(logs), design):
            return interval, decision, len(logs)


def simulate(
    draw_of: Draw, truth: float, limit: float, higher_is_better: bool, design: Design | None = None
) -> dict[str, float]:
    """RUNS runs: the share whose interval covers `truth`, the shares red and decided, the mean pairs."""
    design = design or Design()
    draw = draw_of(random.Random(SEED))
    covered = red = decided = 0
    pairs = []
    for _ in range(RUNS):
        interval, decision, n = sequential(design, draw, limit, higher_is_better)
        covered += interval.low <= truth <= interval.high
        red += decision == Decision.BEYOND
        decided += decision != Decision.UNDECIDED
        pairs.append(n)
    return {"coverage": covered / RUNS, "red": red / RUNS, "decided": decided / RUNS, "pairs": statistics.fmean(pairs)}


def normal(mu: float, sigma: float) -> Draw:
    return lambda rng: lambda: rng.gauss(mu, sigma)


def resampled(loads: list[float], effect: float = 1.0) -> Draw:
    """A pair of two loads drawn from recorded baseline loads, the second times `effect`."""
    return lambda rng: lambda: math.log(rng.choice(loads) * effect / rng.choice(loads))


def bench_figures(pageloads: dict[str, list[float]]) -> dict[str, float]:
    """bench budget's coverage_sim (the lowest coverage over the cases) and false_red_sim (the highest red
    share where the truth is within tolerance: no effect, an effect exactly at the tolerance, page-load noise)."""
    cases = [
        (simulate(normal(0.0, 0.1), 1.0, 0.9, True), True),
        (simulate(normal(math.log(0.9), 0.1), 0.9, 0.9, True), True),
        (simulate(normal(math.log(0.6), 0.1), 0.6, 0.9, True), False),
    ]
    for loads in pageloads.values():
        cases.append((simulate(resampled(loads), 1.0, 1.15, False), True))
        cases.append((simulate(resampled(loads, 1.6), 1.6, 1.15, False), False))
    return {
        "coverage_sim": min(result["coverage"] for result, _ in cases),
        "false_red_sim": max(result["red"] for result, within in cases if within),
    }
