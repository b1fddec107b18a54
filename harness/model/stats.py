"""Small statistics used by benchmarks, proofs and verdicts (pure, no numpy)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import ConfigError


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ConfigError("percentile of no values")
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """count, median, p99, max (None when there are no values)."""
    if not values:
        return {"count": 0, "median": None, "p99": None, "max": None}
    return {
        "count": len(values),
        "median": round(statistics.median(values), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
    }


# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (above 30: the normal's 1.96 is
# within 4 %, and 2.042 keeps the interval on the safe, wider side).
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_975(df: float) -> float:
    """Student's two-sided 95 % quantile for `df` degrees of freedom (whole, at least 1; 30 and above: 2.042)."""
    return T_975[min(max(int(df), 1), len(T_975)) - 1]


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio condition/baseline from paired repetitions: the geometric mean of the per-pair ratios,
    with a 95 % interval (t on the log ratios); n pairs. With n = 1 there is no interval."""

    ratio: float
    low: float | None
    high: float | None
    n: int

    def describe(self) -> str:
        interval = f"[{self.low:.3f}, {self.high:.3f}]" if self.low is not None else "[no interval: n=1]"
        return f"{self.ratio:.3f}x {interval}, n={self.n}"


def paired_ratio(baseline: Sequence[float], condition: Sequence[float]) -> RatioEstimate:
    """Pairs (baseline_i, condition_i) measured back to back: their ratios, summarised on the log scale.

    Pairing removes the drift a 2-core machine shows between repetitions (both sides of a pair see
    the same load), so the interval is about the effect, not about the machine's mood.
    """
    pairs = [(b, c) for b, c in zip(baseline, condition) if b > 0 and c > 0]
    if not pairs:
        raise ConfigError("a ratio needs at least one pair of positive measurements")
    logs = [math.log(c / b) for b, c in pairs]
    mean = statistics.fmean(logs)
    if len(logs) == 1:
        return RatioEstimate(round(math.exp(mean), 4), None, None, 1)
    half = t_975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return RatioEstimate(
        round(math.exp(mean), 4), round(math.exp(mean - half), 4), round(math.exp(mean + half), 4), len(logs)
    )


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion successes/n ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free interval for the median: order statistics x(k) and x(n+1-k) with the largest k
    whose binomial tail keeps the coverage >= `level`; (low, high, its coverage). Below 6 values no k does:
    then (min, max) and the coverage it has (n=3: 0.75), which the caller reports beside it."""
    if not values:
        raise ConfigError("an interval of no values")
    ordered, n = sorted(values), len(values)
    k, coverage = 1, 1 - 2 * 0.5**n
    for candidate in range(2, n // 2 + 1):
        tail = sum(math.comb(n, i) for i in range(candidate)) / 2**n
        if 1 - 2 * tail < level:
            break
        k, coverage = candidate, 1 - 2 * tail
    return ordered[k - 1], ordered[n - k], round(coverage, 4)
