"""`comps-harness bench paths`: apply a path profile and measure what each path really does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.model.profiles import Profile
from harness.runtime.network import Network
from harness.runtime.shaping import ShapedPaths, verify
from harness.vm.facts import environment


def bench(network: Network, profile: Profile, progress: Callable[[str], None]) -> dict[str, Any]:
    with ShapedPaths(network, profile):
        result = verify(network, profile, progress)
    machine = environment()
    return {
        "profile": profile.name,
        "description": profile.description,
        "paths": result["paths"],
        "within_spec": not result["failures"],
        "failures": result["failures"],
        "machine": {"vm": machine["vm"], "qdiscs": machine["qdiscs"], "kernel": machine["kernel"]},
    }
