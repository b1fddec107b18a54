"""Files the harness ships: the demo's migrate.sh, the compose demo, the Docker images' build contexts,
the named path profiles.

Found through importlib.resources, so they resolve the same from a source checkout or an install.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """A shipped file or directory, e.g. data_path("migrate.sh") or data_path("images", "node")."""
    return Path(str(files(__name__).joinpath(*parts)))


MIGRATE_SCRIPT = data_path("migrate.sh")
DEMO_DIR = data_path("demo")
IMAGES_DIR = data_path("images")
PROFILES_FILE = data_path("profiles", "profiles.toml")
