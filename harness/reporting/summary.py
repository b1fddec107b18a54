"""What a run's outcomes mean, in one place: the sweep's exit status and its closing lines (pure).

Proofs and self-checks (the harness's own checks) decide the exit status; research verdicts
(marker `measurement`: what migration costs) are listed, and fail the run only with --strict.
An error (a tool crashed or is missing) always fails it: it is no verdict at all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.model.kinds import Outcome
from harness.model.records import Record, TestRecord, of_kind


@dataclass(frozen=True)
class SweepVerdict:
    exit_status: int
    lines: list[str]


def final_outcomes(records: list[Record]) -> list[TestRecord]:
    """One record per test: the worst of its phases (an error in teardown overrides a pass)."""
    rank = {
        Outcome.ERROR: 4,
        Outcome.FAILED: 3,
        Outcome.SKIPPED: 2,
        Outcome.UNPROVEN: 1,
        Outcome.UNJUDGED: 1,
        Outcome.PASSED: 0,
    }
    chosen: dict[str, TestRecord] = {}
    for record in of_kind(records, TestRecord):
        previous = chosen.get(record.test)
        if previous is None or rank.get(record.outcome, 0) > rank.get(previous.outcome, 0):
            chosen[record.test] = record
    return list(chosen.values())


def cost_stops(rows: list[dict]) -> dict:
    """Why the cost rows (harness.reporting.report.cost_rows) stopped: a count per reason, and the decided
    share: of the rows that were judged on a proven migration, those whose interval decided the verdict
    (unproven and not judged rows have nothing to decide: they are left out of it)."""
    counts = Counter(row["stopped"] for row in rows)
    judged = [row for row in rows if row["stopped"] not in ("unproven", "not judged") and row["verdict"]["judged"]]
    decided = sum(1 for row in judged if row["stopped"] == "decided")
    return {"rows": len(rows), "stopped": dict(counts), "decided_share": decided / len(judged) if judged else None}


def cost_line(stops: dict) -> str:
    """One line of the summary: the cost rows by why they stopped, and the decided share."""
    share = stops["decided_share"]
    said = ", ".join(f"{n} {reason}" for reason, n in sorted(stops["stopped"].items()))
    shown = "no judged row" if share is None else f"decided share {share:.0%}"
    return f"cost rows: {stops['rows']} ({said}); {shown} (an undecided row needs more time: not a finding)"


def sweep_verdict(records: list[Record], *, strict: bool = False) -> SweepVerdict:
    tests = final_outcomes(records)
    counts = Counter(test.outcome for test in tests)
    lines = [
        "sweep: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        if tests
        else "sweep: no test outcomes were recorded"
    ]
    failing = []
    for title, selected, fails in (  # fails: whether the group fails the run
        ("errors (no verdict: a tool failed)", [t for t in tests if t.outcome == Outcome.ERROR], True),
        (
            "proofs and self-checks that failed",
            [t for t in tests if t.outcome == Outcome.FAILED and t.check != "research"],
            True,
        ),
        (
            "research verdicts beyond tolerance" + ("" if strict else " (listed; --strict makes them fail)"),
            [t for t in tests if t.outcome == Outcome.FAILED and t.check == "research"],
            strict,
        ),
        (
            "costs not proven: the migration did not happen as scheduled (no cost reported)",
            [t for t in tests if t.outcome == Outcome.UNPROVEN],
            False,
        ),
        (
            "not run: the --budget was spent",
            [t for t in tests if t.outcome == Outcome.SKIPPED and t.reason.startswith("budget")],
            False,
        ),
    ):
        if selected:
            lines.append(f"{title}:")
            lines += [f"  {t.test}: {t.reason}" for t in selected]
            if fails:
                failing += selected
    if not tests:
        return SweepVerdict(1, lines)
    return SweepVerdict(1 if failing else 0, lines)
