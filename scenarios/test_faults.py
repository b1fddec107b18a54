"""The fault catalogue: every way of breaking a path mid-run turns the migration proof red, naming it.

Each case runs the same migration as a healthy control (alternate, 0.1 s, a constant-rate UDP stream:
it keeps sending through an outage) with one fault from harness.runtime.faults applied 0.5 s in, and
passes only when the proof fails with a message that names the broken path and the effect. The control itself must pass.
"""

from __future__ import annotations

import re

import pytest

from harness.model.kinds import Fault
from harness.model.schedule import MigrationPlan
from harness.model.settings import FaultSpec
from harness.runtime.migration import run_migration
from harness.runtime.traffic import udp_stream

pytestmark = [pytest.mark.network, pytest.mark.migration]
FAULT_AT_S = 0.5

# fault -> (path it breaks, what the proof must say: a regular expression over all its failures)
EXPECTED = {
    Fault.NAT_REMOVED: (2, r"path 2 (up: server received|delivered nothing up)"),
    Fault.FORWARD_DROP: (2, r"path 2 (up: server received|delivered nothing up)"),
    Fault.RETURN_DROP: (2, r"path 2 (down: |delivered nothing down)"),
    Fault.WIREGUARD_KILLED: (2, r"path 2: the proxy's tunnel wgnet2 cannot be read"),
    Fault.PROXY_DOWN_UP: (2, r"path 2 (up|down): \w+ received"),
    Fault.ROUTE_REFUSED: (2, r"path 2: the switch at [\d.]+ s was refused"),
    Fault.PINNED: (1, r"path 2 carried only \d+% of the session.s packets"),
    Fault.FOREIGN_WRITER: (1, r"switches happened where \d+ were planned"),
}


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


@pytest.mark.parametrize("fault", list(EXPECTED), ids=[str(f) for f in EXPECTED])
def test_fault_turns_the_proof_red(network, results, request, fault):
    path, expected = EXPECTED[fault]
    evidence, failures = migrate(network, results, request, faults=(FaultSpec(fault, FAULT_AT_S, path),))
    assert evidence.injected, f"{fault} was never applied"
    assert failures, f"{fault} on path {path} ({evidence.injected[0]}) passed the proof"
    assert re.search(expected, " | ".join(failures)), (
        f"{fault} turned the proof red, but not by naming its effect ({expected!r}): {failures}"
    )
