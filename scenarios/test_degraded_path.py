"""A deliberately degraded path must turn the loss and the throughput checks red.

The last proxy drops a random share (--degrade-drop) of what it forwards, with the iptables
`statistic` match. These tests pass only when the same checks the healthy scenarios use fail.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from harness.compare import describe, loss_verdict, throughput_verdicts
from harness.measure import for_measurement, interleave, measure_loss

pytestmark = [pytest.mark.network, pytest.mark.migration]
PROBE_SECONDS = 2.0


def test_degraded_path_fails_the_loss_check(network, origin_services, migration_plan, tolerances, record_condition):
    path, drop = network.topology.path_ids[-1], tolerances["degrade_drop"]
    plan = dataclasses.replace(migration_plan, mechanism="netlink")
    with network.degraded_path(path, drop):
        result = measure_loss(network, origin_services, plan, seconds=PROBE_SECONDS, rate=tolerances["probe_rate"])
    record_condition("switch_loss_degraded", plan.label, 0, result)
    verdict = loss_verdict(result.figures["loss"], tolerances["max_lost_per_switch"])
    assert result.figures["loss"]["switches"] > 0, verdict["reason"]
    assert not verdict["ok"], f"path {path} dropped {drop:.0%} of its packets, yet the loss check passed: " \
                              f"{verdict['reason']}"


def test_degraded_path_fails_the_throughput_check(network, origin_services, migration_plan, tolerances,
                                                  record_condition):
    path, drop, seconds = network.topology.path_ids[-1], tolerances["degrade_drop"], tolerances["iperf_seconds"]
    plan = for_measurement(migration_plan, seconds)
    measure = functools.partial(origin_services.throughput, seconds, ("tcp_up",))
    with network.degraded_path(path, drop):  # the baseline stays on path 1, which is healthy
        baseline, migrating = interleave(
            network, plan, tolerances["repeat"], measure,
            lambda cond, rep, result: record_condition("throughput_degraded", cond, rep, result))
    verdict = throughput_verdicts([r.figures for r in baseline], [r.figures for r in migrating],
                                  limit=tolerances["throughput"])["tcp_up"]
    assert not verdict["ok"], f"path {path} dropped {drop:.0%} of its packets, yet the throughput check passed: " \
                              f"{describe('tcp_up', verdict)}"
