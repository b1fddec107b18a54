"""Subprocesses the harness starts: argument lists, timeouts, captured output, a run tag.

Every process carries COMPS_HARNESS_RUN=<run id> and COMPS_HARNESS_OWNER=<harness pid> in its environment,
so `comps-harness clean` can find it and tell a live run from a dead one.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.errors import CommandError, WaitTimeout

RUN_ENV = "COMPS_HARNESS_RUN"
OWNER_ENV = "COMPS_HARNESS_OWNER"  # the pid of the harness process: `clean` leaves runs whose owner lives
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child before exec: if the harness is killed outright (SIGKILL), the kernel
    # sends SIGTERM to what it started, so daemons like wireguard-go do not outlive it.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


die_with_parent = _die_with_parent  # for Popen(preexec_fn=...) elsewhere
SETPRIV = shutil.which("setpriv")  # util-linux: an essential package on Debian


def dying_with_parent(argv: list[str], where: str, path: str | None = None) -> list[str]:
    """`argv` run so that it gets SIGTERM if the harness dies (as _die_with_parent does), without a
    preexec_fn: one disables vfork, and a full fork of the harness's large, threaded process took
    hundreds of ms to seconds in a UML guest (the counter reads of a migration were 3-7 s apart).
    setpriv sets the death signal and execs the command; a command that is not there is said before (looked
    up in `path`, the child's own PATH, as setpriv will)."""
    if SETPRIV is None:
        return argv
    if shutil.which(argv[0], path=path) is None:
        raise CommandError(where, argv, None, "", f"{argv[0]}: not found", reason="could not start")
    return [SETPRIV, "--pdeathsig", "TERM", "--", *argv]


def tagged_env(run_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[RUN_ENV] = run_id
    env[OWNER_ENV] = str(os.getpid())
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run(
    argv: list[str],
    *,
    where: str,
    env: dict[str, str],
    timeout: float = 30.0,
    check: bool = True,
    input: str | None = None,
) -> CommandResult:
    """Run a command to completion; a failure or time-out raises CommandError with its output."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            dying_with_parent(argv, where, env.get("PATH")),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=None if input is not None else subprocess.DEVNULL,
            preexec_fn=None if SETPRIV else _die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(where, argv, None, out, err, reason=f"timed out after {timeout:g} s") from None
    except FileNotFoundError as exc:
        raise CommandError(where, argv, None, "", str(exc), reason="could not start") from None
    result = CommandResult(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandError(where, argv, proc.returncode, proc.stdout, proc.stderr)
    return result


class Process:
    """A long-running process owned by the harness: a context manager that stops it on exit."""

    def __init__(
        self,
        argv: list[str],
        *,
        name: str,
        env: dict[str, str],
        log_path: Path | None = None,
        stdout: int | IO | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        # held open for the process's life and closed by stop(): no `with` can span that
        self._log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
        out = stdout if stdout is not None else (self._log or subprocess.DEVNULL)
        try:
            self.popen = subprocess.Popen(
                dying_with_parent(argv, name, env.get("PATH")),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=self._log or subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=None if SETPRIV else _die_with_parent,
            )
        except CommandError:
            self._close_log()
            raise
        except FileNotFoundError as exc:
            self._close_log()
            raise CommandError(name, argv, None, "", str(exc), reason="could not start") from None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])

    def send_signal(self, sig: int) -> None:
        """Signal the process itself (and nothing that relays its output), if it still runs."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 2.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process, wait, and kill it if it does not go; returns its exit code."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._close_log()
        return self.popen.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_until(stream: IO, marker: str, timeout: float) -> tuple[list[str], bool]:
    """Lines from a child's pipe until one holds `marker`, the pipe closes or `timeout` passes.

    Returns (the lines read, whether the marker came). Reads the file descriptor directly with a
    deadline on every read: a child that says nothing can never block the caller."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    pending, lines = b"", []
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        *complete, pending = (pending + chunk).split(b"\n")
        for raw in complete:
            lines.append(raw.decode(errors="replace"))
            if marker in lines[-1]:
                return lines, True
    if pending:
        lines.append(pending.decode(errors="replace"))
    return lines, any(marker in line for line in lines)


def wait_exit(popen: subprocess.Popen, timeout: float, what: str) -> int:
    """The child's exit status, or WaitTimeout naming `what` when it is still running after `timeout`."""
    try:
        return popen.wait(timeout)
    except subprocess.TimeoutExpired:
        raise WaitTimeout(f"{what} did not exit within {timeout:g} s") from None
