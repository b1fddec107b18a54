"""The time budget of a sweep (--budget): the minimum pairs of every test first, the slack to undecided ones (pure).

A durations table says, per test (its pytest name, e.g. `test_throughput[netns-alternate-i0.1s]`), how long
its fixed part takes (bring-up, a browser's start, the checks that are not pairs) and one interleaved pair
of its conditions. It comes from an earlier run (every sweep writes its own, durations.json) or from the
table shipped in harness/data/durations.json, measured on the 2-core reference machine.

At the start the budget reserves every test's minimum (fixed part and --min-pairs pairs). A test whose
minimum no longer fits in what is left is not started (skipped, "budget"). A sequential condition that is
still undecided at a look may take its next look's pairs only when they fit in its fair share of the slack:
what is left, less the reserve of the tests not started yet and of the end (report), divided among it
and the measuring tests still to come. So going over the budget is bounded by one look's pairs mis-estimated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

END_RESERVE_S = 8.0  # pytest's end, the report and the summary after the last test
UNKNOWN_FIXED_S = 5.0  # a test the table does not know: what a short check takes
SCHEMA = 1


@dataclass(frozen=True)
class Estimate:
    """How long a test takes: its fixed part and one pair (0 for a test without pairs)."""

    fixed_s: float = UNKNOWN_FIXED_S
    pair_s: float = 0.0
    pairs: int | None = None  # the pairs it took where measured: fewer than the minimum when it was unproven

    def minimum_s(self, min_pairs: int) -> float:
        """Its fixed part and its minimum pairs (fewer where the table saw it stop unproven before them: a
        condition below --verdict-from-interval takes one pair)."""
        taken = min(min_pairs, self.pairs) if self.pairs else min_pairs
        return self.fixed_s + (self.pair_s * taken)


def read_table(path: Path) -> dict[str, Estimate]:
    """A durations table (durations.json) -> test name -> Estimate."""
    data = json.loads(path.read_text())
    return {
        name: Estimate(float(row["fixed_s"]), float(row["pair_s"]), int(row["pairs"]) if row.get("pairs") else None)
        for name, row in data["tests"].items()
    }


def table_json(rows: dict[str, dict[str, float]], source: str) -> str:
    return json.dumps({"schema": SCHEMA, "source": source, "tests": rows}, indent=1, sort_keys=True) + "\n"


def estimate_for(table: dict[str, Estimate], name: str) -> Estimate:
    """The table's estimate of test `name`; else one of the same function (another backend or interval:
    the closest known); else a short check's."""
    if name in table:
        return table[name]
    function = name.split("[", 1)[0]
    same = [estimate for known, estimate in table.items() if known.split("[", 1)[0] == function]
    if not same:
        return Estimate()
    return Estimate(max(e.fixed_s for e in same), max(e.pair_s for e in same))  # its pairs: the minimum


def run_order(names: list[str], costs: set[str], recorded_only: set[str]) -> list[str]:
    """Under a budget the tests that measure a cost run first, then the proofs and self-checks (which
    `./bootstrap.sh test` runs in full), and last the measurements below --verdict-from-interval, which are
    recorded and never judged: what a spent budget skips is never a cost's measurement first."""
    rest = [name for name in names if name not in costs and name not in recorded_only]
    return [name for name in names if name in costs] + rest + [name for name in names if name in recorded_only]


@dataclass
class Budget:
    """What is left of --budget as the tests run (deadline on the monotonic clock)."""

    deadline: float
    estimates: dict[str, Estimate]  # every test of the session, by name
    min_pairs: int
    order: list[str] = field(default_factory=list)  # the tests in run order
    started: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def plan(
        cls,
        total_s: float,
        elapsed_s: float,
        names: Iterable[str],
        table: dict[str, Estimate],
        min_pairs: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> Budget:
        """A budget of `total_s` of which `elapsed_s` were spent before the tests (the sweep's start)."""
        order = list(names)
        estimates = {name: estimate_for(table, name) for name in order}
        return cls(clock() + total_s - elapsed_s, estimates, min_pairs, order, clock=clock)

    def left_s(self) -> float:
        return self.deadline - self.clock()

    def reserve_s(self) -> float:
        """The minimum of the tests not started yet, and the end's."""
        return END_RESERVE_S + sum(
            self.estimates[name].minimum_s(self.min_pairs) for name in self.order if name not in self.started
        )

    def planned_s(self) -> float:
        """The minimum of every test and the end: what the budget must hold at least."""
        return END_RESERVE_S + sum(estimate.minimum_s(self.min_pairs) for estimate in self.estimates.values())

    def start(self, name: str) -> str | None:
        """Test `name` starts: None, or why it does not (its minimum does not fit in what is left)."""
        estimate = self.estimates.get(name, Estimate())
        need = estimate.minimum_s(self.min_pairs)
        self.started.add(name)
        left = self.left_s() - END_RESERVE_S
        if need > left:
            return (
                f"budget: {max(0.0, left):.0f} s left of --budget, and this test takes about {need:.0f} s "
                f"({estimate.fixed_s:.0f} s and pairs of {estimate.pair_s:.1f} s)"
            )
        return None

    def may_spend(self, seconds: float) -> bool:
        """Whether a running condition may spend `seconds` more (its next look's pairs): within its share of
        the slack, the slack split evenly between it and the measuring tests not started yet."""
        slack = self.left_s() - self.reserve_s()
        sharing = 1 + sum(1 for name in self.order if name not in self.started and self.estimates[name].pair_s > 0)
        return seconds <= slack / sharing

    def describe(self) -> dict[str, Any]:
        return {"deadline_left_s": round(self.left_s(), 1), "planned_s": round(self.planned_s(), 1)}


def minutes_text(seconds: float) -> str:
    """Seconds as 4m05s (-0m05s for a budget overspent), for a progress line."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{int(seconds // 60)}m{int(seconds % 60):02d}s"
