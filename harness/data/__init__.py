"""Files the harness ships: the demo's migrate.sh, the named path profiles and the durations table here;
the compose demo and the Docker images' build contexts in the checkout's top-level docker/ (shipped as
harness.docker).

Found through importlib.resources, so they resolve the same from a source checkout or an install.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """A shipped file or directory, e.g. data_path("migrate.sh") or data_path("images", "node")."""
    return Path(str(files(__name__).joinpath(*parts)))


MIGRATE_SCRIPT = data_path("migrate.sh")


def _docker_dir() -> Path:
    """harness/docker/ where a wheel installed it (setuptools' package-dir mapping), else the checkout's
    top-level docker/ (an editable install cannot map a directory without __init__.py into a package)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "docker"
    return installed if installed.is_dir() else package.parent / "docker"


DOCKER_DIR = _docker_dir()
DEMO_DIR = DOCKER_DIR / "demo"
IMAGES_DIR = DOCKER_DIR  # docker/<image name>/Dockerfile
PROFILES_FILE = data_path("profiles", "profiles.toml")
UML_CONFIG = data_path("uml.config")  # the User-mode Linux kernel's config fragment (harness/vm/uml.py)
# patches applied to its source, in order (uml-xstate.patch: the host's XSAVE size for ptrace's restore)
UML_PATCHES = (data_path("uml-xstate.patch"),)
DURATIONS_FILE = data_path("durations.json")  # the budget's table, measured on the 2-core reference machine
TRACES_DIR = data_path("traces")  # the shipped delivery traces (harness.model.traces)


def trace_path(arg: str, direction: str) -> Path | None:
    """A delivery trace's file for `direction`: a shipped trace by name (lte-stable -> lte-stable.down), the
    file given, or FILE.up / FILE.down beside it; None when there is none."""
    for candidate in (TRACES_DIR / f"{arg}.{direction}", Path(arg), Path(f"{arg}.{direction}")):
        if candidate.is_file():
            return candidate
    return None


def shipped_traces() -> list[str]:
    return sorted(path.stem for path in TRACES_DIR.glob("*.down"))
