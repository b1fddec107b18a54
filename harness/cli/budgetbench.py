"""bench budget's figures: of a main job's results, the conditions, their pairs and the decided share; of
the sequential procedure, the simulated coverage and false reds (harness.model.simulation)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness import options
from harness.model.metrics import COSTED
from harness.model.records import MeasurementRecord, load, of_kind
from harness.model.simulation import bench_figures
from harness.reporting.report import cost_rows, run_tolerances
from harness.reporting.summary import cost_stops


def figures_of_run(results: Path, pageloads: Path) -> dict:
    """conditions (migrating conditions measured in pairs), mean_pairs (their migrating repetitions),
    decided_share (harness.reporting.summary.cost_stops), coverage_sim and false_red_sim."""
    records = options.with_recorded_settings(load(results)) if results.exists() else []
    pairs = Counter(
        (r.scenario, r.where, r.interval, r.condition)
        for r in of_kind(records, MeasurementRecord)
        if r.migrating and r.scenario in {metric.scenario for metric in COSTED}
    )
    stops = cost_stops(cost_rows(records, run_tolerances(records))) if records else {"decided_share": None}
    simulated = bench_figures(json.loads(pageloads.read_text())["load_ms"])
    return {
        "conditions": len(pairs),
        "decided_share": None if stops["decided_share"] is None else round(stops["decided_share"], 3),
        "mean_pairs": round(sum(pairs.values()) / len(pairs), 2) if pairs else None,
        "coverage_sim": round(simulated["coverage_sim"], 4),
        "false_red_sim": round(simulated["false_red_sim"], 4),
    }
