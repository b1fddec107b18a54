"""The report as a reader sees it: rendered in a real headless Chromium, its chart text is on screen."""

from __future__ import annotations

import shutil

from harness.model.evidence import MigrationEvidence, PathDelivery, PathUse, SwitchRecord
from harness.model.metrics import TCP_UP, Scenario
from harness.model.records import parse
from harness.model.schedule import MigrationPlan
from harness.reporting import report


def proven() -> dict:
    """Evidence that proves its migration (4 switches on time, both paths delivering, adherence 0.96): a cost
    row is drawn only from proven repetitions."""
    return MigrationEvidence(
        plan=MigrationPlan(interval=0.1, duration=2.0),
        duration_s=2.0,
        planned_switches=4,
        scheduled_paths=[1, 2],
        switches=[SwitchRecord(0.1 * (i + 1), 1 + i % 2, 2 - i % 2) for i in range(4)],
        per_path={1: PathUse(1000, 10), 2: PathUse(1000, 10)},
        endpoint_changes=4,
        endpoint_paths=[1, 2],
        delivery={k: PathDelivery(1000, 1000, 1000, 1000, 1000, 1000) for k in (1, 2)},
        windows=[(1, 1.0, 100), (2, 0.95, 100), (1, 0.9, 100), (2, 1.0, 100)],
    ).to_dict()


def records() -> list:
    out = [
        parse(
            {
                "kind": "run",
                "run_id": "r",
                "argv": ["comps-harness", "sweep"],
                "cwd": "/",
                "options": {"throughput_tolerance": "0.9"},
                "environment": {"kernel": "6.x", "cpu_model": "cpu"},
            }
        )
    ]
    for rep in range(3):
        for condition, interval, bps in (("baseline", None, 300e6 + rep * 1e6), ("alternate-i0.1s", 0.1, 250e6 + rep)):
            out.append(
                parse(
                    {
                        "kind": "measurement",
                        "run_id": "r",
                        "scenario": Scenario.THROUGHPUT,
                        "test": "t[i0.1s]",
                        "condition": condition,
                        "interval": interval,
                        "backend": "netns",
                        "repetition": rep,
                        "figures": {TCP_UP: {"bits_per_second": bps, "series": [[0.1, bps], [0.2, bps]]}},
                        "evidence": proven() if interval else None,
                    }
                )
            )
    return out


def test_chart_text_is_visible_in_a_browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    for tool in ("chromium", "chromedriver"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install chromium chromium-driver"
    page = tmp_path / "report.html"
    page.write_text(report.build(records()))
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        browser.set_window_size(1200, 3000)
        browser.get(page.as_uri())
        titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "svg text.chart-title") if e.is_displayed()]
        visible = " | ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, "svg text") if e.is_displayed())
        browser.save_screenshot(str(tmp_path / "report.png"))
    finally:
        browser.quit()
    assert any("with migration / without" in title for title in titles), titles
    for text in ("within tolerance (0.9..1x)", "bar: 95 % interval", "n=3", "ratio to baseline (1 = no cost)"):
        assert text in visible, f"{text!r} is not visible on screen: {visible[:500]}"
