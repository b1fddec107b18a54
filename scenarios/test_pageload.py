"""Chromium page loads and timed downloads from origin, with migration vs without, same run, interleaved.

As for throughput: a migrating repetition whose proof fails fails the test; an unproven one gets no cost.
"""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.measure.services import PAGE_NAMES, measured_pairs, page_load_ms, require_measurement_tools
from harness.measure.verdicts import describe, ratio_verdict
from harness.model.metrics import DOWNLOAD, Scenario, series

pytestmark = [pytest.mark.network, pytest.mark.migration, pytest.mark.measurement]


def measured(origin_services, migration_plan, measure_settings, tolerances, record_condition, scenario, request):
    may_spend = request.getfixturevalue("may_spend")
    pairs = measured_pairs(
        origin_services,
        migration_plan,
        scenario,
        measure_settings,
        tolerances,
        lambda cond, rep, result: record_condition(scenario, cond, rep, result),
        may_spend,
    )
    request.node.user_properties += pairs.properties()
    return pairs


def test_page_loads(
    origin_services, migration_plan, tolerances, measure_settings, record_condition, proof_gate, request
):
    try:
        require_measurement_tools(browser=True)
    except HarnessError as exc:  # a missing browser is an error naming it, never a skip
        pytest.fail(str(exc), pytrace=False)
    pairs = measured(
        origin_services, migration_plan, measure_settings, tolerances, record_condition, Scenario.PAGELOAD, request
    )
    baseline, migrating = pairs.baseline, pairs.migrating
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
            design=pairs.design,
        )
        if not verdict["ok"]:
            failed.append(describe(page, verdict))
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)


def test_download_time(
    network, origin_services, migration_plan, tolerances, measure_settings, record_condition, proof_gate, request
):
    pairs = measured(
        origin_services, migration_plan, measure_settings, tolerances, record_condition, Scenario.DOWNLOAD, request
    )
    baseline, migrating = pairs.baseline, pairs.migrating
    if not proof_gate(migrating):
        return
    failed = []
    before = series(DOWNLOAD, [r.figures for r in baseline])
    after = series(DOWNLOAD, [r.figures for r in migrating])
    for path, seconds in before.items():
        verdict = ratio_verdict(
            seconds,
            after[path],
            limit=tolerances.pageload,
            higher_is_better=False,
            unit="s",
            design=pairs.design,
        )
        if not verdict["ok"]:
            failed.append(describe(path, verdict))
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)
