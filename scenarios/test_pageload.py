"""Chromium page loads and timed downloads from origin, with migration vs without, same run, interleaved."""

from __future__ import annotations

import functools

import pytest

from harness.errors import HarnessError
from harness.measure.services import (
    for_measurement,
    interleave,
    page_load_ms,
    require_measurement_tools,
)
from harness.measure.verdicts import describe, ratio_verdict
from harness.model.metrics import Scenario
from harness.runtime.content import MB, PAGES, file_name

pytestmark = [pytest.mark.network, pytest.mark.migration, pytest.mark.measurement]
# Page loads and downloads vary a lot from one load to the next (n=3 gave intervals like [0.4, 2.7]);
# with one browser per test a pair costs ~5 s, so they take at least this many pairs.
MIN_PAIRS = 5


def test_page_loads(network, origin_services, migration_plan, tolerances, measure_settings, record_condition):
    try:
        require_measurement_tools(browser=True)
    except HarnessError as exc:  # a missing browser is an error naming it, never a skip
        pytest.fail(str(exc), pytrace=False)
    pages = [f"{name}.html" for name in PAGES]
    measure = functools.partial(
        origin_services.page_set,
        pages,
        timeout=measure_settings.page_timeout,
        screenshots=network.workdir / "screenshots",
    )
    plan = for_measurement(migration_plan, 10)
    baseline, migrating = interleave(
        network,
        plan,
        max(measure_settings.repeat, MIN_PAIRS),
        measure,
        lambda cond, rep, result: record_condition(Scenario.PAGELOAD, cond, rep, result),
    )
    failed = []
    for page in pages:
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


def test_download_time(network, origin_services, migration_plan, tolerances, measure_settings, record_condition):
    files = [file_name(int(mb * MB)) for mb in measure_settings.download_mb]

    def measure() -> dict:
        return {"downloads": [origin_services.download(name) for name in files]}

    plan = for_measurement(migration_plan, 10)
    baseline, migrating = interleave(
        network,
        plan,
        max(measure_settings.repeat, MIN_PAIRS),
        measure,
        lambda cond, rep, result: record_condition(Scenario.DOWNLOAD, cond, rep, result),
    )
    failed = []
    for i, name in enumerate(files):
        verdict = ratio_verdict(
            [r.figures["downloads"][i]["seconds"] for r in baseline],
            [r.figures["downloads"][i]["seconds"] for r in migrating],
            limit=tolerances.pageload,
            higher_is_better=False,
            unit="s",
        )
        if not verdict["ok"]:
            failed.append(describe(name, verdict))
    if failed:  # a verdict: one line with the effect, its interval and units, not a traceback
        pytest.fail("; ".join(failed), pytrace=False)
