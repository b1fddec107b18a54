"""Run-to-run comparison for nightly use: per-metric ratios NEW/OLD with 95 % intervals (pure).

A metric is one figure of one condition of one test: e.g. (throughput, netns,
baseline@netns-alternate-i0.1s, tcp_up bits/s). The two runs are independent samples: the ratio of
geometric means with a Welch interval on the logs. It regressed when its ratio is worse than the
tolerance and the whole interval is on the worse side of 1 (so noise alone does not fail a night);
with fewer than 3 values a side there is no verdict.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from harness.errors import ConfigError
from harness.model.metrics import compared_values
from harness.model.records import MeasurementRecord, Record, of_kind
from harness.model.stats import t_975

MIN_N = 3


def _condition_of(record: MeasurementRecord) -> str:
    """The condition, tied to its test's parameters: a baseline belongs to the interval it was measured
    beside (baselines of different intervals are not pooled)."""
    params = record.test.partition("[")[2].rstrip("]")
    return f"{record.condition}@{params}" if params else record.condition


def metrics(records: list[Record]) -> dict[tuple, dict]:
    """(scenario, backend, condition@test, mechanism, metric) -> {"values": [...], "higher_is_better": bool}."""
    found: dict[tuple, dict] = defaultdict(lambda: {"values": [], "higher_is_better": True})
    for record in of_kind(records, MeasurementRecord):
        key = (record.scenario, record.where, _condition_of(record), record.mechanism)
        values = list(compared_values(record.figures, record.scenario))
        if record.migrating:  # how closely the session followed the schedule: a figure of the run like the others
            values += [
                (f"adherence_{d}", record.evidence[f"adherence_{d}"], True)
                for d in ("up", "down")
                if record.evidence.get(f"adherence_{d}") is not None
            ]
        for name, value, higher in values:
            entry = found[(*key, name)]
            entry["values"].append(float(value))
            entry["higher_is_better"] = higher
    return dict(found)


def ratio_interval(old: list[float], new: list[float]) -> tuple[float, float, float]:
    """(ratio, low, high): the ratio of geometric means NEW/OLD with a 95 % Welch interval on the logs
    (two independent samples: two runs are not paired)."""
    a, b = [math.log(v) for v in old], [math.log(v) for v in new]
    diff = statistics.fmean(b) - statistics.fmean(a)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return math.exp(diff), math.exp(diff), math.exp(diff)
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1) if va else 0) + (vb**2 / (len(b) - 1) if vb else 0))
    t = t_975(df)
    return math.exp(diff), math.exp(diff - t * se), math.exp(diff + t * se)


def compare(old_records: list[Record], new_records: list[Record], *, tolerance: float = 0.9) -> list[dict]:
    """One row per metric present in both runs, worst regressions first.

    A metric regressed when its ratio is worse than the tolerance and its whole 95 % interval is on
    the worse side of 1; with fewer than MIN_N values a side, or a zero median, there is no verdict.
    """
    if not 0 < tolerance <= 1:
        raise ConfigError(
            f"--tolerance {tolerance} must be in (0, 1]: the worst acceptable ratio for a better-is-higher metric"
        )
    old, new = metrics(old_records), metrics(new_records)
    rows = []
    for key in sorted(old.keys() & new.keys(), key=str):
        a, b = old[key]["values"], new[key]["values"]
        higher = new[key]["higher_is_better"]
        row = {
            "scenario": key[0],
            "backend": key[1],
            "condition": key[2],
            "mechanism": key[3],
            "metric": key[4],
            "old_median": statistics.median(a),
            "new_median": statistics.median(b),
            "higher_is_better": higher,
            "n_old": len(a),
            "n_new": len(b),
            "ratio": None,
            "ci": None,
            "regressed": False,
            "note": "",
        }
        if len(a) < MIN_N or len(b) < MIN_N:
            row["note"] = f"not enough data (n={len(a)}/{len(b)}; a verdict needs {MIN_N} a side)"
        elif min(a) <= 0 or min(b) <= 0:
            row["note"] = "a zero value: not comparable as a ratio"
        else:
            ratio, low, high = ratio_interval(a, b)
            row["ratio"], row["ci"] = ratio, (low, high)
            row["regressed"] = (ratio < tolerance and high < 1.0) if higher else (ratio > 1 / tolerance and low > 1.0)
        rows.append(row)
    rows.sort(key=lambda r: (not r["regressed"], str(r["scenario"]), str(r["condition"]), r["metric"]))
    return rows


def describe(row: dict) -> str:
    better = "higher" if row["higher_is_better"] else "lower"
    where = f"{row['scenario']}/{row['backend']}/{row['condition']}/{row['mechanism']} {row['metric']}"
    if row["ratio"] is None:
        return (
            f"{'no verdict':9} {where}: {row['note']} ({row['old_median']:.4g} -> {row['new_median']:.4g}, "
            f"{better} is better)"
        )
    low, high = row["ci"]
    flag = "REGRESSED" if row["regressed"] else "ok"
    return (
        f"{flag:9} {where}: x{row['ratio']:.3f} [{low:.3f}, {high:.3f}] ({row['old_median']:.4g} -> "
        f"{row['new_median']:.4g}, {better} is better, n={row['n_old']}/{row['n_new']})"
    )
