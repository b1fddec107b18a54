"""`comps-harness bench fidelity`: the same migration with wireguard-go (each sticky-source mode, on the
host) and with kernel WireGuard (no release at all, in a guest with a stock kernel), side by side.

Per run and interval: adherence (the share of the session's packets on the path the schedule
named), endpoint moves per planned switch, probe packets lost per switch (a 500 pkt/s UDP probe),
and the TCP-up throughput ratio with migration over without (interleaved pairs, geometric mean
with its 95 % interval) where the machine runs at native speed: not under TCG, whose emulation
makes every figure a figure of the emulator.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends.registry import network_for
from harness.measure.services import (
    OriginServices,
    for_measurement,
    interleave,
    measure_loss,
)
from harness.measure.verdicts import throughput_verdicts
from harness.model.kinds import StickySource
from harness.model.metrics import TCP_UP, Scenario
from harness.model.schedule import MigrationPlan
from harness.model.settings import Settings
from harness.runtime.network import Network
from harness.vm.command import IN_VM_ENV
from harness.vm.runner import bench_in_guest, prepare

PROBE_RATE = 500.0
HOST_MODES = (StickySource.OFF, StickySource.SWITCH, StickySource.CLIENT, StickySource.ORACLE)
NOT_UNDER_TCG = "not measured: under TCG every time is the emulator's"


def intervals_for(accel: str) -> tuple[float, ...]:
    """1 s always; 0.1 s only where the guest runs at native speed (TCG cannot follow it); 0.01 s too in
    User-mode Linux (its kernel code runs natively)."""
    return {"kvm": (0.1, 1.0), "uml": (0.01, 0.1, 1.0)}.get(accel, (1.0,))


def measure_run(
    network: Network,
    services: OriginServices,
    intervals: tuple[float, ...],
    sticky: StickySource,
    *,
    throughput_reps: int,
    iperf_seconds: float,
    progress: Callable[[str], None],
    record: Callable[[str, str, int, object], None],
) -> dict:
    """One implementation and mode over `intervals`; throughput_reps 0 skips the throughput ratio."""
    out: dict = {
        "adherence": {},
        "endpoint_moves_per_switch": {},
        "lost_per_switch": {},
        "switches": {},
        "proof_failures": {},
        "throughput_ratio": {} if throughput_reps else NOT_UNDER_TCG,
    }
    for interval in intervals:
        key = f"{interval:g}"
        plan = MigrationPlan(
            interval=interval, paths=network.topology.path_ids, duration=max(2.0, 10 * interval), sticky_source=sticky
        )
        result = measure_loss(network, services, plan, seconds=plan.duration, rate=PROBE_RATE)
        record(Scenario.FIDELITY, f"{sticky}-{plan.label}", 0, result)
        evidence, loss = result.evidence, result.figures["loss"]
        adherence = evidence.adherence()
        out["adherence"][key] = None if adherence is None else round(adherence, 4)
        out["endpoint_moves_per_switch"][key] = round(evidence.endpoint_changes / evidence.planned_switches, 4)
        lost = loss["lost"] - loss["lost_without_switch"]
        out["lost_per_switch"][key] = round(lost / loss["switches"], 4) if loss["switches"] else None
        out["switches"][key] = {
            "planned": evidence.planned_switches,
            "seen": len(evidence.switches),
            "made": len(evidence.applied_late_ms),
        }
        out["proof_failures"][key] = [str(failure) for failure in evidence.failures()]
        progress(
            f"bench fidelity: {network.wireguard_impl}/{sticky} at {key} s: adherence "
            f"{out['adherence'][key]}, moves/switch {out['endpoint_moves_per_switch'][key]}, "
            f"lost/switch {out['lost_per_switch'][key]}"
        )
        if throughput_reps:
            measure = functools.partial(services.throughput, iperf_seconds, (TCP_UP,))
            baseline, migrating = interleave(
                network,
                for_measurement(plan, iperf_seconds),
                throughput_reps,
                measure,
                lambda condition, rep, res: record("fidelity-throughput", condition, rep, res),
            )
            verdict = throughput_verdicts([r.figures for r in baseline], [r.figures for r in migrating], limit=None)[
                TCP_UP
            ]
            out["throughput_ratio"][key] = {
                name: None if verdict[name] is None else round(verdict[name], 4) for name in ("ratio", "low", "high")
            } | {"n": verdict["n"]}
    return out


Recorder = Callable[[Network], Callable[[str, str, int, object], None]]  # a network -> its record(...) function


def _runs(
    settings: Settings,
    implementations: list[tuple[str, StickySource]],
    intervals: tuple[float, ...],
    *,
    in_guest: str | None,
    recorder: Recorder,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    runs = {}
    for implementation, mode in implementations:
        run = dataclasses.replace(
            settings.run, wireguard=implementation, run_id=f"{settings.run.run_id}-{implementation}-{mode}"
        )
        with (
            network_for("netns", run, progress=progress) as network,
            OriginServices(network, file_sizes=()) as services,
        ):
            name = "kernel" if implementation == "kernel" else f"wireguard-go/{mode}"
            runs[name] = measure_run(
                network,
                services,
                intervals,
                mode,
                throughput_reps=0 if in_guest == "tcg" else settings.measure.repeat,
                iperf_seconds=settings.measure.iperf_seconds,
                progress=progress,
                record=recorder(network),
            )
    return runs


def bench(settings: Settings, *, repo: Path, recorder: Recorder, progress: Callable[[str], None]) -> dict[str, Any]:
    """wireguard-go in each sticky-source mode here, then kernel WireGuard (no release) in a guest.

    Inside the guest (this same bench, rerun there) only the kernel's run is made; its runs come back
    to the host as the last JSON line of the guest's output."""
    reps = settings.measure.repeat
    in_guest = os.environ.get(IN_VM_ENV)
    if in_guest:  # the guest's part: kernel WireGuard, no release at all
        kernel_runs = _runs(
            settings,
            [("kernel", StickySource.OFF)],
            intervals_for(in_guest),
            in_guest=in_guest,
            recorder=recorder,
            progress=progress,
        )
        return {"runs": kernel_runs}
    guest = prepare(settings.vm, progress)
    intervals = intervals_for(guest.accel)
    host_modes = [("wireguard-go", mode) for mode in HOST_MODES]
    runs = _runs(settings, host_modes, intervals, in_guest=None, recorder=recorder, progress=progress)
    progress("bench fidelity: the kernel WireGuard run, in the guest")
    inner, boot_s = bench_in_guest(settings, guest, "fidelity", ["--reps", str(reps)], repo=repo, progress=progress)
    return {
        "vm": guest.summary(boot_s),
        "intervals": [f"{interval:g}" for interval in intervals],
        "reps": reps,
        "runs": {**inner["runs"], **runs},
    }
