"""Backends build the topology: network namespaces (netns), Docker containers (docker), the compose demo.

harness.backends.registry maps names to backends; nothing else branches on a backend's name.
"""

from harness.backends.registry import (
    REGISTRY,
    Backend,
    Prepared,
    backend,
    check_backend,
    network_for,
)

__all__ = ["REGISTRY", "Backend", "Prepared", "backend", "check_backend", "network_for"]
