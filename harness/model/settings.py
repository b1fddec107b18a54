"""Run settings as frozen values: what to build, what to migrate, how to measure, how to judge.

harness.options fills them from the command line or pytest; validation happens here, so bad
input fails before anything is created, with one line naming the option.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.model.events import EventSpec
from harness.model.kinds import (
    Accel,
    Fault,
    GuestKind,
    Mechanism,
    StickySource,
    Strategy,
    WireGuardChoice,
    choose,
    wireguard_request,
)
from harness.model.shards import Shard
from harness.model.timeline import parse_items, refuse_extras
from harness.model.topology import MAX_PATHS, MIN_PATHS

BACKENDS = ("netns", "docker", "ssh")
ALL_BACKENDS = ("netns", "docker")  # --backend all: the machine's own backends (ssh is asked for by name)
BACKEND_CHOICES = (*BACKENDS, "all")
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
MAX_INTERVAL_S = 3600.0
MAX_DOWNLOAD_MB = 1000.0


def new_run_id() -> str:
    """Unique per run and short enough to sit in names: ch-<UTC time>-<random>."""
    return f"ch-{time.strftime('%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def check_run_id(run_id: str, what: str = "--run-id") -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(f"{what} {run_id!r} may hold only letters, digits and dashes (and not start with a dash)")
    return run_id


def parse_number(text: object, what: str, *, allow_zero: bool = False, maximum: float | None = None) -> float:
    """A finite number above 0 (or 0 and above), else a ConfigError naming the option."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "above 0"
        raise ConfigError(f"{what} must be a finite number {bound}, not {text}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{what} {text} is above the maximum of {maximum:g}")
    return value


def parse_count(text: object, what: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum], else a ConfigError naming the option."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        span = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{what} {value} must be {span}")
    return value


def parse_share(text: object, what: str, *, allow_zero: bool = True) -> float:
    """A fraction in [0, 1) (or (0, 1) without `allow_zero`)."""
    value = parse_number(text, what, allow_zero=allow_zero)
    if value >= 1:
        raise ConfigError(f"{what} {text} must be below 1 (a share)")
    return value


def parse_iperf_rate(text: str, what: str) -> str:
    """An iperf3 bit rate such as 50M, 500K or 1G (positive)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)", str(text).strip())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{what} {text!r} is not a rate such as 50M, 500K or 1G")
    return match.group(0)


def split_list(text: str, what: str) -> list[str]:
    """'a,b,c' -> ['a', 'b', 'c']; an empty item ('a,,b') or an empty list is an error naming the option."""
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise ConfigError(f"{what} is empty")
    if not all(parts):
        raise ConfigError(f"{what} {text!r} has an empty item")
    return parts


def parse_backends(value: str) -> tuple[str, ...]:
    result: list[str] = []
    for name in split_list(value, "--backend"):
        if name not in BACKEND_CHOICES:
            raise ConfigError(f"--backend {name!r} is unknown; choose one of {', '.join(BACKEND_CHOICES)}")
        for backend in ALL_BACKENDS if name == "all" else (name,):
            if backend not in result:
                result.append(backend)
    return tuple(result)


def parse_rate(text: str, what: str) -> str:
    """A tc rate such as 20mbit, 500kbit or 1gbit (positive), else a ConfigError naming the option."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", str(text).strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{what} {text!r} is not a rate such as 20mbit, 500kbit or 1gbit")
    return match.group(0)


UNITS_S = {"ms": 0.001, "s": 1.0}


def parse_seconds(text: str, what: str) -> float:
    """'0.1', '0.1s' or '100ms' -> seconds."""
    text = str(text).strip()
    for suffix in ("ms", "s"):
        if text.endswith(suffix):
            return parse_number(text[: -len(suffix)], what, maximum=MAX_INTERVAL_S / UNITS_S[suffix]) * UNITS_S[suffix]
    return parse_number(text, what, maximum=MAX_INTERVAL_S)


def existing_file(text: str, what: str) -> Path:
    """A path to a readable file, else a ConfigError naming the option."""
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"{what} {text}: no such file")
    return path


DURATION_UNITS_S = {"h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0}


COMPOUND_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str, what: str, *, maximum_s: float = 7 * 24 * 3600.0) -> float:
    """'4h', '30m', '90s', '4m30s', '1h15m' or '600' (seconds) -> seconds, above 0."""
    text = str(text).strip().lower()
    compound = COMPOUND_DURATION.fullmatch(text)
    if compound and sum(part is not None for part in compound.groups()) > 1:
        hours, minutes, seconds = (float(part or 0) for part in compound.groups())
        return parse_number(f"{hours * 3600 + minutes * 60 + seconds:g}", what, maximum=maximum_s)
    for suffix, scale in DURATION_UNITS_S.items():
        if text.endswith(suffix) and text[: -len(suffix)].strip():
            return parse_number(text[: -len(suffix)], what, maximum=maximum_s / scale) * scale
    return parse_number(text, what, maximum=maximum_s)


