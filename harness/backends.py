"""Choose and check a backend, then hand back an unbuilt Network (a context manager).

All prerequisite checks run here, before anything is created.
"""

from __future__ import annotations

from harness import prereq
from harness.errors import ConfigError, PrerequisiteError
from harness.network import Network, Progress
from harness.settings import BACKENDS, RunSettings
from harness.topology import Topology


def check_backend(backend: str, settings: RunSettings) -> str:
    """Raise PrerequisiteError/ConfigError naming what is missing; return the WireGuard implementation."""
    if backend == "netns":
        return prereq.check_netns_backend(settings.wireguard)
    if backend == "docker":
        raise PrerequisiteError("the docker backend is not built yet (issue 6); use --backend netns")
    raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def network_for(backend: str, settings: RunSettings, *, topology: Topology | None = None,
                run_id: str | None = None, progress: Progress | None = None) -> Network:
    topology = topology or Topology(paths=settings.paths)
    wireguard = check_backend(backend, settings)
    run_id = run_id or settings.run_id
    if backend == "netns":
        from harness.netns import NetnsNetwork
        return NetnsNetwork(topology, run_id=run_id, wireguard=wireguard, progress=progress)
    raise PrerequisiteError(f"backend {backend!r} cannot build networks yet")
