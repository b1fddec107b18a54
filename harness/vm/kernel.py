"""The guest's kernel: Debian's stock kernel package, unpacked into the project's cache (never installed).

`resolve("auto")` returns the cached kernel, fetching it on first use: `apt-get download` of the
package behind Debian's `linux-image-amd64`, `dpkg -x` into `<cache>/kernels/<package>_<version>/`
(a vmlinuz under boot/ and its modules under lib/modules/<version>/, which virtme-ng links into
the guest), pruned of drivers a guest never loads, then `depmod`. Nothing goes to the host's /boot
and no initramfs is made on the host. `resolve(PATH)` takes a vmlinuz of the user's, whose modules
must lie in a `lib/modules/<version>/` above it (as in an unpacked package or the host's own root).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, PrerequisiteError, WaitTimeout

METAPACKAGE = "linux-image-amd64"  # Debian's generic flavour: 9p and virtio as modules, wireguard, sch_netem
# What the harness needs in the guest (virtme-ng mounts the host's root over 9p).
REQUIRED_MODULES = ("wireguard", "sch_netem", "sch_tbf", "sch_htb", "9p", "9pnet_virtio")
# Subtrees of kernel/ that no guest of ours loads (sound, graphics, radios, real hardware): ~250 MB.
PRUNED = (
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/net/wireless",
    "drivers/net/ethernet",
    "drivers/staging",
    "drivers/usb",
    "drivers/iio",
    "drivers/bluetooth",
    "drivers/hid",
    "drivers/input",
    "drivers/isdn",
    "drivers/mtd",
    "drivers/mmc",
)
COMPLETE = ".complete"
FETCH_LOCK_TIMEOUT_S = 1800.0  # another run fetching the kernel (apt and dpkg at 600 s each): wait, not for ever


@dataclass(frozen=True)
class GuestKernel:
    image: Path  # the vmlinuz
    version: str  # uname -r in the guest
    modules: Path  # lib/modules/<version>
    source: str  # where it came from, for records

    def describe(self) -> str:
        return f"{self.version} ({self.source})"


def default_cache() -> Path:
    """$COMPS_HARNESS_CACHE, else `.cache/` of the source checkout, else ~/.cache/comps-harness."""
    if os.environ.get("COMPS_HARNESS_CACHE"):
        return Path(os.environ["COMPS_HARNESS_CACHE"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache"
    return Path.home() / ".cache" / "comps-harness"


def parse_depends(text: str) -> str | None:
    """The kernel image package a metapackage depends on, from `apt-cache depends` output."""
    for line in text.splitlines():
        match = re.match(r"\s*\|?Depends:\s*(linux-image-\S+)", line)
        if match:
            return match.group(1)
    return None


def bzimage_version(header: bytes) -> str | None:
    """The `uname -r` of an x86 bzImage, from its setup header (kernel_version pointer at 0x20e)."""
    if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
        return None
    offset = int.from_bytes(header[0x20E:0x210], "little") + 0x200
    text = header[offset : offset + 256].split(b"\0")[0].decode(errors="replace")
    return text.split(" ")[0] or None


def image_version(image: Path) -> str:
    match = re.fullmatch(r"vmlinuz-(.+)", image.name)
    if match:
        return match.group(1)
    with open(image, "rb") as handle:
        version = bzimage_version(handle.read(0x10000))
    if version is None:
        raise ConfigError(f"--kernel {image}: not an x86 kernel image (no bzImage header)")
    return version


def modules_for(image: Path, version: str) -> Path | None:
    """lib/modules/<version> in the nearest directory above the image that has one (virtme-ng's rule)."""
    for root in image.resolve().parents:
        candidate = root / "lib" / "modules" / version
        if candidate.is_dir():
            return candidate
    return None


def missing_modules(modules: Path) -> list[str]:
    present = {path.name.split(".ko")[0] for path in modules.rglob("*.ko*")}
    builtin = modules / "modules.builtin"
    if builtin.is_file():
        present |= {Path(line).name.split(".ko")[0] for line in builtin.read_text().split()}
    return [name for name in REQUIRED_MODULES if name not in present]


def _kernel_in(directory: Path, source: str) -> GuestKernel | None:
    images = sorted((directory / "boot").glob("vmlinuz-*"))
    if not images or not (directory / COMPLETE).exists():
        return None
    version = image_version(images[-1])
    return GuestKernel(images[-1], version, directory / "lib" / "modules" / version, source)


def cached(cache: Path) -> GuestKernel | None:
    """The newest complete kernel in the cache, or None."""
    found = [
        kernel
        for directory in sorted((cache / "kernels").glob("*_*"))
        if (kernel := _kernel_in(directory, f"Debian package {directory.name}")) is not None
    ]
    return found[-1] if found else None


@contextlib.contextmanager
def cache_lock(cache: Path, name: str, timeout_s: float) -> Iterator[None]:
    """An exclusive lock on `<cache>/<name>`: a second run waits for the first (at most timeout_s)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / name, "w") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WaitTimeout(f"{cache / name} was still locked by another run after {timeout_s:g} s") from None
                time.sleep(0.5)
        yield


def _apt(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def _download(work: Path, progress: Callable[[str], None]) -> Path:
    reason = ""
    for attempt in range(2):
        if attempt:
            progress(f"vm: {reason}; running apt-get update")
            _apt(["apt-get", "update", "-q"])
        depends = _apt(["apt-cache", "depends", METAPACKAGE])
        package = parse_depends(depends.stdout) if depends.returncode == 0 else None
        if package is None:
            reason = f"apt knows no kernel package behind {METAPACKAGE}"
            continue
        got = _apt(["apt-get", "download", package], cwd=work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if got.returncode == 0 and debs:
            return debs[-1]
        reason = f"apt-get download {package} failed ({' '.join(got.stderr.strip().splitlines()[-1:])})"
    raise PrerequisiteError(f"could not download Debian's kernel: {reason}")


def fetch(cache: Path, progress: Callable[[str], None]) -> GuestKernel:
    """Download and unpack Debian's kernel into the cache (once; a second call finds it)."""
    for binary in ("apt-get", "apt-cache", "dpkg", "depmod"):
        if shutil.which(binary) is None:
            raise PrerequisiteError(
                f"{binary} not found: the VM's kernel comes from Debian's packages "
                "(give one of yours with --kernel PATH)"
            )
    with cache_lock(cache, ".kernels.lock", FETCH_LOCK_TIMEOUT_S):  # two runs fetching: the second waits, then finds it
        found = cached(cache)
        if found is not None:
            return found
        kernels = cache / "kernels"
        kernels.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=kernels, prefix=".fetch-") as tmp:
            work = Path(tmp)
            progress(f"vm: fetching Debian's kernel ({METAPACKAGE}) into {kernels}")
            deb = _download(work, progress)
            unpacked = work / "root"
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True, timeout=600)
            image = sorted((unpacked / "boot").glob("vmlinuz-*"))[-1]
            version = image_version(image)
            modules = unpacked / "lib" / "modules" / version
            for subtree in PRUNED:
                shutil.rmtree(modules / "kernel" / subtree, ignore_errors=True)
            subprocess.run(["depmod", "-a", "-b", str(unpacked), version], check=True, timeout=600, capture_output=True)
            missing = missing_modules(modules)
            if missing:
                raise PrerequisiteError(
                    f"Debian's kernel {version} lacks modules the guest needs: {', '.join(missing)}"
                )
            (unpacked / COMPLETE).write_text(deb.name + "\n")
            final = kernels / deb.name.removesuffix("_amd64.deb")
            shutil.rmtree(final, ignore_errors=True)
            unpacked.rename(final)
        progress(f"vm: kernel {version} ready in {final}")
        kernel = cached(cache)
        assert kernel is not None
        return kernel


def resolve(option: str, cache: Path, progress: Callable[[str], None]) -> GuestKernel:
    """--kernel auto (the cached Debian kernel, fetched on first use) or PATH (a vmlinuz of yours)."""
    if option == "auto":
        return cached(cache) or fetch(cache, progress)
    image = Path(option)
    if not image.is_file():
        raise ConfigError(f"--kernel {option}: no such file (give a vmlinuz, or auto)")
    version = image_version(image)
    modules = modules_for(image, version)
    if modules is None:
        raise ConfigError(
            f"--kernel {option}: no lib/modules/{version}/ above it; the guest needs the kernel's "
            "own modules (wireguard, sch_netem, 9p)"
        )
    missing = missing_modules(modules)
    if missing:
        raise ConfigError(f"--kernel {option}: its modules ({modules}) lack {', '.join(missing)}")
    return GuestKernel(image.resolve(), version, modules, f"given: {image}")
