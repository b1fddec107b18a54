"""Path profiles (pure): per path and direction, delay, jitter, loss, rate and queue limit, as tc sees them.

A `Shape` is one direction of one link; a `PathProfile` its two directions; a `Profile` names the
shapes of every path (client <-> proxy k) and of the origin link. Profiles come from TOML (the
shipped `harness/data/profiles/profiles.toml`, and a user's `--profiles FILE`). `qdisc_args` turns
a shape into the tc arguments that give it: netem (delay, jitter, loss, and its own rate) where
the shape needs it, else tbf for a rate alone, so that rate-only profiles run on kernels without
netem.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.model.events import EventSpec, parse_events

DISTRIBUTIONS = ("normal", "pareto", "paretonormal", "uniform")
LOSS_MODELS = ("random", "gilbert-elliott")
SHAPE_KEYS = {
    "delay_ms",
    "jitter_ms",
    "distribution",
    "loss",
    "loss_model",
    "ge_p",
    "ge_r",
    "ge_loss_bad",
    "ge_loss_good",
    "rate_mbit",
    "limit",
}
PATH_KEYS = SHAPE_KEYS | {"up", "down", "steps", "period_s"}
TBF_LATENCY_MS = 50  # the most a tbf-only rate limit may queue


@dataclass(frozen=True)
class Shape:
    """One direction of one link."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    distribution: str = "normal"
    loss: float = 0.0  # percent, random loss model
    loss_model: str = "random"
    ge_p: float = 0.0  # Gilbert-Elliott, percent: good -> bad, bad -> good, loss in the bad and the good state
    ge_r: float = 100.0
    ge_loss_bad: float = 100.0
    ge_loss_good: float = 0.0
    rate_mbit: float | None = None
    limit: int | None = None  # queue limit, packets

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} {getattr(self, name)}: a delay cannot be negative")
        for name in ("loss", "ge_p", "ge_r", "ge_loss_bad", "ge_loss_good"):
            if not 0 <= getattr(self, name) <= 100:
                raise ConfigError(f"{name} {getattr(self, name)}: a percentage is between 0 and 100")
        if self.rate_mbit is not None and self.rate_mbit <= 0:
            raise ConfigError(f"rate_mbit {self.rate_mbit}: a rate must be above 0 (leave it out for no limit)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit {self.limit}: a queue holds at least 1 packet")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"distribution {self.distribution!r}: choose one of {', '.join(DISTRIBUTIONS)}")
        if self.loss_model not in LOSS_MODELS:
            raise ConfigError(f"loss_model {self.loss_model!r}: choose one of {', '.join(LOSS_MODELS)}")
        if self.jitter_ms > self.delay_ms:
            raise ConfigError(
                f"jitter_ms {self.jitter_ms} exceeds delay_ms {self.delay_ms}: packets would leave "
                "before they were sent"
            )

    @property
    def lossy(self) -> bool:
        return self.loss > 0 if self.loss_model == "random" else self.ge_p > 0

    @property
    def needs_netem(self) -> bool:
        return self.delay_ms > 0 or self.jitter_ms > 0 or self.lossy

    @property
    def shaped(self) -> bool:
        return self.needs_netem or self.rate_mbit is not None

    def expected_loss(self) -> float:
        """The long-run share of packets lost (0..1)."""
        if self.loss_model == "random":
            return self.loss / 100
        p, r = self.ge_p / 100, self.ge_r / 100
        bad = p / (p + r) if p + r else 0.0
        return bad * self.ge_loss_bad / 100 + (1 - bad) * self.ge_loss_good / 100

    def describe(self) -> str:
        parts = []
        if self.delay_ms:
            parts.append(f"{self.delay_ms:g} ms" + (f" ± {self.jitter_ms:g} ms" if self.jitter_ms else ""))
        if self.rate_mbit is not None:
            parts.append(f"{self.rate_mbit:g} Mbit/s")
        if self.lossy:
            parts.append(f"{self.expected_loss():.2%} loss" + (" (bursty)" if self.loss_model != "random" else ""))
        return ", ".join(parts) or "unshaped"


RATE_UNITS_MBIT = {"bit": 1e-6, "kbit": 1e-3, "mbit": 1.0, "gbit": 1e3}


