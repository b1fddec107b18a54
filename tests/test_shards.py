"""Unit tests of shards (pure): the split of a sweep's tests, and what a merge refuses and names."""

from __future__ import annotations

import pytest

from harness.cli.merge import shard_figures
from harness.data import DURATIONS_FILE
from harness.errors import ConfigError
from harness.model import budget as budgets
from harness.model import shards
from harness.model.records import RunRecord, TestRecord
from harness.reporting.report import build

TABLE = budgets.read_table(DURATIONS_FILE)
SWEEP = [f"scenarios/test_x.py::{name}" for name in sorted(TABLE)]


@pytest.mark.parametrize(
    "text, message",
    [("2", "is not K/N"), ("0/2", "K must be between 1 and N"), ("3/2", "K must be between"), ("1/0", "N must be")],
)
def test_a_bad_shard_names_the_option(text, message):
    with pytest.raises(ConfigError, match=message) as raised:
        shards.parse_shard(text)
    assert str(raised.value).startswith("--shard ")


def test_the_split_is_deterministic_and_puts_every_test_in_exactly_one_shard():
    for count in (1, 2, 3, 4, 7):
        parts = shards.partition(SWEEP, TABLE, count, 3)
        assert parts == shards.partition(SWEEP, TABLE, count, 3)
        flat = [nodeid for part in parts for nodeid in part]
        assert sorted(flat) == sorted(SWEEP) and len(flat) == len(set(flat))
        for part in parts:  # each shard keeps the collected order
            assert part == [nodeid for nodeid in SWEEP if nodeid in part]


def test_the_split_does_not_depend_on_the_collected_order():
    forward = shards.partition(SWEEP, TABLE, 4, 3)
    backward = shards.partition(list(reversed(SWEEP)), TABLE, 4, 3)
    assert [set(part) for part in forward] == [set(part) for part in backward]


def test_four_shards_of_the_recorded_main_job_are_balanced_within_1_2():
    loads = shards.loads_s(shards.partition(SWEEP, TABLE, 4, 3), TABLE, 3)
    assert shards.balance(loads) <= 1.2, loads
    figures = shard_figures(SWEEP, TABLE, [1, 2, 4], 3)
    assert figures["tests"] == len(SWEEP) and set(figures["predicted_s"]) == {"1", "2", "4"}
    assert figures["predicted_s"]["4"] < figures["predicted_s"]["2"] < figures["predicted_s"]["1"]
    assert figures["balance"]["4"] <= 1.2


def run(which: str, **overrides) -> shards.ShardRun:
    collected = ["a::t1", "a::t2", "a::t3"]
    fields = dict(
        where=f"reports/s{which[0]}",
        schema=5,
        sweep_id="night-7",
        shard=which,
        sweep={"collected": collected},
        commit="abc123",
        settings={"run": {"run_id": f"r{which[0]}", "backends": ["netns"], "paths": 2}, "measure": {"repeat": 3}},
        tested=frozenset({"a::t1", "a::t2"} if which.startswith("1") else {"a::t3"}),
    )
    fields.update(overrides)
    return shards.ShardRun(**fields)


def test_shards_of_one_sweep_merge_whole():
    runs = [
        run("1/2"),
        run("2/2", settings={"run": {"run_id": "r2", "backends": ["docker"], "paths": 2}, "measure": {"repeat": 3}}),
    ]
    assert shards.refusals(runs) == []  # another backend is a shard's own
    assert shards.coverage(runs) == shards.Coverage([], [])


def test_merge_refuses_a_shard_from_another_commit():
    lines = shards.refusals([run("1/2"), run("2/2", commit="def456")])
    assert len(lines) == 1 and "different commits" in lines[0] and "def456" in lines[0]


@pytest.mark.parametrize(
    "other, says",
    [
        (dict(sweep_id="night-8"), "sweep ids"),
        (dict(schema=4), "schema versions"),
        (dict(settings={"run": {"run_id": "r2", "paths": 3}, "measure": {"repeat": 3}}), "run.paths (2 against 3)"),
        (dict(shard="2/3"), "numbers of"),
        (dict(sweep={"collected": ["a::t1"]}), "collected different tests"),
    ],
)
def test_merge_refuses_what_does_not_belong_to_the_sweep(other, says):
    lines = shards.refusals([run("1/2"), run("2/2", **other)])
    assert len(lines) == 1 and says in lines[0], lines


def test_merge_names_a_shard_given_twice_and_missing_and_duplicated_tests():
    assert "shard 1/2 given more than once" in shards.refusals([run("1/2"), run("1/2")])[0]
    partial = shards.coverage([run("1/2")])
    assert partial.missing == ["a::t3"] and partial.duplicated == []
    doubled = shards.coverage([run("1/2"), run("2/2", tested=frozenset({"a::t2", "a::t3"}))])
    assert doubled.duplicated == ["a::t2"]


def test_a_merged_report_shows_each_shard_and_its_machine():
    records = [
        RunRecord(
            run_id=f"r{k}",
            time=100.0,
            environment={"host": f"runner-{k}", "cores": 4},
            sweep_id="night-7",
            shard=f"{k}/2",
            sweep={"tests": ["a::t"]},
        )
        for k in (1, 2)
    ] + [TestRecord(run_id="r2", time=160.0, test="a::t")]
    html = build(records)
    assert "Shards of sweep night-7" in html and "runner-1" in html and "runner-2" in html and "60 s" in html
    assert "Shards of" not in build(records[:1])
