"""`comps-harness merge RUN_DIR... --out DIR`: the shards of one sweep as one run, one report; and bench shards.

The shards' results files are joined line for line (each record keeps its run id, sweep id and shard), their
durations tables into one (the next sweep's --shard-durations), and the report is built from the joined file,
so `report` and `compare` read a merged run as any other. What a merge refuses, and what it names, is
harness.model.shards' (refusals, coverage).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from harness import options
from harness.cli.common import REPO, progress
from harness.cli.sweep import print_verdict
from harness.data import DURATIONS_FILE
from harness.errors import ConfigError, HarnessError
from harness.model import budget as budgets
from harness.model import shards
from harness.model.records import RunRecord, TestRecord, load, of_kind
from harness.model.settings import new_run_id
from harness.reporting.results import RESULTS_FILE

COLLECT_TIMEOUT_S = 180.0  # pytest collecting the scenarios: seconds here


def _results_of(where: str) -> Path:
    path = Path(where)
    path = path / RESULTS_FILE if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"merge: {where} holds no {RESULTS_FILE} (give a shard's run directory)")
    return path


def shard_run(path: Path) -> shards.ShardRun:
    """What merge checks of one shard's results file."""
    versions, lines = set(), path.read_text().splitlines()
    for line in lines:
        try:
            versions.add(int(json.loads(line).get("schema_version", 1)))
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
            continue  # a truncated last line, from a killed run
    records = load(path)
    runs = of_kind(records, RunRecord)
    if not runs:
        raise ConfigError(f"merge: {path} has no run record")
    run = next((r for r in runs if r.sweep), runs[0])
    return shards.ShardRun(
        where=str(path.parent),
        schema=max(versions, default=1),
        sweep_id=run.sweep_id,
        shard=run.shard or "1/1",
        sweep=run.sweep,
        commit=str(run.environment.get("commit", "unknown")),
        settings=run.settings,
        tested=frozenset(r.test for r in of_kind(records, TestRecord)),
    )


def cmd_merge(args: argparse.Namespace) -> int:
    """Join shards into one run: refuse what does not belong together, name what is missing, write the
    results, the durations table, merge.json and the report; exit 1 when tests are missing."""
    from harness.reporting import report

    paths = [_results_of(where) for where in args.runs]
    runs = [shard_run(path) for path in paths]
    problems = shards.refusals(runs)
    covered = shards.coverage(runs)
    if covered.duplicated and len({run.shard for run in runs}) == len(runs):  # a shard twice is said once
        problems.append(
            f"merge: {len(covered.duplicated)} test(s) ran in more than one shard (their figures would pair "
            f"across machines): {', '.join(covered.duplicated[:5])}{' ...' if len(covered.duplicated) > 5 else ''}"
        )
    if problems:
        raise ConfigError("\n".join(problems))
    sweep_id = runs[0].sweep_id or new_run_id()
    out = Path(args.out).absolute() if args.out else REPO / "reports" / f"{sweep_id}-merged"
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise ConfigError(f"--out {out} is not an empty directory: pick a new one, or add --force to replace it")
    if out.is_dir() and args.force:
        shutil.rmtree(out)
    out.mkdir(parents=True)
    order = sorted(range(len(runs)), key=lambda i: int(runs[i].shard.split("/")[0]))
    with (out / RESULTS_FILE).open("w") as joined:
        for i in order:
            text = paths[i].read_text()
            joined.write(text if text.endswith("\n") or not text else text.rsplit("\n", 1)[0] + "\n")
    tables: dict[str, dict] = {}
    for i in order:
        table = paths[i].with_name("durations.json")
        if table.is_file():
            tables.update(json.loads(table.read_text()).get("tests", {}))
    if tables:
        (out / "durations.json").write_text(budgets.table_json(tables, f"sweep {sweep_id}, merged"))
    count = runs[0].shard.split("/")[1]
    absent = sorted(set(range(1, int(count) + 1)) - {int(run.shard.split("/")[0]) for run in runs})
    summary = {
        "sweep_id": sweep_id,
        "shards": [{"shard": runs[i].shard, "dir": runs[i].where, "tests": len(runs[i].tested)} for i in order],
        "absent_shards": [f"{k}/{count}" for k in absent],
        "missing": covered.missing,
    }
    (out / "merge.json").write_text(json.dumps(summary, indent=1) + "\n")
    records = options.with_recorded_settings(load(out / RESULTS_FILE))
    path = report.write(out / RESULTS_FILE, records=records)
    progress(f"merge: {len(runs)} shard(s) of sweep {sweep_id} of {count}, {sum(len(r.tested) for r in runs)} tests")
    verdict = print_verdict(records)
    if covered.missing:
        shown = ", ".join(covered.missing[:5]) + (" ..." if len(covered.missing) > 5 else "")
        gone = f" (shard {', '.join(summary['absent_shards'])} not given)" if absent else ""
        print(f"merge: {len(covered.missing)} test(s) of the sweep are in no shard's results{gone}: {shown}")
    print(f"report: {path}\nresults: {out / RESULTS_FILE}")
    return 1 if covered.missing else verdict.exit_status


def main_job_tests() -> list[str]:
    """The node ids the default main job collects (netns, the sweep's `-m migration`), without running them."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q"]
    argv += [str(REPO / "scenarios"), "-m", "migration"]
    try:
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=COLLECT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise HarnessError(
            f"bench shards: pytest did not collect the main job within {COLLECT_TIMEOUT_S:g} s"
        ) from None
    tests = [line.strip() for line in done.stdout.splitlines() if "::" in line]
    if done.returncode != 0 or not tests:
        raise HarnessError(f"bench shards: collecting the main job failed (pytest exited {done.returncode})")
    return tests


def shard_figures(tests: list[str], table: dict[str, budgets.Estimate], counts: list[int], min_pairs: int) -> dict:
    """bench shards' figures: per shard count, the longest shard's predicted wall time (its tests, and a
    sweep's start and end) and the balance (longest / mean)."""
    predicted, balance = {}, {}
    for count in counts:
        loads = shards.loads_s(shards.partition(tests, table, count, min_pairs), table, min_pairs)
        predicted[str(count)] = round(max(loads) + budgets.END_RESERVE_S, 1)
        if count > 1:
            balance[str(count)] = round(shards.balance(loads), 3)
    return {"tests": len(tests), "predicted_s": predicted, "balance": balance}


def cmd_bench_shards(args: argparse.Namespace) -> int:
    """Runs nothing: the default main job's tests split into each --shards count, from --shard-durations
    (else the shipped table): tests, predicted_s (longest shard), balance (longest / mean)."""
    from harness.cli.bench import emit
    from harness.model.settings import MeasureSettings, existing_file, parse_count, split_list

    counts = [
        parse_count(text, "--shards", minimum=1, maximum=shards.MAX_SHARDS)
        for text in split_list(args.shards, "--shards")
    ]
    table_path = existing_file(args.shard_durations, "--shard-durations") if args.shard_durations else DURATIONS_FILE
    table = budgets.read_table(table_path)
    result = shard_figures(main_job_tests(), table, counts, MeasureSettings().repeat)
    emit({**result, "durations": str(table_path)}, args.json)
    return 0
