"""Run settings: the one source of truth for every option, shared by the CLI and the pytest plugin.

Validation happens here, so bad input fails before anything is created.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.prereq import WIREGUARD_CHOICES
from harness.topology import MAX_PATHS, MIN_PATHS

BACKENDS = ("netns", "docker")
BACKEND_CHOICES = (*BACKENDS, "all")
RUN_PREFIX = "ch"


def new_run_id() -> str:
    """Unique per run and short enough to sit in names: ch-<UTC time>-<random>."""
    return f"{RUN_PREFIX}-{time.strftime('%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def parse_backends(value: str) -> tuple[str, ...]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise ConfigError("--backend is empty; choose netns, docker or all")
    result: list[str] = []
    for name in names:
        if name not in BACKEND_CHOICES:
            raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")
        for backend in (BACKENDS if name == "all" else (name,)):
            if backend not in result:
                result.append(backend)
    return tuple(result)


def parse_number(text: object, what: str, *, allow_zero: bool = False) -> float:
    """A finite number above 0 (or 0 and above), else a ConfigError naming the option."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "above 0"
        raise ConfigError(f"{what} must be a finite number {bound}, not {text}")
    return value


def parse_rate(text: str, what: str) -> str:
    """A tc rate such as 20mbit, 500kbit or 1gbit (positive), else a ConfigError naming the option."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", str(text).strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{what} {text!r} is not a rate such as 20mbit, 500kbit or 1gbit")
    return match.group(0)


def parse_intervals(text: str) -> tuple[float, ...]:
    """'0.01,0.1,1' -> (0.01, 0.1, 1.0); rejects 0, negatives, NaN, inf and duplicates."""
    parts = [part.strip().removesuffix("s") for part in str(text).split(",") if part.strip()]
    if not parts:
        raise ConfigError("--intervals is empty; give seconds such as 0.01,0.1,1")
    values = tuple(parse_number(part, "interval") for part in parts)
    if len(set(values)) != len(values):
        raise ConfigError(f"--intervals {text} repeats a value")
    return values


@dataclass(frozen=True)
class RunSettings:
    backends: tuple[str, ...] = ("netns",)
    paths: int = 2
    wireguard: str = "auto"
    run_id: str = field(default_factory=new_run_id)
    results_dir: Path = Path("reports")

    def __post_init__(self) -> None:
        for backend in self.backends:
            if backend not in BACKENDS:
                raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
        if isinstance(self.paths, bool) or not isinstance(self.paths, int) or not MIN_PATHS <= self.paths <= MAX_PATHS:
            raise ConfigError(f"--paths {self.paths!r}: migration needs between {MIN_PATHS} and {MAX_PATHS} paths")
        if self.wireguard not in WIREGUARD_CHOICES:
            raise ConfigError(f"--wireguard {self.wireguard!r}: choose one of {', '.join(WIREGUARD_CHOICES)}")
        if not self.run_id.replace("-", "").isalnum():
            raise ConfigError(f"run id {self.run_id!r} may hold only letters, digits and dashes")

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.run_id