def rate_mbit(rate: str) -> float:
    """A tc rate as settings.parse_rate gives it (20mbit, 500kbit) in Mbit/s."""
    match = re.fullmatch(r"([\d.]+)(bit|kbit|mbit|gbit)", rate)
    if match is None:
        raise ConfigError(f"{rate!r} is not a rate such as 20mbit or 500kbit")
    number, unit = match.groups()
    return float(number) * RATE_UNITS_MBIT[unit]


def limited(shape: Shape, mbit: float) -> Shape:
    """`shape` with its rate limited to at most `mbit` (an impairment on a shaped link)."""
    return replace(shape, rate_mbit=min(shape.rate_mbit or mbit, mbit))


def qdisc_args(shape: Shape) -> list[str] | None:
    """The tc arguments after `root`, or None for an unshaped direction."""
    if not shape.shaped:
        return None
    if not shape.needs_netem and shape.rate_mbit is not None:  # a rate alone: tbf, which every kernel of ours has
        burst_kbit = max(32, int(shape.rate_mbit * 1000 * 0.004))  # ~4 ms of the rate, at least 32 kbit
        return [
            "tbf",
            "rate",
            f"{shape.rate_mbit:g}mbit",
            "burst",
            f"{burst_kbit}kbit",
            "latency",
            f"{TBF_LATENCY_MS}ms",
        ]
    args = ["netem", "delay", f"{shape.delay_ms:g}ms"]
    if shape.jitter_ms:
        args += [f"{shape.jitter_ms:g}ms", "distribution", shape.distribution]
    if shape.loss_model == "random" and shape.loss:
        args += ["loss", "random", f"{shape.loss:g}%"]
    elif shape.loss_model == "gilbert-elliott" and shape.ge_p:
        # netem: gemodel p r 1-h 1-k, where 1-h is the loss in the bad state and 1-k in the good one
        args += [
            "loss",
            "gemodel",
            f"{shape.ge_p:g}%",
            f"{shape.ge_r:g}%",
            f"{shape.ge_loss_bad:g}%",
            f"{shape.ge_loss_good:g}%",
        ]
    if shape.rate_mbit is not None:
        args += ["rate", f"{shape.rate_mbit:g}mbit"]
    limit = shape.limit or _default_limit(shape)
    return [*args, "limit", str(limit)]


QUEUE_MS = 100  # a link's buffer: what it holds beyond the packets in its delay line


def _default_limit(shape: Shape) -> int:
    """netem's limit counts the packets in its delay line too: a delay's worth at the rate (else netem drops
    what the profile did not ask it to) plus QUEUE_MS of buffer, at least 100 packets; without a rate,
    netem's own default (1000). A bigger buffer is bufferbloat: TCP fills it and every RTT grows."""
    if shape.rate_mbit is None:
        return 1000
    packets_per_ms = shape.rate_mbit * 1000 / (1500 * 8)
    return max(100, int(packets_per_ms * (shape.delay_ms + 2 * shape.jitter_ms + QUEUE_MS)))


@dataclass(frozen=True)
class Step:
    at_s: float
    up: Shape
    down: Shape


@dataclass(frozen=True)
class PathProfile:
    up: Shape = field(default_factory=Shape)  # client -> proxy
    down: Shape = field(default_factory=Shape)  # proxy -> client
    steps: tuple[Step, ...] = ()  # the shapes change at these times, repeating every period_s
    period_s: float | None = None

    @property
    def shaped(self) -> bool:
        return self.up.shaped or self.down.shaped or bool(self.steps)

    @property
    def needs_netem(self) -> bool:
        return any(
            shape.needs_netem
            for shape in (self.up, self.down, *(s.up for s in self.steps), *(s.down for s in self.steps))
        )

    @property
    def rtt_ms(self) -> float:
        return self.up.delay_ms + self.down.delay_ms

    def describe(self) -> str:
        if self.up == self.down:
            text = self.up.describe()
        else:
            text = f"up {self.up.describe()}; down {self.down.describe()}"
        return text + (f"; varying every {self.period_s:g} s" if self.steps else "")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    paths: dict[int, PathProfile] = field(default_factory=dict)  # by path id; 0: every other path
    origin: PathProfile = field(default_factory=PathProfile)
    events: tuple[EventSpec, ...] = ()  # path events of every run on its paths (harness.model.events)

    def path(self, path: int) -> PathProfile:
        return self.paths.get(path, self.paths.get(0, PathProfile()))

    def needs_netem(self, path_ids: tuple[int, ...]) -> bool:
        return self.origin.needs_netem or any(self.path(k).needs_netem for k in path_ids)

    def shaped(self, path_ids: tuple[int, ...]) -> bool:
        return self.origin.shaped or any(self.path(k).shaped for k in path_ids)


