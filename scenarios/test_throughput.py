"""iperf3 throughput (TCP upload and download, UDP at a rate) with migration vs without, same run, interleaved."""

from __future__ import annotations

import functools

import pytest

from harness.measure.services import for_measurement, interleave
from harness.measure.verdicts import describe, throughput_verdicts
from harness.model.metrics import Scenario

pytestmark = [pytest.mark.network, pytest.mark.migration, pytest.mark.measurement]


def test_throughput(network, origin_services, migration_plan, tolerances, measure_settings, record_condition, request):
    seconds = measure_settings.iperf_seconds
    plan = for_measurement(migration_plan, 3 * seconds)
    measure = functools.partial(origin_services.throughput, seconds, udp_rate=measure_settings.udp_rate)
    baseline, migrating = interleave(
        network,
        plan,
        measure_settings.repeat,
        measure,
        lambda cond, rep, result: record_condition(Scenario.THROUGHPUT, cond, rep, result),
    )
    judged = migration_plan.interval >= tolerances.verdict_from_interval
    limit = tolerances.throughput if judged else None
    if not judged:  # measured and recorded; the outcome says so rather than "passed"
        request.node.user_properties.append(("verdict", "unjudged"))
    verdicts = throughput_verdicts([r.figures for r in baseline], [r.figures for r in migrating], limit=limit)
    proofs = [f for r in migrating for f in r.evidence.failures(tolerances)]
    assert not proofs, f"migration did not happen as planned: {proofs[0].text}"
    failed = [describe(kind, v) for kind, v in verdicts.items() if not v["ok"]]
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)
