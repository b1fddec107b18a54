"""The User-mode Linux guest: its kernel, built once from Debian's kernel source, and how it boots.

UML is a Linux kernel that runs as an ordinary process of the host: kernel code (WireGuard, netem,
nf_tables) runs at native speed without KVM, where qemu's software emulation is 50-100x slower; what
is slow in it is process creation (a fork and exec costs ~24 ms). Debian's `user-mode-linux` package
has no WireGuard, so the kernel is built here: `make ARCH=um defconfig`, the shipped fragment
(harness/data/uml.config) merged over it, olddefconfig, a check that every option of the fragment
survived, `make ARCH=um linux`; into `<cache>/uml/<release>/` under a lock, once (nothing goes to the
host's /boot or /lib/modules, everything is built in).

The guest boots with the host's root over hostfs, read-only; its init (one shell script) mounts
private tmpfs over /run, /tmp, /var, /home and /root and a private copy of /etc, then the directories
it may write (the repository, the run's state dir) over hostfs read-write at the same paths, marks
that it is up, runs the command, writes its exit status into the state dir and powers off. UML keeps
its own state (`uml_dir`, the umid) in the run's state dir too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.data import UML_CONFIG, UML_PATCHES
from harness.errors import PrerequisiteError
from harness.vm.kernel import cache_lock

SOURCE_PACKAGE = "linux-source-6.1"  # Debian 12's kernel source (6.1 LTS), a tarball in /usr/src
BUILD_TOOLS = ("apt-get", "dpkg", "tar", "xz", "patch", "make", "gcc", "flex", "bison", "bc")
BUILD_PACKAGES = ("make", "gcc", "libc6-dev", "flex", "bison", "bc", "xz-utils", "patch")  # bootstrap.sh's uml_packages
BUILD_TIMEOUT_S = 3600.0  # 4.5 min on 2 cores here; an hour means a hung compiler
LOCK_TIMEOUT_S = BUILD_TIMEOUT_S + 600.0  # another run building the kernel: wait for it, not for ever
COMPLETE = ".complete"
BUILD_FILE = "build.json"
# masked in the guest by a private tmpfs: what the guest writes there stays in the guest
PRIVATE_DIRS = ("/run", "/tmp", "/var", "/home", "/root", "/mnt")


@dataclass(frozen=True)
class UmlKernel:
    binary: Path  # the `linux` executable
    release: str  # uname -r in the guest
    source: str  # what it was built from, for records
    build_s: float | None  # how long its build took (None: not recorded)

    def describe(self) -> str:
        return f"{self.release} (User-mode Linux, built from {self.source})"


def fragment_options(text: str) -> dict[str, str]:
    """CONFIG_X=value lines of a config fragment or a .config (comments and `is not set` lines left out)."""
    options = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(CONFIG_[A-Za-z0-9_]+)=(.*)", line.strip())
        if match:
            options[match.group(1)] = match.group(2)
    return options


def dropped(fragment: str, built: str) -> list[str]:
    """Options of the fragment that the built .config does not have as asked (a dependency missing)."""
    have = fragment_options(built)
    return [name for name, value in fragment_options(fragment).items() if have.get(name) != value]


def patch_names() -> list[str]:
    """The shipped patches to the kernel source, each named with its content's hash (a patch changed since a
    build makes that build stale)."""
    return [f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}" for path in UML_PATCHES]


def cached(cache: Path, fragment: str | None = None) -> UmlKernel | None:
    """The newest complete UML kernel in the cache that was built with every option of the shipped fragment
    (`fragment`, default harness/data/uml.config) and every shipped patch as it is now, or None (auto then
    boots qemu; --fetch builds anew): a fragment or patch changed since the build is not silently run with
    an older kernel."""
    wanted = UML_CONFIG.read_text() if fragment is None else fragment
    patches = patch_names()
    found = []
    for directory in sorted((cache / "uml").glob("*")):
        if not (directory / COMPLETE).exists() or not (directory / "linux").is_file():
            continue
        try:
            if dropped(wanted, (directory / "config").read_text()):
                continue
        except OSError:
            continue
        try:
            build = json.loads((directory / BUILD_FILE).read_text())
        except (OSError, ValueError):
            build = {}
        if build.get("patches", []) != patches:
            continue
        found.append(
            UmlKernel(
                directory / "linux",
                directory.name,
                str(build.get("source", "unknown source")),
                build.get("build_s"),
            )
        )
    return found[-1] if found else None


def _run(argv: list[str], cwd: Path, what: str, timeout: float = BUILD_TIMEOUT_S) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        raise PrerequisiteError(f"uml: {what} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        last = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise PrerequisiteError(f"uml: {what} failed (exit {done.returncode}): {last}")
    return done.stdout


def build(cache: Path, progress: Callable[[str], None], jobs: int | None = None) -> UmlKernel:
    """Build the UML kernel into the cache (once: a second call, or a run that waited, finds it)."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        raise PrerequisiteError(
            f"uml: building the guest's kernel needs {', '.join(missing)}: apt-get install --no-install-recommends "
            f"{' '.join(BUILD_PACKAGES)} (./bootstrap.sh does)"
        )
    with cache_lock(cache, ".uml.lock", LOCK_TIMEOUT_S):
        found = cached(cache)
        if found is not None:
            return found
        root = cache / "uml"
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
            work = Path(tmp)
            began = time.monotonic()
            progress(f"uml: building the guest's kernel from Debian's {SOURCE_PACKAGE} (about 5 min on 2 cores)")
            _run(["apt-get", "download", SOURCE_PACKAGE], work, f"apt-get download {SOURCE_PACKAGE}", 600)
            deb = sorted(work.glob(f"{SOURCE_PACKAGE}_*.deb"))[-1]
            _run(["dpkg", "-x", deb.name, "root"], work, "dpkg -x", 600)
            tarball = sorted((work / "root" / "usr" / "src").glob(f"{SOURCE_PACKAGE}.tar.*"))[-1]
            _run(["tar", "-xf", str(tarball)], work, "unpacking the source", 900)
            source = work / SOURCE_PACKAGE
            for patch in UML_PATCHES:
                _run(["patch", "-p1", "--batch", "--forward", "-i", str(patch)], source, f"applying {patch.name}")
            make = ["make", "ARCH=um"]
            _run([*make, "defconfig"], source, "make defconfig")
            fragment = UML_CONFIG.read_text()
            _run(["scripts/kconfig/merge_config.sh", "-m", ".config", str(UML_CONFIG)], source, "merging the fragment")
            _run([*make, "olddefconfig"], source, "make olddefconfig")
            lost = dropped(fragment, (source / ".config").read_text())
            if lost:
                raise PrerequisiteError(f"uml: the kernel's config dropped {', '.join(lost)} (a dependency is missing)")
            _run([*make, f"-j{jobs or os.cpu_count() or 1}", "linux"], source, "make linux")
            release = _run([*make, "-s", "kernelrelease"], source, "make kernelrelease").strip()
            build_s = round(time.monotonic() - began, 1)
            staged = work / "out"
            staged.mkdir()
            shutil.copy2(source / "linux", staged / "linux")
            shutil.copy2(source / ".config", staged / "config")
            package = deb.name.removesuffix("_all.deb").replace("_", " ")
            record = {"source": package, "build_s": build_s, "patches": patch_names()}
            (staged / BUILD_FILE).write_text(json.dumps(record) + "\n")
            (staged / COMPLETE).write_text(package + "\n")
            final = root / release
            shutil.rmtree(final, ignore_errors=True)
            staged.rename(final)
        progress(f"uml: kernel {release} built in {build_s:.0f} s into {final}")
        kernel = cached(cache)
        assert kernel is not None
        return kernel


