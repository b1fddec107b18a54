"""Migration schedules as pure data: when to move the client's session, and to which path.

A schedule is a finite, seeded list of planned switches (seconds after the start, target path),
so the same parameters always give the same sequence, and a test knows in advance how many
switches it asked for. The strategies are the ones the CoMPS authors used:

- ``alternate``: round robin over the paths every interval (the demo's migrate.sh);
- ``weighted-random``: every interval a path is drawn with per-path weights (given, or drawn
  from a flat Dirichlet with the seed); drawing the current path means staying on it;
- ``fixed``: an explicit list of (time, path) pairs;
- ``none``: never switch (the baseline).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import ConfigError
from harness.model.events import EventSpec, check_events
from harness.model.kinds import Mechanism, StickySource, Strategy, choose
from harness.model.settings import FaultSpec, PlanOptions, parse_number

MIN_DURATION_S = 2.0
MIN_SWITCHES = 2
SWITCHES_PER_RUN = 10


def _listed(paths: tuple[int, ...]) -> str:
    return ", ".join(str(path) for path in paths)


@dataclass(frozen=True)
class PlannedSwitch:
    at: float  # seconds after the schedule starts
    path: int


def flat_dirichlet(n: int, rng: random.Random) -> tuple[float, ...]:
    draws = [rng.gammavariate(1.0, 1.0) for _ in range(n)]
    total = sum(draws)
    return tuple(d / total for d in draws)


@dataclass(frozen=True)
class MigrationPlan:
    """What a migration run should do; validated on creation, so bad input fails before anything starts."""

    strategy: Strategy = Strategy.ALTERNATE
    interval: float = 0.1
    paths: tuple[int, ...] = (1, 2)
    duration: float = 2.0
    jitter: float = 0.0
    seed: int = 0
    weights: tuple[float, ...] | None = None
    fixed: tuple[tuple[float, int], ...] = ()
    start_path: int = 1
    mechanism: Mechanism = Mechanism.NETLINK
    sticky_source: StickySource = StickySource.AUTO
    faults: tuple[FaultSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()  # --event: what the paths do meanwhile (the baseline lives through them too)
    _weights_used: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", choose(Strategy, self.strategy, "strategy"))
        object.__setattr__(self, "mechanism", choose(Mechanism, self.mechanism, "switch mechanism"))
        object.__setattr__(self, "sticky_source", choose(StickySource, self.sticky_source, "--sticky-source"))
        if len(self.paths) < 2 or len(set(self.paths)) != len(self.paths):
            raise ConfigError(f"migration needs at least two distinct paths, got {self.paths}")
        object.__setattr__(self, "interval", parse_number(self.interval, "interval"))
        object.__setattr__(self, "duration", parse_number(self.duration, "duration"))
        object.__setattr__(self, "jitter", parse_number(self.jitter, "jitter", allow_zero=True))
        if self.jitter >= self.interval / 2:
            raise ConfigError(
                f"--jitter {self.jitter:g} s must stay below half the interval: --intervals "
                f"{self.interval:g} allows less than {self.interval / 2:g} s"
            )
        if self.start_path not in self.paths:
            raise ConfigError(f"start path {self.start_path} is not one of the paths {self.paths}")
        for fault in self.faults:
            if fault.path is not None and fault.path not in self.paths:
                raise ConfigError(
                    f"--fault {fault.describe()} names path {fault.path}, but --paths "
                    f"{len(self.paths)} gives paths {_listed(self.paths)}"
                )
        check_events(self.events, self.paths, None)
        for _, path in self.fixed:
            if path not in self.paths:
                raise ConfigError(
                    f"--fixed names path {path}, but --paths {len(self.paths)} gives paths {_listed(self.paths)}"
                )
        if self.strategy == "fixed" and not self.fixed:
            raise ConfigError("the fixed strategy needs --fixed TIME:PATH,...")
        if self.mechanism == "script" and (self.strategy != "alternate" or self.jitter):
            raise ConfigError(
                "the script mechanism runs the demo's migrate.sh, which only alternates "
                "without jitter; use --switch-mechanism netlink for other schedules"
            )
        weights = self.weights
        if self.strategy == Strategy.WEIGHTED_RANDOM:
            if weights is None:
                weights = flat_dirichlet(len(self.paths), random.Random(f"weights-{self.seed}"))
            if len(weights) != len(self.paths):
                raise ConfigError(f"{len(weights)} weights given for {len(self.paths)} paths")
            if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise ConfigError(f"weights must be finite, not negative, and not all 0: {weights}")
            total = sum(weights)
            weights = tuple(w / total for w in weights)
        object.__setattr__(self, "_weights_used", weights or ())

    @property
    def path_weights(self) -> tuple[float, ...]:
        """The normalised weights the weighted-random strategy draws with (empty for the others)."""
        return self._weights_used

    @property
    def ticks(self) -> int:
        """How many interval boundaries fall inside the duration."""
        return math.floor(self.duration / self.interval + 1e-9)

    def switches(self) -> list[PlannedSwitch]:
        """The planned switches (each one changes the path), in time order, within the duration."""
        if self.strategy == Strategy.NONE:
            return []
        if self.strategy == Strategy.FIXED:
            planned, current = [], self.start_path
            for at, path in sorted(self.fixed):
                if at <= self.duration and path != current:
                    planned.append(PlannedSwitch(at, path))
                    current = path
            return planned
        rng = random.Random(self.seed)
        planned, current = [], self.start_path
        order = list(self.paths)
        for tick in range(1, self.ticks + 1):
            at = tick * self.interval + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
            if self.strategy == Strategy.ALTERNATE:
                target = order[(order.index(current) + 1) % len(order)]
            else:
                target = rng.choices(order, weights=self._weights_used)[0]
            if target != current:
                planned.append(PlannedSwitch(round(at, 9), target))
                current = target
        return planned

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "interval_s": self.interval,
            "duration_s": self.duration,
            "jitter_s": self.jitter,
            "seed": self.seed,
            "paths": list(self.paths),
            "weights": list(self.path_weights) or None,
            "mechanism": self.mechanism,
            "sticky_source": self.sticky_source,
            "faults": [fault.describe() for fault in self.faults],
            "events": [event.describe() for event in self.events],
            "planned_switches": len(self.switches()),
        }

    @property
    def label(self) -> str:
        """The readable test id part: alternate-i0.1s (and -script for the demo's script).

        The `i` makes `-k i1s` select 1 s alone (plain `1s` would also match 0.1s and 0.01s)."""
        text = f"{self.strategy}-i{self.interval:g}s"
        return text if self.mechanism == Mechanism.NETLINK else f"{text}-{self.mechanism}"


def build_plans(options: PlanOptions, paths: tuple[int, ...]) -> list[MigrationPlan]:
    """Every (strategy, interval, mechanism) the options ask for, validated before anything starts.

    A migration plan with fewer than MIN_SWITCHES switches proves nothing: that is a usage error.
    """
    plans = []
    for strategy in options.strategies:
        for interval in options.intervals:
            duration = options.duration or max(MIN_DURATION_S, SWITCHES_PER_RUN * interval)
            for mechanism in options.mechanisms:
                plans.append(
                    MigrationPlan(
                        strategy=strategy,
                        interval=interval,
                        paths=paths,
                        duration=duration,
                        jitter=options.jitter,
                        seed=options.seed,
                        weights=options.weights,
                        fixed=options.fixed,
                        mechanism=mechanism,
                        sticky_source=options.sticky_source,
                        faults=options.faults,
                        events=options.events + ((options.trace,) if options.trace else ()),
                    )
                )
    for plan in plans:
        if plan.strategy not in (Strategy.NONE, Strategy.FIXED) and len(plan.switches()) < MIN_SWITCHES:
            raise ConfigError(
                f"--duration {plan.duration:g} s at an interval of {plan.interval:g} s gives "
                f"{len(plan.switches())} switches; a migration needs at least {MIN_SWITCHES}"
            )
    return plans


def baseline_of(plan: MigrationPlan) -> MigrationPlan:
    """The same run without migration."""
    return replace(plan, strategy=Strategy.NONE, mechanism=Mechanism.NETLINK, jitter=0.0, fixed=(), faults=())


# A measurement of a few short transfers (a page set, a download set) repeats them for at least this long and
# a whole window of every scheduled path: one 10 MB download (0.3-0.5 s) crossed 3-5 switches at
# 0.1 s and gave false reds on healthy paths (a lagging send queue judged over 2 windows as a pin, burst loss
# clustered on one path judged as hop loss), and a 1-2 s page set at 1 s could end before path 2's window.
MIN_SPAN_S = 2.0
SPAN_WINDOWS_OVER = 0.5  # windows beyond one of every path: the last path's window is a whole one


def measurement_span(plan: MigrationPlan) -> float:
    """Seconds a set measurement under `plan` repeats its transfers for (the baseline of a pair gets the same):
    at least MIN_SPAN_S, and a whole window of every path (2.5 s at 1 s with two paths)."""
    if not plan.interval:
        return MIN_SPAN_S
    return max(MIN_SPAN_S, (len(plan.paths) + SPAN_WINDOWS_OVER) * plan.interval)
