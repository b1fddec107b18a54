"""Run-to-run comparison for nightly use: per-metric ratios NEW/OLD with bootstrap confidence intervals (pure).

A metric is one figure of one condition: e.g. (throughput, netns, alternate-0.1s, tcp_up bits/s).
It regressed when its ratio is worse than the tolerance and the whole confidence interval is on
the worse side of 1 (so noise alone does not fail a night).
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Iterator

from harness.errors import ConfigError
from harness.model.records import MeasurementRecord, Record, of_kind

BOOTSTRAP_RESAMPLES = 2000


def _figures(record: MeasurementRecord) -> Iterator[tuple[str, float, bool]]:
    """(metric name, value, higher is better) of one measurement record."""
    figures, scenario = record.figures, record.scenario
    for kind in ("tcp_up", "tcp_down", "udp"):
        if kind in figures:
            yield f"{kind} bits/s", figures[kind]["bits_per_second"], True
    for load in figures.get("loads", []):
        if load.get("ok"):
            yield f"{load['url'].rsplit('/', 1)[-1]} load ms", load["load_ms"], False
    for download in figures.get("downloads", []):
        yield f"{download['path']} seconds", download["seconds"], False
    loss = figures.get("loss")
    if loss and loss.get("lost_per_switch_mean") is not None and scenario == "switch_loss":
        yield "lost per switch", loss["lost_per_switch_mean"], False


def metrics(records: list[Record]) -> dict[tuple, dict]:
    """(scenario, backend, condition, mechanism, metric) -> {"values": [...], "higher_is_better": bool}."""
    found: dict[tuple, dict] = defaultdict(lambda: {"values": [], "higher_is_better": True})
    for record in of_kind(records, MeasurementRecord):
        key = (record.scenario, record.backend, record.condition, record.mechanism)
        for name, value, higher in _figures(record):
            entry = found[(*key, name)]
            entry["values"].append(float(value))
            entry["higher_is_better"] = higher
    return dict(found)


def ratio_interval(old: list[float], new: list[float], *, confidence: float = 0.95, seed: int = 1) -> tuple[float, float]:
    """Bootstrap interval of median(new)/median(old), resampling both runs."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        o = statistics.median(rng.choices(old, k=len(old)))
        n = statistics.median(rng.choices(new, k=len(new)))
        ratios.append(n / o if o else (1.0 if n == o else float("inf")))
    ratios.sort()
    tail = (1 - confidence) / 2
    return ratios[int(tail * (len(ratios) - 1))], ratios[int((1 - tail) * (len(ratios) - 1))]


def compare(old_records: list[Record], new_records: list[Record], *, tolerance: float = 0.9,
            confidence: float = 0.95) -> list[dict]:
    """One row per metric present in both runs, worst regressions first."""
    if not 0 < tolerance <= 1:
        raise ConfigError(f"--tolerance {tolerance} must be in (0, 1]: the worst acceptable ratio for a better-is-higher metric")
    old, new = metrics(old_records), metrics(new_records)
    rows = []
    for key in sorted(old.keys() & new.keys(), key=str):
        a, b = old[key]["values"], new[key]["values"]
        higher = new[key]["higher_is_better"]
        base, value = statistics.median(a), statistics.median(b)
        if base == 0 and value == 0:
            ratio, low, high = 1.0, 1.0, 1.0
        else:
            ratio = value / base if base else float("inf")
            low, high = ratio_interval(a, b, confidence=confidence)
        if higher:  # worse = smaller
            regressed = ratio < tolerance and high < 1.0
        else:       # worse = larger
            regressed = ratio > 1 / tolerance and low > 1.0
        rows.append({"scenario": key[0], "backend": key[1], "condition": key[2], "mechanism": key[3], "metric": key[4],
                     "old_median": base, "new_median": value, "ratio": ratio, "ci": (low, high),
                     "higher_is_better": higher, "regressed": regressed, "n_old": len(a), "n_new": len(b)})
    rows.sort(key=lambda r: (not r["regressed"], str(r["scenario"]), str(r["condition"]), r["metric"]))
    return rows


def describe(row: dict) -> str:
    low, high = row["ci"]
    flag = "REGRESSED" if row["regressed"] else "ok"
    better = "higher" if row["higher_is_better"] else "lower"
    return (f"{flag:9} {row['scenario']}/{row['backend']}/{row['condition']}/{row['mechanism']} {row['metric']}: "
            f"x{row['ratio']:.3f} [{low:.3f}, {high:.3f}] ({row['old_median']:.4g} -> {row['new_median']:.4g}, "
            f"{better} is better, n={row['n_old']}/{row['n_new']})")
