"""`comps-harness bench proof`: does the proof catch every fault, pass a healthy run, and agree with captures?

Every case gets a fresh topology (some faults break a path for good). The healthy control and the
fault catalogue run at 0.1 s with a constant-rate UDP stream; pinned, forward-drop and return-drop are
applied during a download, a page-load set and a throughput run, whose proof must fail (measuring faults);
adherence per direction is measured with the default sticky-source mode at 0.1 and 1 s; the capture
cross-check gives the largest byte error.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from harness.measure.crosscheck import captured_migration
from harness.measure.services import OriginServices, measure_with_fault
from harness.measure.verdicts import judge_repetitions
from harness.model.evidence import MigrationEvidence, ProofCode, ProofOutcome
from harness.model.kinds import Fault
from harness.model.metrics import Scenario
from harness.model.schedule import MigrationPlan
from harness.model.settings import FaultSpec, MeasureSettings, Tolerances
from harness.runtime.migration import run_migration
from harness.runtime.network import Network
from harness.runtime.traffic import udp_stream

FAULT_AT_S = 0.5
INTERVAL_S = 0.1
DURATION_S = 2.0
ADHERENCE_INTERVALS = (0.1, 1.0)
# the faults a measuring scenario's proof must catch, applied during each scenario's own measurement
MEASURING_FAULTS = (Fault.PINNED, Fault.FORWARD_DROP, Fault.RETURN_DROP)
MEASURING = (Scenario.DOWNLOAD, Scenario.PAGELOAD, Scenario.THROUGHPUT)
MEASURING_FAULT_AT_S = 0.2  # early: a download of the default files takes well under a second

LOST = {ProofCode.HOP_LOSS, ProofCode.PATH_DELIVERED_NOTHING}
# fault -> (path it breaks; what the proof must name: the codes any of which will do, the path, the
# direction, and for lost packets the hop's receiving end; None: any)
EXPECTED = {
    Fault.NAT_REMOVED: (2, LOST, 2, "up", "server"),
    Fault.FORWARD_DROP: (2, LOST, 2, "up", "server"),
    Fault.RETURN_DROP: (2, LOST, 2, "down", None),
    Fault.WIREGUARD_KILLED: (2, {ProofCode.TUNNEL_UNREADABLE}, 2, None, None),
    Fault.PROXY_DOWN_UP: (2, {ProofCode.HOP_LOSS}, 2, None, None),
    Fault.ROUTE_REFUSED: (2, {ProofCode.SWITCH_REFUSED}, 2, None, None),
    Fault.PINNED: (1, {ProofCode.PINNED_SESSION}, 2, None, None),
    Fault.FOREIGN_WRITER: (1, {ProofCode.TOO_MANY_SWITCHES}, None, None, None),
    Fault.BLACKHOLE: (2, LOST, 2, None, None),
}


def names(failure, codes: set, path: int | None, direction: str | None, hop: str | None) -> bool:
    """The failure is one of `codes`, on `path`, in `direction`, at `hop` (None: any; a path that delivered
    nothing names no hop)."""
    return (
        failure.code in codes
        and (path is None or failure.path == path)
        and (direction is None or failure.direction == direction)
        and (hop is None or failure.code != ProofCode.HOP_LOSS or failure.hop == hop)
    )


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
    measuring = {}
    for scenario in MEASURING:
        for fault in MEASURING_FAULTS:
            with new_network(f"{fault}-{scenario}") as network, OriginServices(network) as services:
                result = measure_with_fault(
                    services, scenario, FaultSpec(fault, MEASURING_FAULT_AT_S), MeasureSettings()
                )
            proof = judge_repetitions([result.evidence], tolerances)
            measuring[f"{scenario}/{fault}"] = {
                "caught": proof.outcome == ProofOutcome.FAILED,
                "outcome": str(proof.outcome),
                "message": proof.reason,
                "injected": result.evidence.injected,
            }
            progress(f"bench proof: {fault} during {scenario}: {proof.outcome}")
    out["measuring_faults_total"] = len(measuring)
    out["measuring_faults_caught"] = sum(entry["caught"] for entry in measuring.values())
    out["measuring_faults"] = measuring
    out["adherence_up"], out["adherence_down"] = {}, {}
    for interval in ADHERENCE_INTERVALS:
        with new_network(f"adherence-{interval:g}") as network:
            evidence = _run(network, interval)
        for direction in ("up", "down"):
            value = evidence.adherence(direction=direction)
            out[f"adherence_{direction}"][f"{interval:g}"] = None if value is None else round(value, 4)
        progress(
            f"bench proof: adherence at {interval:g} s: up {out['adherence_up'][f'{interval:g}']}, "
            f"down {out['adherence_down'][f'{interval:g}']}"
        )
    with new_network("capture") as network:
        plan = MigrationPlan(interval=INTERVAL_S, duration=30.0, paths=network.topology.path_ids)
        _, checks = captured_migration(network, plan)
    out["capture_byte_error_max"] = round(max(check.byte_error for check in checks), 5)
    out["capture_packet_error_max"] = round(max(check.packet_error for check in checks), 5)
    progress(f"bench proof: capture byte error at most {out['capture_byte_error_max']:.2%}")
    return out
