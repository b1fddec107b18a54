"""Checks of what a run needs from this machine, made before anything is created.

Each failure is one line naming the missing piece and how to get it.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import PrerequisiteError
from harness.model.kinds import WireGuardChoice, WireGuardImpl, wireguard_request

# Which Debian package brings each binary the harness calls.
APT_PACKAGES = {
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "ip": "iproute2",
    "wg": "wireguard-tools",
    "wireguard-go": "wireguard-go",
    "iptables-restore": "iptables",
    "iperf3": "iperf3",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "ping": "iputils-ping",
    "tcpdump": "tcpdump",
    "curl": "curl",
    "ss": "iproute2",
    "docker": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "file": "file",  # virtme-ng checks that busybox is static with it
    "strings": "binutils",  # virtme-ng reads the kernel version with it
    "setpriv": "util-linux",
    "ssh": "openssh-client",  # the ssh backend, and its local SSH hosts (sshd, nc)
    "ssh-keygen": "openssh-client",
    "sshd": "openssh-server",
    "nc": "netcat-openbsd",
}
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def require_binaries(names: list[str] | tuple[str, ...]) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        hints = sorted({APT_PACKAGES.get(name, name) for name in missing})
        raise PrerequisiteError(f"{', '.join(missing)} not found on PATH: apt-get install {' '.join(hints)}")


def require_any_binary(names: tuple[str, ...]) -> str:
    """The first of `names` on PATH, or PrerequisiteError naming the package of the first."""
    for name in names:
        if shutil.which(name):
            return name
    raise PrerequisiteError(
        f"none of {', '.join(names)} found on PATH: apt-get install {APT_PACKAGES.get(names[0], names[0])}"
    )


def _effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def require_privileges() -> None:
    """Namespaces and netlink writes need root with CAP_NET_ADMIN and CAP_SYS_ADMIN."""
    caps = _effective_capabilities()
    missing = [
        name
        for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
        if not caps >> bit & 1
    ]
    if os.geteuid() != 0 or missing:
        why = "not running as root" if os.geteuid() != 0 else f"missing {', '.join(missing)}"
        raise PrerequisiteError(
            f"the namespace backend needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN ({why}): "
            "run as root, or in a container started with --privileged"
        )


def require_tun() -> None:
    if not os.path.exists("/dev/net/tun"):
        raise PrerequisiteError(
            "/dev/net/tun is missing: wireguard-go needs the TUN device (modprobe tun, "
            "or pass --device /dev/net/tun to the container this runs in)"
        )


def kernel_wireguard_available() -> bool:
    if os.path.isdir("/sys/module/wireguard"):
        return True
    modules = Path("/lib/modules") / platform.release()
    return modules.is_dir() and any(modules.rglob("wireguard.ko*"))


def resolve_wireguard(requested: str | WireGuardChoice) -> WireGuardImpl:
    """--wireguard auto|kernel|wireguard-go -> the implementation to use, or say why not."""
    requested = wireguard_request(requested)
    has_kernel = kernel_wireguard_available()
    if requested == WireGuardChoice.KERNEL and not has_kernel:
        raise PrerequisiteError(
            "--wireguard kernel: this kernel has no WireGuard module; use --wireguard wireguard-go or auto"
        )
    if requested == WireGuardChoice.KERNEL or (requested == WireGuardChoice.AUTO and has_kernel):
        return WireGuardImpl.KERNEL
    return WireGuardImpl.WIREGUARD_GO


def wireguard_implementation(requested: str) -> WireGuardImpl:
    """resolve_wireguard, plus what wireguard-go needs on this machine."""
    implementation = resolve_wireguard(requested)
    if implementation == WireGuardImpl.WIREGUARD_GO:
        require_binaries(["wireguard-go"])
        require_tun()
    return implementation


def check_netns_backend(wireguard: str) -> WireGuardImpl:
    """All the namespace backend needs; returns the WireGuard implementation it will use."""
    require_privileges()
    require_binaries(["unshare", "nsenter", "wg", "iptables-restore", "ping"])
    return wireguard_implementation(wireguard)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


@functools.cache
def tool_version(tool: str) -> str:
    """One line naming a tool's version, or 'not installed'."""
    if shutil.which(tool) is None:
        return "not installed"
    line = _first_line([tool, "--version"])
    match = re.search(r"v?\d+(\.\d+)+", line)
    return match.group(0) if match else line


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def commit() -> str:
    """The git commit of the harness's source tree, or 'unknown' (an install outside a checkout)."""
    source = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


# Each qdisc with the smallest arguments it accepts; probed on `lo` of a throwaway network namespace.
QDISC_PROBES = {
    "netem": "delay 1ms",
    "tbf": "rate 1mbit burst 32kbit latency 50ms",
    "htb": "default 1",
    "fq": "",
    "fq_codel": "",
    "cake": "",
    "sfq": "",
    "prio": "",
    "pfifo": "",
}


def qdisc_probe_script() -> str:
    return "; ".join(
        f"tc qdisc add dev lo root handle 1: {name} {args} 2>/dev/null && echo {name} && tc qdisc del dev lo root"
        for name, args in QDISC_PROBES.items()
    )


@functools.cache
def available_qdiscs() -> list[str] | None:
    """The qdiscs this kernel offers (of QDISC_PROBES), or None when they cannot be probed (not root, no tc)."""
    if os.geteuid() != 0 or shutil.which("tc") is None or shutil.which("unshare") is None:
        return None
    try:
        out = subprocess.run(
            ["unshare", "--net", "sh", "-c", qdisc_probe_script()],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [name for name in out.stdout.split() if name in QDISC_PROBES] if out.returncode == 0 else None
