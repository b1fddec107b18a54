"""The Docker backend's images: built from docker/<name>/ on first use, tagged by a hash of their context.

An unchanged build context keeps its tag, so nothing is rebuilt. The base image
(debian:bookworm-slim) is pulled where a registry answers; where none does, it is made offline
with debootstrap from the machine's Debian mirror and `docker import` (about 25 s).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.data import IMAGES_DIR
from harness.errors import ConfigError, PrerequisiteError

DOCKER_DIR = IMAGES_DIR
IMAGES = ("node", "origin", "browser")
BASE_IMAGE = "debian:bookworm-slim"
REPOSITORY = "comps-harness"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_TIMEOUT_S = 900  # ~25 s here; a slow mirror takes minutes, a dead one never ends
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def context_hash(name: str, base: str = BASE_IMAGE) -> str:
    """A hash of everything in docker/<name>/ (paths and contents) and the base image name."""
    digest = hashlib.sha256(base.encode())
    root = DOCKER_DIR / name
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_tag(name: str) -> str:
    if name not in IMAGES:
        raise ConfigError(f"unknown image {name!r}; the images are {', '.join(IMAGES)}")
    return f"{REPOSITORY}/{name}:{context_hash(name)}"


def debian_mirror(sources: tuple[Path, ...] = SOURCES) -> str:
    """The first Debian mirror this machine's apt uses (deb822 'URIs:' or a one-line 'deb' entry)."""
    for path in sources:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        match = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M)
        if match:
            return match.group(1)
    return DEFAULT_MIRROR


def debootstrap_minbase(root: Path, progress: Callable[[str], None]) -> None:
    """A minimal Debian 12 root in `root`, from this machine's mirror (the offline base image, and the
    pristine root the install list is checked on)."""
    if shutil.which("debootstrap") is None:
        raise PrerequisiteError("debootstrap not found: apt-get install debootstrap")
    mirror = debian_mirror()
    progress(f"debootstrap --variant=minbase bookworm from {mirror} (about 25 s)")
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), mirror],
        capture_output=True,
        text=True,
        timeout=DEBOOTSTRAP_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise PrerequisiteError(f"debootstrap failed: {result.stderr.strip()[-400:]}")


class Images:
    """Makes sure the base image and the harness images exist in the engine `client` talks to."""

    def __init__(self, client, progress: Callable[[str], None]) -> None:
        self.client = client
        self.progress = progress

    def _exists(self, tag: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def ensure_base(self) -> None:
        import docker.errors

        if self._exists(BASE_IMAGE):
            return
        self.progress(f"images: pulling {BASE_IMAGE}")
        try:
            self.client.images.pull(BASE_IMAGE)
            return
        except docker.errors.APIError as exc:
            self.progress(
                f"images: cannot pull {BASE_IMAGE} ({str(exc).splitlines()[0][:120]}); "
                "making it offline with debootstrap"
            )
        self.bootstrap_base()

    def bootstrap_base(self) -> None:
        if shutil.which("debootstrap") is None:
            raise PrerequisiteError(
                f"{BASE_IMAGE} cannot be pulled and debootstrap is missing "
                "(apt-get install debootstrap) to make it offline"
            )
        with tempfile.TemporaryDirectory(prefix="comps-harness-rootfs-") as root:
            debootstrap_minbase(Path(root), lambda line: self.progress(f"images: {line}"))
            self.progress(f"images: docker import as {BASE_IMAGE}")
            tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                ["docker", "import", "-", BASE_IMAGE],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=DEBOOTSTRAP_TIMEOUT_S,
            )
            tar.stdout.close()
            tar.wait(60)
            if imported.returncode != 0 or tar.returncode != 0:
                raise PrerequisiteError(f"docker import failed: {imported.stderr.strip()[-400:]}")

    def ensure(self, names: tuple[str, ...] = IMAGES) -> dict[str, str]:
        """name -> tag, building what is missing (with the build's steps as progress)."""
        tags = {name: image_tag(name) for name in names}
        missing = [name for name, tag in tags.items() if not self._exists(tag)]
        if missing:
            self.ensure_base()
        for name in missing:
            self.build(name, tags[name])
        return tags

    def build(self, name: str, tag: str) -> None:
        self.progress(f"images: building {tag}")
        stream = self.client.api.build(
            path=str(DOCKER_DIR / name),
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            labels={"org.comps-harness.context": context_hash(name)},
        )
        for chunk in stream:
            if "error" in chunk:
                raise PrerequisiteError(f"building {tag} failed: {chunk['error'].strip()}")
            line = chunk.get("stream", "").strip()
            if line.startswith("Step "):
                self.progress(f"images: {name}: {line}")
