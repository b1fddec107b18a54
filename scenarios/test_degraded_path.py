"""A deliberately degraded path must turn the loss and the throughput checks red.

Loss: the last proxy drops a random share (--degrade-drop) of what it forwards (iptables
`statistic`). Throughput: the last proxy is limited to --degrade-rate (tc tbf). Each test
passes only when the same check the healthy scenarios use fails, and the throughput test also
measures healthy migration in the same run, so a red verdict that migration alone would give
(at short intervals) does not count: the degradation itself must cost throughput.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import statistics

import pytest

from harness.measure.services import for_measurement, measure_condition, measure_loss
from harness.measure.verdicts import describe, loss_verdict, throughput_verdicts
from harness.model.profiles import rate_mbit
from harness.model.schedule import baseline_of
from harness.runtime.links import ImpairedPath, Impairment

pytestmark = [pytest.mark.network, pytest.mark.migration]
PROBE_SECONDS = 2.0
SELF_CHECK_REPEAT = 5


def degraded_rate(degrade_rate: str, profile_mbit: float | None) -> str:
    """--degrade-rate, or a quarter of the path profile's own rate where that is lower (a 20 Mbit/s limit
    on a 10 Mbit/s path degrades nothing)."""
    if profile_mbit is None:
        return degrade_rate
    return f"{min(rate_mbit(degrade_rate), profile_mbit / 4):g}mbit"


@pytest.mark.atomic_switch
def test_degraded_path_fails_the_loss_check(network, origin_services, migration_plan, tolerances, measure_settings,
                                            record_condition):
    path, drop = network.topology.path_ids[-1], measure_settings.degrade_drop
    plan = dataclasses.replace(migration_plan, mechanism="netlink")
    with ImpairedPath(network, path, Impairment(drop=drop)):
        result = measure_loss(network, origin_services, plan, seconds=PROBE_SECONDS, rate=measure_settings.probe_rate)
    record_condition("switch_loss_degraded", plan.label, 0, result)
    verdict = loss_verdict(result.figures["loss"], tolerances.max_lost_per_switch)
    assert result.figures["loss"]["switches"] > 0, verdict["reason"]
    assert not verdict["ok"], f"path {path} dropped {drop:.0%} of its packets, yet the loss check passed: " \
                              f"{verdict['reason']}"


@pytest.mark.one_interval
def test_degraded_path_fails_the_throughput_check(network, origin_services, migration_plan, tolerances, measure_settings,
                                                  record_condition, path_profile):
    path, seconds = network.topology.path_ids[-1], measure_settings.iperf_seconds
    rate = degraded_rate(measure_settings.degrade_rate, path_profile.path(path).up.rate_mbit)
    plan = for_measurement(migration_plan, seconds)
    measure = functools.partial(origin_services.throughput, seconds, ("tcp_up",))
    conditions = {"baseline": (baseline_of(plan), False),
                  plan.label: (plan, False), f"{plan.label}-degraded": (plan, True)}
    figures: dict[str, list[dict]] = {name: [] for name in conditions}
    # interleaved; the baseline stays on path 1, which is healthy. At least SELF_CHECK_REPEAT pairs: the
    # check must be significantly red, and three noisy pairs leave too wide an interval for that
    for rep in range(max(measure_settings.repeat, SELF_CHECK_REPEAT)):
        for name, (condition_plan, degraded) in conditions.items():
            with ImpairedPath(network, path, Impairment(rate=rate)) if degraded else contextlib.nullcontext():
                result = measure_condition(network, condition_plan, measure)
            record_condition("throughput_degraded", name, rep, result)
            figures[name].append(result.figures)
    degraded, healthy = figures[f"{plan.label}-degraded"], figures[plan.label]
    verdict = throughput_verdicts(figures["baseline"], degraded, limit=tolerances.throughput)["tcp_up"]
    assert not verdict["ok"], f"path {path} was limited to {rate}, yet the throughput check passed: " \
                              f"{describe('tcp_up', verdict)}"
    cost = (statistics.median(f["tcp_up"]["bits_per_second"] for f in degraded)
            / statistics.median(f["tcp_up"]["bits_per_second"] for f in healthy))
    assert cost <= tolerances.throughput, (
        f"limiting path {path} to {rate} cost no more throughput than healthy migration ({cost:.3f} x): "
        f"the red verdict comes from migration, not from the degradation")
