"""SSH to the inventory's hosts: one persistent OpenSSH connection per host, commands multiplexed over it.

Why OpenSSH with ControlMaster (see docs/remote.md): it is the ssh the researcher already configures
(known_hosts, agents, jump hosts), one master per host carries every command of the run with no
handshake per command (about 20 ms a command here), and each command is a child process, so the
harness's deadlines, death signals and run tags apply to it as to any other.

- Strict host keys: StrictHostKeyChecking=yes against the inventory's known_hosts only; an unknown
  or changed key ends the run with one line naming the host. BatchMode: never a prompt.
- No silent reconnect: a command goes through the master's socket or fails (its own ProxyCommand is
  `false`, so ssh cannot open a connection of its own when the master is gone).
- Secrets travel on stdin, never in an argument, a file or a log.
- `DryRun` records every command per host instead of running it (`--dry-run`).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from harness.errors import BackendError, CommandError
from harness.model.inventory import RemoteHost
from harness.system import proc

CONNECT_TIMEOUT = 15.0
ALIVE_INTERVAL = 2  # s between keep-alives; ServerAliveCountMax of them unanswered ends the master
ALIVE_COUNT = 3
REMOTE_TAG = proc.RUN_ENV


def remote_workdir(run_id: str) -> str:
    """The run's directory on a remote host (pid files, logs, captures): tagged by its name."""
    return f"/tmp/comps-harness-{run_id}"


def remote_command(argv: list[str], run_id: str | None, env: dict[str, str] | None = None) -> str:
    """One shell line for the remote side: the run's tag in the environment (unless `run_id` is None: the
    sweep, which must not match itself), every argument quoted."""
    tags = [f"{REMOTE_TAG}={run_id}"] if run_id is not None else []
    tags += [f"{key}={value}" for key, value in sorted((env or {}).items())]
    return shlex.join(["env", *tags, *argv])


class DryRun:
    """What a run would send to each host, in order, instead of sending it."""

    def __init__(self) -> None:
        self.commands: dict[str, list[str]] = {}

    def record(self, role: str, line: str, input: str | None) -> None:
        self.commands.setdefault(role, []).append(line + ("  < (stdin)" if input is not None else ""))

    def text(self) -> str:
        return "\n".join(f"{role}: {line}" for role, lines in self.commands.items() for line in lines)


