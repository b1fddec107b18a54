"""A sweep split into two shards that run at once on this machine, merged as the nightly's merge job does.

Three sweeps of the same small selection (a paired download and three migration checks at 0.1 s): shard 1/2
and shard 2/2 side by side (two processes, two run ids, one sweep id), then the same sweep unsharded. The merge
(`./bootstrap.sh merge`, the nightly's step) must hold exactly the unsharded sweep's tests, every test's records
from one run id (no pair split across shards), the same report sections and rows, and a report that names both
shards; `compare` reads the merged run as any other. A merge missing one shard names its tests and exits 1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.common import REPO
from harness.model.records import MeasurementRecord, RunRecord, TestRecord, load, of_kind
from harness.reporting import report

pytestmark = pytest.mark.network

SELECTION = "test_download_time or test_loss_around_switches or test_migration_moves_the_traffic"
# one interval, one pair, one download size: four tests (loss around switches with both mechanisms), a
# paired measurement among them; about 20 s for all three sweeps on netns
SWEEP = [
    "--intervals",
    "0.1",
    "--min-pairs",
    "1",
    "--max-pairs",
    "0",
    "--download-sizes",
    "1",
    "--switch-mechanism",
    "netlink",
]
SWEEP_DEADLINE_S = 900  # two docker shards at once on two cores; a netns shard takes about a minute
MERGE_DEADLINE_S = 120


def start_sweep(backend: str, out: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "harness", "sweep", "--backend", backend, *SWEEP, "--out", str(out), *extra]
    return subprocess.Popen(
        [*argv, "-k", SELECTION], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(child: subprocess.Popen, what: str) -> str:
    try:
        output, _ = child.communicate(timeout=SWEEP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        child.terminate()
        output, _ = child.communicate(timeout=360)
        pytest.fail(f"{what} did not end within {SWEEP_DEADLINE_S} s: {output[-2000:]}")
    assert child.returncode in (0, 1), f"{what} exited {child.returncode}: {output[-2000:]}"
    return output


def merge(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "bootstrap.sh"), "merge", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=MERGE_DEADLINE_S,
        check=False,
    )


def ran_in(records: list) -> set[str]:
    return {record.test for record in of_kind(records, TestRecord)}


def rows_of(records: list) -> set[tuple]:
    """The report's cost rows, without their figures: which scenario, backend, interval, condition, metric."""
    rows = report.cost_rows(records, report.run_tolerances(records))
    return {(r["scenario"], r["backend"], r["interval"], r["condition"], r["metric"]) for r in rows}


def headings(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_two_shards_merge_into_the_unsharded_sweep(backend, backend_ready, child_run_ids, tmp_path):
    sweep_id = child_run_ids()
    shard_dirs = [tmp_path / child_run_ids(), tmp_path / child_run_ids()]
    children = [
        start_sweep(backend, out, "--shard", f"{k}/2", "--sweep-id", sweep_id) for k, out in enumerate(shard_dirs, 1)
    ]
    outputs = [finish(child, f"shard {k}/2") for k, child in enumerate(children, 1)]
    whole_dir = tmp_path / child_run_ids()
    finish(start_sweep(backend, whole_dir), "the unsharded sweep")

    merged_dir = tmp_path / "merged"
    done = merge(*map(str, shard_dirs), "--out", str(merged_dir))
    assert done.returncode in (0, 1), f"merge exited {done.returncode}: {done.stderr[-2000:]}"
    assert "in no shard's results" not in done.stdout, done.stdout

    shard_records = [load(out / "results.jsonl") for out in shard_dirs]
    merged, whole = load(merged_dir / "results.jsonl"), load(whole_dir / "results.jsonl")
    assert len(ran_in(whole)) == 4, f"the selection collected {sorted(ran_in(whole))}"
    assert all(ran_in(records) for records in shard_records), f"a shard ran nothing: {outputs}"
    assert not ran_in(shard_records[0]) & ran_in(shard_records[1]), "a test ran in both shards"
    assert ran_in(merged) == ran_in(whole)

    runs = of_kind(merged, RunRecord)
    assert sorted(run.shard for run in runs) == ["1/2", "2/2"] and {run.sweep_id for run in runs} == {sweep_id}
    assert {record.sweep_id for record in merged} == {sweep_id}
    measured: dict[str, set[str]] = {}
    for record in of_kind(merged, MeasurementRecord):
        measured.setdefault(record.test, set()).add(record.run_id)
    assert measured, "the merged run holds no measurement"
    split = {test: ids for test, ids in measured.items() if len(ids) > 1}
    assert not split, f"a test's pairs come from two shards: {split}"

    assert rows_of(merged) == rows_of(whole) and rows_of(whole)
    page = (merged_dir / "report.html").read_text()
    assert headings(page) == headings((whole_dir / "report.html").read_text())
    assert f"Shards of sweep {sweep_id}" in page
    for run in runs:
        assert run.run_id in page, f"the report does not name shard {run.shard}'s run {run.run_id}"

    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "compare",
            str(whole_dir / "results.jsonl"),
            str(merged_dir / "results.jsonl"),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=MERGE_DEADLINE_S,
        check=False,
    )
    assert compared.returncode in (0, 1), compared.stderr
    assert json.loads(compared.stdout), "compare found nothing in common between the merged and the unsharded run"

    alone = merge(str(shard_dirs[0]), "--out", str(tmp_path / "half"))
    assert alone.returncode == 1, f"a merge without shard 2/2 exited {alone.returncode}: {alone.stdout}{alone.stderr}"
    assert "shard 2/2 not given" in alone.stdout, alone.stdout
