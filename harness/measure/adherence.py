"""`comps-harness bench adherence`: how closely the session follows the schedule under each kind of load.

One invocation: every load (an idle ping, the 500 pkt/s UDP stream, iperf3 TCP up and down, 10 MB
downloads, page loads) at 0.01, 0.1 and 1 s in every sticky-source mode of wireguard-go on the host;
then kernel WireGuard (no release) in a guest at 1 s with the loads that need no browser. Per run:
adherence up and down (the client's own counters; the minimum over the repetitions, as the cost
table shows it), endpoint moves and sticky-source releases per planned switch, and how the server's
endpoint followed each switch (ms until it did, flips back).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends.registry import network_for
from harness.errors import HarnessError
from harness.measure.services import PAGE_NAMES, OriginServices, for_measurement, measure_condition
from harness.model.evidence import MigrationEvidence
from harness.model.kinds import StickySource, WireGuardImpl
from harness.model.schedule import MigrationPlan
from harness.model.settings import Settings
from harness.runtime import content
from harness.runtime.migration import resolve_sticky_source
from harness.runtime.traffic import ping_stream, udp_stream
from harness.vm.command import IN_VM_ENV
from harness.vm.runner import bench_in_guest, prepare

LOADS = ("ping", "udp500", "tcp_up", "tcp_down", "download", "pageload")
GUEST_LOADS = ("ping", "udp500", "tcp_up", "tcp_down")
INTERVALS = (0.01, 0.1, 1.0)
GUEST_INTERVALS = (1.0,)
HOST_MODES = (StickySource.OFF, StickySource.SWITCH, StickySource.CLIENT, StickySource.ORACLE)
MIN_SECONDS = 3.0  # of load per run; at least 10 intervals, so that 1 s gives 10 switches
DOWNLOAD_FILE = content.file_name(10 * content.MB)


def seconds_for(interval: float) -> float:
    return max(MIN_SECONDS, 10 * interval)


def load_of(services: OriginServices, load: str, seconds: float) -> Callable[[], dict]:
    """What one run of `load` does for about `seconds` (inside a migration controller)."""
    network = services.network

    def until_done(step: Callable[[], Any]) -> Callable[[], dict]:
        def run() -> dict:
            deadline, done = time.monotonic() + seconds, 0
            while time.monotonic() < deadline:
                step()
                done += 1
            return {"loads": done}

        return run

    def held(stream) -> Callable[[], dict]:
        def run() -> dict:
            with stream(network):
                time.sleep(seconds)
            return {}

        return run

    shots = network.workdir / "screenshots"
    loads: dict[str, Callable[[], dict]] = {
        "ping": held(ping_stream),
        "udp500": held(udp_stream),
        "tcp_up": lambda: {"tcp_up": services.iperf3(seconds).to_dict()},
        "tcp_down": lambda: {"tcp_down": services.iperf3(seconds, reverse=True).to_dict()},
        "download": until_done(lambda: services.download(DOWNLOAD_FILE)),
        "pageload": until_done(lambda: services.page_set(PAGE_NAMES, timeout=30, screenshots=shots)),
    }
    return loads[load]


def summarise(runs: list[MigrationEvidence]) -> dict[str, Any]:
    """The figures of one load/interval/mode over its repetitions (adherence: the lowest, as costs show it)."""

    def lowest(direction: str) -> float | None:
        values = [v for e in runs if (v := e.adherence(direction=direction)) is not None]
        return round(min(values), 4) if values else None

    def per_switch(count: Callable[[MigrationEvidence], int]) -> float | None:
        values = [count(e) / e.planned_switches for e in runs if e.planned_switches]
        return round(statistics.fmean(values), 4) if values else None

    follow = [ms for e in runs for ms, _ in e.endpoint_follow if ms is not None]
    return {
        "adherence_up": lowest("up"),
        "adherence_down": lowest("down"),
        "endpoint_moves_per_switch": per_switch(lambda e: e.endpoint_changes),
        "releases_per_switch": per_switch(lambda e: e.releases),
        "follow_ms_median": round(statistics.median(follow), 3) if follow else None,
        "flips_back_per_switch": per_switch(lambda e: sum(flips for _, flips in e.endpoint_follow)),
        "missed_per_switch": per_switch(lambda e: sum(1 for ms, _ in e.endpoint_follow if ms is None)),
        "n": len(runs),
    }


def measure_runs(
    settings: Settings,
    implementation: str,
    modes: tuple[StickySource, ...],
    loads: tuple[str, ...],
    intervals: tuple[float, ...],
    *,
    progress: Callable[[str], None],
    record: Callable[[Any, str, Any], None],
) -> dict[str, dict[str, Any]]:
    """Every load x interval x mode on one network of `implementation`; keys load/interval/mode."""
    reps = settings.measure.repeat
    run = dataclasses.replace(settings.run, wireguard=implementation, run_id=f"{settings.run.run_id}-{implementation}")
    out = {}
    with network_for("netns", run, progress=progress) as network, OriginServices(network) as services:
        for load in loads:
            for interval in intervals:
                for mode in modes:
                    seconds = seconds_for(interval)
                    plan = MigrationPlan(
                        interval=interval, duration=seconds, paths=network.topology.path_ids, sticky_source=mode
                    )
                    runs = []
                    for _ in range(reps):
                        result = measure_condition(
                            network, for_measurement(plan, seconds), load_of(services, load, seconds)
                        )
                        record(network, f"{load}-{mode}-{plan.label}", result)
                        runs.append(result.evidence)
                    name = "kernel" if implementation == WireGuardImpl.KERNEL else str(mode)
                    key = f"{load}/{interval:g}/{name}"
                    out[key] = summarise(runs)
                    progress(
                        f"bench adherence: {key}: up {out[key]['adherence_up']}, down {out[key]['adherence_down']}, "
                        f"moves/switch {out[key]['endpoint_moves_per_switch']}"
                    )
    return out


def bench(
    settings: Settings, *, repo: Path, record: Callable[[Any, str, Any], None], progress: Callable[[str], None]
) -> dict[str, Any]:
    """wireguard-go in every mode here, then kernel WireGuard in a guest (this same bench, rerun there)."""
    in_guest = os.environ.get(IN_VM_ENV)
    if in_guest:
        runs = measure_runs(
            settings,
            WireGuardImpl.KERNEL,
            (StickySource.OFF,),
            GUEST_LOADS,
            GUEST_INTERVALS,
            progress=progress,
            record=record,
        )
        return {"runs": runs}
    guest = prepare(settings.vm, progress)
    runs = measure_runs(
        settings, WireGuardImpl.WIREGUARD_GO, HOST_MODES, LOADS, INTERVALS, progress=progress, record=record
    )
    progress("bench adherence: kernel WireGuard, in the guest")
    try:
        inner, boot_s = bench_in_guest(
            settings, guest, "adherence", ["--repeat", str(settings.measure.repeat)], repo=repo, progress=progress
        )
    except HarnessError as error:  # the host's runs stand on their own: say what the guest could not do
        progress(f"bench adherence: the guest's part failed: {error}")
        return {
            "default_mode": str(resolve_sticky_source("auto", WireGuardImpl.WIREGUARD_GO)),
            "runs": runs,
            "guest_error": str(error),
        }
    return {
        "default_mode": str(resolve_sticky_source("auto", WireGuardImpl.WIREGUARD_GO)),
        "runs": {**runs, **inner["runs"]},
        "vm": guest.summary(boot_s),
    }
