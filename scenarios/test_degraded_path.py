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
from harness.model.evidence import ProofCode
from harness.model.metrics import TCP_UP, Scenario
from harness.model.profiles import rate_mbit
from harness.model.schedule import baseline_of
from harness.runtime.links import ImpairedPath, Impairment

pytestmark = [pytest.mark.network, pytest.mark.migration]
PROBE_SECONDS = 4.0  # ~4000 probe packets on the degraded path: 5 % of them is far beyond the in-flight slack
SELF_CHECK_REPEAT = 5


BASELINE_SHARE = 0.1  # the degraded path carries a tenth of what this run's baseline carries


def degraded_rate(degrade_rate: str, baseline_mbit: float, profile_mbit: float | None) -> str:
    """The lowest of --degrade-rate, a tenth of the baseline measured in this run, and a quarter of the
    path profile's own rate: a fixed 20 Mbit/s limit degrades a slow path (docker's, a profile's) too
    little for a red that does not depend on luck."""
    limits = [rate_mbit(degrade_rate), baseline_mbit * BASELINE_SHARE]
    if profile_mbit is not None:
        limits.append(profile_mbit / 4)
    return f"{max(min(limits), 1.0):.3g}mbit"


@pytest.mark.expect_red
@pytest.mark.atomic_switch
def test_degraded_path_fails_the_loss_check(
    network, origin_services, migration_plan, tolerances, measure_settings, record_condition
):
    """Sized to be red far beyond noise: the last proxy drops --degrade-drop (5 %) of what it forwards, and
    every loss within 0.5 s of a switch is charged to it. At 2000 probe packets/s and 1 s on each path that
    is ~50 lost per switch (at 0.1 s: ~5), against 0 allowed; a healthy atomic switch loses 0. The proof
    must name it too: ~100 of the ~4000 packets the degraded path carries, against none on the other."""
    path, drop = network.topology.path_ids[-1], measure_settings.degrade_drop
    plan = dataclasses.replace(migration_plan, mechanism="netlink")
    with ImpairedPath(network, path, Impairment(drop=drop)):
        result = measure_loss(network, origin_services, plan, seconds=PROBE_SECONDS, rate=measure_settings.probe_rate)
    record_condition(Scenario.SWITCH_LOSS_DEGRADED, plan.label, 0, result)
    verdict = loss_verdict(result.figures["loss"], tolerances.max_lost_per_switch)
    assert result.figures["loss"]["switches"] > 0, verdict["reason"]
    assert not verdict["ok"], (
        f"path {path} dropped {drop:.0%} of its packets, yet the loss check passed: {verdict['reason']}"
    )
    # the proof too, though 5 % is far under its absolute limit (--max-path-loss 20 % + 50 packets): the hop is
    # judged against the same hop of the other path in the same run
    lost = [f for f in result.evidence.failures(tolerances) if f.code == ProofCode.HOP_LOSS and f.path == path]
    slack = max(result.evidence.in_flight_slack().values())
    if slack * 4 > drop * result.evidence.delivery[path].up_sent:  # slow reads (docker): not judged, said so
        pytest.skip(f"the proof's in-flight slack ({slack} packets) is too large to judge a {drop:.0%} drop")
    assert lost, (
        f"path {path} dropped {drop:.0%} of its packets, yet the proof named no hop loss on it: "
        f"{[str(f) for f in result.evidence.failures(tolerances)]}"
    )


@pytest.mark.expect_red
@pytest.mark.one_interval
def test_degraded_path_fails_the_throughput_check(
    network, origin_services, migration_plan, tolerances, measure_settings, record_condition, path_profile
):
    """Sized to be red far beyond noise, at the longest interval of the sweep (alternate, 1 s by default).

    The last path is limited to a tenth of this run's own baseline (measured in the first pair). The
    session spends about half of each measurement on it, so the expected ratio is about
    0.5 + 0.5 x 0.1 = 0.55 against the 0.9 tolerance; the 95 % intervals of healthy runs span at most
    +- 0.2 around their ratio on either backend (issue 22: docker's were [0.61, 1.01] around 0.78), so
    the interval's upper end stays near 0.7, far below 0.9. Checked: red in 10 of 10 runs per backend.
    """
    path, seconds = network.topology.path_ids[-1], measure_settings.iperf_seconds
    plan = for_measurement(migration_plan, seconds)
    measure = functools.partial(origin_services.throughput, seconds, (TCP_UP,))
    conditions = {
        "baseline": (baseline_of(plan), False),
        plan.label: (plan, False),
        f"{plan.label}-degraded": (plan, True),
    }
    figures: dict[str, list[dict]] = {name: [] for name in conditions}
    rate = None
    # interleaved; the baseline stays on path 1, which is healthy. At least SELF_CHECK_REPEAT pairs: the
    # check must be significantly red, and three noisy pairs leave too wide an interval for that
    for rep in range(max(measure_settings.repeat, SELF_CHECK_REPEAT)):
        for name, (condition_plan, degraded) in conditions.items():
            if degraded and rate is None:
                baseline_mbit = figures["baseline"][0][TCP_UP]["bits_per_second"] / 1e6
                rate = degraded_rate(measure_settings.degrade_rate, baseline_mbit, path_profile.path(path).up.rate_mbit)
            with ImpairedPath(network, path, Impairment(rate=rate)) if degraded else contextlib.nullcontext():
                result = measure_condition(network, condition_plan, measure)
            record_condition(Scenario.THROUGHPUT_DEGRADED, name, rep, result)
            figures[name].append(result.figures)
    degraded, healthy = figures[f"{plan.label}-degraded"], figures[plan.label]
    verdict = throughput_verdicts(figures["baseline"], degraded, limit=tolerances.throughput)[TCP_UP]
    assert not verdict["ok"], (
        f"path {path} was limited to {rate}, yet the throughput check passed: {describe('tcp_up', verdict)}"
    )
    cost = statistics.median(f[TCP_UP]["bits_per_second"] for f in degraded) / statistics.median(
        f[TCP_UP]["bits_per_second"] for f in healthy
    )
    assert cost <= tolerances.throughput, (
        f"limiting path {path} to {rate} cost no more throughput than healthy migration ({cost:.3f} x): "
        f"the red verdict comes from migration, not from the degradation"
    )
