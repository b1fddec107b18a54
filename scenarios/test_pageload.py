"""Chromium page loads and timed downloads from origin, with migration vs without, same run, interleaved.

As for throughput: a migrating repetition whose proof fails fails the test; an unproven one gets no cost.
"""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.measure.services import (
    MIN_PAIRS,
    PAGE_NAMES,
    for_measurement,
    interleave,
    page_load_ms,
    require_measurement_tools,
    scenario_measure,
)
from harness.measure.verdicts import describe, ratio_verdict
from harness.model.metrics import Scenario

pytestmark = [pytest.mark.network, pytest.mark.migration, pytest.mark.measurement]


def measured(network, origin_services, migration_plan, measure_settings, record_condition, scenario):
    measure, seconds = scenario_measure(origin_services, scenario, measure_settings)
    return interleave(
        network,
        for_measurement(migration_plan, seconds),
        max(measure_settings.repeat, MIN_PAIRS[scenario]),
        measure,
        lambda cond, rep, result: record_condition(scenario, cond, rep, result),
    )


def test_page_loads(
    network, origin_services, migration_plan, tolerances, measure_settings, record_condition, proof_gate
):
    try:
        require_measurement_tools(browser=True)
    except HarnessError as exc:  # a missing browser is an error naming it, never a skip
        pytest.fail(str(exc), pytrace=False)
    baseline, migrating = measured(
        network, origin_services, migration_plan, measure_settings, record_condition, Scenario.PAGELOAD
    )
    if not proof_gate(migrating):
        return
    failed = []
    for page in PAGE_NAMES:
        verdict = ratio_verdict(
            page_load_ms(baseline, page),
            page_load_ms(migrating, page),
            limit=tolerances.pageload,
            higher_is_better=False,
            unit="ms",
        )
        if not verdict["ok"]:
            failed.append(describe(page, verdict))
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)


def test_download_time(
    network, origin_services, migration_plan, tolerances, measure_settings, record_condition, proof_gate
):
    baseline, migrating = measured(
        network, origin_services, migration_plan, measure_settings, record_condition, Scenario.DOWNLOAD
    )
    if not proof_gate(migrating):
        return
    failed = []
    for i, download in enumerate(baseline[0].figures["downloads"]):
        verdict = ratio_verdict(
            [r.figures["downloads"][i]["seconds"] for r in baseline],
            [r.figures["downloads"][i]["seconds"] for r in migrating],
            limit=tolerances.pageload,
            higher_is_better=False,
            unit="s",
        )
        if not verdict["ok"]:
            failed.append(describe(download["path"], verdict))
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)
