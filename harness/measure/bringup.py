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
    return interleaved({"": new_network}, runs, progress)[""]


def interleaved(
    new_networks: dict[str, Callable[[int], Network]], runs: int, progress: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """As `bench`, for several kinds of network at once, one of each in turn (so that a slow spell of the
    machine falls on all of them alike): kind -> its figures."""
    ups: dict[str, list[float]] = {kind: [] for kind in new_networks}
    downs: dict[str, list[float]] = {kind: [] for kind in new_networks}
    wireguard = dict.fromkeys(new_networks, "")
    for run in range(runs):
        for kind, new_network in new_networks.items():
            network = new_network(run)
            start = time.monotonic()
            with network:
                ups[kind].append(time.monotonic() - start)
                start = time.monotonic()
            downs[kind].append(time.monotonic() - start)
            wireguard[kind] = network.wireguard_impl
            label = f" {kind}" if kind else ""
            progress(f"bench bringup{label} {run + 1}/{runs}: up {ups[kind][-1]:.3f} s, down {downs[kind][-1]:.3f} s")
    return {
        kind: {
            "runs": runs,
            "wireguard": wireguard[kind],
            "up_median_s": round(statistics.median(ups[kind]), 4),
            "up_p95_s": round(percentile(ups[kind], 95), 4),
            "down_median_s": round(statistics.median(downs[kind]), 4),
            "down_p95_s": round(percentile(downs[kind], 95), 4),
        }
        for kind in new_networks
    }
