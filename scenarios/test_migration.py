"""Real migrations on a real topology, each carrying its own proof that the traffic moved.

`pytest -k migration` runs these at the --intervals sweep; `-k 0.1s` picks one interval.
Every run writes its evidence (switch log, bytes per path, endpoint moves) to the results file.
"""

from __future__ import annotations

import contextlib

import pytest

from harness.measure.observe import ProxyCaptures
from harness.model.evidence import ProofCode
from harness.model.schedule import MigrationPlan
from harness.runtime.migration import run_migration
from harness.runtime.traffic import ping_stream

pytestmark = [pytest.mark.network, pytest.mark.migration]


def record_evidence(results, network, name, evidence, failures, observer=None) -> None:
    results.migration(
        name, network, evidence, failures, {"observer": observer.to_dict()} if observer is not None else None
    )


def test_migration_moves_the_traffic(network, migration_plan, results, tolerances, request, observe):
    with ProxyCaptures(network) if observe else contextlib.nullcontext() as captures:
        with ping_stream(network):
            evidence = run_migration(network, migration_plan)
    observer = captures.view(evidence.started_monotonic) if observe else None
    failures = evidence.failures(tolerances)
    record_evidence(results, network, request.node.name, evidence, failures, observer)
    assert not failures, f"no proof of migration: {'; '.join(map(str, failures))}"


@pytest.mark.expect_red
def test_a_dead_path_breaks_the_proof(network, results, request):
    """Switching onto a path whose proxy is down must not pass as a migration."""
    dead = network.topology.path_ids[-1]
    proxy = network.proxy(dead)
    proxy.netlink.link("set", index=proxy.link_index(f"wgnet{dead}"), state="down")
    plan = MigrationPlan(interval=0.1, duration=1.0, paths=network.topology.path_ids)
    with ping_stream(network):
        evidence = run_migration(network, plan)
    failures = evidence.failures()
    record_evidence(results, network, request.node.name, evidence, failures)
    codes = {(failure.code, failure.path) for failure in failures}
    assert (ProofCode.PATH_CARRIED_NOTHING, dead) in codes, failures
    assert (ProofCode.ENDPOINT_NEVER_MOVED, None) in codes, failures


@pytest.mark.parametrize("mechanism", ["netlink", "script"])
def test_both_mechanisms_give_the_same_switch_log(network, mechanism, results, request):
    """The demo's delete-then-add leaves a window without a route; the atomic replace does not."""
    plan = MigrationPlan(interval=0.2, duration=1.5, paths=network.topology.path_ids, mechanism=mechanism)
    with ping_stream(network):
        evidence = run_migration(network, plan)
    failures = evidence.failures()
    record_evidence(results, network, request.node.name, evidence, failures)
    assert not failures, failures
    assert evidence.switches and all(s.error_ms is not None for s in evidence.switches)
    windows = [s.no_route_ms for s in evidence.switches]
    if mechanism == "script":
        assert all(w is not None and w > 0 for w in windows), f"delete-then-add windows missing: {windows}"
    else:
        assert all(w is None for w in windows), f"atomic replace left windows without a route: {windows}"


def test_repeated_migrations_leave_no_descriptor_open(network):
    """Every run's threads close their netlink handles: a long sweep on one topology must not run out."""
    import os

    def migrate() -> None:
        run_migration(network, MigrationPlan(interval=0.05, duration=0.3, paths=network.topology.path_ids))

    migrate()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        migrate()
    assert len(os.listdir("/proc/self/fd")) <= before, "file descriptors pile up over migration runs"
