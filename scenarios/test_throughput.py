"""iperf3 throughput (TCP upload and download, UDP at a rate) with migration vs without, same run, interleaved.

Every migrating repetition's evidence is judged first (proof_gate): a failed proof fails the test with its
line, an unproven one records the figures without a cost; only a proven migration gets ratio verdicts.
"""

from __future__ import annotations

import pytest

from harness.measure.services import measured_pairs
from harness.measure.verdicts import describe, throughput_verdicts
from harness.model.metrics import Scenario

pytestmark = [pytest.mark.network, pytest.mark.migration, pytest.mark.measurement]


def test_throughput(
    network,
    origin_services,
    migration_plan,
    tolerances,
    measure_settings,
    record_condition,
    proof_gate,
    may_spend,
    request,
):
    pairs = measured_pairs(
        origin_services,
        migration_plan,
        Scenario.THROUGHPUT,
        measure_settings,
        tolerances,
        lambda cond, rep, result: record_condition(Scenario.THROUGHPUT, cond, rep, result),
        may_spend,
    )
    request.node.user_properties += pairs.properties()
    if not proof_gate(pairs.migrating):
        return
    verdicts = throughput_verdicts(
        [r.figures for r in pairs.baseline],
        [r.figures for r in pairs.migrating],
        limit=tolerances.throughput,
        design=pairs.design,
    )
    failed = [describe(kind, v) for kind, v in verdicts.items() if not v["ok"]]
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)
