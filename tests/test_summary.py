"""The sweep's exit status: proofs and errors decide it, research verdicts only with --strict (pure)."""

from __future__ import annotations

from harness.model.records import TestRecord
from harness.plugin import without_run_naming
from harness.reporting.summary import sweep_verdict


def outcome(test, result, check="proof", reason="", phase="call"):
    return TestRecord(run_id="r", test=test, outcome=result, check=check, reason=reason, phase=phase)


def test_research_verdicts_are_listed_and_fail_only_when_strict():
    records = [
        outcome("a", "passed"),
        outcome("b", "failed", "research", "tcp_up: 0.72x [0.65, 0.80], n=5"),
        outcome("c", "unjudged", "research"),
    ]
    relaxed = sweep_verdict(records)
    assert relaxed.exit_status == 0 and "1 failed, 1 passed, 1 unjudged" in relaxed.lines[0]
    assert any("research verdicts beyond tolerance" in line for line in relaxed.lines)
    assert any("b: tcp_up: 0.72x [0.65, 0.80], n=5" in line for line in relaxed.lines)
    assert sweep_verdict(records, strict=True).exit_status == 1


def test_proofs_and_errors_fail_the_sweep_and_a_teardown_error_wins():
    assert sweep_verdict([outcome("a", "failed", reason="no proof of migration")]).exit_status == 1
    errors = sweep_verdict([outcome("a", "passed"), outcome("a", "error", phase="teardown", reason="iperf3 died")])
    assert errors.exit_status == 1 and "1 error" in errors.lines[0] and "errors (no verdict" in errors.lines[1]
    assert sweep_verdict([]).exit_status == 1  # nothing recorded is not a pass


def test_the_reproduce_command_makes_a_new_run():
    assert without_run_naming(["-k", "x", "--run-id", "old", "--run-dir=/r/old", "--intervals", "1"]) == [
        "-k",
        "x",
        "--intervals",
        "1",
    ]
