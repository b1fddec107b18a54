"""`comps-harness bench migration`: what migrating at each interval costs, in one run, as ratios.

Every figure is a ratio of medians of interleaved repetitions against the same run's baseline
(no migration), so a noisy machine moves both sides alike. Every measurement is also a record
in the run's results file.
"""

from __future__ import annotations

import functools
import math
import statistics
import subprocess
from collections.abc import Callable

from harness.measure import iperf
from harness.measure.services import (
    ConditionResult,
    OriginServices,
    for_measurement,
    interleave,
    measure_condition,
    measure_loss,
    page_load_ms,
)
from harness.measure.verdicts import ratio_verdict, throughput_verdicts
from harness.model.kinds import Mechanism
from harness.model.metrics import TCP_UP, Scenario
from harness.model.schedule import MigrationPlan
from harness.model.settings import MeasureSettings
from harness.runtime.content import PAGES
from harness.runtime.network import Network

PROBE_SECONDS = 2.0
Recorder = Callable[[str, str, int, ConditionResult], None]  # scenario, condition, repetition, result


def _geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


class MigrationBench:
    def __init__(
        self,
        network: Network,
        services: OriginServices,
        intervals: tuple[float, ...],
        options: MeasureSettings,
        record: Recorder,
        progress: Callable[[str], None],
    ) -> None:
        self.network, self.services, self.intervals, self.options = network, services, intervals, options
        self.record, self.progress = record, progress
        self.paths = network.topology.path_ids

    def _plan(self, interval: float, mechanism: str = "netlink") -> MigrationPlan:
        return MigrationPlan(interval=interval, paths=self.paths, duration=max(2.0, 10 * interval), mechanism=mechanism)

    def _recorder(self, scenario: str) -> Callable[[str, int, ConditionResult], None]:
        def record(condition: str, rep: int, result: ConditionResult) -> None:
            self.record(scenario, condition, rep, result)
            self.progress(f"bench migration: {scenario} {condition} rep {rep + 1}/{self.options.repeat} done")

        return record

    def throughput_ratio(self, interval: float) -> float:
        seconds = self.options.iperf_seconds
        measure = functools.partial(self.services.throughput, seconds, (TCP_UP,))
        baseline, migrating = interleave(
            self.network,
            for_measurement(self._plan(interval), seconds),
            self.options.repeat,
            measure,
            self._recorder(Scenario.THROUGHPUT),
        )
        return throughput_verdicts([r.figures for r in baseline], [r.figures for r in migrating], limit=None)[TCP_UP][
            "ratio"
        ]

    def pageload_ratios(self, interval: float) -> dict[str, float]:
        pages = [f"{name}.html" for name in PAGES]
        measure = functools.partial(
            self.services.page_set,
            pages,
            timeout=self.options.page_timeout,
            screenshots=self.network.workdir / "screenshots",
        )
        baseline, migrating = interleave(
            self.network,
            for_measurement(self._plan(interval), 10),
            self.options.repeat,
            measure,
            self._recorder(Scenario.PAGELOAD),
        )
        return {
            page: ratio_verdict(
                page_load_ms(baseline, page), page_load_ms(migrating, page), limit=None, higher_is_better=False
            )["ratio"]
            for page in pages
        }

    def lost_per_switch(self, mechanism: str, interval: float) -> tuple[int, int]:
        """(packets lost near a switch, switches) over the repetitions."""
        lost = switches = 0
        record = self._recorder(Scenario.SWITCH_LOSS)
        for rep in range(self.options.repeat):
            result = measure_loss(
                self.network,
                self.services,
                self._plan(interval, mechanism),
                seconds=PROBE_SECONDS,
                rate=self.options.probe_rate,
            )
            record(result.plan.label, rep, result)
            loss = result.figures["loss"]
            lost += loss["lost"] - loss["lost_without_switch"]
            switches += loss["switches"]
        return lost, switches

    def overhead_ratio(self) -> float:
        """iperf3 through the harness (its monitors running) over iperf3 run by hand in the same namespace."""
        seconds = self.options.iperf_seconds
        argv = self.network.client.command_prefix() + iperf.client_argv(self.services.address, seconds=seconds)
        by_hand, harness = [], []
        baseline_plan = for_measurement(MigrationPlan(strategy="none", paths=self.paths), seconds)
        record = self._recorder("overhead")
        for rep in range(self.options.repeat):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
            by_hand.append(iperf.parse(out.stdout).bits_per_second)
            result = measure_condition(
                self.network, baseline_plan, functools.partial(self.services.throughput, seconds, (TCP_UP,))
            )
            record("baseline", rep, result)
            harness.append(result.figures[TCP_UP]["bits_per_second"])
        return ratio_verdict(by_hand, harness, limit=None, higher_is_better=True)["ratio"]

    def run(self) -> dict:
        out: dict = {
            "backend": self.network.backend,
            "wireguard": self.network.wireguard_impl,
            "reps": self.options.repeat,
            "intervals": list(self.intervals),
            "throughput_ratio": {},
            "pageload_ratio": {},
            "pageload_ratio_by_page": {},
            "lost_per_switch": {},
            "lost_per_switch_by_interval": {},
        }
        for interval in self.intervals:
            key = f"{interval:g}"
            self.progress(f"bench migration: throughput at {key} s")
            out["throughput_ratio"][key] = self.throughput_ratio(interval)
            self.progress(f"bench migration: page loads at {key} s")
            by_page = self.pageload_ratios(interval)
            out["pageload_ratio_by_page"][key] = by_page
            out["pageload_ratio"][key] = round(_geometric_mean(list(by_page.values())), 4)
        for mechanism in Mechanism:
            total_lost = total_switches = 0
            out["lost_per_switch_by_interval"][mechanism] = {}
            for interval in self.intervals:
                self.progress(f"bench migration: probe loss, {mechanism} at {interval:g} s")
                lost, switches = self.lost_per_switch(mechanism, interval)
                out["lost_per_switch_by_interval"][mechanism][f"{interval:g}"] = (
                    round(lost / switches, 4) if switches else None
                )
                total_lost, total_switches = total_lost + lost, total_switches + switches
            out["lost_per_switch"][mechanism] = round(total_lost / total_switches, 4) if total_switches else None
        self.progress("bench migration: harness overhead")
        out["harness_overhead_ratio"] = self.overhead_ratio()
        return out
