"""Every metric the harness judges or compares, declared once: unit, direction, tolerance and where it comes from.

Scenarios record their measurements under a `Scenario` name; the report's cost table and charts,
`compare` and the verdicts iterate over METRICS, so a new metric is one entry here (pure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.model.settings import Tolerances


class Scenario(StrEnum):
    """What a measurement record measured (the `scenario` of MeasurementRecord)."""

    THROUGHPUT = "throughput"
    PAGELOAD = "pageload"
    DOWNLOAD = "download"
    SWITCH_LOSS = "switch_loss"
    THROUGHPUT_DEGRADED = "throughput_degraded"  # the degraded-path self-check
    SWITCH_LOSS_DEGRADED = "switch_loss_degraded"
    FIDELITY = "fidelity"  # bench fidelity's runs
    PATH_PROFILE = "path_profile"  # a profile's verification, not a measurement of migration


TCP_UP, TCP_DOWN, UDP = "tcp_up", "tcp_down", "udp"  # iperf3's runs, the items of the throughput metric
THROUGHPUT_KINDS = (TCP_UP, TCP_DOWN, UDP)  # in the order they are shown
KIND_LABELS = {TCP_UP: "TCP up", TCP_DOWN: "TCP down", UDP: "UDP"}

Figures = dict[str, Any]


def page_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _throughput(figures: Figures) -> list[tuple[str, float]]:
    return [(kind, figures[kind]["bits_per_second"]) for kind in THROUGHPUT_KINDS if kind in figures]


def per_item_mean(values: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """(item, mean of its values), in the order items first appear: a measurement that repeated its page
    set or download set in rounds (harness.measure.services.in_rounds) has one figure per page or file."""
    seen: dict[str, list[float]] = {}
    for item, value in values:
        seen.setdefault(item, []).append(value)
    return [(item, sum(got) / len(got)) for item, got in seen.items()]


def _page_loads(figures: Figures) -> list[tuple[str, float]]:
    return per_item_mean(
        [(page_name(load["url"]), load["load_ms"]) for load in figures.get("loads", []) if load.get("ok")]
    )


def _downloads(figures: Figures) -> list[tuple[str, float]]:
    return per_item_mean([(download["path"], download["seconds"]) for download in figures.get("downloads", [])])


def _loss(figures: Figures) -> list[tuple[str, float]]:
    loss = figures.get("loss")
    mean = loss.get("lost_per_switch_mean") if loss else None
    return [("lost", mean)] if mean is not None else []


@dataclass(frozen=True)
class Metric:
    """One kind of figure: its unit, which way is better, what judges it, and how it is read from figures."""

    name: str
    scenario: Scenario | None  # the measurements whose cost the report's table pairs (None: compared only)
    unit: str  # shown; raw values / scale are in this unit
    scale: float
    higher_is_better: bool
    tolerance: str | None  # the Tolerances field that judges it (None: measured, not judged)
    from_interval: bool  # judged only at intervals >= --verdict-from-interval
    raw_unit: str  # how `compare` names the raw figure: "tcp_up bits/s"
    values: Callable[[Figures], list[tuple[str, float]]]  # figures -> (item, raw value)
    compared_in: Scenario | None = None  # compared only in measurements of this scenario (None: in all)
    min_pairs: int = 0  # the pairs its conditions get at least, whatever --min-pairs says

    def limit(self, tolerances: Tolerances) -> float:
        if self.tolerance is None:
            raise ValueError(f"metric {self.name} is not judged")
        return float(getattr(tolerances, self.tolerance))

    def judged_at(self, interval: float | None, tolerances: Tolerances) -> bool:
        return self.tolerance is not None and (
            not self.from_interval or (interval or 0) >= tolerances.verdict_from_interval
        )


THROUGHPUT = Metric("throughput", Scenario.THROUGHPUT, "Mbit/s", 1e6, True, "throughput", True, "bits/s", _throughput)
# Page loads and downloads vary a lot from one load to the next (n=3 single loads gave intervals like
# [0.4, 2.7]); a measurement repeats its set for measurement_span (at least 2 s), and its figure is the mean.
PAGELOAD = Metric("pageload", Scenario.PAGELOAD, "ms", 1.0, False, "pageload", False, "load ms", _page_loads)
DOWNLOAD = Metric("download", Scenario.DOWNLOAD, "s", 1.0, False, "pageload", False, "seconds", _downloads)
LOSS = Metric("loss", None, "packets", 1.0, False, None, False, "per switch", _loss, compared_in=Scenario.SWITCH_LOSS)
METRICS = (THROUGHPUT, PAGELOAD, DOWNLOAD, LOSS)
COSTED = tuple(metric for metric in METRICS if metric.scenario is not None)


def costed_values(figures: Figures) -> dict[str, float]:
    """item -> raw value of one measurement, over the metrics the cost table pairs."""
    return {item: value for metric in COSTED for item, value in metric.values(figures)}


def compared_values(figures: Figures, scenario: str) -> list[tuple[str, float, bool]]:
    """(name as compare shows it, raw value, higher is better) of one measurement."""
    return [
        (f"{item} {metric.raw_unit}", value, metric.higher_is_better)
        for metric in METRICS
        if metric.compared_in is None or metric.compared_in == scenario
        for item, value in metric.values(figures)
    ]


def series(metric: Metric, results: list[Figures]) -> dict[str, list[float]]:
    """item -> its value in each of `results` (figures, in order), for the items every one of them has."""
    values = [dict(metric.values(figures)) for figures in results]
    items = [item for item, _ in metric.values(results[0])] if results else []
    return {item: [v[item] for v in values] for item in items if all(item in v for v in values)}
