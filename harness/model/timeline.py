"""What happens to a path during a run, on its timeline: the one grammar of `--fault` and `--event`.

    NAME[=ARG]@SECONDS[+DURATION][:PATH[:DIRECTION]]

`--fault` (harness.runtime.faults) takes the subset NAME@SECONDS[:PATH]: a fault breaks a path for the
proof's sake and must turn it red. An event (issue "Path events") is what real paths do: an outage, a
flap, a rate step, a trace replayed, a NAT rebinding, a conntrack entry expiring, a rekey, an MTU
drop; the session is judged on what it lived through, and the proof reports the event's windows apart.
Both parse here, into TimelineItem first and then into their own specs; pure, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from harness.errors import ConfigError
from harness.model.kinds import choose

GRAMMAR = "NAME[=ARG]@SECONDS[+DURATION][:PATH[:DIRECTION]]"


class Direction(StrEnum):
    UP = "up"  # client -> proxy
    DOWN = "down"  # proxy -> client
    BOTH = "both"


@dataclass(frozen=True)
class TimelineItem:
    """One parsed NAME[=ARG]@SECONDS[+DURATION][:PATH[:DIRECTION]] (the names are checked by its user)."""

    name: str
    arg: str | None
    at: float
    duration: float | None  # None: until the run ends (or an instant, for what has no duration)
    path: int | None
    direction: Direction | None  # None: not given


def _seconds(text: str, what: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{what} must be a finite number {'0 or more' if allow_zero else 'above 0'}, not {text}")
    return value


def parse_item(part: str, what: str, example: str, grammar: str = GRAMMAR) -> TimelineItem:
    """One item; a malformed one is a ConfigError naming the option, the item and the grammar."""
    head, sep, rest = part.strip().partition("@")
    if not sep or not head:
        raise ConfigError(f"{what} {part!r} is not {grammar} (e.g. {example})")
    name, has_arg, arg = head.partition("=")
    if has_arg and not arg:
        raise ConfigError(f"{what} {part!r}: an empty value after {name}=")
    when, _, where = rest.partition(":")
    start, has_duration, length = when.partition("+")
    path_text, _, direction_text = where.partition(":")
    if where and not path_text:
        raise ConfigError(f"{what} {part!r}: an empty path after ':'")
    path = None
    if path_text:
        try:
            path = int(path_text)
        except ValueError:
            raise ConfigError(f"{what} {part!r}: path {path_text!r} is not a whole number") from None
        if path < 1:
            raise ConfigError(f"{what} {part!r}: path {path} must be at least 1")
    return TimelineItem(
        name=name.strip(),
        arg=arg.strip() if has_arg else None,
        at=_seconds(start, f"{what} time", allow_zero=True),
        duration=_seconds(length, f"{what} duration", allow_zero=False) if has_duration else None,
        path=path,
        direction=choose(Direction, direction_text, f"{what} direction") if direction_text else None,
    )


def parse_items(text: str, what: str, example: str, grammar: str = GRAMMAR) -> tuple[TimelineItem, ...]:
    """Comma-separated items ('a@1,b@2'); an empty item is an error naming the option."""
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise ConfigError(f"{what} is empty")
    if not all(parts):
        raise ConfigError(f"{what} {text!r} has an empty item")
    return tuple(parse_item(part, what, example, grammar) for part in parts)


def refuse_extras(item: TimelineItem, what: str, *, arg: bool, duration: bool, direction: bool, grammar: str) -> None:
    """One line naming what an item gave that its kind does not take."""
    length = f"+{item.duration:g}" if item.duration is not None else ""
    extras = [
        label
        for label, given, allowed in (
            (f"value (={item.arg})", item.arg is not None, arg),
            (f"duration ({length})", item.duration is not None, duration),
            (f"direction (:{item.direction})", item.direction is not None, direction),
        )
        if given and not allowed
    ]
    if extras:
        raise ConfigError(f"{what} {item.name}@{item.at:g}: {item.name} takes no {' or '.join(extras)} ({grammar})")
