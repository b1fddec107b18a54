"""Page loads in a real Chromium through Selenium; prints one JSON object per load.

Namespace backend: run inside the client host (nsenter), it starts chromedriver and Chromium
there. Docker backend: run by the harness with --remote, it drives the chromedriver of a browser
container that shares the client container's network namespace. Either way all browser traffic
leaves through the client's wg0.
    python -m harness.agents.browser [--remote URL] --timeout 30 --screenshots DIR URL [URL ...]
    python -m harness.agents.browser [--remote URL] --timeout 30 --screenshots DIR --serve
With --serve the browser stays: after a line {"ready": true} it reads one JSON list of URLs per
line on stdin and answers each with one JSON line (the list of loads), until stdin closes.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
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


def driver(timeout: float, remote: str | None = None, profile: Path | None = None, reachable: tuple[str, ...] = ()):
    """A local chromedriver + Chromium, or (with `remote`) the chromedriver of a browser container.

    `profile`: the browser's profile and config go there (the run's work dir). Its temp files go to a
    short dir of this agent's (TMP_PREFIX<pid>-...), removed when it ends: Chromium's singleton socket
    lives in TMPDIR, and a socket path longer than 108 bytes (a long run id's work dir) stops it from
    starting at all."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection

    options = webdriver.ChromeOptions()
    local = next((found for name in BROWSERS if (found := shutil.which(name))), "chromium")
    options.binary_location = "/usr/bin/chromium" if remote else local
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-crash-reporter",
        "--metrics-recording-only",
        "--disable-default-apps",
        "--no-proxy-server",
    ):
        options.add_argument(flag)
    if reachable:
        # every other host fails at once: the pages are addressed by IP, and the client's namespace has the
        # host's resolv.conf, whose resolver it cannot reach; Chromium's start-up lookups waited 16 s there
        # for DNS time-outs (17 s to a ready browser in the namespace, 1.7 s outside it)
        options.add_argument(f"--host-resolver-rules=MAP * ~NOTFOUND, {', '.join(f'EXCLUDE {h}' for h in reachable)}")
    if profile is not None and not remote:
        profile.mkdir(parents=True, exist_ok=True)
        options.add_argument(f"--user-data-dir={profile / 'user-data'}")
        os.environ["HOME"] = os.environ["XDG_CONFIG_HOME"] = str(profile)  # ~/.config/chromium too
    if remote:
        connection = ChromiumRemoteConnection(remote, vendor_prefix="goog", browser_name="chrome", ignore_proxy=True)
        browser = webdriver.Remote(command_executor=connection, options=options)
    else:
        service = Service(
            shutil.which("chromedriver") or "chromedriver",
            env=dict(os.environ),
            popen_kw={"preexec_fn": _die_with_parent, "start_new_session": True},
        )
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
        return {
            "url": url,
            "ok": False,
            "started_at": started,
            "reason": f"{type(exc).__name__}: {reason}",
            "screenshot": shot,
        }


START_ATTEMPTS = 3
TMP_PREFIX = "comps-browser-"  # /tmp/comps-browser-<agent pid>-*: `comps-harness clean` removes dead agents' dirs


def start(timeout: float, remote: str | None, profile: Path | None, reachable: tuple[str, ...] = ()):
    """The driven browser; Chromium that fails to start (it does, now and then, on a loaded machine) is
    tried again with a fresh profile. None after the last attempt, with one line on stderr saying why."""
    from selenium.common.exceptions import WebDriverException

    reason = ""
    for attempt in range(START_ATTEMPTS):
        try:
            return driver(timeout, remote, profile / f"attempt-{attempt}" if profile is not None else None, reachable)
        except WebDriverException as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(
                f"browser agent: Chromium did not start (attempt {attempt + 1} of {START_ATTEMPTS}): {reason}",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(1.0)
    print(f"browser agent: Chromium did not start: {reason}", file=sys.stderr, flush=True)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--screenshots", type=Path)
    parser.add_argument("--remote", help="URL of a chromedriver to drive (the Docker backend's browser container)")
    parser.add_argument("--profile", type=Path, help="directory for the browser's profile and temp files")
    parser.add_argument("--serve", action="store_true", help="keep the browser; URL lists on stdin, one per line")
    parser.add_argument(
        "--reachable",
        action="append",
        default=[],
        help="a host (IP) Chromium may resolve, repeatable; with any given, every other lookup fails at once",
    )
    parser.add_argument("urls", nargs="*")
    args = parser.parse_args(argv)
    if not args.urls and not args.serve:
        parser.error("give URLs, or --serve")
    signal.signal(signal.SIGTERM, _terminate)
    temp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
    os.environ["TMPDIR"] = temp  # Chromium's org.chromium.Chromium.* go here, not straight into /tmp
    try:
        browser = start(args.timeout, args.remote, args.profile, tuple(args.reachable))
        if browser is None:
            return 3
        try:
            if args.serve:
                serve(browser, args.screenshots)
                return 0
            results = [load(browser, url, args.screenshots, i) for i, url in enumerate(args.urls)]
        finally:
            browser.quit()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    json.dump(results, sys.stdout)
    return 0


def serve(browser, screenshots: Path | None) -> None:
    print(json.dumps({"ready": True}), flush=True)
    index = 0
    for line in sys.stdin:
        results = []
        for url in json.loads(line):
            results.append(load(browser, url, screenshots, index))
            index += 1
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    sys.exit(main())
