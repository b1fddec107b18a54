"""Network's lifecycle and the migration controller against a fake backend (no root, no namespaces)."""

from __future__ import annotations

import functools
import os

import pytest
from fake_backend import FakeBuilder, FakeMonitor

from harness.model.schedule import MigrationPlan
from harness.model.topology import Topology
from harness.runtime.migration import MigrationController
from harness.runtime.network import Network


def fake_network(builder: FakeBuilder | None = None, paths: int = 2) -> Network:
    return Network(Topology(paths=paths), run_id="fake-run", wireguard="kernel", builder=builder or FakeBuilder())


def test_teardown_runs_in_reverse_order_and_sweeps_last():
    builder = FakeBuilder()
    with fake_network(builder) as network:
        workdir = network.workdir
        assert builder.world.current == 1, "bring-up ends on path 1 after handshaking every path"
    removals = [event for event in builder.events if not event.startswith("create")]
    created = [event.split()[1] for event in builder.events if event.startswith("create")]
    assert removals == [f"remove {name}" for name in reversed(created)] + ["sweep"]
    assert not workdir.exists()


def test_a_failed_build_removes_what_was_created():
    builder = FakeBuilder(fail_after_hosts=True)
    with pytest.raises(RuntimeError, match="on purpose"):
        with fake_network(builder):
            pass
    assert builder.events[-1] == "sweep" and "remove client" in builder.events
    assert not [d for d in os.listdir("/tmp") if d.startswith("comps-harness-fake-run-")]


def run_plan(network: Network, builder: FakeBuilder, plan: MigrationPlan):
    monitor = functools.partial(FakeMonitor, world=builder.world)
    with MigrationController(network, plan, monitor=monitor, endpoint_poll_s=0.002) as controller:
        controller.run()
    return controller.result()


def test_the_controller_follows_the_plan_and_proves_migration():
    builder = FakeBuilder()
    with fake_network(builder) as network:
        plan = MigrationPlan(interval=0.05, duration=0.5, paths=network.topology.path_ids)
        evidence = run_plan(network, builder, plan)
    assert evidence.planned_switches == len(plan.switches()) == 10
    assert len(evidence.switches) >= 9
    assert [s.to_path for s in evidence.switches[:4]] == [2, 1, 2, 1]
    assert all(use.bytes > 0 for use in evidence.per_path.values()), evidence.per_path
    assert evidence.endpoint_changes > 0
    assert evidence.failures() == []


def test_a_dead_path_fails_the_proof_even_with_a_fake_backend():
    builder = FakeBuilder()
    with fake_network(builder) as network:
        builder.world.dead.add(2)
        evidence = run_plan(
            network, builder, MigrationPlan(interval=0.05, duration=0.5, paths=network.topology.path_ids)
        )
    failures = evidence.failures()
    assert "path 2 was scheduled but carried nothing" in [f.text for f in failures]
    assert any("never saw the client's endpoint move" in f.text for f in failures)


def test_a_signal_that_lands_where_its_raise_would_be_swallowed_is_raised_at_the_next_checkpoint():
    import signal
    from types import SimpleNamespace

    import pytest

    from harness.errors import Interrupted, exit_code_of
    from harness.system import signals

    def frame(filename: str, name: str = "f", back=None):
        return SimpleNamespace(f_code=SimpleNamespace(co_filename=filename, co_name=name), f_back=back)

    signals.checkpoint()  # nothing pending: nothing happens
    with pytest.raises(Interrupted):  # in our own code the handler raises at once, and records nothing
        signals._raise_interrupt(signal.SIGTERM, frame("/repo/harness/runtime/network.py"))
    signals.checkpoint()
    # where Python would ignore the raise and leave a lock held (logging's at-fork _releaseLock, as in a CI
    # run that then hung; a __del__), the handler defers it to the next checkpoint
    signals._raise_interrupt(signal.SIGTERM, frame("/usr/lib/python3.11/logging/__init__.py", "_releaseLock"))
    with pytest.raises(Interrupted, match="SIGTERM") as raised:
        signals.checkpoint()
    assert raised.value.signum == signal.SIGTERM and raised.value.exit_code == 143
    signals.checkpoint()  # raised once, not forever
    signals._raise_interrupt(signal.SIGINT, frame("/x.py", "g", back=frame("/y.py", "__del__")))
    with pytest.raises(Interrupted, match="SIGINT"):
        signals.checkpoint()
    assert exit_code_of(KeyboardInterrupt()) == 130  # Python's own Ctrl-C