class Connection:
    """The run's connection to one host (its ControlMaster), and every command sent through it."""

    def __init__(self, host: RemoteHost, run_id: str, workdir: Path, *, dry_run: DryRun | None = None) -> None:
        self.host = host
        self.run_id = run_id
        self.socket = workdir / f"ssh-{host.role}.sock"
        self.log_path = workdir / f"ssh-{host.role}.log"
        self.dry_run = dry_run
        self.master: proc.Process | None = None

    @property
    def role(self) -> str:
        return self.host.role

    def options(self) -> list[str]:
        host = self.host
        return [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={host.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
            str(host.identity),
            "-p",
            str(host.port),
            "-o",
            f"ControlPath={self.socket}",
            "-F",
            "/dev/null",  # the inventory says everything; no ~/.ssh/config surprises
        ]

    def open(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Start the master and wait until it carries commands; a refused key or host key names the host."""
        self.start(timeout)
        self.wait_ready(timeout)

    def start(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Start the master (from the thread that owns the run: its death signal follows that thread)."""
        if self.dry_run is not None:
            return
        self.socket.unlink(missing_ok=True)  # a master that died leaves its socket; a new one would not listen
        argv = ["ssh", *self.options(), "-M", "-N", "-o", "ControlPersist=no"]
        argv += ["-o", f"ConnectTimeout={int(timeout)}", "-o", f"ServerAliveInterval={ALIVE_INTERVAL}"]
        argv += ["-o", f"ServerAliveCountMax={ALIVE_COUNT}"]
        if self.host.proxy_command:
            argv += ["-o", f"ProxyCommand={self.host.proxy_command}"]
        self.master = proc.Process(
            [*argv, self.host.target], name=f"{self.role}/ssh", env=proc.tagged_env(self.run_id), log_path=self.log_path
        )

    def wait_ready(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Wait until the started master carries commands (any thread may wait)."""
        if self.master is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.master.running():
                raise BackendError(f"{self.role}: ssh {self.host.target} port {self.host.port} failed: {self._why()}")
            if self.socket.exists() and self._check():
                return
            time.sleep(0.05)
        self.close()
        raise BackendError(f"{self.role}: ssh {self.host.target} did not connect within {timeout:g} s")

    def _why(self) -> str:
        tail = self.master.log_tail() if self.master is not None else ""
        if "Host key verification failed" in tail or "REMOTE HOST IDENTIFICATION HAS CHANGED" in tail:
            return f"its host key is not in {self.host.known_hosts} (or has changed); nothing was accepted"
        return tail or "no output"

    def _check(self) -> bool:
        argv = ["ssh", *self.options(), "-O", "check", self.host.target]
        return subprocess.run(argv, capture_output=True, timeout=5, check=False).returncode == 0

    def alive(self) -> bool:
        return self.dry_run is not None or (self.master is not None and self.master.running())

    def argv(self, line: str) -> list[str]:
        """The local argv that runs shell `line` on the host through the master, and never otherwise."""
        return ["ssh", *self.options(), "-o", "ControlMaster=no", "-o", "ProxyCommand=false", self.host.target, line]

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
        check: bool = True,
        input: str | None = None,
        tagged: bool = True,
    ) -> proc.CommandResult:
        line = remote_command(argv, self.run_id if tagged else None, env)
        if self.dry_run is not None:
            self.dry_run.record(self.role, line, input)
            return proc.CommandResult(argv, 0, "", "", 0.0)
        self._require_alive(argv)
        result = proc.run(
            self.argv(line),
            where=self.role,
            env=proc.tagged_env(self.run_id),
            timeout=timeout,
            check=False,
            input=input,
        )
        if result.returncode == 255 and not self.alive():
            raise CommandError(self.role, argv, None, result.stdout, result.stderr, reason="lost its ssh connection")
        if check and result.returncode != 0:
            raise CommandError(self.role, argv, result.returncode, result.stdout, result.stderr)
        return proc.CommandResult(argv, result.returncode, result.stdout, result.stderr, result.seconds)

    def _require_alive(self, argv: list[str]) -> None:
        if not self.alive():
            raise CommandError(self.role, argv, None, "", "", reason="lost its ssh connection (no reconnect)")

    def spawn(
        self, argv: list[str], *, name: str, env: dict[str, str] | None = None, log_path: Path, stdout: int | None
    ) -> RemoteProcess:
        self._require_alive(argv)
        return RemoteProcess(self, argv, name=name, env=env, log_path=log_path, stdout=stdout)

    def close(self) -> None:
        """End the master (the commands still running through it end with it)."""
        if self.master is not None:
            if self.master.running():
                argv = ["ssh", *self.options(), "-O", "exit", self.host.target]
                subprocess.run(argv, capture_output=True, timeout=5, check=False)
            self.master.stop()
        with_socket = self.socket
        if with_socket.exists():
            with_socket.unlink()


class RemoteProcess(proc.Process):
    """A process on a remote host, started through the host's master; stopping it signals it there.

    Its pid is kept in the run's remote directory, so a signal reaches the process itself (the local
    ssh client only relays its output), and `clean` finds it by the run's tag after a lost connection."""

    def __init__(
        self,
        connection: Connection,
        argv: list[str],
        *,
        name: str,
        env: dict[str, str] | None,
        log_path: Path,
        stdout: int | IO | None,
    ) -> None:
        self.connection = connection
        self.pidfile = f"{remote_workdir(connection.run_id)}/{name.replace('/', '-')}.pid"
        wrapped = ["sh", "-c", 'echo $$ > "$0"; exec "$@"', self.pidfile, *argv]
        line = remote_command(wrapped, connection.run_id, env)
        super().__init__(
            connection.argv(line), name=name, env=proc.tagged_env(connection.run_id), log_path=log_path, stdout=stdout
        )

    def send_signal(self, sig: int) -> None:
        if self.running():
            self._signal_remote(sig)

    def stop(self, timeout: float = 2.0, sig: int = signal.SIGTERM) -> int | None:
        if self.running():
            self._signal_remote(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_remote(signal.SIGKILL)
        return super().stop(timeout, sig)

    def _signal_remote(self, sig: int) -> None:
        if not self.connection.alive():
            return  # `clean` removes it by its tag
        script = f'[ -f "$0" ] && kill -{int(sig)} "$(cat "$0")" 2>/dev/null; true'
        try:
            self.connection.run(["sh", "-c", script, self.pidfile], timeout=10, check=False)
        except CommandError:
            pass


def in_parallel(connections: Iterable[Connection], call: Callable[[Connection], object]) -> dict[str, object]:
    """`call` on every host at once (a thread per host); role -> its result (an exception is raised)."""
    connections = list(connections)
    with ThreadPoolExecutor(max_workers=max(1, len(connections))) as pool:
        futures = {c.role: pool.submit(call, c) for c in connections}
        return {role: future.result() for role, future in futures.items()}


def private_key_pair(path: Path, comment: str) -> str:
    """A fresh ed25519 key pair at `path` (0600) and `path`.pub; returns the public key line."""
    if path.exists():
        os.unlink(path)
    proc.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        where="ssh-keygen",
        env=dict(os.environ),
        timeout=15,
    )
    return Path(f"{path}.pub").read_text().strip()
