"""`comps-harness bench switching`: how far the actual switches were from the planned ones while traffic flows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.model.schedule import MigrationPlan
from harness.model.stats import summary
from harness.runtime.migration import run_migration
from harness.runtime.network import Network
from harness.runtime.traffic import ping_stream


def bench(network: Network, plan: MigrationPlan, progress: Callable[[str], None]) -> dict[str, Any]:
    with ping_stream(network):
        evidence = run_migration(network, plan, progress=progress)
    errors = evidence.timing_error_ms()
    return {
        "mechanism": plan.mechanism,
        "interval_s": plan.interval,
        "duration_s": plan.duration,
        "wireguard": network.wireguard_impl,
        "planned_switches": evidence.planned_switches,
        "switches": len(evidence.switches),
        "timing_error_median_ms": errors["median"],
        "timing_error_p99_ms": errors["p99"],
        "timing_error_max_ms": errors["max"],
        "no_route_window_median_ms": evidence.no_route_ms()["median"],
        "applied_late_ms": summary(evidence.applied_late_ms),
        "first_applied_late_ms": evidence.applied_late_ms[:3],
        "adherence_up": evidence.adherence(direction="up"),
        "adherence_down": evidence.adherence(direction="down"),
        "endpoint_changes": evidence.endpoint_changes,
        "proof_failures": [str(failure) for failure in evidence.failures()],
    }
