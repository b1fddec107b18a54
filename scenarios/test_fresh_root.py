"""The install list, checked on a pristine Debian 12 root: what a used machine happens to have hides nothing.

A minimal root (debootstrap --variant=minbase, as the offline base image; cached in .cache/fresh-root/)
is copied for each run and given only this machine's network configuration: apt's sources and settings,
the local CA certificates and the resolver (the egress of a bare machine of this kind, not packages).
Inside it, in a private mount namespace that dies with the run, a `git clone` of this checkout's
HEAD runs `./bootstrap.sh install`, and then, with only what that installed: one netns bring-up,
`comps-harness vm -- sh -c 'exit 3'` (expect 3), `comps-harness preflight` (local SSH hosts: sshd, ssh, nc)
and a Chromium page load through the session.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.backends.images import debootstrap_minbase
from harness.vm.kernel import default_cache

pytestmark = [pytest.mark.fresh_root]

REPO = Path(__file__).resolve().parent.parent
CLONE = "/root/comps-harness"  # inside the root
RUN_TIMEOUT_S = 2400  # apt, pip and the kernel fetch from scratch: ~6-10 min here; a slow mirror more
# The machine's network configuration the root gets (the rest of it is Debian's own minbase).
MACHINE_CONFIG = (
    "etc/apt/sources.list.d",
    "etc/apt/sources.list",
    "etc/apt/apt.conf.d",
    "etc/pip.conf",
    "usr/local/share/ca-certificates",
    "etc/resolv.conf",
    "etc/hosts",
)
STEPS = f"""
set -u
cd {CLONE}
step() {{
  name=$1; shift; started=$(date +%s); "$@"; status=$?
  echo "fresh-root step $name: exit $status in $(( $(date +%s) - started )) s"
}}
step install ./bootstrap.sh install
step bringup .venv/bin/comps-harness up --hold 1
step vm .venv/bin/comps-harness vm -- sh -c 'exit 3'
step preflight .venv/bin/comps-harness preflight
step pageload .venv/bin/pytest -p no:cacheprovider -q scenarios/test_connectivity.py -k page_loads --backend netns
"""


def cached_root(progress) -> Path:
    """The minimal root, made once per machine under a file lock (its contents are never written to)."""
    cache = default_cache() / "fresh-root"
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "bookworm-minbase"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            building = cache / "building"
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir()
            debootstrap_minbase(building, progress)
            (building / ".complete").touch()
            building.rename(root)
    return root


def give_machine_config(root: Path) -> None:
    """This machine's egress settings, and a policy-rc.d: packages' postinst scripts start no daemon in a
    chroot (docker.io and udev would)."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    for relative in MACHINE_CONFIG:
        source = Path("/") / relative
        if not source.exists():  # e.g. no sources.list beside debian.sources: debootstrap's goes too
            (root / relative).unlink(missing_ok=True)
            continue
        target = root / relative
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=True)


def root_argv(root: Path, script: str) -> list[str]:
    """Private mount and PID namespaces (the mounts, and every process started inside, die with it), the
    kernel's file systems inside the root, pivot_root into it, then the script with a plain environment.

    pivot_root, not chroot: in a chroot the root is not its mount namespace's root, and a mount made
    by a process that unshares another mount namespace (the hosts' private /run/wireguard) lands
    outside the chroot, where nobody in it sees it."""
    r = shlex.quote(str(root))
    env = (
        "/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "
        "LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180"
    )
    inner = (
        f"mount --rbind {r} {r} && mount --rbind /dev {r}/dev && mount -t proc proc {r}/proc && "
        f"mount --rbind /sys {r}/sys && mount -t tmpfs tmpfs {r}/run && mount -t tmpfs tmpfs {r}/tmp && "
        f"mkdir -p {r}/.old-root && cd {r} && pivot_root . .old-root && cd / && umount -l /.old-root && "
        f"exec {env} /bin/bash -c {shlex.quote(script)}"
    )
    namespaces = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]
    return [*namespaces, "--", "sh", "-c", inner]


def test_a_pristine_root_installs_everything_the_harness_needs(tmp_path):
    started = time.monotonic()
    base = cached_root(lambda line: print(f"fresh-root: {line}", flush=True))
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(base), str(root)], check=True, timeout=300)
    give_machine_config(root)
    subprocess.run(["git", "clone", "-q", str(REPO), str(root) + CLONE], check=True, timeout=120)
    try:
        done = subprocess.run(
            root_argv(root, STEPS), capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S
        )
    finally:
        # the namespace's mounts went with it; the root's copy goes now (a leftover daemon would hold it)
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], timeout=300)
    said = f"stdout: {done.stdout[-4000:]}\nstderr: {done.stderr[-3000:]}"
    steps = dict(
        line.split("fresh-root step ", 1)[1].split(": ", 1)
        for line in done.stdout.splitlines()
        if line.startswith("fresh-root step ")
    )
    print(f"fresh-root: {steps} ({time.monotonic() - started:.0f} s in all)")
    assert steps.get("install", "").startswith("exit 0"), f"./bootstrap.sh install failed on a pristine root\n{said}"
    assert steps.get("bringup", "").startswith("exit 0"), f"a netns bring-up failed with only what it installed\n{said}"
    assert steps.get("vm", "").startswith("exit 3"), f"the guest's exit status 3 did not come back\n{said}"
    assert steps.get("preflight", "").startswith("exit 0"), f"local SSH hosts failed their pre-flight check\n{said}"
    assert steps.get("pageload", "").startswith("exit 0"), f"a page load failed with only what it installed\n{said}"
    assert not os.path.exists(root), "the pristine root's copy was not removed"
