"""The pytest plugin, driven by pytester: outcomes as records, what a unit-test run writes, deselections.

Each test runs an inner pytest in its own temp dir with the harness plugin loaded (its entry point),
so these need no root and touch nothing outside pytester's directory.
"""

from __future__ import annotations

import pytest

from harness.model.records import RunRecord, TestRecord, load, of_kind

pytest_plugins = ["pytester"]

OUTCOMES = """
import pytest
from harness.errors import BackendError

pytestmark = pytest.mark.network

@pytest.fixture
def broken():
    raise RuntimeError("set-up broke")

def test_passes():
    pass

def test_a_verdict_says_no():
    assert False, "the check ran and said no"

def test_infrastructure_fails():
    raise BackendError("a tool crashed")

def test_measured_without_a_verdict(record_property):
    record_property("verdict", "unjudged")

def test_skipped():
    pytest.skip("not here")

def test_set_up_fails(broken):
    pass
"""


def run_inner(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list]:
    out = pytester.path / "out"
    result = pytester.runpytest("-p", "no:cacheprovider", "--run-id", "ch-pytester", "--run-dir", str(out), *args)
    records = load(out / "results.jsonl") if (out / "results.jsonl").exists() else []
    return result, records


def test_every_outcome_is_classified_and_recorded(pytester):
    pytester.makepyfile(test_outcomes=OUTCOMES)
    result, records = run_inner(pytester)
    result.assert_outcomes(passed=2, failed=2, skipped=1, errors=1)
    outcomes = {record.test.split("::")[-1]: record.outcome for record in of_kind(records, TestRecord)}
    assert outcomes == {
        "test_passes": "passed",
        "test_a_verdict_says_no": "failed",  # a verdict
        "test_infrastructure_fails": "error",  # a HarnessError: no verdict
        "test_measured_without_a_verdict": "unjudged",
        "test_skipped": "skipped",
        "test_set_up_fails": "error",  # outside the test's call
    }
    (run,) = of_kind(records, RunRecord)
    assert run.settings["tolerances"]["throughput"] == 0.9 and run.run_id == "ch-pytester"
    failed = next(r for r in of_kind(records, TestRecord) if r.outcome == "failed")
    assert failed.reason.startswith("AssertionError: the check ran and said no") and failed.check == "proof"


def test_a_unit_test_run_writes_nothing(pytester):
    pytester.makepyfile(test_pure="def test_pure():\n    assert 1 + 1 == 2\n")
    result, records = run_inner(pytester)
    result.assert_outcomes(passed=1)
    assert records == [] and not (pytester.path / "out").exists()


def test_docker_only_scenarios_leave_a_run_without_docker_and_say_so(pytester):
    pytester.makepyfile(
        test_demo="""
import pytest

@pytest.mark.docker_only
def test_compose_demo():
    pass

def test_anywhere():
    pass
"""
    )
    result, _ = run_inner(pytester, "--backend", "netns")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*1 Docker-only scenario(s) not run*test_compose_demo*"])


def test_plans_parametrize_tests_and_a_one_interval_check_runs_at_the_longest(pytester):
    pytester.makepyfile(
        test_plans="""
import pytest

def test_every_interval(migration_plan):
    pass

@pytest.mark.one_interval
def test_longest_only(migration_plan):
    assert migration_plan.interval == 1.0
"""
    )
    result, _ = run_inner(pytester, "--intervals", "0.1,1", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "*test_every_interval?alternate-i0.1s?*",
            "*test_every_interval?alternate-i1s?*",
            "*test_longest_only?alternate-i1s?*",
        ]
    )
    assert "test_longest_only[alternate-i0.1s]" not in result.stdout.str()


def test_bad_input_is_one_usage_error_before_anything_runs(pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result, records = run_inner(pytester, "--fault", "pinned@1:7")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and records == []
    result.stderr.fnmatch_lines(["*comps-harness: --fault pinned@1:7 names path 7, but --paths 2*"])
