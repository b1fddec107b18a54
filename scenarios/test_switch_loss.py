"""Sequence-numbered UDP probe around path switches: loss, loss window and reordering per switch.

Run for both mechanisms: the demo's delete-then-add (script) and the atomic replace (netlink).
The atomic mechanism must lose at most --max-lost-per-switch packets per switch on healthy paths.
"""

from __future__ import annotations

import dataclasses

import pytest

from harness.measure import for_measurement, loss_figures, measure_condition

pytestmark = [pytest.mark.network, pytest.mark.migration]
PROBE_SECONDS = 2.0


@pytest.mark.parametrize("mechanism", ["netlink", "script"])
def test_loss_around_switches(network, origin_services, migration_plan, mechanism, tolerances, record_condition):
    if migration_plan.strategy != "alternate" and mechanism == "script":
        pytest.fail(f"the demo's script only alternates; run this with --strategy alternate, "
                    f"not {migration_plan.strategy}", pytrace=False)
    plan = for_measurement(dataclasses.replace(migration_plan, mechanism=mechanism), PROBE_SECONDS)
    result = measure_condition(network, plan, lambda: origin_services.probe(PROBE_SECONDS, tolerances["probe_rate"]))
    loss = loss_figures(result.figures, result.evidence, plan.interval)
    result.figures = {"loss": loss, "probe_rate": tolerances["probe_rate"]}
    record_condition("switch_loss", plan.label, 0, result)
    assert loss["switches"] > 0, "no switch happened while the probe ran"
    if mechanism == "netlink":
        worst = loss["lost_per_switch"]["max"]
        assert worst <= tolerances["max_lost_per_switch"], (
            f"the atomic switch lost up to {worst} probe packets per switch (limit "
            f"{tolerances['max_lost_per_switch']:g}); {loss['lost']} of {loss['sent']} lost in all")