def parse_intervals(text: str, what: str = "--intervals") -> tuple[float, ...]:
    """'0.01,0.1,1' (or 10ms,100ms,1s) -> (0.01, 0.1, 1.0); rejects 0, negatives, NaN, inf, empty items, repeats."""
    values = tuple(parse_seconds(part, what) for part in split_list(text, what))
    if len(set(values)) != len(values):
        raise ConfigError(f"{what} {text} repeats a value")
    return values


def parse_weights(text: str, what: str = "--weights") -> tuple[float, ...]:
    return tuple(parse_number(part, what, allow_zero=True) for part in split_list(text, what))


def parse_fixed(text: str, what: str = "--fixed") -> tuple[tuple[float, int], ...]:
    """'0.5:2,1.0:1' -> ((0.5, 2), (1.0, 1))."""
    pairs = []
    for part in split_list(text, what):
        at, sep, path = part.partition(":")
        if not sep:
            raise ConfigError(f"{what} entry {part!r} is not TIME:PATH")
        pairs.append((parse_number(at, f"{what} time", allow_zero=True), parse_count(path, f"{what} path")))
    return tuple(pairs)


def parse_strategies(text: str) -> tuple[Strategy, ...]:
    return tuple(choose(Strategy, part, "--strategy") for part in split_list(text, "--strategy"))


def parse_mechanisms(text: str) -> tuple[Mechanism, ...]:
    if str(text).strip() == "both":
        return tuple(Mechanism)
    try:
        return tuple(choose(Mechanism, part, "--switch-mechanism") for part in split_list(text, "--switch-mechanism"))
    except ConfigError:
        raise ConfigError(f"--switch-mechanism {text!r} is unknown; choose netlink, script or both") from None


@dataclass(frozen=True)
class FaultSpec:
    """--fault NAME@SECONDS[:PATH]: break `path` (a default per fault) `at` seconds into a migration run."""

    name: Fault
    at: float
    path: int | None = None

    def describe(self) -> str:
        return f"{self.name}@{self.at:g}" + (f":{self.path}" if self.path is not None else "")


FAULT_GRAMMAR = "NAME@SECONDS[:PATH]"


def parse_faults(text: str, what: str = "--fault") -> tuple[FaultSpec, ...]:
    """--fault, in the grammar --event shares (harness.model.timeline): a fault takes no value, duration or
    direction."""
    specs = []
    for item in parse_items(text, what, "nat-removed@0.5:2", FAULT_GRAMMAR):
        fault = choose(Fault, item.name, what)
        refuse_extras(item, what, arg=False, duration=False, direction=False, grammar=FAULT_GRAMMAR)
        specs.append(FaultSpec(fault, item.at, item.path))
    return tuple(specs)


@dataclass(frozen=True)
class RunSettings:
    """What to build and where results go."""

    backends: tuple[str, ...] = ("netns",)
    paths: int = 2
    wireguard: WireGuardChoice = WireGuardChoice.AUTO
    run_id: str = field(default_factory=new_run_id)
    results_dir: Path = Path("reports")
    run_dir_override: Path | None = None
    profiles: tuple[str, ...] = ("lan",)  # path profile names (harness/data/profiles, --profiles FILE)
    profiles_file: Path | None = None
    inventory: Path | None = None  # --inventory: the ssh backend's hosts (None: local SSH hosts)
    sweep_id: str | None = None  # --sweep-id: the sweep every shard belongs to (default: the run id)
    shard: Shard | None = None  # --shard K/N: this run runs the K-th of N parts of the collected tests
    shard_durations: Path | None = None  # --shard-durations: the table the split is balanced with

    def __post_init__(self) -> None:
        for backend in self.backends:
            if backend not in BACKENDS:
                raise ConfigError(f"--backend {backend!r} is unknown; choose one of {', '.join(BACKEND_CHOICES)}")
        if isinstance(self.paths, bool) or not isinstance(self.paths, int) or not MIN_PATHS <= self.paths <= MAX_PATHS:
            raise ConfigError(f"--paths {self.paths!r}: migration needs between {MIN_PATHS} and {MAX_PATHS} paths")
        object.__setattr__(self, "wireguard", wireguard_request(self.wireguard))
        check_run_id(self.run_id)

    @property
    def run_dir(self) -> Path:
        return self.run_dir_override or self.results_dir / self.run_id


