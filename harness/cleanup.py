"""Find and remove what runs left behind: processes tagged with a run id, work directories.

Used by every teardown as a last sweep, and by `comps-harness clean` after a crash.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.proc import RUN_ENV

WORKDIR_PREFIX = "comps-harness-"


def workdir_prefix(run_id: str) -> str:
    return f"{WORKDIR_PREFIX}{run_id}-"


@dataclass(frozen=True)
class TaggedProcess:
    pid: int
    run_id: str
    command: str


@dataclass
class Leftovers:
    processes: list[TaggedProcess] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    wireguard_sockets: list[str] = field(default_factory=list)
    docker: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.directories or self.wireguard_sockets or self.docker)

    def describe(self) -> list[str]:
        return ([f"process {p.pid} ({p.command}) of run {p.run_id}" for p in self.processes]
                + [f"directory {d}" for d in self.directories]
                + [f"socket {s}" for s in self.wireguard_sockets] + self.docker)


def _own_ancestry() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def tagged_processes(run_prefix: str) -> list[TaggedProcess]:
    """Processes whose environment carries a run id that starts with `run_prefix`."""
    found, skip = [], _own_ancestry()
    marker = f"{RUN_ENV}={run_prefix}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            if marker not in environ:
                continue
            run_id = next(v for v in environ.split(b"\0") if v.startswith(marker)).split(b"=", 1)[1].decode()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration):
            continue  # gone meanwhile, or a kernel thread
        if command.strip():  # zombies have no command line and need no killing
            found.append(TaggedProcess(int(entry), run_id, command.strip()[:120]))
    return found


def workdirs(run_prefix: str) -> list[str]:
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), f"{WORKDIR_PREFIX}{run_prefix}*")))


def stray_wireguard_sockets() -> list[str]:
    """Sockets in the machine's own /run/wireguard: a host's daemon that escaped its private mount."""
    return sorted(glob.glob("/run/wireguard/*.sock"))


DOCKER_RUN_LABEL = "org.comps-harness.run"
DOCKER_SOCKET = "/var/run/docker.sock"


def _docker():
    """A client of the local engine, or None when there is none (then there is nothing of ours in it)."""
    if not os.path.exists(DOCKER_SOCKET):
        return None
    try:
        import docker
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:  # no SDK, or no engine behind the socket
        return None


def docker_objects(run_prefix: str, client=None) -> list[tuple[str, object]]:
    """(kind, object) of containers, networks and volumes labelled by runs whose id starts with `run_prefix`."""
    client = client or _docker()
    if client is None:
        return []
    found = []
    for kind, collection in (("container", client.containers), ("network", client.networks),
                             ("volume", client.volumes)):
        kwargs = {"all": True} if kind == "container" else {}
        for item in collection.list(filters={"label": DOCKER_RUN_LABEL}, **kwargs):
            labels = item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels") or {}
            if labels.get(DOCKER_RUN_LABEL, "").startswith(run_prefix):
                found.append((kind, item))
    return found


def _describe(kind: str, item) -> str:
    return f"docker {kind} {getattr(item, 'name', None) or item.id}"


def remove_docker(run_prefix: str) -> list[str]:
    """Remove our containers first (they hold the networks), then networks and volumes."""
    removed = []
    for kind, item in docker_objects(run_prefix):
        try:
            if kind == "container":
                item.remove(force=True, v=True)
            else:
                item.remove()
        except Exception:  # already gone, or still in use: find_leftovers reports what stays
            continue
        removed.append(_describe(kind, item))
    return removed


def find_leftovers(run_prefix: str) -> Leftovers:
    return Leftovers(tagged_processes(run_prefix), workdirs(run_prefix), stray_wireguard_sockets(),
                     [_describe(kind, item) for kind, item in docker_objects(run_prefix)])


def _kill(processes: list[TaggedProcess], sig: int) -> None:
    for process in processes:
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            pass


def remove_run(run_prefix: str, grace: float = 2.0, *, docker: bool = True) -> list[str]:
    """Stop every tagged process (daemons get SIGTERM first, so they remove their devices) and remove work dirs."""
    removed = []
    processes = tagged_processes(run_prefix)
    if processes:
        _kill(processes, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and tagged_processes(run_prefix):
            time.sleep(0.02)
        _kill(tagged_processes(run_prefix), signal.SIGKILL)
        removed += [f"process {p.pid} ({p.command})" for p in processes]
    if docker:  # a namespace run creates nothing in Docker: its teardown skips asking the engine
        removed += remove_docker(run_prefix)
    for directory in workdirs(run_prefix):
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(f"directory {directory}")
    return removed
