"""Boot a guest with virtme-ng, run one command in it, pass its exit status back; nothing outlives it.

vng and its qemu run in a session of their own. On SIGINT/SIGTERM the qemu of that session is
sent SIGTERM (it powers the guest off; vng then removes its temp files and exits), and whatever
is left after a grace period is killed. `accel auto` asks a short probe boot whether KVM can run
the guest (on some hosts /dev/kvm exists but a stock kernel faults under it) and remembers the
answer per host, qemu and guest kernel in the cache, so the probe's cost is paid once.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.errors import BackendError, ConfigError, PrerequisiteError, WaitTimeout
from harness.model.kinds import Accel, GuestKind
from harness.model.settings import Settings, VmSettings
from harness.system import signals
from harness.system.prereq import require_binaries, tool_version
from harness.system.proc import die_with_parent, tagged_env, wait_exit
from harness.vm import uml
from harness.vm.command import (
    IN_VM_ENV,
    UDEVD_PATHS,
    VM_KERNEL_ENV,
    GuestSpec,
    choose_accel,
    guest_script,
    kvm_booted,
    outermost,
    passed_back,
    probe_argv,
    qemu_wrapper_script,
    vng_argv,
)
from harness.vm.kernel import GuestKernel, default_cache
from harness.vm.kernel import resolve as resolve_kernel

PROBE_TIMEOUT_S = 30.0  # KVM boots in a few seconds; a guest that faults under it never answers
STOP_GRACE_S = 15.0
BOOT_TIMEOUT_S = 300.0  # TCG boots in ~25 s on 2 cores, KVM in seconds: a guest not started by then hung
PROBE_FILE = "accel-probe.json"


def vng_binary() -> str:
    """vng from the harness's own environment (the `vm` extra), else from PATH."""
    beside = Path(sys.executable).parent / "vng"
    if beside.exists():
        return str(beside)
    found = shutil.which("vng")
    if found is None:
        raise PrerequisiteError(
            "vng (virtme-ng) not found: pip install 'comps-harness[vm]' (./bootstrap.sh main --vm does it)"
        )
    return found


def require_vm_tools() -> None:
    require_binaries(["qemu-system-x86_64", "busybox", "setpriv", "file", "strings"])
    vng_binary()
    if not any(Path(path).exists() for path in UDEVD_PATHS) and not shutil.which("udevd"):
        raise PrerequisiteError(
            "udevd not found: the guest shares this root and virtme-ng-init needs udevd to "
            "find its virtio-serial ports, or the command's output and exit status are lost: "
            "apt-get install --no-install-recommends udev"
        )


def _write_qemu_wrapper(path: Path) -> Path:
    """qemu through `setpriv --pdeathsig` (command.qemu_wrapper_script), for vng's --qemu."""
    require_binaries(["qemu-system-x86_64"])
    path.write_text(qemu_wrapper_script(shutil.which("qemu-system-x86_64")))
    path.chmod(0o755)
    return path


