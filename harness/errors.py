"""The harness's exception hierarchy.

Every message is one line a user can act on; the command output that explains it travels along.
"""

from __future__ import annotations

import signal


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class ConfigError(HarnessError, ValueError):
    """Bad input (an option, an address plan, a schedule), detected before anything is created."""


class PrerequisiteError(HarnessError):
    """Something the run needs is missing on this machine (a binary, a privilege, a kernel feature)."""


class BackendError(HarnessError):
    """A backend could not build, drive or remove the topology."""


class CommandError(BackendError):
    """A command run on a host failed; carries its exit code and captured output."""

    def __init__(
        self, host: str, argv: list[str], returncode: int | None, stdout: str, stderr: str, reason: str = ""
    ) -> None:
        self.host = host
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        what = reason or (f"exited with {returncode}" if returncode is not None else "timed out")
        tail = (stderr or stdout).strip().splitlines()[-3:]
        detail = (": " + " | ".join(tail)) if tail else ""
        super().__init__(f"{host}: `{' '.join(argv)}` {what}{detail}")


class MigrationError(HarnessError):
    """The migration controller could not switch paths as asked."""


class MeasurementError(HarnessError):
    """A measurement tool failed or produced output that could not be read. One that failed while the client
    migrated carries that migration's evidence (`evidence`), so the proof can still say whether a path broke."""

    evidence = None


class WaitTimeout(HarnessError):
    """Something the harness waited for did not happen in time (harness.system.wait)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM as an exception: it unwinds like Ctrl-C (so every owner cleans up) and carries
    the signal, so the exit status (130, 143) never depends on a message's text."""

    def __init__(self, signum: int, during: str = "") -> None:
        self.signum = signum
        super().__init__(f"received {signal.Signals(signum).name}" + (f" {during}" if during else ""))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code_of(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal: Python's own Ctrl-C (a plain KeyboardInterrupt) is SIGINT."""
    return interrupt.exit_code if isinstance(interrupt, Interrupted) else 128 + signal.SIGINT
