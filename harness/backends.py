"""Choose and check a backend, then hand back an unbuilt Network (a context manager).

All prerequisite checks run here, before anything is created.
"""

from __future__ import annotations

from harness import prereq
from harness.errors import ConfigError, PrerequisiteError
from harness.network import Network, Progress
from harness.settings import BACKENDS, RunSettings
from harness.topology import Topology


def check_backend(backend: str, settings: RunSettings, progress: Progress | None = None) -> str:
    """Raise PrerequisiteError/ConfigError naming what is missing; return the WireGuard implementation.

    For docker this also builds the images that are missing (the first run only).
    """
    return _checked(backend, settings, progress)[0]


def _checked(backend: str, settings: RunSettings, progress: Progress | None) -> tuple[str, dict[str, str]]:
    """(WireGuard implementation, Docker image tags: empty for netns), after every prerequisite check."""
    if backend == "netns":
        return prereq.check_netns_backend(settings.wireguard), {}
    if backend == "docker":
        images = docker_images(progress)
        return prereq.resolve_wireguard(settings.wireguard), images  # wireguard-go is in the node image
    raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def docker_images(progress: Progress | None = None) -> dict[str, str]:
    """name -> tag of the Docker backend's images, built if missing; the engine must answer."""
    from harness.dockerbackend import docker_client
    from harness.images import Images
    prereq.require_binaries(["docker"])
    return Images(docker_client(), progress or (lambda message: None)).ensure()


def network_for(backend: str, settings: RunSettings, *, topology: Topology | None = None,
                run_id: str | None = None, progress: Progress | None = None) -> Network:
    topology = topology or Topology(paths=settings.paths)
    wireguard, images = _checked(backend, settings, progress)
    run_id = run_id or settings.run_id
    if backend == "netns":
        from harness.netns import NetnsNetwork
        return NetnsNetwork(topology, run_id=run_id, wireguard=wireguard, progress=progress)
    if backend == "docker":
        from harness.dockerbackend import DockerNetwork
        return DockerNetwork(topology, run_id=run_id, wireguard=wireguard, progress=progress,
                             images=images)
    raise PrerequisiteError(f"backend {backend!r} cannot build networks")
