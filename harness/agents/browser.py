"""Page loads in a real Chromium through Selenium; prints one JSON object per load.

Namespace backend: run inside the client host (nsenter), it starts chromedriver and Chromium
there. Docker backend: run by the harness with --remote, it drives the chromedriver of a browser
container that shares the client container's network namespace. Either way all browser traffic
leaves through the client's wg0.
    python -m harness.agents.browser [--remote URL] --timeout 30 --screenshots DIR URL [URL ...]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

NAVIGATION = """
const nav = performance.getEntriesByType('navigation')[0];
const res = performance.getEntriesByType('resource');
return {ttfb_ms: nav.responseStart - nav.startTime,
        dom_content_loaded_ms: nav.domContentLoadedEventEnd - nav.startTime,
        load_ms: nav.loadEventEnd - nav.startTime,
        objects: res.length,
        bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0)};
"""


_PR_SET_PDEATHSIG = 1
BROWSERS = ("chromium", "chromium-browser", "google-chrome")  # Debian's first; GitHub's runners have Chrome


def _die_with_parent() -> None:
    # chromedriver (and the Chromium it starts) must not outlive this agent, even after a SIGKILL
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"browser agent: received {signal.Signals(signum).name}")  # unwinds through quit()


def driver(timeout: float, remote: str | None = None, profile: Path | None = None):
    """A local chromedriver + Chromium, or (with `remote`) the chromedriver of a browser container.

    `profile`: the browser's profile and temp files go there (the run's work dir), not to /tmp."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection
    options = webdriver.ChromeOptions()
    local = next((found for name in BROWSERS if (found := shutil.which(name))), "chromium")
    options.binary_location = "/usr/bin/chromium" if remote else local
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-crash-reporter", "--metrics-recording-only",
                 "--disable-default-apps", "--no-proxy-server"):
        options.add_argument(flag)
    if profile is not None and not remote:
        profile.mkdir(parents=True, exist_ok=True)
        options.add_argument(f"--user-data-dir={profile / 'user-data'}")
        (profile / "tmp").mkdir(exist_ok=True)
        os.environ["TMPDIR"] = str(profile / "tmp")  # Chromium's /tmp/org.chromium.Chromium.* go here
        os.environ["HOME"] = os.environ["XDG_CONFIG_HOME"] = str(profile)  # and ~/.config/chromium too
    if remote:
        connection = ChromiumRemoteConnection(remote, vendor_prefix="goog", browser_name="chrome", ignore_proxy=True)
        browser = webdriver.Remote(command_executor=connection, options=options)
    else:
        service = Service(shutil.which("chromedriver") or "chromedriver", env=dict(os.environ),
                          popen_kw={"preexec_fn": _die_with_parent, "start_new_session": True})
        browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(timeout)
    for cmd, params in (("Network.enable", {}), ("Network.setCacheDisabled", {"cacheDisabled": True})):
        browser.execute("executeCdpCommand", {"cmd": cmd, "params": params})
    return browser


def load(browser, url: str, screenshots: Path | None, index: int) -> dict:
    from selenium.common.exceptions import TimeoutException, WebDriverException
    started = time.monotonic()
    try:
        browser.get(url)
        figures = browser.execute_script(NAVIGATION)
        return {"url": url, "ok": True, "started_at": started, **figures}
    except (TimeoutException, WebDriverException) as exc:
        shot = None
        if screenshots is not None:
            screenshots.mkdir(parents=True, exist_ok=True)
            shot = str(screenshots / f"load-{index}.png")
            try:
                browser.save_screenshot(shot)
            except WebDriverException:
                shot = None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"url": url, "ok": False, "started_at": started, "reason": f"{type(exc).__name__}: {reason}",
                "screenshot": shot}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--screenshots", type=Path)
    parser.add_argument("--remote", help="URL of a chromedriver to drive (the Docker backend's browser container)")
    parser.add_argument("--profile", type=Path, help="directory for the browser's profile and temp files")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    browser = driver(args.timeout, args.remote, args.profile)
    try:
        results = [load(browser, url, args.screenshots, i) for i, url in enumerate(args.urls)]
    finally:
        browser.quit()
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
