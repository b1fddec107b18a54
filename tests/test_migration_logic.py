"""Unit tests of schedules, migration evidence, statistics and the results file (pure code)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from harness.errors import ConfigError
from harness.model.evidence import UNPROVEN_CODES, MigrationEvidence, PathUse, ProofCode, SwitchRecord
from harness.model.records import SCHEMA_VERSION, MigrationRecord, RunRecord, load
from harness.model.schedule import MigrationPlan
from harness.model.settings import Tolerances, parse_fixed, parse_weights
from harness.model.stats import percentile, summary
from harness.reporting.results import ResultsWriter


def test_alternate_is_round_robin_on_the_interval():
    plan = MigrationPlan(interval=0.5, duration=2.0, paths=(1, 2, 3))
    assert [(s.at, s.path) for s in plan.switches()] == [(0.5, 2), (1.0, 3), (1.5, 1), (2.0, 2)]
    assert plan.label == "alternate-i0.5s"
    assert MigrationPlan(interval=0.1, mechanism="script").label == "alternate-i0.1s-script"


def test_weighted_random_is_reproducible_with_a_seed():
    a = MigrationPlan(strategy="weighted-random", interval=0.01, duration=5, seed=7, paths=(1, 2, 3))
    b = MigrationPlan(strategy="weighted-random", interval=0.01, duration=5, seed=7, paths=(1, 2, 3))
    c = MigrationPlan(strategy="weighted-random", interval=0.01, duration=5, seed=8, paths=(1, 2, 3))
    assert a.switches() == b.switches() and a.path_weights == b.path_weights
    assert a.switches() != c.switches()
    assert math.isclose(sum(a.path_weights), 1.0)


def test_weighted_random_time_shares_follow_the_weights():
    weights = (0.6, 0.3, 0.1)
    plan = MigrationPlan(
        strategy="weighted-random", interval=0.001, duration=20, seed=3, paths=(1, 2, 3), weights=weights
    )
    # time on each path: a tick keeps the current path unless a switch moves it
    ticks, current, share = plan.ticks, plan.start_path, Counter()
    switches = {round(s.at / plan.interval): s.path for s in plan.switches()}
    for tick in range(1, ticks + 1):
        current = switches.get(tick, current)
        share[current] += 1
    for path, weight in zip((1, 2, 3), weights):
        expected = weight * ticks
        sigma = math.sqrt(ticks * weight * (1 - weight))
        assert abs(share[path] - expected) < 5 * sigma, (path, share[path], expected)


def test_jitter_moves_switches_but_keeps_their_order():
    plan = MigrationPlan(interval=0.1, duration=5, jitter=0.04, seed=2)
    times = [s.at for s in plan.switches()]
    assert times == sorted(times)
    assert any(abs(t - round(t / 0.1) * 0.1) > 1e-6 for t in times)
    assert all(abs(t - round(t / 0.1) * 0.1) <= 0.04 + 1e-9 for t in times)


def test_fixed_and_none():
    plan = MigrationPlan(strategy="fixed", fixed=parse_fixed("0.5:2, 0.7:2, 1.0:1, 9:2"), duration=2)
    assert [(s.at, s.path) for s in plan.switches()] == [(0.5, 2), (1.0, 1)]
    assert MigrationPlan(strategy="none").switches() == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval": 0}, "interval"),
        ({"interval": -1}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"interval": float("inf")}, "interval"),
        ({"duration": 0}, "duration"),
        ({"strategy": "zigzag"}, "strategy .zigzag. is unknown"),
        ({"mechanism": "carrier-pigeon"}, "switch mechanism .carrier-pigeon. is unknown"),
        ({"paths": (1,)}, "at least two"),
        ({"start_path": 5}, "start path"),
        ({"strategy": "fixed", "fixed": ((1.0, 7),)}, "names path 7"),
        ({"strategy": "fixed"}, "needs --fixed"),
        ({"jitter": 0.06, "interval": 0.1}, "jitter"),
        ({"strategy": "weighted-random", "weights": (1, 2, 3)}, "3 weights"),
        ({"strategy": "weighted-random", "weights": (0, 0)}, "weights must be"),
        ({"strategy": "weighted-random", "mechanism": "script"}, "only alternates"),
    ],
)
def test_bad_plans_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MigrationPlan(**kwargs)


def test_bad_fixed_and_weights_text():
    for text in ("1.0", "x:1", "1.0:two", ""):
        with pytest.raises(ConfigError):
            parse_fixed(text)
    with pytest.raises(ConfigError):
        parse_weights("1,a")


def evidence(**overrides) -> MigrationEvidence:
    fields = dict(
        plan=MigrationPlan(interval=0.1, duration=1.0),
        duration_s=1.0,
        planned_switches=4,
        scheduled_paths=[1, 2],
        switches=[SwitchRecord(0.2 + 0.2 * i + 0.001, 1 + i % 2, 2 - i % 2, planned_s=0.2 + 0.2 * i) for i in range(4)],
        per_path={1: PathUse(1000, 10), 2: PathUse(3000, 30)},
        endpoint_changes=4,
        endpoint_samples=100,
        endpoint_paths=[1, 2],
    )
    fields.update(overrides)
    return MigrationEvidence(**fields)


def test_evidence_figures():
    ev = evidence()
    assert ev.split_ratio() == {1: 0.25, 2: 0.75}
    assert math.isclose(ev.longest_on_one_path_s(), 0.201)
    assert math.isclose(ev.timing_error_ms()["max"], 1.0, abs_tol=1e-6)
    assert ev.failures() == []
    data = ev.to_dict()
    assert (
        data["per_path"]["2"] == {"bytes": 3000, "packets": 30, "outer_bytes": 0, "outer_packets": 0}
        and data["split_ratio"]["1"] == 0.25
    )


def test_evidence_failures_name_the_reason():
    assert "only 2 of 4 planned switches" in evidence(switches=evidence().switches[:2]).failures()[0].text
    assert evidence(switches=evidence().switches[:3]).failures(Tolerances(switches=0.25)) == []
    dead = evidence(per_path={1: PathUse(1000, 10), 2: PathUse(0, 0)}).failures()
    assert [str(f) for f in dead] == ["path 2 was scheduled but carried nothing"]
    assert dead[0].code == ProofCode.PATH_CARRIED_NOTHING and dead[0].path == 2
    assert "never saw the client's endpoint move" in evidence(endpoint_changes=0).failures()[0].text
    assert evidence(planned_switches=0, switches=[], endpoint_changes=0, scheduled_paths=[1]).failures() == []


def test_a_path_the_session_was_silent_in_is_a_stall_not_a_broken_path():
    """A forward-drop on path 2 that ate a download's SYN and its retransmission left the session silent in
    every window of path 1 (docker, CI): path 1 carried nothing and the server never saw it there, but the
    path is not what broke. Unproven, named once; a path that carried nothing while the session sent in its
    windows stays failed."""
    windows = [(1, 0.0, 0), (2, 1.0, 12), (1, 0.0, 0), (2, 1.0, 3)]
    stalled = evidence(per_path={2: PathUse(3000, 30)}, windows=windows, endpoint_changes=0, endpoint_paths=[2])
    failures = stalled.failures()
    assert [f.code for f in failures] == [ProofCode.SESSION_SILENT] and failures[0].path == 1
    assert set(f.code for f in failures) <= UNPROVEN_CODES
    sending = [(1, 0.0, 9), (2, 1.0, 12), (1, 0.0, 4), (2, 1.0, 3)]
    broken = evidence(per_path={2: PathUse(3000, 30)}, windows=sending, endpoint_changes=0, endpoint_paths=[2])
    assert ProofCode.PATH_CARRIED_NOTHING in {f.code for f in broken.failures()}


def test_percentiles():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50.5 and percentile(values, 100) == 100 and percentile([3], 99) == 3
    assert summary([]) == {"count": 0, "median": None, "p99": None, "max": None}
    with pytest.raises(ValueError):
        percentile([], 50)


def test_results_file_is_appended_and_survives_a_torn_line(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.vm.facts.environment", lambda: {"kernel": "test"})
    writer = ResultsWriter(tmp_path / "run", "ch-test", run={"argv": ["x"], "cwd": "/"})
    assert not (tmp_path / "run").exists()  # nothing is written before the first record
    for interval in (0.1, 1.0):
        writer.write(MigrationRecord(run_id="ch-test", plan={"interval_s": interval}))
    with writer.path.open("a") as out:
        out.write('{"kind": "migr')  # a run killed mid-write
    records = load(writer.path)
    assert isinstance(records[0], RunRecord) and records[0].environment == {"kernel": "test"}
    assert [r.interval for r in records[1:]] == [0.1, 1.0]
    assert all(r.run_id == "ch-test" for r in records)
    assert f'"schema_version": {SCHEMA_VERSION}' in writer.path.read_text().splitlines()[0]


def test_a_worker_that_fails_to_warm_up_is_ready_at_once_and_its_stop_names_the_error():
    from harness.errors import MigrationError
    from harness.runtime.watchers import Worker

    class Broken(Worker):
        def warm(self) -> None:
            raise OSError("no netlink here")

        def run(self) -> None:  # never reached
            raise AssertionError

    worker = Broken("broken")
    worker.start()
    worker.wait_ready(5)
    with pytest.raises(MigrationError, match="broken failed: no netlink here"):
        worker.stop()


def test_a_command_that_is_not_there_is_said_before_it_is_started():
    from harness.errors import CommandError
    from harness.system import proc

    if proc.SETPRIV is None:
        pytest.skip("no setpriv: the death signal is set by a preexec_fn")
    with pytest.raises(CommandError, match="could not start"):
        proc.dying_with_parent(["comps-no-such-tool"], "client")
    assert proc.dying_with_parent(["true"], "client")[-2:] == ["--", "true"]
