"""`comps-harness bench bringup`: how long the topology takes to come up and to go away, over repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from harness.model.stats import percentile
from harness.runtime.network import Network


def bench(new_network: Callable[[int], Network], runs: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Bring `runs` fresh networks up and down in turn; medians and 95th percentiles of both."""
    ups, downs, wireguard = [], [], ""
    for run in range(runs):
        network = new_network(run)
        start = time.monotonic()
        with network:
            ups.append(time.monotonic() - start)
            start = time.monotonic()
        downs.append(time.monotonic() - start)
        wireguard = network.wireguard_impl
        progress(f"bench bringup {run + 1}/{runs}: up {ups[-1]:.3f} s, down {downs[-1]:.3f} s")
    return {
        "runs": runs,
        "wireguard": wireguard,
        "up_median_s": round(statistics.median(ups), 4),
        "up_p95_s": round(percentile(ups, 95), 4),
        "down_median_s": round(statistics.median(downs), 4),
        "down_p95_s": round(percentile(downs, 95), 4),
    }
