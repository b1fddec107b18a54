"""Shards of a sweep and their merge (pure): which tests a shard runs, and whether shards belong together.

A sweep too big for one machine runs as N shards (`--shard K/N`), one machine or CI runner each, and
`comps-harness merge` puts their results back into one run. The unit of the split is the test: a test's
baseline and migrating repetitions are interleaved pairs inside it, on one topology, so no ratio ever
pairs figures from two machines. The split is longest-expected-first onto the least loaded shard (LPT),
the expectation from a durations table (an earlier run's durations.json, or the shipped one): every shard
computes the same split from the same collected tests and table, without talking to the others.

Every shard's run record keeps the sweep's id, its shard, its own tests and the whole sweep's tests
(`sweep` in the run record), so a merge can name what is missing and what two shards both ran.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.model.budget import Estimate, estimate_for

SHARD_PATTERN = re.compile(r"(\d+)/(\d+)")
MAX_SHARDS = 1000
# settings a shard may differ in from its siblings: where its results go, and what its machine runs
OWN_SETTINGS = {
    "run": {"run_id", "results_dir", "run_dir_override", "backends", "profiles", "shard", "shard_durations"},
    "measure": {"durations"},
}


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, what: str = "--shard") -> Shard:
    """'K/N' with 1 <= K <= N, else a ConfigError naming the option."""
    match = SHARD_PATTERN.fullmatch(str(text).strip())
    if not match:
        raise ConfigError(f"{what} {text!r} is not K/N (e.g. 2/4: the second of four shards)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"{what} {text}: N must be between 1 and {MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ConfigError(f"{what} {text}: K must be between 1 and N ({count})")
    return Shard(index, count)


def name_of(nodeid: str) -> str:
    """A node id's test name as durations tables key it: 'scenarios/x.py::test_a[netns]' -> 'test_a[netns]'."""
    return nodeid.rsplit("::", 1)[-1]


def expected_s(estimate: Estimate, min_pairs: int) -> float:
    """How long a test should take: its fixed part and the pairs it took where measured (else the minimum)."""
    return estimate.fixed_s + estimate.pair_s * (estimate.pairs or min_pairs)


def partition(nodeids: Iterable[str], table: Mapping[str, Estimate], count: int, min_pairs: int) -> list[list[str]]:
    """The tests of each of `count` shards, in their collected order: longest expected first, each onto the
    shard expected to end first (ties: the lower shard; equal tests: by node id). Deterministic."""
    order = list(dict.fromkeys(nodeids))
    seconds = {nodeid: expected_s(estimate_for(dict(table), name_of(nodeid)), min_pairs) for nodeid in order}
    loads = [0.0] * count
    assigned: dict[str, int] = {}
    for nodeid in sorted(order, key=lambda n: (-seconds[n], n)):
        shard = min(range(count), key=lambda k: (loads[k], k))
        assigned[nodeid] = shard
        loads[shard] += seconds[nodeid]
    return [[nodeid for nodeid in order if assigned[nodeid] == k] for k in range(count)]


def loads_s(parts: list[list[str]], table: Mapping[str, Estimate], min_pairs: int) -> list[float]:
    """The expected seconds of each shard's tests."""
    return [sum(expected_s(estimate_for(dict(table), name_of(nodeid)), min_pairs) for nodeid in part) for part in parts]


def balance(loads: list[float]) -> float:
    """The longest shard over the mean shard (1.0: even)."""
    mean = sum(loads) / len(loads) if loads else 0.0
    return max(loads) / mean if mean else 1.0


def digest(nodeids: Iterable[str]) -> str:
    """A short fingerprint of a set of tests (whether two shards collected the same sweep)."""
    return hashlib.sha256("\n".join(sorted(nodeids)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardRun:
    """What a merge needs of one shard's results: from its run record and its test records."""

    where: str  # its directory, for the lines that name it
    schema: int
    sweep_id: str  # the run record's
    shard: str  # K/N, the run record's
    sweep: dict[str, Any]  # the run record's `sweep`: tests, collected
    commit: str
    settings: dict[str, Any]
    tested: frozenset[str]  # the node ids it wrote a test record for


def comparable(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings every shard of a sweep must share: all but OWN_SETTINGS."""
    return {
        section: {k: v for k, v in values.items() if k not in OWN_SETTINGS.get(section, set())}
        if isinstance(values, dict)
        else values
        for section, values in settings.items()
    }


def refusals(runs: list[ShardRun]) -> list[str]:
    """Why these runs cannot be merged into one (one line each; empty: they can)."""
    if not runs:
        return ["merge: no runs given"]
    first = runs[0]
    lines = []
    checks: tuple[tuple[str, Callable[[ShardRun], str]], ...] = (
        ("sweep ids (--sweep-id)", lambda r: r.sweep_id or "none"),
        ("schema versions", lambda r: str(r.schema)),
        ("commits", lambda r: r.commit),
    )
    for label, value in checks:
        seen = {value(run) for run in runs}
        if len(seen) > 1:
            lines.append(f"merge: the runs have different {label}: " + _which(runs, value))
    counts = {run.shard.split("/")[1] for run in runs}
    if len(counts) > 1:
        lines.append("merge: the runs were split into different numbers of shards: " + _which(runs, lambda r: r.shard))
    for run in runs[1:]:
        if comparable(run.settings) != comparable(first.settings):
            keys = _differing(comparable(first.settings), comparable(run.settings))
            lines.append(f"merge: {run.where} ran with other settings than {first.where}: {', '.join(keys)}")
    shards = [run.shard for run in runs]
    twice = sorted({shard for shard in shards if shards.count(shard) > 1})
    if twice:
        lines.append(f"merge: shard {', '.join(twice)} given more than once")
    collected = {digest(run.sweep.get("collected") or []) for run in runs}
    if len(collected) > 1:
        lines.append("merge: the shards collected different tests (other options, or other checkouts)")
    return lines


def _which(runs: list[ShardRun], value: Callable[[ShardRun], str]) -> str:
    return "; ".join(f"{value(run)} in {run.where}" for run in runs)


def _differing(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys += _differing(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.append(f"{prefix}{key} ({left!r} against {right!r})")
    return keys


@dataclass(frozen=True)
class Coverage:
    missing: list[str]  # tests of the sweep no shard recorded
    duplicated: list[str]  # tests more than one shard recorded


def coverage(runs: list[ShardRun]) -> Coverage:
    """Which tests of the sweep no shard ran, and which more than one did."""
    collected = list(dict.fromkeys(nodeid for run in runs for nodeid in run.sweep.get("collected") or []))
    counts: dict[str, int] = {}
    for run in runs:
        for nodeid in run.tested:
            counts[nodeid] = counts.get(nodeid, 0) + 1
    missing = [nodeid for nodeid in collected if nodeid not in counts]
    return Coverage(missing, sorted(nodeid for nodeid, n in counts.items() if n > 1))
