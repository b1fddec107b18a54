"""The guest's command line (pure): virtme-ng's argv, the script the guest runs, and the accel choice.

virtme-ng boots the kernel under qemu with the host's root file system shared read-only (writes
to /etc, /tmp, /var, ... land in a tmpfs overlay that dies with the guest); the directories
given with --rwdir (the repository, so results land in the host's reports/) are writable. The
guest runs one shell script: it marks that it is up (a file in the state dir, so the host can
time the boot), loads the modules the harness needs, sets the environment and execs the command,
whose exit status vng passes back.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.model.kinds import Accel

IN_VM_ENV = "COMPS_HARNESS_IN_VM"  # set in the guest: the accel it runs under (kvm or tcg)
VM_KERNEL_ENV = "COMPS_HARNESS_VM_KERNEL"  # set in the guest: where its kernel came from
# Loaded up front: the harness's kernel features (WireGuard, the qdiscs of path profiles, ifb).
GUEST_MODULES = ("wireguard", "sch_netem", "sch_tbf", "sch_htb", "sch_fq_codel", "ifb", "tun", "veth")
# Read by the KVM probe: kvm-clock is offered only under KVM.
CLOCKSOURCES = "/sys/devices/system/clocksource/clocksource0/available_clocksource"


@dataclass(frozen=True)
class GuestSpec:
    image: Path  # the vmlinuz
    accel: Accel  # resolved: KVM or TCG
    cpus: int
    memory: str
    rwdirs: tuple[Path, ...]  # writable in the guest, at the same paths
    cwd: Path
    state_dir: Path  # a writable dir of this run's: the up-marker and the qemu wrapper go there
    env: tuple[tuple[str, str], ...]
    command: tuple[str, ...]

    @property
    def up_marker(self) -> Path:
        return self.state_dir / "guest-up"

    @property
    def qemu_wrapper(self) -> Path:
        return self.state_dir / "qemu"

    @property
    def script_file(self) -> Path:
        """The script the guest runs. On the kernel command line virtme-ng passes only `sh <this file>`: the
        command line is cut at 2048 bytes on x86, and a script cut short is never run (the guest idles)."""
        return self.state_dir / "guest.sh"

    @property
    def status_file(self) -> Path:
        """The command's exit status, written by the guest itself: a second channel beside virtme-ng's."""
        return self.state_dir / "exit-status"


def qemu_wrapper_script(qemu: str) -> str:
    """qemu started through this gets SIGTERM when its parent (vng) dies, and vng gets it when the harness
    dies: a harness killed outright (SIGKILL, a test's time-out) leaves no guest running."""
    return f'#!/bin/sh\nexec setpriv --pdeathsig TERM {shlex.quote(qemu)} "$@"\n'


def outermost(directories: list[Path]) -> list[Path]:
    """Each directory once, and none inside another (a share mounted over a share of its parent hangs
    the guest's 9p mounts)."""
    unique = list(dict.fromkeys(directories))
    return [d for d in unique if not any(other != d and d.is_relative_to(other) for other in unique)]


def guest_script(spec: GuestSpec) -> str:
    """What the guest runs (from spec.script_file): mark up, load modules, set the environment, run the
    command, write its status."""
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in spec.env)
    lines = [
        f": > {shlex.quote(str(spec.up_marker))}",
        f"modprobe -a -q {' '.join(GUEST_MODULES)} 2>/dev/null",
        f"cd {shlex.quote(str(spec.cwd))}",
        f"env {exports} {shlex.join(spec.command)}",
        "status=$?",
        f"echo $status > {shlex.quote(str(spec.status_file))}",
        "exit $status",
    ]
    return "\n".join(lines) + "\n"


KERNEL_CMDLINE_MAX = 2048  # x86's COMMAND_LINE_SIZE: virtme-ng's script rides on it, base64-encoded


# Where virtme-ng-init looks for udevd (besides PATH): without it the guest has no /dev/virtio-ports/*,
# runs the command on the console, and its output and exit status never reach the host (vng exits 255).
UDEVD_PATHS = ("/usr/lib/systemd/systemd-udevd", "/lib/systemd/systemd-udevd")


def passed_back(vng_status: int, written: str | None) -> tuple[int, str | None]:
    """The command's exit status, or why the guest could not pass it back (one line).

    `written` is what the guest wrote into the status file (None: nothing): it must agree with
    what virtme-ng says, or the output went astray too."""
    if written is None:
        return vng_status, (
            f"the guest did not run its command to the end (vng exited {vng_status} and the "
            "guest wrote no exit status): see the guest's console output above"
        )
    try:
        status = int(written.strip())
    except ValueError:
        return vng_status, f"the guest wrote an unreadable exit status {written.strip()!r} (vng exited {vng_status})"
    if status != vng_status:
        return status, (
            f"the guest's command exited {status}, but virtme-ng passed back {vng_status}: its "
            "output and exit status did not reach the host (is udev installed? virtme-ng-init needs "
            "udevd to find its virtio-serial ports: apt-get install --no-install-recommends udev)"
        )
    return status, None


def vng_argv(spec: GuestSpec, vng: str) -> list[str]:
    argv = [
        vng,
        "--run",
        str(spec.image),
        "--qemu",
        str(spec.qemu_wrapper),
        "--cpus",
        str(spec.cpus),
        "--memory",
        spec.memory,
    ]
    if spec.accel == Accel.TCG:
        argv.append("--disable-kvm")
    for directory in outermost([*spec.rwdirs, spec.state_dir]):
        argv += ["--rwdir", str(directory)]
    return [*argv, "--cwd", str(spec.cwd), "--", f"sh {shlex.quote(str(spec.script_file))}"]


def probe_argv(image: Path, vng: str, qemu: Path) -> list[str]:
    """A minimal KVM boot that prints the guest's clock sources (kvm-clock only under KVM)."""
    return [
        vng,
        "--run",
        str(image),
        "--qemu",
        str(qemu),
        "--cpus",
        "1",
        "--memory",
        "512M",
        "--",
        f"cat {CLOCKSOURCES}",
    ]


def kvm_booted(probe_output: str) -> bool:
    return "kvm-clock" in probe_output


def choose_accel(requested: Accel, kvm_usable: bool, why_not: str) -> tuple[Accel, str | None]:
    """The accel to boot with, and the one line to say when auto falls back to TCG."""
    if requested == Accel.TCG:
        return Accel.TCG, None
    if requested == Accel.KVM or kvm_usable:
        return Accel.KVM, None
    return Accel.TCG, f"vm: KVM cannot run the guest here ({why_not}); using TCG (software emulation, ~50x slower)"