def _shape(values: dict[str, Any], where: str, base: Shape | None = None) -> Shape:
    unknown = set(values) - SHAPE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(SHAPE_KEYS))})")
    try:
        return replace(base or Shape(), **values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _path(values: dict[str, Any], where: str, base: PathProfile | None = None) -> PathProfile:
    unknown = set(values) - PATH_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    shared = {k: v for k, v in values.items() if k in SHAPE_KEYS}
    base = base or PathProfile()
    up = _shape({**shared, **values.get("up", {})}, f"{where}.up", base.up)
    down = _shape({**shared, **values.get("down", {})}, f"{where}.down", base.down)
    steps, period = base.steps, base.period_s
    if "steps" in values:
        period = values.get("period_s")
        if not isinstance(period, (int, float)) or period <= 0:
            raise ConfigError(f"{where}: steps need a period_s above 0")
        listed: list[Step] = []
        for i, step in enumerate(values["steps"]):
            at = step.get("at_s") if isinstance(step, dict) else None
            if not isinstance(at, (int, float)) or not 0 <= at < period:
                raise ConfigError(f"{where}.steps[{i}]: at_s must be in [0, period_s)")
            change = {k: v for k, v in step.items() if k != "at_s"}
            listed.append(
                Step(float(at), _shape(change, f"{where}.steps[{i}]", up), _shape(change, f"{where}.steps[{i}]", down))
            )
        steps = tuple(sorted(listed, key=lambda s: s.at_s))
    return PathProfile(up, down, steps, period)


def parse_profiles(text: str, source: str) -> dict[str, Profile]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    profiles = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: {name} is not a table")
        unknown = set(body) - {"description", "path", "origin", "events"}
        if unknown:
            known = "description, path, origin, events"
            raise ConfigError(f"{source}: [{name}]: unknown key {sorted(unknown)[0]!r} ({known})")
        listed = body.get("events", [])
        if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
            raise ConfigError(f'{source}: [{name}]: events is a list of strings such as "blackhole@2+1:2"')
        events = parse_events(",".join(listed), f"{source}: [{name}] events") if listed else ()
        paths: dict[int, PathProfile] = {}
        given = dict(body.get("path", {}))
        per_path = {key: given.pop(key) for key in list(given) if key.isdigit()}
        shared = _path(given, f"{source}: [{name}.path]") if given else PathProfile()
        if given:
            paths[0] = shared
        for key, values in per_path.items():
            if int(key) < 1:
                raise ConfigError(f"{source}: [{name}.path.{key}]: paths are numbered from 1")
            paths[int(key)] = _path(values, f"{source}: [{name}.path.{key}]", shared)
        origin = _path(body["origin"], f"{source}: [{name}.origin]") if "origin" in body else PathProfile()
        profiles[name] = Profile(name, str(body.get("description", "")), paths, origin, events)
    return profiles


def load_profiles(shipped: Path, extra: Path | None = None) -> dict[str, Profile]:
    """The shipped profiles (harness.data.PROFILES_FILE), and (over them, by name) those of a user's file."""
    profiles = parse_profiles(shipped.read_text(), str(shipped))
    if extra is not None:
        if not extra.is_file():
            raise ConfigError(f"--profiles {extra}: no such file")
        profiles |= parse_profiles(extra.read_text(), f"--profiles {extra}")
    return profiles


def choose_profiles(text: str, available: dict[str, Profile]) -> tuple[Profile, ...]:
    names = [part.strip() for part in str(text).split(",")]
    if not all(names):
        raise ConfigError(f"--profile {text!r}: an empty name")
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(f"--profile {unknown[0]!r} is unknown; choose from {', '.join(sorted(available))}")
    return tuple(available[name] for name in dict.fromkeys(names))