@dataclass(frozen=True)
class UmlSpec:
    binary: Path
    memory: str
    rwdirs: tuple[Path, ...]  # writable in the guest at the same paths (outermost only)
    readable: tuple[Path, ...]  # needed read-only where a private tmpfs would hide them (the venv)
    cwd: Path
    state_dir: Path
    env: tuple[tuple[str, str], ...]
    command: tuple[str, ...]
    umid: str

    @property
    def init_file(self) -> Path:
        return self.state_dir / "init.sh"

    @property
    def up_marker(self) -> Path:
        return self.state_dir / "guest-up"

    @property
    def status_file(self) -> Path:
        return self.state_dir / "exit-status"


def masked(path: Path) -> bool:
    """Is `path` inside a directory the guest hides under a private tmpfs?"""
    return any(path == Path(d) or path.is_relative_to(d) for d in PRIVATE_DIRS)


def uml_argv(spec: UmlSpec) -> list[str]:
    """The guest's command line: host root read-only over hostfs, the init script, the console on our
    stdout, UML's own state in the run's state dir."""
    return [
        str(spec.binary),
        f"mem={spec.memory}",
        "root=/dev/root",
        "rootfstype=hostfs",
        "rootflags=/",
        "ro",
        f"init={spec.init_file}",
        "con=null",
        "con0=fd:0,fd:1",
        f"umid={spec.umid}",
        f"uml_dir={spec.state_dir}",
        "quiet",
        "loglevel=1",  # the console carries the command's output, not the kernel's
        "ubd0=/dev/null",
    ]


def init_script(spec: UmlSpec) -> str:
    """PID 1 of the guest: private mounts, the writable directories, the command, its status, power off."""
    q = shlex.quote
    exports = " ".join(f"{name}={q(value)}" for name, value in spec.env)
    lines = [
        "#!/bin/sh",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "mount -t proc proc /proc; mount -t sysfs sysfs /sys; mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev",
        "mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm",
        *[f"mount -t tmpfs -o mode={'1777' if d == '/tmp' else '0755'} tmpfs {d}" for d in PRIVATE_DIRS],
        "mkdir -p /var/tmp /var/lib /var/log /var/cache /run/lock && chmod 1777 /var/tmp",
        "ln -s /run /var/run; ln -s /run/lock /var/lock",
        "mkdir /run/etc && cp -a /etc/. /run/etc/ && mount --bind /run/etc /etc",
    ]
    for flags, directories in (("-r ", spec.readable), ("", spec.rwdirs)):
        for directory in map(str, directories):
            lines.append(f"mkdir -p {q(directory)} && mount {flags}-t hostfs none {q(directory)} -o {q(directory)}")
    lines += [
        "hostname comps-uml; ip link set lo up",
        f": > {q(str(spec.up_marker))}",
        f"cd {q(str(spec.cwd))}",
        f"env {exports} {shlex.join(spec.command)}",
        f"echo $? > {q(str(spec.status_file))}",
        "sync",
        "echo o > /proc/sysrq-trigger",
        "sleep 10",
    ]
    return "\n".join(lines) + "\n"
