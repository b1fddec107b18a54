"""Path events: what real paths do while the session migrates, as specs parsed from `--event` (pure).

    --event NAME[=ARG]@SECONDS[+DURATION][:PATH[:DIRECTION]]     e.g. blackhole@2+1.5:2:down

| event | ARG | duration | direction | what it is |
|---|---|---|---|---|
| blackhole | - | optional (default: to the end) | up, down, both | the path delivers nothing |
| flap | the period, s | optional | up, down, both | down for half of each period, then up |
| rate | Mbit/s | optional (a step to the end) | up, down, both | the path's rate steps |
| trace | a trace name or file | optional | up, down, both | a delivery trace replayed (Mahimahi's format) |
| rebind | - | none (an instant) | - | the proxy's NAT gives the session a new source port |
| conntrack-expiry | idle s | optional | - | the proxy's mapping is dropped after ARG s idle |
| rekey | - | none (an instant) | - | a new handshake: on the path's tunnel with PATH, else the inner session |
| mtu | bytes, or bytes/noicmp | optional | up, down, both | the path's MTU drops (noicmp: no ICMP says so) |

The path defaults to the last one (as `--fault` does), the direction to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from harness.errors import ConfigError
from harness.model.kinds import choose
from harness.model.timeline import GRAMMAR, Direction, TimelineItem, parse_items, refuse_extras

EXAMPLE = "blackhole@2+1.5:2:down"
MIN_MTU = 576  # IPv4's minimum datagram every host must accept
MAX_MTU = 9000
MIN_FLAP_PERIOD_S = 0.02


class EventKind(StrEnum):
    BLACKHOLE = "blackhole"
    FLAP = "flap"
    RATE = "rate"
    TRACE = "trace"
    REBIND = "rebind"
    CONNTRACK_EXPIRY = "conntrack-expiry"
    REKEY = "rekey"
    MTU = "mtu"


INSTANT = {EventKind.REBIND, EventKind.REKEY}  # no duration
UNDIRECTED = {EventKind.REBIND, EventKind.CONNTRACK_EXPIRY, EventKind.REKEY}
NEEDS_ARG = {EventKind.FLAP, EventKind.RATE, EventKind.TRACE, EventKind.CONNTRACK_EXPIRY, EventKind.MTU}


@dataclass(frozen=True)
class EventSpec:
    """One event on a path's timeline; `path` None means the last path, as with --fault."""

    kind: EventKind
    at: float
    duration: float | None = None  # None: to the end of the run (an instant for rebind and rekey)
    path: int | None = None
    direction: Direction = Direction.BOTH
    rate_mbit: float | None = None  # rate
    period_s: float | None = None  # flap
    trace: str | None = None  # trace: a shipped trace's name or a file
    idle_s: float | None = None  # conntrack-expiry
    mtu: int | None = None  # mtu
    icmp: bool = True  # mtu: whether the path says so with ICMP "fragmentation needed"

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.at + self.duration

    def describe(self) -> str:
        value = {
            EventKind.RATE: self.rate_mbit,
            EventKind.FLAP: self.period_s,
            EventKind.TRACE: self.trace,
            EventKind.CONNTRACK_EXPIRY: self.idle_s,
            EventKind.MTU: self.mtu,
        }.get(self.kind)
        arg = f"{value:g}" if isinstance(value, float) else None if value is None else str(value)
        if self.kind == EventKind.MTU and not self.icmp:
            arg = f"{arg}/noicmp"
        text = f"{self.kind}" + (f"={arg}" if arg is not None else "") + f"@{self.at:g}"
        text += f"+{self.duration:g}" if self.duration is not None else ""
        if self.path is not None or self.direction != Direction.BOTH:
            text += f":{self.path if self.path is not None else 'last'}"
        return text + (f":{self.direction}" if self.direction != Direction.BOTH else "")


def _positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{what} must be a finite number above 0, not {text}")
    return value


def event_of(item: TimelineItem, what: str = "--event") -> EventSpec:
    kind = choose(EventKind, item.name, what)
    refuse_extras(
        item,
        what,
        arg=kind in NEEDS_ARG,
        duration=kind not in INSTANT,
        direction=kind not in UNDIRECTED,
        grammar=GRAMMAR,
    )
    if kind in NEEDS_ARG and item.arg is None:
        raise ConfigError(f"{what} {item.name}@{item.at:g}: {kind} needs a value ({kind}=..., see --help)")
    if item.direction is not None and item.path is None:
        raise ConfigError(f"{what} {item.name}@{item.at:g}: a direction needs a path before it")
    spec = EventSpec(kind, item.at, item.duration, item.path, item.direction or Direction.BOTH)
    arg = item.arg or ""
    if kind == EventKind.RATE:
        return _with(spec, rate_mbit=_positive(arg, f"{what} rate (Mbit/s)"))
    if kind == EventKind.FLAP:
        period = _positive(arg, f"{what} flap period (s)")
        if period < MIN_FLAP_PERIOD_S:
            raise ConfigError(f"{what} flap period {arg} s is below {MIN_FLAP_PERIOD_S:g} s")
        return _with(spec, period_s=period)
    if kind == EventKind.TRACE:
        return _with(spec, trace=arg)
    if kind == EventKind.CONNTRACK_EXPIRY:
        return _with(spec, idle_s=_positive(arg, f"{what} conntrack idle time (s)"))
    if kind == EventKind.MTU:
        size, slash, flag = arg.partition("/")
        if slash and flag != "noicmp":
            raise ConfigError(f"{what} mtu={arg}: after '/' only noicmp")
        try:
            mtu = int(size)
        except ValueError:
            raise ConfigError(f"{what} mtu {size!r} is not a whole number of bytes") from None
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise ConfigError(f"{what} mtu {mtu} must be between {MIN_MTU} and {MAX_MTU}")
        return _with(spec, mtu=mtu, icmp=not slash)
    return spec


def _with(spec: EventSpec, **values: object) -> EventSpec:
    return replace(spec, **values)  # type: ignore[arg-type]


def parse_events(text: str, what: str = "--event") -> tuple[EventSpec, ...]:
    return tuple(event_of(item, what) for item in parse_items(text, what, EXAMPLE))


def check_events(events: tuple[EventSpec, ...], path_ids: tuple[int, ...], duration: float | None) -> None:
    """What only the topology and the run's length can refuse: a path it lacks, an event after the run."""
    for event in events:
        if event.path is not None and event.path not in path_ids:
            raise ConfigError(f"--event {event.describe()} names path {event.path}; the topology has {list(path_ids)}")
        if duration is not None and event.at >= duration:
            raise ConfigError(f"--event {event.describe()} starts at or after the run's end ({duration:g} s)")


@dataclass(frozen=True)
class AppliedEvent:
    """An event as a run applied it (offsets in s from the run's start; None: it did not happen)."""

    event: str  # its spec, described
    kind: str
    path: int
    direction: str
    planned_s: float
    planned_end_s: float | None
    applied_s: float | None
    ended_s: float | None
    ended_by: str | None = None  # "plan" (its duration ran out) or "run end" (undone as the run stopped)
    note: str = ""
    delivered: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # trace: receiver's bytes per slot

    def window(self, run_s: float) -> tuple[float, float] | None:
        """The offsets it was on for, within a run of `run_s` (None: it never began)."""
        if self.applied_s is None:
            return None
        return self.applied_s, min(run_s, self.ended_s if self.ended_s is not None else run_s)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppliedEvent:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)