@dataclass(frozen=True)
class PlanOptions:
    """The inputs of the migration plans a run sweeps over (harness.model.schedule builds the plans)."""

    intervals: tuple[float, ...] = (0.01, 0.1, 1.0)
    strategies: tuple[Strategy, ...] = (Strategy.ALTERNATE,)
    mechanisms: tuple[Mechanism, ...] = (Mechanism.NETLINK,)
    seed: int = 1
    jitter: float = 0.0
    weights: tuple[float, ...] | None = None
    fixed: tuple[tuple[float, int], ...] = ()
    duration: float | None = None  # None: auto (SWITCHES_PER_RUN intervals, at least MIN_DURATION_S)
    sticky_source: StickySource = StickySource.AUTO
    faults: tuple[FaultSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()  # --event (harness.model.events)
    trace: EventSpec | None = None  # --path-trace FILE: trace=FILE@0 on the last path, joined to the events

    def __post_init__(self) -> None:
        if self.weights is not None and Strategy.WEIGHTED_RANDOM not in self.strategies:
            raise ConfigError("--weights applies to --strategy weighted-random only, which this run does not use")
        if self.fixed and Strategy.FIXED not in self.strategies:
            raise ConfigError("--fixed applies to --strategy fixed only, which this run does not use")


@dataclass(frozen=True)
class MeasureSettings:
    """How measurements are taken: repetitions, tool settings, the degraded-path controls."""

    repeat: int = 3  # --min-pairs: the pairs every condition gets
    max_pairs: int = 12  # --max-pairs: an undecided condition grows to this many (0: fixed at --min-pairs)
    probe_rate: float = 2000.0
    iperf_seconds: float = 2.0
    udp_rate: str = "50M"
    page_timeout: float = 30.0
    download_mb: tuple[float, ...] = (1.0, 10.0)
    degrade_drop: float = 0.1
    degrade_rate: str = "20mbit"
    budget_s: float | None = None  # --budget: the sweep's time, start to report (None: no limit)
    durations: Path | None = None  # --budget-table: the durations table the budget plans with (None: shipped)

    def __post_init__(self) -> None:
        if self.max_pairs and self.max_pairs < self.repeat:
            raise ConfigError(f"--max-pairs {self.max_pairs}: below --min-pairs {self.repeat}")
        if self.max_pairs > self.repeat < 2:
            raise ConfigError(f"--min-pairs {self.repeat}: sequential pairs (--max-pairs) start from at least 2")


MEMORY_PATTERN = re.compile(r"(\d+)([MG])")
MIN_VM_MEMORY_MB = 512


def parse_memory(text: str, what: str) -> str:
    """A guest memory size such as 2G or 1536M (at least 512M), else a ConfigError naming the option."""
    match = MEMORY_PATTERN.fullmatch(str(text).strip().upper())
    megabytes = int(match.group(1)) * (1024 if match.group(2) == "G" else 1) if match else 0
    if match is None or megabytes < MIN_VM_MEMORY_MB:
        raise ConfigError(f"{what} {text!r}: give a size such as 2G or 1536M, at least {MIN_VM_MEMORY_MB}M")
    return f"{match.group(1)}{match.group(2)}"


@dataclass(frozen=True)
class VmSettings:
    """The guest of `comps-harness vm` and of --vm: its kernel, accelerator and size."""

    kernel: str = "auto"  # auto: Debian's kernel from the project's cache; else a vmlinuz path
    accel: Accel = Accel.AUTO
    guest: GuestKind = GuestKind.AUTO
    cpus: int = 2
    memory: str = "2G"
    timeout_s: float = 4 * 3600.0  # the longest a guest may run before it is powered off

    def __post_init__(self) -> None:
        object.__setattr__(self, "accel", choose(Accel, self.accel, "--accel"))
        object.__setattr__(self, "guest", choose(GuestKind, self.guest, "--guest"))
        if not str(self.kernel).strip():
            raise ConfigError("--kernel: give auto or the path of a vmlinuz")


@dataclass(frozen=True)
class Tolerances:
    """How verdicts judge: switches that may be missing, ratio limits, loss per switch."""

    switches: float = 0.1
    max_path_loss: float = 0.2
    min_adherence: float = 0.6
    min_endpoint_moves: float = 0.5
    throughput: float = 0.90
    verdict_from_interval: float = 0.1
    pageload: float = 1.15
    max_lost_per_switch: float = 0.0


@dataclass(frozen=True)
class Settings:
    """Everything one invocation asked for, as values."""

    run: RunSettings = field(default_factory=RunSettings)
    plan: PlanOptions = field(default_factory=PlanOptions)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    tolerances: Tolerances = field(default_factory=Tolerances)
    vm: VmSettings = field(default_factory=VmSettings)


def recorded(settings: Settings) -> dict[str, Any]:
    """The typed settings as a run record stores them (JSON: enums and paths as text, tuples as lists)."""
    data: dict[str, Any] = json.loads(json.dumps(asdict(settings), default=str))
    return data


def recorded_pairs(data: dict[str, Any] | None) -> tuple[int, int]:
    """(--min-pairs, --max-pairs) a run measured with, from its record's settings ((3, 0): the defaults)."""
    section = (data or {}).get("measure") or {}
    return int(section.get("repeat", 3)), int(section.get("max_pairs", 0))


def recorded_budget(data: dict[str, Any] | None) -> float | None:
    """The --budget a run measured with, from its record's settings (None: none, or an older record)."""
    value = ((data or {}).get("measure") or {}).get("budget_s")
    return None if value is None else float(value)


def recorded_tolerances(data: dict[str, Any] | None) -> Tolerances:
    """The tolerances a run judged with, read back from its record's settings (a run record without them,
    written before settings were recorded, judged with the defaults unless its caller knows better)."""
    section = (data or {}).get("tolerances") or {}
    names = {f.name for f in fields(Tolerances)}
    return Tolerances(**{name: float(value) for name, value in section.items() if name in names})
