"""Find and remove what runs left behind on this machine: processes tagged with a run id, work directories.

Used by every teardown as a last sweep, and by `comps-harness clean` after a crash. Run ids are
matched exactly, never by prefix; each backend adds its own sweep (harness.backends.registry).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.system.proc import OWNER_ENV, RUN_ENV

WORKDIR_PREFIX = "comps-harness-"


def workdir_prefix(run_id: str) -> str:
    return f"{WORKDIR_PREFIX}{run_id}-"


@dataclass(frozen=True)
class TaggedProcess:
    pid: int
    run_id: str
    owner: int | None  # the pid of the harness process that started it
    command: str


@dataclass
class Leftovers:
    processes: list[TaggedProcess] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    wireguard_sockets: list[str] = field(default_factory=list)
    backend: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.directories or self.wireguard_sockets or self.backend)

    def describe(self) -> list[str]:
        return (
            [f"process {p.pid} ({p.command}) of run {p.run_id}" for p in self.processes]
            + [f"directory {d}" for d in self.directories]
            + [f"socket {s}" for s in self.wireguard_sockets]
            + self.backend
        )


def _own_ancestry() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _environ_value(environ: bytes, name: str) -> str | None:
    prefix = f"{name}=".encode()
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def tagged_processes(run_id: str | None = None) -> list[TaggedProcess]:
    """Processes whose environment carries exactly `run_id` (None: any run of this harness)."""
    found, skip = [], _own_ancestry()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            tag = _environ_value(environ, RUN_ENV)
            if tag is None or (run_id is not None and tag != run_id):
                continue
            owner = _environ_value(environ, OWNER_ENV)
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        if command.strip():  # zombies have no command line and need no killing
            found.append(
                TaggedProcess(int(entry), tag, int(owner) if owner and owner.isdigit() else None, command.strip()[:120])
            )
    return found


def workdirs(run_id: str | None = None) -> list[str]:
    """Work directories of exactly `run_id` (None: of every run); named <prefix><run id>-<random>."""
    pattern = f"{WORKDIR_PREFIX}{run_id}-*" if run_id is not None else f"{WORKDIR_PREFIX}*"
    found = glob.glob(os.path.join(tempfile.gettempdir(), pattern))
    if run_id is not None:  # 'a-b' must not match the run 'a-b-3': the rest after the id has no dash
        found = [d for d in found if "-" not in os.path.basename(d)[len(workdir_prefix(run_id)) :]]
    return sorted(found)


def workdir_run_id(directory: str) -> str:
    """The run id in a work directory's name."""
    return os.path.basename(directory)[len(WORKDIR_PREFIX) :].rsplit("-", 1)[0]


BROWSER_TMP_PREFIX = "comps-browser-"  # harness.agents.browser's temp dirs: comps-browser-<pid>-*


def stale_browser_dirs() -> list[str]:
    """Temp dirs of browser agents that are gone (killed before they could remove them)."""
    found = []
    for directory in glob.glob(os.path.join(tempfile.gettempdir(), f"{BROWSER_TMP_PREFIX}*")):
        pid = os.path.basename(directory)[len(BROWSER_TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            found.append(directory)
    return sorted(found)


def stray_wireguard_sockets() -> list[str]:
    """Sockets in the machine's own /run/wireguard: a host's daemon that escaped its private mount."""
    return sorted(glob.glob("/run/wireguard/*.sock"))


def dead_wireguard_sockets() -> list[str]:
    """Stray sockets that no daemon listens on any more: a wireguard-go that escaped its host's private
    mount and died left them, and they belong to no live run (a live daemon's socket is never listed)."""
    dead = []
    for path in stray_wireguard_sockets():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            dead.append(path)
        except OSError:
            continue  # in use, or not a socket we can judge: left alone
        finally:
            probe.close()
    return dead


def find_leftovers(run_id: str) -> Leftovers:
    return Leftovers(tagged_processes(run_id), workdirs(run_id), stray_wireguard_sockets())


def _kill(processes: list[TaggedProcess], sig: int) -> None:
    for process in processes:
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            pass


def remove_run(run_id: str, grace: float = 2.0) -> list[str]:
    """Stop every process tagged with exactly `run_id` (daemons get SIGTERM first, so they remove
    their devices), then remove its work dirs."""
    if not run_id:
        raise ConfigError("remove_run needs a run id")
    removed = []
    processes = tagged_processes(run_id)
    if processes:
        _kill(processes, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and tagged_processes(run_id):
            time.sleep(0.02)
        _kill(tagged_processes(run_id), signal.SIGKILL)
        removed += [f"process {p.pid} ({p.command})" for p in processes]
    for directory in workdirs(run_id):
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(f"directory {directory}")
    return removed


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owners_of(run_id: str) -> set[int]:
    """The live harness processes that own exactly `run_id` (from its processes' tags and work dirs' owner files)."""
    owners = {p.owner for p in tagged_processes(run_id) if p.owner is not None}
    for directory in workdirs(run_id):
        try:
            owners.add(int(Path(directory, OWNER_FILE).read_text()))
        except (OSError, ValueError):
            continue
    return {pid for pid in owners if alive(pid) and pid not in _own_ancestry()}


def stop_owners(run_id: str, grace: float) -> list[str]:
    """SIGTERM to the live harness processes of `run_id` (they tear their run down), awaited up to `grace`."""
    owners = owners_of(run_id)
    for pid in owners:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in owners):
        time.sleep(0.05)
    return [f"harness process {pid} of run {run_id} (SIGTERM)" for pid in sorted(owners)]


def run_ids_on_machine() -> dict[str, bool]:
    """Run id -> whether its harness process still lives, for every run with processes or work dirs here.

    A work dir alone (no tagged process) belongs to a dead run unless its owner file names a live pid.
    """
    runs: dict[str, bool] = {}
    for process in tagged_processes():
        runs[process.run_id] = runs.get(process.run_id, False) or alive(process.owner)
    for directory in workdirs():
        run_id = workdir_run_id(directory)
        owner = Path(directory, OWNER_FILE)
        try:
            live = alive(int(owner.read_text()))
        except (OSError, ValueError):
            live = False
        runs[run_id] = runs.get(run_id, False) or live
    return runs


OWNER_FILE = ".owner-pid"
