"""`comps-harness bench proof`: does the proof catch every fault, pass a healthy run, and agree with captures?

Every case gets a fresh topology (some faults break a path for good). The healthy control and the
fault catalogue run at 0.1 s with a constant-rate UDP stream; adherence is measured with the
default sticky-source mode at 0.1 and 1 s; the capture cross-check gives the largest byte error.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from harness.measure.crosscheck import captured_migration
from harness.model.evidence import MigrationEvidence
from harness.model.kinds import Fault
from harness.model.schedule import MigrationPlan
from harness.model.settings import FaultSpec, Tolerances
from harness.runtime.migration import run_migration
from harness.runtime.network import Network
from harness.runtime.traffic import udp_stream

FAULT_AT_S = 0.5
INTERVAL_S = 0.1
DURATION_S = 2.0
ADHERENCE_INTERVALS = (0.1, 1.0)

NetworkFactory = Callable[[str], AbstractContextManager[Network]]


def _run(network: Network, interval: float, faults: tuple[FaultSpec, ...] = ()) -> MigrationEvidence:
    plan = MigrationPlan(
        interval=interval, duration=max(DURATION_S, 10 * interval), paths=network.topology.path_ids, faults=faults
    )
    with udp_stream(network):
        return run_migration(network, plan)


def run(new_network: NetworkFactory, tolerances: Tolerances, progress: Callable[[str], None]) -> dict:
    out: dict = {}
    with new_network("healthy") as network:
        healthy = _run(network, INTERVAL_S)
        out["backend"], out["wireguard"] = network.backend, network.wireguard_impl
        out["sticky_source"] = healthy.sticky_source
    out["healthy_passed"] = not healthy.failures(tolerances)
    out["healthy_failures"] = [str(failure) for failure in healthy.failures(tolerances)]
    progress(f"bench proof: healthy control {'passed' if out['healthy_passed'] else 'FAILED'}")
    faults = {}
    for fault in Fault:
        with new_network(str(fault)) as network:
            evidence = _run(network, INTERVAL_S, (FaultSpec(fault, FAULT_AT_S),))
        failures = evidence.failures(tolerances)
        faults[str(fault)] = {
            "caught": bool(failures),
            "message": "; ".join(map(str, failures)) or "passed the proof",
            "injected": evidence.injected,
        }
        progress(f"bench proof: {fault}: {'caught' if failures else 'NOT caught'}")
    out["faults_total"] = len(faults)
    out["faults_caught"] = sum(entry["caught"] for entry in faults.values())
    out["faults"] = faults
    out["adherence"] = {}
    for interval in ADHERENCE_INTERVALS:
        with new_network(f"adherence-{interval:g}") as network:
            evidence = _run(network, interval)
        adherence = evidence.adherence()
        out["adherence"][f"{interval:g}"] = None if adherence is None else round(adherence, 4)
        progress(f"bench proof: adherence at {interval:g} s: {out['adherence'][f'{interval:g}']}")
    with new_network("capture") as network:
        plan = MigrationPlan(interval=INTERVAL_S, duration=30.0, paths=network.topology.path_ids)
        _, checks = captured_migration(network, plan)
    out["capture_byte_error_max"] = round(max(check.byte_error for check in checks), 5)
    out["capture_packet_error_max"] = round(max(check.packet_error for check in checks), 5)
    progress(f"bench proof: capture byte error at most {out['capture_byte_error_max']:.2%}")
    return out
