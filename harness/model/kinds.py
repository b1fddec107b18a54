"""The harness's vocabulary as enums: strategies, switch mechanisms, outcomes, WireGuard implementations.

They are StrEnums, so they compare equal to their text and serialise as it (records stay plain JSON).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from harness.errors import ConfigError


class Strategy(StrEnum):
    """When the client moves its session, and where to."""

    ALTERNATE = "alternate"
    WEIGHTED_RANDOM = "weighted-random"
    FIXED = "fixed"
    NONE = "none"


class Mechanism(StrEnum):
    """How a switch is made: one atomic route replace, or the demo's delete-then-add script."""

    NETLINK = "netlink"
    SCRIPT = "script"


class Outcome(StrEnum):
    """What became of a test: a verdict (passed/failed), an infrastructure error, or not run."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class WireGuardImpl(StrEnum):
    """Which WireGuard moves the packets (what a run used; `auto` is only ever a request)."""

    KERNEL = "kernel"
    WIREGUARD_GO = "wireguard-go"


WIREGUARD_REQUESTS = ("auto", WireGuardImpl.KERNEL.value, WireGuardImpl.WIREGUARD_GO.value)
WIREGUARD_ALIASES = {"userspace": WireGuardImpl.WIREGUARD_GO.value}  # the word earlier versions used


E = TypeVar("E", bound=StrEnum)


def choose(enum: type[E], value: object, what: str) -> E:
    """`value` as a member of `enum`, or a ConfigError naming `what` and the choices."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ConfigError(f"{what} {value!r} is unknown; choose one of {choices}") from None


def wireguard_request(value: str) -> str:
    """--wireguard: auto, kernel or wireguard-go (userspace is accepted as wireguard-go)."""
    value = WIREGUARD_ALIASES.get(value, value)
    if value not in WIREGUARD_REQUESTS:
        raise ConfigError(f"--wireguard {value!r} is unknown; choose one of {', '.join(WIREGUARD_REQUESTS)}")
    return value
