"""The fault catalogue: every way of breaking a path mid-run turns the migration proof red, naming it.

Each case runs the same migration as a healthy control (alternate, 0.1 s, a constant-rate UDP stream:
it keeps sending through an outage) with one fault from harness.runtime.faults applied 0.5 s in, and
passes only when the proof fails with a message that names the broken path and the effect. The control itself must pass.
Faults during measurements: scenarios/test_proof_under_load.py.
"""

from __future__ import annotations

import pytest

from harness.measure.proofbench import EXPECTED, names
from harness.model.schedule import MigrationPlan
from harness.model.settings import FaultSpec
from harness.runtime.migration import run_migration
from harness.runtime.traffic import udp_stream

pytestmark = [pytest.mark.network, pytest.mark.migration]
FAULT_AT_S = 0.5


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
