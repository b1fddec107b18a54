"""`comps-harness sweep`: every migration scenario across the intervals through pytest, then the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import options
from harness.cli.common import REPO, VM_OPTIONS, progress, settings_of
from harness.errors import ConfigError, HarnessError, Interrupted, WaitTimeout, exit_code_of
from harness.model.records import load as load_records
from harness.model.settings import (
    new_run_id,
)
from harness.reporting.summary import SweepVerdict, cost_line, cost_stops, sweep_verdict
from harness.system import signals
from harness.vm.command import IN_VM_ENV

SWEEP_DEADLINE_S = 12 * 3600.0  # a sweep longer than this is stuck (each test has pytest-timeout's 600 s too)


TEARDOWN_DEADLINE_S = 300.0  # pytest's teardown after a SIGINT: every fixture's own time-outs fit in it


def run_id_for(out: Path) -> str:
    """A run id from an output directory's name: its letters, digits and dashes (any name is accepted)."""
    text = re.sub(r"[^A-Za-z0-9-]+", "-", out.name).strip("-")
    return text or new_run_id()


SWEEP_OPTIONS = [
    option
    for option in options.OPTIONS
    if option.section in ("plan", "measure", "tolerances")
    or option.flag
    in ("--backend", "--paths", "--wireguard", "--profile", "--profiles", "--shard", "--sweep-id", "--shard-durations")
]


def cmd_sweep(args: argparse.Namespace, pytest_args: list[str]) -> int:
    """Every migration scenario across the intervals through pytest, then the HTML report of its results."""
    from harness.reporting import report

    settings_of(args)  # bad input stops here, before anything starts
    if not (REPO / "scenarios").is_dir():
        raise HarnessError(f"sweep runs the scenarios of a source checkout; {REPO / 'scenarios'} is missing")
    out = Path(args.out).absolute() if args.out else REPO / "reports" / new_run_id()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"--out {out} is not empty: pick a new directory, or add --force to replace its results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("results.jsonl", "junit.xml", "report.html"):
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror})") from None
    run_id = run_id_for(out)
    begun = time.time()  # --budget counts from here, through pytest's start and the tests, to the report
    given = options.passthrough_argv(vars(args), SWEEP_OPTIONS) + (["--observe"] if args.observe else [])
    # pytest's own terminal output is off: the progress lines and the summary below say it all
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        str(REPO / "scenarios"),
        "-m",
        "migration",
        *given,
        "--run-id",
        run_id,
        "--run-dir",
        str(out),
        "--sweep-progress",
        "--budget-from",
        f"{begun:.3f}",
        "--junitxml",
        str(out / "junit.xml"),
        *pytest_args,
    ]
    reproduce = ["comps-harness", "sweep", *given, *pytest_args] + (["--strict"] if args.strict else [])
    if os.environ.get(IN_VM_ENV):  # a sweep --vm: its rerun boots a guest again, as this one did
        reproduce += ["--vm", *options.passthrough_argv(vars(args), VM_OPTIONS)]
    env = {**os.environ, "COMPS_HARNESS_REPRODUCE": json.dumps(reproduce)}
    progress(f"sweep {run_id} into {out}: {shlex.join(reproduce)}")
    status = _run_forwarding_signals(argv, env)
    results = out / "results.jsonl"
    if not results.exists():
        raise HarnessError(f"the sweep produced no results ({results} is missing); pytest exited {status}")
    records = options.with_recorded_settings(load_records(results))
    path = report.write(results, records=records)
    verdict = print_verdict(records, strict=args.strict)
    print(f"report: {path}\nresults: {results}")
    if status not in (0, 1):  # pytest itself failed (usage, internal error, nothing collected)
        return status
    return verdict.exit_status


def print_verdict(records: list, strict: bool = False) -> SweepVerdict:
    """The closing lines of a sweep (or of a merged one): what failed, what is unproven, why the rows stopped."""
    from harness.reporting import report

    verdict = sweep_verdict(records, strict=strict)
    rows = report.cost_rows(records, report.run_tolerances(records))
    for line in [*verdict.lines, *([cost_line(cost_stops(rows))] if rows else [])]:
        print(line)
    return verdict


def _run_forwarding_signals(argv: list[str], env: dict[str, str]) -> int:
    """Run pytest in its own session; a SIGINT/SIGTERM here is passed on, and pytest's teardown awaited."""
    child = subprocess.Popen(argv, cwd=REPO, start_new_session=True, env=env)
    try:
        with signals.interrupts_unwind():
            return child.wait(SWEEP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        _stop_pytest(child)
        raise WaitTimeout(
            f"sweep: pytest was still running after {SWEEP_DEADLINE_S / 3600:g} h; it was stopped "
            "and its topologies torn down"
        ) from None
    except KeyboardInterrupt as exc:
        received = signal.Signals(exit_code_of(exc) - 128)
        progress(f"sweep: {received.name} received; waiting for pytest to tear down")
        _stop_pytest(child)
        raise Interrupted(received) from None


def _stop_pytest(child: subprocess.Popen) -> None:
    """SIGINT (pytest's fixtures tear down), then SIGKILL to its session if teardown does not end in time."""
    with signals.deferred():
        child.send_signal(signal.SIGINT)
        try:
            child.wait(TEARDOWN_DEADLINE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
