"""The HTML report: one standalone file (inline CSS and SVG, nothing fetched), rebuilt from results alone.

`build(records)` reads the records of a results file (harness.reporting.results) and returns the page:
a verdict table from the test records, plots from the measurement records, the environment
and the command that reproduces the run.
"""

from __future__ import annotations

import shlex
import statistics
from collections import defaultdict
from html import escape
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.measure.lived import summarize
from harness.measure.verdicts import (
    judge_repetitions,
    point_within,
    ratio_verdict,
    scenario_design,
    why_stopped,
)
from harness.model.evidence import MigrationEvidence, Proof, ProofOutcome
from harness.model.metrics import COSTED, KIND_LABELS, TCP_DOWN, TCP_UP, THROUGHPUT_KINDS, Scenario, costed_values
from harness.model.records import (
    MeasurementRecord,
    MigrationRecord,
    Record,
    RunRecord,
    TestRecord,
    load,
    of_kind,
)
from harness.model.settings import MeasureSettings, Tolerances, recorded_budget, recorded_pairs, recorded_tolerances
from harness.reporting import svg

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; } .passed { color: #080; font-weight: bold; } .failed { color: #c00; font-weight: bold; }
.skipped { color: #a60; font-weight: bold; } .error { color: #808; font-weight: bold; }
.unjudged { color: #666; font-weight: bold; } .unclear { color: #a60; font-weight: bold; }
.unproven { color: #666; font-weight: bold; } .caught { color: #080; }
details summary { cursor: pointer; color: #444; } td.why { max-width: 28em; }
code, pre { background: #f6f6f6; padding: 2px 4px; }
pre { white-space: pre-wrap; } svg text { font: 11px sans-serif; } .empty { color: #888; }
"""


PROFILE_CHECK = Scenario.PATH_PROFILE


def _measured(records: list[Record], scenario: str | None = None) -> list[MeasurementRecord]:
    return [
        r
        for r in of_kind(records, MeasurementRecord)
        if r.scenario == scenario or (scenario is None and r.scenario != PROFILE_CHECK)
    ]


def _profile_table(records: list[Record]) -> str:
    checks = _measured(records, PROFILE_CHECK)
    if not checks:
        return "<p class='empty'>No path profile in these results: the paths were unshaped (lan).</p>"

    def cell(measured, spec, unit: str) -> str:
        if spec is None:
            return "<td>unshaped</td>"
        return f"<td>{'—' if measured is None else f'{measured:g}'} (spec {spec:g}) {unit}</td>"

    body = []
    for check in checks:
        figures = check.figures
        for path, entry in sorted(figures.get("paths", {}).items()):
            spec = entry["spec"]
            low, high = entry.get("loss_interval", [None, None])
            bad = [f for f in figures.get("failures", []) if f.startswith(f"path {path}")]
            body.append(
                f"<tr><td>{escape(check.where)}</td><td>{escape(check.profile)}</td><td>{escape(path)}</td>"
                + cell(entry["rtt_ms"], spec["rtt_ms"], "ms")
                + cell(entry["rate_mbit"], spec["rate_mbit"], "Mbit/s")
                + cell(entry["rate_mbit_down"], spec["rate_mbit_down"], "Mbit/s")
                + f"<td>{entry['loss']:.2%} [{low:.2%}, {high:.2%}] (spec {spec['loss']:.2%})</td>"
                + f"<td class='{'failed' if bad else 'passed'}'>{escape('; '.join(bad)) or 'within spec'}</td></tr>"
            )
    return (
        "<p>Each profile is measured on its first network of the run: RTT by ping over the path's link, the "
        "rate each way by a UDP stream offered above it, loss with a 95 % interval. Off by more than 10 % "
        "(+1 ms) fails the set-up.</p><table><tr><th>backend</th><th>profile</th><th>path</th><th>RTT</th>"
        f"<th>rate up</th><th>rate down</th><th>loss</th><th>check</th></tr>{''.join(body)}</table>"
    )


def _migrating(record: MeasurementRecord) -> bool:
    return record.migrating


def _median_by(rows: list[tuple[tuple, float]]) -> dict[tuple, float]:
    grouped: dict[tuple, list[float]] = defaultdict(list)
    for key, value in rows:
        grouped[key].append(value)
    return {key: statistics.median(values) for key, values in grouped.items()}


def _series_by_interval(medians: dict[tuple, float], label) -> list[svg.Series]:
    """Medians keyed (a, b, interval) -> one series over the intervals per (a, b), named label((a, b))."""
    return [
        svg.Series(label(group), [(k[2], v) for k, v in medians.items() if k[:2] == group])
        for group in sorted({k[:2] for k in medians}, key=str)
    ]


# -- paired figures ------------------------------------------------------------------------
def paired(records: list[Record], scenario: str) -> dict[tuple, tuple[list[float], list[float]]]:
    """(backend, interval, condition, metric) -> (baseline values, migrating values), paired by test and
    repetition (each baseline was measured right before its migrating twin)."""
    by_test: dict[tuple, dict[int, dict[str, MeasurementRecord]]] = defaultdict(lambda: defaultdict(dict))
    for r in _measured(records, scenario):
        by_test[(r.where, r.test)][r.repetition]["baseline" if not r.migrating else r.condition] = r
    pairs: dict[tuple, tuple[list[float], list[float]]] = {}
    for (backend, _), reps in by_test.items():
        for rep in sorted(reps):
            base = reps[rep].get("baseline")
            for condition, record in reps[rep].items():
                if condition == "baseline" or base is None:
                    continue
                base_metrics = costed_values(base.figures)
                for metric, value in costed_values(record.figures).items():
                    if metric in base_metrics:
                        entry = pairs.setdefault((backend, record.interval, condition, metric), ([], []))
                        entry[0].append(base_metrics[metric])
                        entry[1].append(value)
    return pairs


def run_tolerances(records: list[Record]) -> Tolerances:
    """The tolerances the run judged with, read back from its record's typed settings."""
    return recorded_tolerances(_run_settings(records))


def _run_settings(records: list[Record]) -> dict | None:
    """The typed settings the run's record stored (None: a record written before settings were)."""
    run = next((r for r in of_kind(records, RunRecord) if r.settings), None)
    return run.settings if run else None


def run_pairs(records: list[Record]) -> MeasureSettings:
    """--min-pairs and --max-pairs of the run (the defaults when its record has no settings)."""
    least, most = recorded_pairs(_run_settings(records))
    try:
        return MeasureSettings(repeat=least, max_pairs=most)
    except ConfigError:
        return MeasureSettings(repeat=least)


def read_evidence(record: MeasurementRecord | MigrationRecord) -> MigrationEvidence | None:
    """A record's evidence as the proof reads it (None: written by a harness whose evidence it cannot read)."""
    try:
        return MigrationEvidence.from_dict(record.evidence)
    except (TypeError, ValueError, KeyError, HarnessError):
        return None


def condition_proofs(records: list[Record], tolerances: Tolerances) -> dict[tuple, Proof]:
    """(backend, interval, condition, scenario) -> the proof of its migrating repetitions, judged from their
    recorded evidence with the run's tolerances: the very judgement the scenarios' proof_gate made."""
    evidence: dict[tuple, list[MigrationEvidence | None]] = defaultdict(list)
    for r in _measured(records):
        if r.migrating and r.evidence:
            evidence[(r.where, r.interval, r.condition, r.scenario)].append(read_evidence(r))
    proofs = {}
    for key, found in evidence.items():
        readable = [e for e in found if e is not None]
        proofs[key] = (
            judge_repetitions(readable, tolerances)
            if len(readable) == len(found)
            else Proof(ProofOutcome.UNPROVEN, "its evidence was written in a form this harness cannot judge")
        )
    return proofs


def cost_rows(records: list[Record], tolerances: Tolerances) -> list[dict]:
    """What migration costs at each interval: one row per scenario, backend, interval and metric, each with the
    proof of its migrating repetitions (a cost only when proven; otherwise the row says why not)."""
    rows = []
    proofs = condition_proofs(records, tolerances)
    pairs = run_pairs(records)
    budgeted = recorded_budget(_run_settings(records)) is not None
    for metric in COSTED:
        design = scenario_design(pairs, metric.min_pairs)
        for (backend, interval, condition, item), (base, value) in sorted(
            paired(records, metric.scenario).items(), key=lambda kv: str(kv[0])
        ):
            verdict = ratio_verdict(
                base,
                value,
                limit=metric.limit(tolerances) if metric.judged_at(interval, tolerances) else None,
                higher_is_better=metric.higher_is_better,
                unit=metric.unit,
                scale=metric.scale,
                design=design,
            )
            proof = proofs.get(
                (backend, interval, condition, metric.scenario),
                Proof(ProofOutcome.UNPROVEN, "no migration evidence was recorded"),
            )
            rows.append(
                {
                    "scenario": metric.scenario,
                    "backend": backend,
                    "interval": interval,
                    "condition": condition,
                    "metric": item,
                    "verdict": verdict,
                    "proof": proof,
                    "stopped": why_stopped(verdict, proof.outcome == ProofOutcome.PROVEN, design, budgeted),
                }
            )
    return rows


# -- plots ----------------------------------------------------------------------------------
def cost_vs_interval(records: list[Record]) -> list[svg.Chart]:
    """Per scenario and backend: the paired ratio to baseline against the interval, with 95 % intervals."""
    tolerances = run_tolerances(records)
    rows, charts = cost_rows(records, tolerances), []
    for metric in COSTED:
        scenario, higher = metric.scenario, metric.higher_is_better
        for backend in sorted({row["backend"] for row in rows if row["scenario"] == scenario}):
            mine = [
                row
                for row in rows
                if row["scenario"] == scenario
                and row["backend"] == backend
                and row["interval"] is not None
                and "-degraded" not in row["condition"]
                and row["proof"].outcome == ProofOutcome.PROVEN  # an unproven figure is no cost: not plotted
            ]
            limit = metric.limit(tolerances)
            band = (limit, 1.0) if higher else (1.0, limit)
            chart = svg.Chart(
                f"{scenario}: with migration / without, by interval ({backend})",
                "migration interval (s, log)",
                "ratio to baseline (1 = no cost)",
                log_x=True,
                band=band,
                band_label=f"within tolerance ({band[0]:g}..{band[1]:g}x)",
            )
            for item in sorted({row["metric"] for row in mine}):
                series = svg.Series(item, [])
                for row in (r for r in mine if r["metric"] == item):
                    v = row["verdict"]
                    series.points.append((row["interval"], v["ratio"]))
                    series.labels[row["interval"]] = f"n={v['n']}"
                    if v["low"] is not None:
                        series.intervals[row["interval"]] = (v["low"], v["high"])
                chart.series.append(series)
            charts.append(chart)
    return charts


def throughput_vs_interval(records: list[Record]) -> list[svg.Chart]:
    measured = _measured(records, Scenario.THROUGHPUT)
    charts = []
    for backend in sorted({r.where for r in measured}):
        mine = [r for r in measured if r.where == backend]
        baseline = [
            r.figures[k]["bits_per_second"] / 1e6
            for r in mine
            if not _migrating(r)
            for k in (TCP_UP, TCP_DOWN)
            if k in r.figures
        ]
        chart = svg.Chart(
            f"Throughput vs migration interval ({backend})",
            "interval (s, log)",
            "Mbit/s",
            log_x=True,
            band=(min(baseline), max(baseline)) if baseline else None,
            band_label="baseline (no migration), min..max",
        )
        for kind in THROUGHPUT_KINDS:
            name = KIND_LABELS[kind]
            medians = _median_by(
                [
                    ((r.interval,), r.figures[kind]["bits_per_second"] / 1e6)
                    for r in mine
                    if _migrating(r) and kind in r.figures
                ]
            )
            chart.series.append(svg.Series(f"{name} median", [(k[0], v) for k, v in medians.items()]))
        charts.append(chart)
    return charts


def throughput_time_series(records: list[Record]) -> list[svg.Chart]:
    """One migrating iperf3 run per backend (interval nearest 0.1 s), with its path switches as markers."""
    charts = []
    measured = [r for r in _measured(records, Scenario.THROUGHPUT) if _migrating(r) and TCP_UP in r.figures]
    for backend in sorted({r.where for r in measured}):
        mine = sorted((r for r in measured if r.where == backend), key=lambda r: (abs(r.interval - 0.1), r.repetition))
        record = mine[0]
        run = record.figures[TCP_UP]
        offset = (
            record.evidence["started_monotonic"] - run["started_monotonic"]
            if run.get("started_monotonic") is not None
            else 0.0
        )
        markers = [at + offset for at in record.switch_times_s()]
        span = max((t for t, _ in run["series"]), default=0.0)
        charts.append(
            svg.Chart(
                f"TCP upload over time, {record.condition} ({backend}); dashed: path switches",
                "seconds since iperf3 started",
                "Mbit/s",
                series=[svg.Series("TCP up", [(t, bps / 1e6) for t, bps in run["series"]])],
                markers=[m for m in markers if 0 <= m <= span],
            )
        )
    return charts


def pageload_distributions(records: list[Record]) -> list[svg.Chart]:
    measured = _measured(records, Scenario.PAGELOAD)
    charts = []
    for backend in sorted({r.where for r in measured}):
        mine = [r for r in measured if r.where == backend]
        intervals = sorted({r.interval for r in mine if _migrating(r)})
        categories = ["baseline"] + [f"{i:g} s" for i in intervals]
        pages = sorted({load["url"].rsplit("/", 1)[-1] for r in mine for load in r.loads()})
        chart = svg.Chart(
            f"Page-load time per condition ({backend}); every load is a point",
            "condition",
            "load event (ms)",
            x_categories=categories,
        )
        for p, page in enumerate(pages):
            points = []
            for r in mine:
                x = 0 if not _migrating(r) else 1 + intervals.index(r.interval)
                points += [
                    (x + (p - 1) * 0.15, load["load_ms"]) for load in r.loads() if load["url"].endswith("/" + page)
                ]
            chart.series.append(svg.Series(page, points, line=False))
        charts.append(chart)
    return charts


def loss_per_switch(records: list[Record]) -> list[svg.Chart]:
    measured = [r for r in _measured(records, Scenario.SWITCH_LOSS) if _migrating(r)]
    if not measured:
        return []
    medians = _median_by(
        [((r.where, r.mechanism, r.interval), r.figures["loss"]["lost_per_switch_mean"] or 0.0) for r in measured]
    )
    chart = svg.Chart(
        "Lost probe packets per switch vs interval", "interval (s, log)", "lost per switch (mean)", log_x=True
    )
    chart.series += _series_by_interval(medians, lambda group: f"{group[0]} {group[1]}")
    return [chart]


def split_ratio(records: list[Record]) -> list[svg.Chart]:
    measured = [r for r in _measured(records) if _migrating(r) and r.evidence.get("split_ratio")]
    if not measured:
        return []
    medians = _median_by(
        [((r.where, path, r.interval), share) for r in measured for path, share in r.evidence["split_ratio"].items()]
    )
    chart = svg.Chart(
        "Share of the client's bytes per path (split ratio)", "interval (s, log)", "share of bytes", log_x=True
    )
    chart.series += _series_by_interval(medians, lambda group: f"{group[0]} path {group[1]}")
    return [chart]


def timing_error(records: list[Record]) -> list[svg.Chart]:
    measured = [
        r
        for r in _measured(records)
        if _migrating(r) and (r.evidence.get("timing_error_ms") or {}).get("median") is not None
    ]
    if not measured:
        return []
    chart = svg.Chart("Switch timing error (actual - planned)", "interval (s, log)", "ms", log_x=True)
    for stat in ("median", "p99"):
        medians = _median_by(
            [((r.where, r.mechanism, r.interval), r.evidence["timing_error_ms"][stat]) for r in measured]
        )
        chart.series += _series_by_interval(medians, lambda group, stat=stat: f"{group[0]} {group[1]} {stat}")
    return [chart]


def adherence_vs_interval(records: list[Record]) -> list[svg.Chart]:
    """The share of the session's packets that used the path the schedule named, per interval and mode."""
    runs = [(r.where, r.evidence) for r in _measured(records) if r.migrating]
    runs += [(m.where, m.evidence) for m in of_kind(records, MigrationRecord)]
    points: dict[tuple, list[float]] = defaultdict(list)
    for backend, evidence in runs:
        interval = (evidence.get("plan") or {}).get("interval_s")
        if evidence.get("adherence") is not None and interval:
            points[(backend, evidence.get("sticky_source", "?"), interval)].append(evidence["adherence"])
    if not points:
        return []
    chart = svg.Chart(
        "Adherence: the session's packets on the path the schedule named",
        "migration interval (s, log)",
        "share of packets",
        log_x=True,
    )
    for group in sorted({key[:2] for key in points}):
        series = svg.Series(f"{group[0]}, sticky source {group[1]}", [])
        for (backend, mode, interval), values in points.items():
            if (backend, mode) == group:
                series.points.append((interval, statistics.median(values)))
                series.labels[interval] = f"n={len(values)}"
        chart.series.append(series)
    return [chart]


def degraded_runs(records: list[Record]) -> list[svg.Chart]:
    """The degraded-path self-checks: throughput of baseline, healthy and degraded migration, each repetition."""
    measured = _measured(records, Scenario.THROUGHPUT_DEGRADED)
    charts = []
    for backend in sorted({r.where for r in measured}):
        mine = [r for r in measured if r.where == backend and TCP_UP in r.figures]
        conditions = sorted({r.condition for r in mine}, key=lambda c: (c != "baseline", "-degraded" in c, c))
        chart = svg.Chart(
            f"Degraded-path self-check: TCP up per condition ({backend})",
            "condition",
            "Mbit/s",
            x_categories=conditions,
        )
        series = svg.Series(
            "each repetition",
            [(conditions.index(r.condition), r.figures[TCP_UP]["bits_per_second"] / 1e6) for r in mine],
            line=False,
        )
        chart.series.append(series)
        charts.append(chart)
    return charts


def _observed(records: list[Record]) -> list[MigrationRecord]:
    return [m for m in of_kind(records, MigrationRecord) if m.evidence.get("observer")]


def observer_charts(records: list[Record]) -> list[svg.Chart]:
    """Each proxy's share of the session over time (switches marked), and the largest share of a page load."""
    charts = []
    for m in _observed(records)[:2]:
        observer = m.evidence["observer"]
        paths = sorted({path for _, shares in observer["timeline"] for path in shares})
        chart = svg.Chart(
            f"Share of the session each proxy carried, per 0.1 s ({m.where}, "
            f"{(m.plan or {}).get('strategy', '?')} {m.interval:g} s)",
            "seconds since the migration started",
            "share of the session's packets",
            markers=[s["actual_s"] for s in m.evidence.get("switches", [])],
        )
        for path in paths:
            chart.series.append(
                svg.Series(f"proxy {path}", [(t, shares.get(path, 0.0)) for t, shares in observer["timeline"]])
            )
        charts.append(chart)
    largest: dict[tuple, list[float]] = defaultdict(list)
    for m in _observed(records):
        share = m.evidence["observer"].get("max_page_share")
        if share is not None and m.interval:
            largest[(m.where, (m.plan or {}).get("strategy", "?"), m.interval)].append(share)
    if largest:
        chart = svg.Chart(
            "The largest share of one page load any proxy saw",
            "migration interval (s, log)",
            "share of the page's bytes",
            log_x=True,
        )
        for group in sorted({key[:2] for key in largest}):
            series = svg.Series(f"{group[0]}, {group[1]}", [])
            for key, values in largest.items():
                if key[:2] == group:
                    series.points.append((key[2], max(values)))
                    series.labels[key[2]] = f"n={len(values)}"
            chart.series.append(series)
        charts.append(chart)
    return charts


def _observer_table(records: list[Record]) -> str:
    rows = []
    for m in _observed(records):
        observer = m.evidence["observer"]
        for path, view in sorted(observer["proxies"].items()):
            share = view["share_packets"]
            rows.append(
                f"<tr><td>{escape(m.test)}</td><td>{escape(m.where)}</td><td>{path}</td>"
                f"<td>{share['up']:.0%} / {share['down']:.0%}</td>"
                f"<td>{view['longest_stretch']['up']} / {view['longest_stretch']['down']}</td>"
                f"<td>{view['receiver_indices']}</td>"
                f"<td>{view['total_estimate_error']['up']:.1%} / {view['total_estimate_error']['down']:.1%}</td>"
                f"<td>{view['plaintext_hits']}</td>"
                f"<td>{'yes' if observer['any_linkable'] else 'no'}</td>"
                f"<td>{observer['max_page_share'] or 0:.0%}</td></tr>"
            )
    if not rows:
        return "<p class='empty'>No observed runs in these results (pytest/sweep --observe, bench observer).</p>"
    return (
        "<p>From captures on each proxy's tunnel: what the proxy has after decrypting the client's outer "
        "tunnel. The inner WireGuard header (receiver index, counter) is in clear there.</p><table><tr>"
        "<th>test</th><th>backend</th><th>proxy</th><th>share of packets up / down</th>"
        "<th>longest stretch (packets) up / down</th><th>inner sessions seen</th>"
        "<th>error of the total its counters reveal up / down</th><th>marker seen in clear</th>"
        "<th>proxies linkable</th><th>largest share of a page load</th></tr>"
        f"{''.join(rows)}</table>" + "".join(svg.render(c) for c in observer_charts(records))
    )


EVENT_SCENARIO = "path-events"  # harness.measure.eventbench: bench events and scenarios/test_path_events.py


def _event_groups(records: list[Record]) -> dict[tuple[str, str, str], tuple[list, list]]:
    """(event, test, backend) -> (baseline records, migrating records), in repetition order."""
    groups: dict[tuple[str, str, str], tuple[list, list]] = {}
    for record in sorted(_measured(records, EVENT_SCENARIO), key=lambda r: r.repetition):
        event = record.figures.get("event") or "?"
        side = 1 if _migrating(record) else 0
        groups.setdefault((event, record.test, record.where), ([], []))[side].append(record)
    return groups


def _event_table(records: list[Record]) -> str:
    rows = []
    for (event, test, where), (base, mig) in sorted(_event_groups(records).items()):
        proofs = [(str(p.outcome), p.reason) for p in (MigrationEvidence.from_dict(r.evidence).judge() for r in mig)]
        out = summarize([r.figures for r in base], [r.figures for r in mig], proofs)

        def pair(name: str, unit: str = "", out: dict = out) -> str:
            return "".join(f"<td>{_event_figure(out, f'{name}_{side}', unit)}</td>" for side in ("without", "with"))

        survived = "/".join("yes" if out[f"session_survived_{s}"] else "no" for s in ("without", "with"))
        rows.append(
            f"<tr><td>{escape(event)}</td><td>{escape(where)}</td><td>{escape(test)}</td><td>{out['n']}</td>"
            f"{pair('lost_up')}{pair('lost_down')}{pair('stall_ms', ' ms')}{pair('recovery_ms', ' ms')}"
            f"<td>{survived}</td><td>{escape(out['verdict'])}</td>"
            f"<td>{escape(_notes(out['notes']))}</td></tr>"
        )
    if not rows:
        return "<p class='empty'>No path events in these results (comps-harness bench events, test_path_events).</p>"
    return (
        "<p>Each event on path 1, the path a session that does not migrate keeps; with migration: alternate at "
        "0.1 s. Probe 500 packets/s each way; figures from the event's start until 5 s after its end; medians "
        "over the pairs with their distribution-free intervals. The verdict compares the packets lost both ways "
        "(with - without) per pair: more, less, or the same.</p><table><tr><th>event</th><th>backend</th>"
        "<th>test</th><th>pairs</th><th>lost up without</th><th>with</th><th>lost down without</th><th>with</th>"
        "<th>longest stall without</th><th>with</th><th>recovery without</th><th>with</th>"
        "<th>survived without/with</th><th>migration makes it cost</th><th>notes</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _notes(notes: list[str], shown: int = 2) -> str:
    more = len(notes) - shown
    return "; ".join(notes[:shown]) + (f" (and {more} more)" if more > 0 else "")


def _event_figure(out: dict, key: str, unit: str) -> str:
    value, ci = out[key], out[f"{key}_ci"]
    if value is None:
        return "-"
    return f"{value:g}{unit}" + (f" [{ci[0]:g}, {ci[1]:g}]" if ci and out["n"] > 1 else "")


def _per_path(series: list, packets: bool) -> dict[int, list[tuple[float, float]]]:
    """From cumulative samples [[path, packets up, packets down, bytes up, bytes down], ...]: per path, at
    each interval's middle, packets per 0.1 s (delivered both ways) or Mbit/s."""
    lines: dict[int, list[tuple[float, float]]] = {}
    for (t0, rows0), (t1, rows1) in zip(series, series[1:]):
        before = {row[0]: row for row in rows0}
        for path, *now in rows1:
            if path not in before or t1 <= t0:
                continue
            then = before[path][1:]
            if packets:
                value = (now[0] + now[1] - then[0] - then[1]) * 0.1 / (t1 - t0)
            else:
                value = (now[2] + now[3] - then[2] - then[3]) * 8 / (t1 - t0) / 1e6
            lines.setdefault(path, []).append(((t0 + t1) / 2, value))
    return lines


def event_timelines(records: list[Record]) -> list[svg.Chart]:
    """Per event and backend, the first pair: what each path delivered every 0.1 s (up at its proxy's tunnel,
    down at the client's wgnet), in Mbit/s without and with migration and in packets with migration; the
    event as a band, the switches as ticks."""
    charts = []
    for (event, _, where), sides in sorted(_event_groups(records).items()):
        for bucket, packets in ((sides[0], False), (sides[1], False), (sides[1], True)):
            if not bucket:
                continue
            record = bucket[0]
            duration = record.evidence.get("duration_s") or 0.0
            bands = [
                (e["applied_s"], e["ended_s"] if e.get("ended_s") is not None else duration)
                for e in record.evidence.get("events", [])
                if e.get("applied_s") is not None
            ]
            lines = _per_path(record.evidence.get("path_series") or [], packets)
            what = "packets each path delivered per 0.1 s" if packets else "what each path delivered"
            charts.append(
                svg.Chart(
                    f"{event}, {record.condition} ({where}): {what}",
                    "seconds since the run started",
                    "packets per 0.1 s (up + down)" if packets else "Mbit/s delivered (up + down)",
                    series=[svg.Series(f"path {path}", points) for path, points in sorted(lines.items())],
                    markers=record.switch_times_s(),
                    x_bands=bands,
                    x_band_label=event,
                )
            )
    return charts


PLOTS = (
    ("What migration costs", cost_vs_interval),
    ("Throughput", throughput_vs_interval),
    ("Throughput over time", throughput_time_series),
    ("Page loads", pageload_distributions),
    ("Loss around switches", loss_per_switch),
    ("Adherence", adherence_vs_interval),
    ("Bytes per path", split_ratio),
    ("Switch timing", timing_error),
    ("Degraded path", degraded_runs),
    ("Path events over time", event_timelines),
)


def charts_svg(records: list[Record]) -> list[str]:
    """The report's plots that these records have data for, as SVG (pytest-html extras use this)."""
    return [svg.render(chart) for _, plot in PLOTS for chart in plot(records)]


# -- page -----------------------------------------------------------------------------------
def verdict_rows(records: list[Record]) -> list[TestRecord]:
    """One row per test (the last outcome recorded for it wins: a teardown error overrides a pass)."""
    rows: dict[str, TestRecord] = {}
    for record in of_kind(records, TestRecord):
        previous = rows.get(record.test)
        if previous is None or record.outcome != "passed":
            rows[record.test] = record
    return sorted(rows.values(), key=lambda r: (r.scenario, str(r.where), r.interval or 0, str(r.mechanism), r.test))


def _interval_text(interval: float | None) -> str:
    return "" if interval is None else f"{interval:g} s"


WHY_INLINE = 140  # a longer reason goes into a details element, so its column keeps its width


def _why(text: str) -> str:
    if len(text) <= WHY_INLINE:
        return escape(text)
    return f"<details><summary>{escape(text[: WHY_INLINE - 40])}…</summary>{escape(text)}</details>"


def _outcome_cell(outcome: str, expects_red: bool) -> str:
    """A self-check that breaks its check on purpose passes when the check caught it: shown as caught."""
    if expects_red and outcome == "passed":
        return "<td class='caught'>caught (expected red)</td>"
    if expects_red and outcome == "failed":
        return "<td class='failed'>failed: not caught</td>"
    return f"<td class='{outcome}'>{outcome}</td>"


def _red_expected(records: list[Record]) -> set[str]:
    """The names (as migration records give them) of the tests that break their check on purpose."""
    return {r.test.split("::")[-1] for r in of_kind(records, TestRecord) if r.expects_red}


def _verdict_table(records: list[Record]) -> str:
    rows = verdict_rows(records)
    if not rows:
        return "<p class='empty'>No test outcomes in these results.</p>"
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts["caught (expected red)" if row.expects_red and row.outcome == "passed" else row.outcome] += 1
    summary = ", ".join(f"<span class='{o.split()[0]}'>{n} {o}</span>" for o, n in sorted(counts.items()))
    body = "".join(
        f"<tr><td>{escape(r.scenario)}</td><td>{escape(r.params or r.test.partition('[')[2].rstrip(']'))}</td>"
        f"<td>{escape(str(r.where or ''))}</td><td>{_interval_text(r.interval)}</td>"
        f"<td>{escape(str(r.mechanism or ''))}</td>{_outcome_cell(r.outcome, r.expects_red)}"
        f"<td class='why'>{_why(r.reason or '')}</td></tr>"
        for r in rows
    )
    return (
        f"<p>{summary}</p><table><tr><th>scenario</th><th>parameters</th><th>backend</th><th>interval</th>"
        f"<th>mechanism</th><th>verdict</th><th>reason</th></tr>{body}</table>"
    )


def _migration_table(records: list[Record]) -> str:
    """The proof of every migration test: switches done vs planned, bytes per path, endpoint moves."""
    migrations = of_kind(records, MigrationRecord)
    if not migrations:
        return "<p class='empty'>No migration proofs in these results.</p>"
    red = _red_expected(records)
    body = []
    for m in sorted(migrations, key=lambda m: (m.where, m.interval or 0, m.test)):
        evidence = m.evidence
        split = ", ".join(
            f"path {path}: {share:.0%}" for path, share in sorted(evidence.get("split_ratio", {}).items())
        )
        verdict = "passed" if not m.proof_failures else "failed"
        cell = _outcome_cell(verdict, m.test in red)
        adherence = (
            f"up {evidence['adherence_up']:.2f}, down {evidence['adherence_down']:.2f}"
            if evidence.get("adherence_up") is not None and evidence.get("adherence_down") is not None
            else ("" if evidence.get("adherence") is None else f"{evidence['adherence']:.2f}")
        )
        body.append(
            f"<tr><td>{escape(m.test)}</td><td>{escape(m.where)}</td><td>{_interval_text(m.interval)}</td>"
            f"<td>{len(evidence.get('switches', []))} / {evidence.get('planned_switches', '?')}</td>"
            f"<td>{escape(split)}</td><td>{escape(adherence)}</td><td>{evidence.get('endpoint_changes', '?')}</td>"
            f"<td>{evidence.get('releases', evidence.get('guard_releases', 0))} "
            f"({escape(str(evidence.get('sticky_source', '?')))})</td>"
            f"{cell}<td class='why'>{_why('; '.join(map(str, m.proof_failures)))}</td></tr>"
        )
    return (
        "<table><tr><th>test</th><th>backend</th><th>interval</th><th>switches done / planned</th>"
        "<th>bytes per path</th><th>adherence</th><th>endpoint moves seen by the server</th>"
        "<th>sticky-source releases</th>"
        f"<th>proof</th><th>why not</th></tr>{''.join(body)}</table>"
    )


def _machine(env: dict) -> str:
    vm = env.get("vm")
    if not vm:
        return "the host itself (no VM)"
    if vm.get("kind") == "uml":
        return (
            "a User-mode Linux guest (comps-harness vm --guest uml: kernel code at native speed, one CPU, "
            f"process creation slow); its kernel {vm.get('kernel_source', vm.get('kernel', '?'))}"
        )
    speed = (
        "software emulation: ~50x slower, timings are the emulator's" if vm.get("accel") == "tcg" else "native speed"
    )
    return (
        f"a guest (comps-harness vm) under {str(vm.get('accel', '?')).upper()} ({speed}); its kernel "
        f"{vm.get('kernel_source', vm.get('kernel', '?'))}"
    )


def _environment(records: list[Record]) -> str:
    runs = of_kind(records, RunRecord)
    env = next((r.environment for r in runs if r.environment), {})
    measured = of_kind(records, MeasurementRecord) + of_kind(records, MigrationRecord)
    wireguard = sorted({r.wireguard for r in measured if r.wireguard})
    rows = [
        ("run id", ", ".join(sorted({r.run_id for r in records}))),
        ("backends", ", ".join(sorted({r.where for r in measured if r.where}))),
        ("kernel", env.get("kernel", "?")),
        ("OS", env.get("os", "?")),
        ("CPU", env.get("cpu_model", "?")),
        ("cores", env.get("cores", "?")),
        ("commit", env.get("commit", "?")),
        ("WireGuard", ", ".join(wireguard) or "?"),
        ("machine", _machine(env)),
        ("qdiscs", ", ".join(env["qdiscs"]) if env.get("qdiscs") is not None else "not probed"),
        *((f"{tool} version", version) for tool, version in sorted(env.get("versions", {}).items())),
    ]
    table = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    commands = "".join(
        f"<pre>cd {shlex.quote(r.cwd)} &amp;&amp; {escape(shlex.join(r.reproduce or r.argv))}</pre>"
        for r in runs
        if r.reproduce or r.argv
    )
    shards = _shard_table(records)
    return f"<table>{table}</table>{shards}<h3>Reproduce</h3>{commands or '<p class=empty>no run record</p>'}"


def _shard_table(records: list[Record]) -> str:
    """A merged sweep (comps-harness merge): each shard, the machine it ran on, its tests and its time span."""
    runs = [r for r in of_kind(records, RunRecord) if r.sweep]
    if len({r.shard for r in runs}) < 2:
        return ""
    times: dict[str, list[float]] = defaultdict(list)
    for record in records:
        times[record.run_id].append(record.time)
    rows = []
    for run in sorted(runs, key=lambda r: int((r.shard or "1/1").split("/")[0])):
        env, span = run.environment, times.get(run.run_id) or [0.0]
        machine = (
            f"host {env.get('host', '?')} ({env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, "
            f"kernel {env.get('kernel', '?')})"
        )
        rows.append(
            f"<tr><td>{escape(run.shard)}</td><td>{escape(run.run_id)}</td><td>{escape(machine)}</td>"
            f"<td>{len(run.sweep.get('tests') or [])}</td><td>{max(span) - min(span):.0f} s</td></tr>"
        )
    sweep_ids = ", ".join(sorted({r.sweep_id for r in runs}))
    return (
        f"<h3>Shards of sweep {escape(sweep_ids)}</h3><p>Merged from shards (comps-harness merge): every test, "
        "with all its pairs, ran on one shard's machine; no ratio pairs figures of two machines.</p>"
        "<table><tr><th>shard</th><th>run id</th><th>machine</th><th>tests</th><th>time span</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _adherence_text(proof: Proof) -> str:
    def share(value: float | None) -> str:
        return "?" if value is None else f"{value:.2f}"

    return f"up {share(proof.adherence_up)}, down {share(proof.adherence_down)}"


def _cost_table(records: list[Record]) -> str:
    rows = [row for row in cost_rows(records, run_tolerances(records)) if "-degraded" not in row["condition"]]
    if not rows:
        return "<p class='empty'>No measurements with a baseline in these results.</p>"
    body = []
    for row in sorted(rows, key=lambda r: (r["scenario"], r["backend"], r["interval"] or 0, r["metric"])):
        v, proof = row["verdict"], row["proof"]
        medians = f"{v['median'] / v['scale']:.4g} vs {v['baseline_median'] / v['scale']:.4g} {v['unit']}"
        n_text = f"{v['n']} ({'one pair: no interval' if v['n'] == 1 else row['stopped']})"
        lead = (
            f"<tr><td>{escape(row['scenario'])}</td><td>{escape(row['backend'])}</td>"
            f"<td>{_interval_text(row['interval'])}</td><td>{escape(row['metric'])}</td>"
        )
        adherence = f"<td>{_adherence_text(proof)}</td>"
        if proof.outcome != ProofOutcome.PROVEN:  # no cost: the migration measured did not happen as scheduled
            body.append(
                f"{lead}<td colspan='2' class='unproven why'>{_why(f'{proof.outcome}: {proof.reason}')}</td>"
                f"<td>{n_text}</td><td>{medians}</td>{adherence}<td>{escape(v['rule'])}</td>"
                f"<td class='{'failed' if proof.outcome == ProofOutcome.FAILED else 'unproven'}'>"
                f"no cost: {proof.outcome}</td></tr>"
            )
            continue
        interval = "" if v["low"] is None else f"[{v['low']:.3f}, {v['high']:.3f}]"
        if not v["judged"]:
            verdict, css = "not judged at this interval", "unjudged"
        elif not v["ok"]:
            verdict, css = "significantly beyond tolerance", "failed"
        elif v.get("decision", "within") == "within":  # results written before decisions: as they read then
            verdict, css = "within tolerance", "passed"
        else:  # the interval straddles the tolerance: no finding, it needs more pairs
            verdict, css = (
                ("undecided: within at the point, needs more pairs", "unclear")
                if point_within(v)
                else ("beyond tolerance, not significantly", "unclear")
            )
        body.append(
            f"{lead}<td>{v['ratio']:.3f}x</td><td>{interval}</td><td>{n_text}</td><td>{medians}</td>{adherence}"
            f"<td>{escape(v['rule'])}</td><td class='{css}'>{verdict}</td></tr>"
        )
    return (
        "<p>Each row: the ratio with migration / without (paired repetitions, measured back to back), its "
        "95 % interval and n. A verdict fails only when the whole interval lies beyond the tolerance. A ratio "
        "is a cost only when every migrating repetition's own evidence proves that the migration happened as "
        "scheduled, under that load; otherwise the row says <i>unproven</i> (the session followed the schedule "
        "less closely than --min-adherence, the machine could not keep it, or the interval is below "
        "--verdict-from-interval) or <i>failed</i> (a broken path), with the proof's reason, and shows no ratio. "
        "Adherence: the share of the session's packets on the path the schedule named, per direction, from the "
        "client's own counters; the lowest of the repetitions. Beside n, why the row has that many pairs: fixed "
        "pairs (--min-pairs), or with --max-pairs decided (the whole interval within or beyond), max pairs, "
        "budget (its share of --budget was spent), stopped early, unproven: an undecided row needs more time, it "
        "is no finding; sequential intervals are the group-sequential design's (docs/measurements.md)."
        "</p>"
        "<table><tr><th>scenario</th><th>backend</th><th>interval</th><th>metric</th><th>effect</th>"
        "<th>95 % interval</th><th>n</th><th>medians</th><th>adherence (min)</th><th>rule</th><th>verdict</th></tr>"
        f"{''.join(body)}</table>"
    )


def build(records: list[Record], title: str = "comps-harness report") -> str:
    sections = [
        f"<h2>Environment</h2>{_environment(records)}",
        f"<h2>What migration costs at each interval</h2>{_cost_table(records)}",
        f"<h2>Path profiles</h2>{_profile_table(records)}",
        f"<h2>Verdicts</h2>{_verdict_table(records)}",
        f"<h2>Proof of migration</h2>{_migration_table(records)}",
        f"<h2>What each proxy sees</h2>{_observer_table(records)}",
        f"<h2>Path events</h2>{_event_table(records)}",
    ]
    for heading, plot in PLOTS:
        charts = plot(records)
        sections.append(
            f"<h2>{escape(heading)}</h2>"
            + ("".join(svg.render(c) for c in charts) or "<p class='empty'>No such measurements in these results.</p>")
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def write(results_path: Path, out: Path | None = None, records: list[Record] | None = None) -> Path:
    """Rebuild the report of a results file (default: report.html beside it), or of its `records` as read."""
    records = load(results_path) if records is None else records
    out = out or results_path.with_name("report.html")
    run_ids = sorted({r.run_id for r in records})
    out.write_text(build(records, title=f"comps-harness report: {', '.join(run_ids) or results_path}"))
    return out
