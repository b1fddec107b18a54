"""The sweep's --budget: planning, what a condition may spend, what is skipped, the durations table (pure)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.data import DURATIONS_FILE
from harness.model import budget as budgets
from harness.model.budget import END_RESERVE_S, Budget, Estimate, estimate_for, read_table
from harness.reporting.summary import cost_line, cost_stops


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TABLE = {
    "test_throughput[netns-alternate-i0.1s]": Estimate(2.0, 12.0),
    "test_throughput[netns-alternate-i1s]": Estimate(2.0, 12.0),
    "test_fault_turns_the_proof_red[netns-pinned]": Estimate(3.0, 0.0),
}


def planned(total: float, clock: Clock, names=tuple(TABLE)) -> Budget:
    return Budget.plan(total, 0.0, list(names), TABLE, min_pairs=3, clock=clock)


def test_the_minimum_of_every_test_is_reserved_first_and_the_slack_shared():
    clock = Clock()
    budget = planned(200.0, clock)
    assert budget.planned_s() == END_RESERVE_S + 38 + 38 + 3
    assert budget.start("test_throughput[netns-alternate-i0.1s]") is None
    # left 200, reserve of the others 38 + 3 + the end: 200 - 49 = 151 of slack, shared with one more
    # measuring test (the pinned fault has no pairs): 75.5 each
    assert budget.may_spend(75.0) and not budget.may_spend(76.0)
    clock.now += 36.0  # its three pairs
    assert budget.may_spend(3 * 12.0)  # the next look, 3 more pairs, fits its share


def test_a_test_that_no_longer_fits_is_skipped_with_the_figures():
    clock = Clock()
    budget = planned(60.0, clock)
    assert budget.start("test_throughput[netns-alternate-i0.1s]") is None
    clock.now += 45.0
    reason = budget.start("test_throughput[netns-alternate-i1s]")
    assert reason is not None and reason.startswith("budget: ") and "38 s" in reason
    assert budget.start("test_fault_turns_the_proof_red[netns-pinned]") is None  # 15 s left, 8 kept for the end
    assert budget.may_spend(6.0) and not budget.may_spend(8.0)  # 15 left, 8 for the end


def test_the_costs_run_first_and_a_test_seen_unproven_reserves_its_pairs():
    names = ["test_fault[a]", "test_throughput[0.01s]", "test_throughput[1s]", "test_loss[c]", "test_page_loads[1s]"]
    assert budgets.run_order(names, {"test_throughput[1s]", "test_page_loads[1s]"}, {"test_throughput[0.01s]"}) == [
        "test_throughput[1s]",
        "test_page_loads[1s]",
        "test_fault[a]",
        "test_loss[c]",
        "test_throughput[0.01s]",
    ]
    assert Estimate(1.0, 10.0, pairs=1).minimum_s(3) == 11.0 and Estimate(1.0, 10.0).minimum_s(3) == 31.0


def test_an_unknown_test_is_estimated_from_its_function_or_as_a_short_check():
    assert estimate_for(TABLE, "test_throughput[docker-alternate-i0.1s]") == Estimate(2.0, 12.0)
    assert estimate_for(TABLE, "test_new_thing[netns]") == Estimate()
    assert budgets.minutes_text(75.0) == "1m15s" and budgets.minutes_text(-5.0) == "-0m05s"


def test_the_shipped_table_reads_and_holds_the_main_job(tmp_path: Path):
    shipped = read_table(DURATIONS_FILE)
    assert any(name.startswith("test_throughput[netns-") and e.pair_s > 0 for name, e in shipped.items())
    assert all(e.fixed_s >= 0 and e.pair_s >= 0 for e in shipped.values())
    data = json.loads(budgets.table_json({"t[x]": {"fixed_s": 1.0, "pair_s": 2.0}}, "run r"))
    assert data["schema"] == budgets.SCHEMA and data["source"] == "run r"


def test_the_bootstrap_main_job_and_bench_budget_use_one_budget():
    from harness.cli.bench import MAIN_BUDGET

    bootstrap = (Path(__file__).parents[1] / "bootstrap.sh").read_text()
    assert f"MAIN_BUDGET={MAIN_BUDGET}\n" in bootstrap and '--budget "$MAIN_BUDGET"' in bootstrap


def test_every_cost_row_says_why_it_stopped_and_unproven_rows_leave_the_decided_share():
    def row(stopped: str, judged: bool = True) -> dict:
        return {"stopped": stopped, "verdict": {"judged": judged}}

    rows = [row("decided"), row("decided"), row("budget"), row("unproven"), row("not judged", judged=False)]
    stops = cost_stops(rows)
    assert stops["decided_share"] == 2 / 3
    assert stops["stopped"] == {"decided": 2, "budget": 1, "unproven": 1, "not judged": 1}
    assert cost_line(stops).startswith(
        "cost rows: 5 (1 budget, 2 decided, 1 not judged, 1 unproven); decided share 67%"
    )
    assert cost_stops([row("unproven")])["decided_share"] is None
