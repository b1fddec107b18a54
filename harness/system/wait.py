"""The one wait: poll a condition until it holds, or raise WaitTimeout naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.errors import WaitTimeout
from harness.system import signals


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.002, what: str) -> None:
    """Poll `predicate` every `interval` s until it is true; WaitTimeout after `timeout` s.

    An exception raised by `predicate` propagates at once (a daemon that died is not worth waiting for).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
        signals.checkpoint()  # a signal deferred by its handler stops the wait here
