"""The proof under the loads the harness measures: a broken path during a measurement turns it red, and
healthy paths under TCP load keep it green.

The measuring scenarios judge their migrating repetitions with the migration proof (proof_gate):
`pinned`, `forward-drop` and `return-drop`, applied during a download, a page-load set and a throughput
run (measured with the scenarios' own scenario_measure), must make that judgement `failed`, naming the
path (a pinned session would otherwise "cost nothing"), or `unproven` because the fault stalled the session
so that it no longer followed the schedule: either way no cost is reported. A measurement the fault broke
(a page load that timed out) is judged from its evidence all the same. The relative hop-loss check (a hop against the
same hop of the sibling paths) has its healthy control here, under TCP.

Self-checks of the proof, not part of an interval sweep (no `migration` marker): the CI's test run has them.
"""

from __future__ import annotations

import pytest

from harness.measure.proofbench import EXPECTED, MEASURING, MEASURING_FAULT_AT_S, MEASURING_FAULTS, names
from harness.measure.services import for_measurement, measure_condition, measure_with_fault, require_measurement_tools
from harness.measure.verdicts import judge_repetitions
from harness.model.evidence import UNPROVEN_CODES, ProofCode, ProofOutcome
from harness.model.metrics import Scenario
from harness.model.schedule import MigrationPlan
from harness.model.settings import FaultSpec

pytestmark = [pytest.mark.network]

# the session did not follow the schedule (or had stalled, sending nothing in a path's windows)
FOLLOW_CODES = {ProofCode.FEW_ENDPOINT_MOVES, ProofCode.LOW_ADHERENCE, ProofCode.SESSION_SILENT}


@pytest.mark.expect_red
@pytest.mark.parametrize("scenario", MEASURING, ids=[str(s) for s in MEASURING])
@pytest.mark.parametrize("fault", MEASURING_FAULTS, ids=[str(f) for f in MEASURING_FAULTS])
def test_fault_during_a_measurement_fails_its_proof(
    network, origin_services, measure_settings, tolerances, record_condition, proof_gate, scenario, fault, request
):
    """One migrating repetition of the scenario's own measurement, with the fault applied; the proof_gate's
    judgement (the scenarios' one path to a verdict) must be failed, naming the broken path, or unproven
    because the session stopped following the schedule; never proven."""
    if scenario == Scenario.PAGELOAD:
        require_measurement_tools(browser=True)
    path, codes, named_path, direction, hop = EXPECTED[fault]
    result = measure_with_fault(
        origin_services, scenario, FaultSpec(fault, MEASURING_FAULT_AT_S, path), measure_settings
    )
    record_condition(scenario, f"{result.plan.label}-{fault}", 0, result)
    assert result.evidence.injected, f"{fault} was never applied during the {scenario} measurement"
    proof = judge_repetitions([result.evidence], tolerances)
    assert proof.outcome != ProofOutcome.PROVEN, (
        f"{fault} on path {path} during {scenario} gave a proof that holds: the measurement would have reported a cost"
    )
    if proof.outcome == ProofOutcome.UNPROVEN:
        # a return-drop that stalls TCP early leaves the session silent, with too few lost packets to stand out
        # from congestion loss: the session did not follow the schedule, so no cost is reported either
        assert {f.code for f in proof.failures} & FOLLOW_CODES, f"{fault} during {scenario}: {proof.reason}"
        request.node.user_properties.append(("caught_by", f"unproven: {proof.reason}"))
        return  # (not through proof_gate: it would mark this self-check's own verdict unproven)
    # under load a fault shows in more than one way (a forward-drop that stalls TCP may leave the path's
    # windows nearly empty before its hop loss is beyond the slack): any broken-path line on the faulted path
    broken = [f for f in proof.failures if f.code not in UNPROVEN_CODES and f.path == named_path]
    assert broken, f"{fault} during {scenario} failed the proof, but not on path {named_path}: {proof.reason}"
    expected = [f for f in broken if names(f, codes, named_path, direction, hop)]
    request.node.user_properties.append(("caught_by", str((expected or broken)[0].code)))
    with pytest.raises(pytest.fail.Exception, match="migration did not happen as planned"):
        proof_gate([result])


CONTROL_RUNS = 10


def test_hop_loss_control_under_tcp_load_stays_green(network, origin_services, tolerances, results, request):
    """The healthy control of the relative loss check: 10 migrations at 0.1 s under iperf3 TCP (up, then down),
    the load whose congestion loss the absolute limit was sized for; none may name a lost hop."""
    plan = MigrationPlan(interval=0.1, duration=2.0, paths=network.topology.path_ids)
    red = []
    for run in range(CONTROL_RUNS):
        reverse = bool(run % 2)
        result = measure_condition(
            network, for_measurement(plan, 2.0), lambda reverse=reverse: origin_services.iperf3(2.0, reverse=reverse)
        )
        failures = result.evidence.failures(tolerances)
        results.migration(f"{request.node.name}-{run}", network, result.evidence, failures)
        red += [f"run {run + 1}: {f}" for f in failures if f.code in (ProofCode.HOP_LOSS, ProofCode.SESSION_LOSS)]
    assert not red, f"healthy paths under TCP load lost packets by the proof: {red}"
