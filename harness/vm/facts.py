"""The machine a run ran on, as stored with every run record: the host's facts and, in a guest, the guest's.

Above harness.system (its probes) and beside the VM runner, whose guest sets the variables read here.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from harness.system import prereq
from harness.vm.command import CLOCKSOURCES, IN_VM_ENV, VM_KERNEL_ENV, kvm_booted


def vm_facts() -> dict | None:
    """Inside a `comps-harness vm` guest: the accel it really runs under, its kernel and where it came from."""
    requested = os.environ.get(IN_VM_ENV)
    if not requested:
        return None
    try:
        clocks = Path(CLOCKSOURCES).read_text()
    except OSError:
        clocks = ""
    uml = requested == "uml"  # User-mode Linux: no accel, the kernel runs as a host process
    return {
        "kind": "uml" if uml else "qemu",
        "accel": "uml" if uml else "kvm" if kvm_booted(clocks) else "tcg",
        "requested_accel": requested,
        "host": platform.node(),
        "kernel": platform.release(),
        "kernel_source": os.environ.get(VM_KERNEL_ENV, "unknown"),
    }


def environment() -> dict:
    """Versions and machine facts stored with every run record."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        harness_version = version("comps-harness")
    except PackageNotFoundError:
        harness_version = "unknown"
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "os": prereq.os_name(),
        "cpu_model": prereq.cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "harness": harness_version,
        "commit": prereq.commit(),
        "kernel_wireguard": prereq.kernel_wireguard_available(),
        "qdiscs": prereq.available_qdiscs(),
        "vm": vm_facts(),
        "versions": {
            tool: prereq.tool_version(tool) for tool in ("wireguard-go", "wg", "iperf3", "chromium", "chromedriver")
        },
    }
