"""SIGINT and SIGTERM during bring-up and during traffic leave nothing behind.

Each case runs `comps-harness up` as a child process, signals it at a chosen moment, then looks
for anything tagged with its run id: processes, work dirs, WireGuard sockets.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from harness.backends.sshlab import lab_run_id
from harness.system.cleanup import find_leftovers
from harness.system.proc import read_until

pytestmark = pytest.mark.network
TRIGGER_TIMEOUT_S = 120  # the moment to signal comes within seconds; a loaded docker bring-up is slower


@pytest.mark.ssh
@pytest.mark.parametrize("moment, trigger", [("bringup", "creating hosts"), ("traffic", "traffic running")])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_leaves_nothing(backend, backend_ready, child_run_ids, sig, moment, trigger):
    run_id = child_run_ids()
    child = subprocess.Popen(
        [sys.executable, "-m", "harness", "up", "--backend", backend, "--run-id", run_id, "--hold", "20", "--traffic"],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    signalled_at = None
    try:
        lines, found = read_until(child.stderr, trigger, TRIGGER_TIMEOUT_S)
        seen += [line.strip() for line in lines]
        if found:
            child.send_signal(sig)
            signalled_at = len(seen)
        rest, _ = child.communicate(timeout=30)
        seen += rest.splitlines() if rest else []
    finally:
        if child.poll() is None:
            child.kill()
    assert signalled_at is not None, f"never saw {trigger!r}; output: {seen}"
    if moment == "bringup":
        assert not any(line.endswith(": ready") for line in seen[:signalled_at]), "signal came after bring-up"
    expected = 143 if sig == signal.SIGTERM else 130
    assert child.returncode == expected, f"expected the exit code {expected}, got {child.returncode}: {seen[-3:]}"
    # over ssh also what its local SSH hosts ran (their own tag) and what it made on them (they die with it)
    ids = [run_id, lab_run_id(run_id)] if backend == "ssh" else [run_id]
    deadline = time.monotonic() + 3
    while (leftovers := [item for i in ids for item in find_leftovers(i).describe()]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leftovers, f"left behind after {signal.Signals(sig).name} during {moment}: {leftovers}"
