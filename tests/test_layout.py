"""The repository's layout as users and tools meet it: docker/ at the top, never shadowing the Docker SDK."""

from __future__ import annotations

from pathlib import Path

import docker
from harness.backends.images import IMAGES
from harness.data import DEMO_DIR, DOCKER_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_import_docker_is_the_sdk_not_the_top_level_folder():
    assert hasattr(docker, "from_env") and docker.__file__ is not None, docker
    assert Path(docker.__file__).parent != ROOT / "docker", "the repository's docker/ shadows the Docker SDK"
    assert not (ROOT / "docker" / "__init__.py").exists(), "docker/ must stay a plain folder (no __init__.py)"


def test_the_images_and_the_demo_are_found_in_the_top_level_docker_folder():
    assert DOCKER_DIR == ROOT / "docker"
    assert all((DOCKER_DIR / name / "Dockerfile").is_file() for name in IMAGES)
    assert (DEMO_DIR / "docker-compose.yml").is_file()
