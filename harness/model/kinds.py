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


class StickySource(StrEnum):
    """When the client releases WireGuard's sticky source (wireguard-go pins the path it last heard from).

    off: never (kernel WireGuard re-routes by itself). switch: once per switch. client: at every
    switch and whenever the client sees, in its own namespace, its session leave on a wgnet other
    than the current route. oracle: at every switch and whenever the *server* hears the client on
    another path: knowledge a real client lacks, kept only to compare against.
    """

    AUTO = "auto"
    OFF = "off"
    SWITCH = "switch"
    CLIENT = "client"
    ORACLE = "oracle"


class Fault(StrEnum):
    """Ways to break a path on purpose (harness.runtime.faults): each must turn the proof red."""

    NAT_REMOVED = "nat-removed"  # the proxy's MASQUERADE rules are gone
    FORWARD_DROP = "forward-drop"  # the proxy forwards nothing
    RETURN_DROP = "return-drop"  # the proxy drops only what returns towards the client
    WIREGUARD_KILLED = "wireguard-killed"  # the proxy's WireGuard dies
    PROXY_DOWN_UP = "proxy-down-up"  # the proxy's tunnel goes down for a while, then comes back
    ROUTE_REFUSED = "route-refused"  # the client's tunnel to the path is down: switches to it fail
    PINNED = "pinned"  # a policy rule pins the client's session to one path
    FOREIGN_WRITER = "foreign-writer"  # another process rewrites the client's table 51821
    BLACKHOLE = "blackhole"  # the path delivers nothing either way: the path event's own mechanism, as a fault


class Outcome(StrEnum):
    """What became of a test: a verdict (passed/failed), an infrastructure error, or not run."""

    PASSED = "passed"
    FAILED = "failed"  # a verdict: the check ran and said no
    ERROR = "error"  # infrastructure: a tool crashed or is missing; no verdict
    UNJUDGED = "unjudged"  # measured and recorded, no verdict at this interval
    UNPROVEN = "unproven"  # measured and recorded; the migration did not happen as scheduled: no cost
    SKIPPED = "skipped"


class WireGuardImpl(StrEnum):
    """Which WireGuard moves the packets (what a run used; `auto` is only ever a request)."""

    KERNEL = "kernel"
    WIREGUARD_GO = "wireguard-go"


class WireGuardChoice(StrEnum):
    """What --wireguard asks for: an implementation, or auto (kernel WireGuard where the module is)."""

    AUTO = "auto"
    KERNEL = WireGuardImpl.KERNEL.value
    WIREGUARD_GO = WireGuardImpl.WIREGUARD_GO.value


class Accel(StrEnum):
    """How a VM guest runs: KVM (hardware), TCG (qemu's software emulation), or auto (KVM if it boots)."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class GuestKind(StrEnum):
    """Which guest --vm boots: qemu (a full kernel, KVM or TCG), uml (User-mode Linux: a kernel running as a
    process, native speed without KVM), or auto (uml where its kernel is built, else qemu)."""

    AUTO = "auto"
    QEMU = "qemu"
    UML = "uml"


WIREGUARD_ALIASES = {"userspace": WireGuardImpl.WIREGUARD_GO.value}  # the word earlier versions used


E = TypeVar("E", bound=StrEnum)


def choose(enum: type[E], value: object, what: str) -> E:
    """`value` as a member of `enum`, or a ConfigError naming `what` and the choices."""
    try:
        return enum(value)  # type: ignore[arg-type]  # any value: a wrong one is the ValueError below
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ConfigError(f"{what} {value!r} is unknown; choose one of {choices}") from None


def wireguard_request(value: str) -> WireGuardChoice:
    """--wireguard: auto, kernel or wireguard-go (userspace is accepted as wireguard-go)."""
    return choose(WireGuardChoice, WIREGUARD_ALIASES.get(str(value), value), "--wireguard")
