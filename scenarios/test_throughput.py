"""iperf3 throughput (TCP upload and download, UDP at a rate) with migration vs without, same run, interleaved.

Every migrating repetition's evidence is judged first (proof_gate): a failed proof fails the test with its
line, an unproven one records the figures without a cost; only a proven migration gets ratio verdicts.
"""

from __future__ import annotations

import pytest

from harness.measure.services import for_measurement, interleave, scenario_measure
from harness.measure.verdicts import describe, throughput_verdicts
from harness.model.metrics import Scenario

pytestmark = [pytest.mark.network, pytest.mark.migration, pytest.mark.measurement]


def test_throughput(
    network, origin_services, migration_plan, tolerances, measure_settings, record_condition, proof_gate
):
    measure, seconds = scenario_measure(origin_services, Scenario.THROUGHPUT, measure_settings)
    baseline, migrating = interleave(
        network,
        for_measurement(migration_plan, seconds),
        measure_settings.repeat,
        measure,
        lambda cond, rep, result: record_condition(Scenario.THROUGHPUT, cond, rep, result),
    )
    if not proof_gate(migrating):
        return
    verdicts = throughput_verdicts(
        [r.figures for r in baseline], [r.figures for r in migrating], limit=tolerances.throughput
    )
    failed = [describe(kind, v) for kind, v in verdicts.items() if not v["ok"]]
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)
