"""The fault catalogue: every way of breaking a path mid-run turns the migration proof red, naming it.

Each case runs the same migration as a healthy control (alternate, 0.1 s, a constant-rate UDP stream:
it keeps sending through an outage) with one fault from harness.runtime.faults applied 0.5 s in, and
passes only when the proof fails with a message that names the broken path and the effect. The control itself must pass.

The measuring scenarios judge their migrating repetitions with the same proof (proof_gate): `pinned`,
`forward-drop` and `return-drop`, applied during a download, a page-load set and a throughput run
(measured with the scenarios' own scenario_measure), must make that judgement `failed`, naming the path:
a pinned session would otherwise "cost nothing".
"""

from __future__ import annotations

import pytest

from harness.measure.proofbench import MEASURING, MEASURING_FAULT_AT_S, MEASURING_FAULTS
from harness.measure.services import measure_with_fault, require_measurement_tools
from harness.measure.verdicts import judge_repetitions
from harness.model.evidence import ProofCode, ProofOutcome
from harness.model.kinds import Fault
from harness.model.metrics import Scenario
from harness.model.schedule import MigrationPlan
from harness.model.settings import FaultSpec
from harness.runtime.migration import run_migration
from harness.runtime.traffic import udp_stream

pytestmark = [pytest.mark.network, pytest.mark.migration]
FAULT_AT_S = 0.5

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


def migrate(network, results, request, faults=()):
    plan = MigrationPlan(interval=0.1, duration=2.0, paths=network.topology.path_ids, faults=faults)
    with udp_stream(network):
        evidence = run_migration(network, plan)
    failures = evidence.failures()
    results.migration(request.node.name, network, evidence, failures)
    return evidence, failures


def test_healthy_control_passes(network, results, request):
    _, failures = migrate(network, results, request)
    assert not failures, f"the healthy control does not prove migration: {failures}"


@pytest.mark.expect_red
@pytest.mark.parametrize("fault", list(EXPECTED), ids=[str(f) for f in EXPECTED])
def test_fault_turns_the_proof_red(network, results, request, fault):
    path, codes, named_path, direction, hop = EXPECTED[fault]
    evidence, failures = migrate(network, results, request, faults=(FaultSpec(fault, FAULT_AT_S, path),))
    assert evidence.injected, f"{fault} was never applied"
    assert failures, f"{fault} on path {path} ({evidence.injected[0]}) passed the proof"
    assert any(names(failure, codes, named_path, direction, hop) for failure in failures), (
        f"{fault} turned the proof red, but not by naming its effect ({sorted(codes)} on path {named_path}, "
        f"{direction or 'either direction'}, at {hop or 'any hop'}): {[f'{f.code}: {f}' for f in failures]}"
    )


@pytest.mark.expect_red
@pytest.mark.parametrize("scenario", MEASURING, ids=[str(s) for s in MEASURING])
@pytest.mark.parametrize("fault", MEASURING_FAULTS, ids=[str(f) for f in MEASURING_FAULTS])
def test_fault_during_a_measurement_fails_its_proof(
    network, origin_services, measure_settings, tolerances, record_condition, proof_gate, scenario, fault
):
    """One migrating repetition of the scenario's own measurement, with the fault applied; the proof_gate's
    judgement (the scenarios' one path to a verdict) must be failed, naming the broken path."""
    if scenario == Scenario.PAGELOAD:
        require_measurement_tools(browser=True)
    path, codes, named_path, direction, hop = EXPECTED[fault]
    result = measure_with_fault(
        origin_services, scenario, FaultSpec(fault, MEASURING_FAULT_AT_S, path), measure_settings
    )
    record_condition(scenario, f"{result.plan.label}-{fault}", 0, result)
    assert result.evidence.injected, f"{fault} was never applied during the {scenario} measurement"
    proof = judge_repetitions([result.evidence], tolerances)
    assert proof.outcome == ProofOutcome.FAILED, (
        f"{fault} on path {path} during {scenario} gave a proof that is {proof.outcome} ({proof.reason or 'no line'}): "
        "the measurement would have reported a cost"
    )
    assert any(names(failure, codes, named_path, direction, hop) for failure in proof.failures), (
        f"{fault} during {scenario} failed the proof, but not by naming its effect: {proof.reason}"
    )
    with pytest.raises(pytest.fail.Exception, match="migration did not happen as planned"):
        proof_gate([result])
