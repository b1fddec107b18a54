"""The backend registry: each backend's checks, its network factory and its own cleanup sweep, by name.

A new backend (or an execution environment such as a VM) is one entry here; nothing else
branches on a backend's name. Backends are imported when used, so a namespace run never
imports the Docker SDK.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.model.settings import BACKENDS, RunSettings
from harness.model.topology import Topology
from harness.runtime.network import Builder, Network, Progress
from harness.system import cleanup


@dataclass(frozen=True)
class Prepared:
    """What a backend's checks found: the WireGuard implementation to use, and backend facts (image tags)."""

    wireguard: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # a module with check(settings, progress) -> Prepared, builder(prepared) -> Builder,
    # sweep(run_id) -> removed, leftovers(run_id) -> descriptions

    def _load(self) -> Any:
        return importlib.import_module(self.module)

    def check(self, settings: RunSettings, progress: Progress) -> Prepared:
        """Every prerequisite, before anything is created (PrerequisiteError names what is missing)."""
        return self._load().check(settings, progress)

    def builder(self, prepared: Prepared) -> Builder:
        return self._load().builder(prepared)

    def sweep(self, run_id: str) -> list[str]:
        return self._load().sweep(run_id)

    def leftovers(self, run_id: str) -> list[str]:
        return self._load().leftovers(run_id)

    def run_ids(self) -> set[str]:
        """Run ids this backend holds objects of outside processes and work dirs (for a plain `clean`)."""
        return self._load().run_ids()


REGISTRY: dict[str, Backend] = {
    "netns": Backend("netns", "harness.backends.netns"),
    "docker": Backend("docker", "harness.backends.docker"),
    "ssh": Backend("ssh", "harness.backends.ssh"),
}
if tuple(REGISTRY) != BACKENDS:  # the option parser validates names against BACKENDS
    raise ImportError("harness.model.settings.BACKENDS must list the registry's backends")


def backend(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"--backend {name!r} is unknown; choose one of {', '.join(REGISTRY)}") from None


def _quiet(message: str) -> None:
    pass


def check_backend(name: str, settings: RunSettings, progress: Progress | None = None) -> Prepared:
    return backend(name).check(settings, progress or _quiet)


def network_for(
    name: str,
    settings: RunSettings,
    *,
    topology: Topology | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    prepared: Prepared | None = None,
) -> Network:
    """An unbuilt Network of backend `name` (a context manager), after every prerequisite check."""
    chosen = backend(name)
    prepared = prepared or chosen.check(settings, progress or _quiet)
    return Network(
        topology or Topology(paths=settings.paths),
        run_id=run_id or settings.run_id,
        wireguard=prepared.wireguard,
        builder=chosen.builder(prepared),
        progress=progress,
    )


def runs_on_machine(backends: tuple[str, ...] = tuple(REGISTRY)) -> dict[str, bool]:
    """Run id -> whether its harness process lives: tagged processes and work dirs, then what each of
    `backends` holds (a backend object alone counts as dead: it has no process to ask)."""
    runs = cleanup.run_ids_on_machine()
    for name in backends:
        for run_id in backend(name).run_ids():
            runs.setdefault(run_id, False)
    return runs


def remove_run_everywhere(run_id: str, backends: tuple[str, ...] = tuple(REGISTRY)) -> tuple[list[str], list[str]]:
    """Remove exactly `run_id`'s processes, work dirs and backend objects: (removed, still there)."""
    removed = cleanup.remove_run(run_id)
    removed += [item for name in backends for item in backend(name).sweep(run_id)]
    return removed, leftovers_everywhere(run_id, backends)


def leftovers_everywhere(run_id: str, backends: tuple[str, ...] = tuple(REGISTRY)) -> list[str]:
    """What exactly `run_id` still has: processes, work dirs, stray sockets, and each backend's objects."""
    found = cleanup.find_leftovers(run_id).describe()
    return found + [item for name in backends for item in backend(name).leftovers(run_id)]


def sweep_child_runs(run_id: str, backends: tuple[str, ...], grace: float = 30.0) -> list[str]:
    """What the child runs of `run_id` (ids `<run_id>-...`, made by this run's own tests) left, removed.

    A child whose harness process still lives (a test killed by its time-out leaked it) gets SIGTERM
    first and tears its run down itself; then whatever is left goes. Every other run id is never touched."""
    removed = []
    for found, live in sorted(runs_on_machine(backends).items()):
        if found.startswith(f"{run_id}-"):
            removed += cleanup.stop_owners(found, grace) if live else []
            removed += remove_run_everywhere(found, backends)[0]
    return removed