def _start_vng(argv: list[str], env: dict[str, str], *, stderr: int, text: bool) -> subprocess.Popen:
    """vng in a session of its own (stop_guest finds its qemu by the group), dying with the harness."""
    return subprocess.Popen(
        argv,
        env=_vng_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=text,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def _vng_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PATH"] = f"{Path(vng_binary()).parent}:{env.get('PATH', '')}"  # vng finds its helpers beside it
    return env


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def stop_guest(child: subprocess.Popen) -> None:
    """Power the guest off (SIGTERM to its qemu), let vng clean up, kill what is left."""
    pgid = child.pid
    qemus = [pid for pid in _group_pids(pgid) if _comm(pid).startswith("qemu")]
    for pid in qemus or [child.pid]:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        child.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    for _ in range(50):
        left = _group_pids(pgid)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    wait_exit(child, STOP_GRACE_S, "vng (the guest's virtme-ng), after SIGKILL")


class BootFailed(BackendError):
    """vng exited before the guest reached its script: nothing of the command ran, so it may boot again."""


BOOT_ATTEMPTS = 2  # a boot that stops before the command starts is tried once more, and says so


@dataclass
class GuestRun:
    returncode: int
    boot_s: float | None  # from the start of vng to the guest's command starting
    stdout: str | None  # only when captured


def _pump(source: IO[bytes], sink: IO[bytes] | None, keep: list[bytes] | None) -> None:
    for chunk in iter(lambda: source.read1(65536), b""):
        if keep is not None:
            keep.append(chunk)
        if sink is not None:
            sink.write(chunk)
            sink.flush()


def _await_guest(child: subprocess.Popen, started: float, up: list[float], timeout: float) -> int:
    """The guest's exit status; WaitTimeout when its command has not started BOOT_TIMEOUT_S after the boot
    began (a kernel, qemu or init that hangs), or is still running after `timeout`."""
    while True:
        try:
            return child.wait(1.0)
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            if not up and elapsed > BOOT_TIMEOUT_S:
                raise WaitTimeout(
                    f"vm: the guest had not started its command {BOOT_TIMEOUT_S:g} s after booting (its kernel, "
                    "qemu or virtme-ng-init hung); it was powered off"
                ) from None
            if elapsed > timeout:
                raise WaitTimeout(
                    f"vm: the guest's command was still running after --vm-timeout {timeout:g} s; it was powered off"
                ) from None


def _run_until_done(
    child: subprocess.Popen, up_marker: Path, started: float, *, timeout: float, capture: bool, stop
) -> tuple[int, float | None, str | None]:
    """A booting guest's exit status, boot time (to its up-marker) and output (when captured); on SIGINT,
    SIGTERM or a time-out `stop(child)` powers it off first."""
    up: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            if up_marker.exists():
                up.append(time.monotonic() - started)
                return

    kept: list[bytes] = []
    threads = [
        threading.Thread(target=watch, name="guest-up", daemon=True),
        threading.Thread(
            target=_pump,
            args=(child.stdout, None if capture else sys.stdout.buffer, kept if capture else None),
            daemon=True,
        ),
        threading.Thread(target=_pump, args=(child.stderr, sys.stderr.buffer, None), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        with signals.interrupts_unwind():
            returncode = _await_guest(child, started, up, timeout)
    except (KeyboardInterrupt, WaitTimeout):
        with signals.deferred():
            stop(child)
        raise
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=5)
    stdout = b"".join(kept).decode(errors="replace") if capture else None
    return returncode, (round(up[0], 2) if up else None), stdout


def run_guest(spec: GuestSpec, env: dict[str, str], *, timeout: float, capture: bool = False) -> GuestRun:
    """Boot, run the spec's command, return its exit status; SIGINT/SIGTERM stop the guest first.

    The guest's output reaches ours through pipes: qemu opens its output files with O_TRUNC, so
    handing it a log file directly would wipe what the file held."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    spec.up_marker.unlink(missing_ok=True)
    spec.status_file.unlink(missing_ok=True)
    spec.script_file.write_text(guest_script(spec))
    _write_qemu_wrapper(spec.qemu_wrapper)
    started = time.monotonic()
    child = _start_vng(vng_argv(spec, vng_binary()), env, stderr=subprocess.PIPE, text=False)
    returncode, boot_s, stdout = _run_until_done(
        child, spec.up_marker, started, timeout=timeout, capture=capture, stop=stop_guest
    )
    written = spec.status_file.read_text() if spec.status_file.exists() else None
    status, problem = passed_back(returncode, written)
    if problem and written is None and not spec.up_marker.exists():
        raise BootFailed(f"vm: the guest stopped before its command started (vng exited {returncode})")
    if problem:
        raise BackendError(f"vm: {problem}")
    return GuestRun(status, boot_s, stdout)


def stop_uml(child: subprocess.Popen) -> None:
    """Stop a UML guest: its kernel and the host processes that carry its processes share one session."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        deadline = time.monotonic() + (STOP_GRACE_S if sig == signal.SIGTERM else 5.0)
        while _group_pids(child.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    wait_exit(child, STOP_GRACE_S, "the User-mode Linux guest, after SIGKILL")


def run_uml(spec: uml.UmlSpec, env: dict[str, str], *, timeout: float, capture: bool = False) -> GuestRun:
    """Boot the UML guest, run the spec's command, return the exit status its init wrote."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    spec.up_marker.unlink(missing_ok=True)
    spec.status_file.unlink(missing_ok=True)
    spec.init_file.write_text(uml.init_script(spec))
    spec.init_file.chmod(0o755)
    require_binaries(["setpriv"])
    started = time.monotonic()
    child = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", *uml.uml_argv(spec)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    returncode, boot_s, stdout = _run_until_done(
        child, spec.up_marker, started, timeout=timeout, capture=capture, stop=stop_uml
    )
    stop_uml(child)  # what the guest left of its host processes, if any
    written = spec.status_file.read_text().strip() if spec.status_file.exists() else None
    if written is None and not spec.up_marker.exists():
        raise BootFailed(f"vm: the UML guest stopped before its command started (it exited {returncode})")
    if written is None or not written.isdigit():
        raise BackendError(
            f"vm: the UML guest's command did not run to the end (the guest exited {returncode} and wrote "
            f"{'no' if written is None else 'an unreadable'} exit status): see its console output above"
        )
    return GuestRun(int(written), boot_s, stdout)


def _probe_key(kernel: GuestKernel) -> str:
    return f"{platform.release()}|{tool_version('qemu-system-x86_64')}|{kernel.version}"


def kvm_usable(kernel: GuestKernel, cache: Path, progress: Callable[[str], None]) -> tuple[bool, str]:
    """Can KVM boot this kernel here? (answer, reason if not); a probe boot, remembered in the cache."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    store = cache / PROBE_FILE
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    key = _probe_key(kernel)
    if key in known:
        return known[key]["kvm"], known[key]["reason"] + f" (probed {known[key]['when']}, remembered in {store})"
    progress(f"vm: probing whether KVM can boot the guest (at most {PROBE_TIMEOUT_S:g} s, once per machine)")
    with tempfile.TemporaryDirectory(prefix="comps-harness-kvm-probe-") as state:
        wrapper = _write_qemu_wrapper(Path(state) / "qemu")
        child = _start_vng(probe_argv(kernel.image, vng_binary(), wrapper), {}, stderr=subprocess.STDOUT, text=True)
        try:
            with signals.interrupts_unwind():
                output = child.communicate(timeout=PROBE_TIMEOUT_S)[0]
            ok = child.returncode == 0 and kvm_booted(output)
            reason = "" if ok else f"the probe boot exited {child.returncode} without kvm-clock"
        except subprocess.TimeoutExpired:
            ok, reason = False, f"a probe boot did not finish within {PROBE_TIMEOUT_S:g} s"
        finally:
            with signals.deferred():
                if child.poll() is None:
                    stop_guest(child)
    known[key] = {"kvm": ok, "reason": reason, "when": time.strftime("%Y-%m-%d")}
    cache.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(known, indent=1))
    return ok, reason


def resolve_accel(requested: Accel, kernel: GuestKernel, cache: Path, progress: Callable[[str], None]) -> Accel:
    if requested != Accel.AUTO:
        return requested
    usable, why_not = kvm_usable(kernel, cache, progress)
    accel, line = choose_accel(requested, usable, why_not)
    if line:
        progress(line)
    return accel


def guest_env(accel: str, kernel: GuestKernel | uml.UmlKernel) -> dict[str, str]:
    """The guest command's environment: the caller's PATH (the venv first), the VM's facts, the run tag."""
    env = {
        name: os.environ[name]
        for name in ("PATH", "TERM", "LANG", "COMPS_HARNESS_REPRODUCE", "COMPS_HARNESS_CACHE")
        if name in os.environ
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env[IN_VM_ENV] = str(accel)
    env[VM_KERNEL_ENV] = kernel.describe()
    return env


@dataclass(frozen=True)
class Guest:
    kernel: GuestKernel | uml.UmlKernel
    accel: str  # how it runs: kvm or tcg (qemu), or uml

    @property
    def kind(self) -> GuestKind:
        return GuestKind.UML if isinstance(self.kernel, uml.UmlKernel) else GuestKind.QEMU

    def summary(self, boot_s: float | None) -> dict:
        """What a bench prints of its guest: kind, accel, kernel, boot time and (UML) the kernel's build time."""
        build_s = self.kernel.build_s if isinstance(self.kernel, uml.UmlKernel) else None
        return {
            "kind": str(self.kind),
            "accel": self.accel,
            "kernel": self.kernel.describe(),
            "boot_s": boot_s,
            "build_s": build_s,
        }


def guest_kind(settings: VmSettings, cache: Path) -> GuestKind:
    """--guest auto: uml where its kernel is built (and no vmlinuz of the user's was given), else qemu."""
    if settings.guest != GuestKind.AUTO:
        return settings.guest
    return GuestKind.UML if settings.kernel == "auto" and uml.cached(cache) else GuestKind.QEMU


def prepare(settings: VmSettings, progress: Callable[[str], None]) -> Guest:
    """The guest kind, its kernel (fetched or built on first use) and the accel (auto: the KVM probe), before
    any boot. A UML kernel that cannot be built is said in one line, and qemu boots instead."""
    cache = default_cache()
    if guest_kind(settings, cache) == GuestKind.UML:
        if settings.kernel != "auto":
            raise ConfigError(f"--kernel {settings.kernel}: a qemu guest's; --guest uml builds its own kernel")
        try:
            return Guest(uml.cached(cache) or uml.build(cache, progress), str(GuestKind.UML))
        except PrerequisiteError as failed:
            progress(f"{failed}; booting qemu instead")
    kernel = resolve_kernel(settings.kernel, cache, progress)
    require_vm_tools()
    return Guest(kernel, str(resolve_accel(settings.accel, kernel, cache, progress)))


def run_in_vm(
    settings: VmSettings,
    command: list[str],
    *,
    rwdirs: list[Path],
    cwd: Path,
    run_id: str,
    progress: Callable[[str], None],
    capture: bool = False,
    guest: Guest | None = None,
) -> GuestRun:
    """Boot a guest (prepared, or prepared here), run `command` in it with `rwdirs` writable."""
    guest = guest or prepare(settings, progress)
    env = tagged_env(run_id)
    with tempfile.TemporaryDirectory(prefix=f"comps-harness-{run_id}-vm-") as state:
        if isinstance(guest.kernel, uml.UmlKernel):
            spec = _uml_spec(guest.kernel, settings, command, rwdirs, cwd, Path(state), run_id)
            progress(f"vm: booting {guest.kernel.describe()} ({settings.memory}, one CPU)")

            def boot() -> GuestRun:
                return run_uml(spec, env, timeout=settings.timeout_s, capture=capture)

        else:
            qemu = GuestSpec(
                image=guest.kernel.image,
                accel=Accel(guest.accel),
                cpus=settings.cpus,
                memory=settings.memory,
                rwdirs=tuple(rwdirs),
                cwd=cwd,
                state_dir=Path(state),
                env=tuple(sorted(guest_env(guest.accel, guest.kernel).items())),
                command=tuple(command),
            )
            progress(
                f"vm: booting {guest.kernel.version} under {guest.accel} ({settings.cpus} CPUs, {settings.memory})"
            )

            def boot() -> GuestRun:
                return run_guest(qemu, env, timeout=settings.timeout_s, capture=capture)

        for _ in range(BOOT_ATTEMPTS - 1):
            try:
                return boot()
            except BootFailed as failed:
                progress(f"{failed}: booting once more")
        return boot()


def _uml_spec(
    kernel: uml.UmlKernel,
    settings: VmSettings,
    command: list[str],
    rwdirs: list[Path],
    cwd: Path,
    state_dir: Path,
    run_id: str,
) -> uml.UmlSpec:
    # the venv and the Python it was made from, where a private tmpfs would hide them (e.g. under /root)
    python = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()]
    hidden = [d for d in outermost(python) if uml.masked(d) and not any(d.is_relative_to(w) for w in rwdirs)]
    return uml.UmlSpec(
        binary=kernel.binary,
        memory=settings.memory,
        rwdirs=tuple(outermost([*rwdirs, state_dir])),
        readable=tuple(hidden),
        cwd=cwd,
        state_dir=state_dir,
        env=tuple(sorted({"HOME": "/root", **guest_env(str(GuestKind.UML), kernel)}.items())),
        command=tuple(command),
        umid=f"comps-harness-{run_id}",
    )


def bench_in_guest(
    settings: Settings, guest: Guest, bench: str, args: list[str], *, repo: Path, progress: Callable[[str], None]
) -> tuple[dict, float | None]:
    """`comps-harness bench <bench> --json ARGS` in a guest (the bench's own guest part, which prints one JSON
    line); that line, decoded, and the guest's boot time."""
    command = [sys.executable, "-m", "harness", "bench", bench, "--json", *args]
    command += ["--run-id", f"{settings.run.run_id}-guest"]
    inner = run_in_vm(
        settings.vm,
        command,
        rwdirs=[repo],
        cwd=repo,
        run_id=settings.run.run_id,
        progress=progress,
        capture=True,
        guest=guest,
    )
    lines = [line for line in (inner.stdout or "").splitlines() if line.startswith("{")]
    if inner.returncode != 0 or not lines:
        raise BackendError(f"bench {bench}: the guest's run exited {inner.returncode} without results")
    return json.loads(lines[-1]), inner.boot_s


def rerun_in_guest(
    settings: Settings, command: list[str], *, rwdirs: list[Path], cwd: Path, progress: Callable[[str], None]
) -> int:
    """`--vm` (pytest, sweep, bench): the same command, without --vm, in a guest; its exit status."""
    if settings.run.backends != ("netns",):
        raise ConfigError(
            f"--vm: the guest runs the netns backend only; drop --backend {','.join(settings.run.backends)}"
        )
    return run_in_vm(
        settings.vm,
        [arg for arg in command if arg != "--vm"],
        rwdirs=rwdirs,
        cwd=cwd,
        run_id=settings.run.run_id,
        progress=progress,
    ).returncode
