"""Small statistics used by benchmarks, proofs and verdicts (pure, no numpy)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

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
    return {"count": len(values), "median": round(statistics.median(values), digits),
            "p99": round(percentile(values, 99), digits), "max": round(max(values), digits)}
