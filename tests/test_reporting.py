"""Report building, SVG charts and run-to-run comparison (pure: built from records, no network)."""

from __future__ import annotations

import json
import time

import pytest

from harness.model.records import load, parse
from harness.reporting import compare as runcompare
from harness.reporting import report, svg


def measurement(scenario, condition, interval, figures, *, backend="netns", mechanism="netlink", rep=0):
    evidence = {
        "started_monotonic": 100.0,
        "switches": [{"actual_s": 0.5}, {"actual_s": 1.0}],
        "split_ratio": {"1": 0.5, "2": 0.5},
        "timing_error_ms": {"median": 0.5, "p99": 1.2},
    }
    return {
        "kind": "measurement",
        "run_id": "ch-test",
        "scenario": scenario,
        "condition": condition,
        "test": f"test_{scenario}[{backend}-alternate-i0.1s]",
        "interval": interval,
        "backend": backend,
        "mechanism": mechanism,
        "repetition": rep,
        "wireguard": "wireguard-go",
        "figures": figures,
        "evidence": evidence,
        "environment": {"kernel": "6.x", "cores": 2, "versions": {"iperf3": "3.12"}},
    }


def throughput(bps):
    run = {"bits_per_second": bps, "series": [[0.1, bps], [0.2, bps]], "started_monotonic": 100.1}
    return {"tcp_up": run, "tcp_down": run, "udp": run}


def records(scale=1.0, reps=3):
    return [parse(data) for data in raw_records(scale, reps)]


def raw_records(scale=1.0, reps=3):
    out = [{"kind": "run", "run_id": "ch-test", "argv": ["python", "-m", "pytest", "-k", "migration"], "cwd": "/x"}]
    for rep in range(reps):
        out.append(measurement("throughput", "baseline", None, throughput(300e6 + rep), rep=rep))
        out.append(measurement("throughput", "alternate-0.1s", 0.1, throughput(scale * 250e6 + rep), rep=rep))
        loads = [{"url": "http://o/heavy.html", "ok": True, "load_ms": 200 / scale + rep}]
        out.append(measurement("pageload", "baseline", None, {"loads": loads}, rep=rep))
        out.append(measurement("pageload", "alternate-0.1s", 0.1, {"loads": loads}, rep=rep))
        loss = {"lost_per_switch_mean": 0.0, "lost_per_switch": {"max": 0}}
        out.append(measurement("switch_loss", "alternate-0.1s", 0.1, {"loss": loss}, rep=rep))
    out.append(
        {
            "kind": "migration",
            "run_id": "ch-test",
            "test": "test_migration_moves_the_traffic[netns-x]",
            "backend": "netns",
            "plan": {"interval_s": 0.1},
            "proof_failures": ["path 2 carried nothing"],
            "evidence": {
                "switches": [{"actual_s": 0.1}],
                "planned_switches": 20,
                "split_ratio": {"1": 1.0},
                "releases": 17,
                "sticky_source": "client",
            },
        }
    )
    out.append(
        {
            "kind": "test",
            "run_id": "ch-test",
            "test": "scenarios/test_throughput.py::t[netns-alternate-0.1s]",
            "scenario": "test_throughput",
            "outcome": "failed",
            "reason": "AssertionError: tcp_up: 0.833 <x>",
            "backend": "netns",
            "interval": 0.1,
            "mechanism": "netlink",
        }
    )
    return out


def test_report_is_standalone_and_holds_every_section():
    page = report.build(records())
    assert page.startswith("<!doctype html>")
    assert "http://" not in page.replace("http://o/", "").replace("http://www.w3.org/2000/svg", "")
    assert "<script" not in page and "<link" not in page  # nothing to fetch: opens offline
    for heading in (
        "Verdicts",
        "Proof of migration",
        "Throughput",
        "Throughput over time",
        "Page loads",
        "Loss around switches",
        "Bytes per path",
        "Switch timing",
        "Environment",
        "Reproduce",
    ):
        assert f">{heading}<" in page
    assert page.count("<svg") >= 6
    assert "AssertionError: tcp_up: 0.833 &lt;x&gt;" in page  # reasons are escaped
    assert "python -m pytest -k migration" in page
    assert "1 / 20" in page and "path 2 carried nothing" in page  # the migration proof reaches the report
    assert "17 (client)" in page  # sticky-source releases and the mode, labelled


def test_verdict_rows_keep_the_worst_outcome_of_a_test():
    base = {"kind": "test", "test": "t", "scenario": "s", "reason": ""}
    rows = report.verdict_rows(
        [parse({**base, "outcome": "passed"}), parse({**base, "outcome": "failed", "reason": "teardown"})]
    )
    assert [r.outcome for r in rows] == ["failed"]


def test_report_rebuilds_from_the_results_file_alone(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in raw_records()) + '{"truncated')
    assert len(load(path)) == len(records())
    out = report.write(path)
    assert out == tmp_path / "report.html" and "<svg" in out.read_text()


def test_a_thousand_records_render_quickly():
    many = records(reps=200)[:1000]
    started = time.monotonic()
    report.build(many)
    assert time.monotonic() - started < 5  # the bound, on the slowest machine we run on


def test_chart_without_data_says_so_and_log_axis_with_one_point_works():
    assert "no data" in svg.render(svg.Chart("empty", "x", "y"))
    one = svg.render(svg.Chart("one", "x", "y", log_x=True, series=[svg.Series("s", [(1.0, 2.0)])]))
    assert one.startswith("<svg") and "<circle" in one


def test_compare_flags_a_regression_and_not_noise():
    same = runcompare.compare(records(), records())
    assert same and not any(row["regressed"] for row in same)
    worse = runcompare.compare(records(), records(scale=0.5))
    flagged = {(row["scenario"], row["metric"]) for row in worse if row["regressed"]}
    assert ("throughput", "tcp_up bits/s") in flagged  # halved throughput
    assert ("pageload", "heavy.html load ms") in flagged  # doubled load time
    assert "REGRESSED" in runcompare.describe(next(r for r in worse if r["regressed"]))


def test_compare_rejects_a_bad_tolerance():
    with pytest.raises(ValueError):
        runcompare.compare(records(), records(), tolerance=1.5)


def test_compare_needs_three_values_a_side_and_keeps_intervals_apart():
    few = runcompare.compare(records(reps=2), records(scale=0.5, reps=2))
    assert few and all(row["ratio"] is None and "not enough data" in row["note"] for row in few)
    assert not any(row["regressed"] for row in few)
    assert "no verdict" in runcompare.describe(few[0]) and "inf" not in runcompare.describe(few[0])
    conditions = {row["condition"] for row in runcompare.compare(records(), records())}
    assert all("@" in condition for condition in conditions)  # a baseline is tied to its test (interval)
    same = runcompare.compare(records(reps=5), records(reps=5))
    widths = [row["ci"][1] - row["ci"][0] for row in same if row["ci"]]
    assert widths and max(widths) < 0.1  # a run against itself: narrow intervals around 1


def test_the_environment_says_whether_a_vm_ran_it_and_which_qdiscs_there_were():
    host = records()
    assert "the host itself (no VM)" in report.build(host) and "not probed" in report.build(host)
    guest = raw_records()
    guest[0]["environment"] = {
        "kernel": "6.1.0-56-amd64",
        "qdiscs": ["netem", "tbf"],
        "vm": {
            "accel": "tcg",
            "kernel": "6.1.0-56-amd64",
            "kernel_source": "6.1.0-56-amd64 (Debian package linux-image-6.1.0-56-amd64)",
        },
    }
    page = report.build([parse(data) for data in guest])
    assert "under TCG (software emulation: ~50x slower" in page and "netem, tbf" in page


def test_path_profile_checks_get_their_own_table_and_stay_out_of_the_plots():
    data = raw_records()
    check = {
        "profile": "wan",
        "failures": ["path 2 up: 30 Mbit/s, spec 50 Mbit/s (±10 %)"],
        "paths": {
            "1": {
                "spec": {"rtt_ms": 20, "rate_mbit": 50, "rate_mbit_down": 50, "loss": 0.0},
                "rtt_ms": 20.4,
                "rate_mbit": 49.5,
                "rate_mbit_down": 49.0,
                "loss": 0.0,
                "loss_interval": [0.0, 0.037],
            },
            "2": {
                "spec": {"rtt_ms": 20, "rate_mbit": 50, "rate_mbit_down": 50, "loss": 0.0},
                "rtt_ms": 20.5,
                "rate_mbit": 30.0,
                "rate_mbit_down": 49.0,
                "loss": 0.0,
                "loss_interval": [0.0, 0.037],
            },
        },
    }
    data.append(
        {
            "kind": "measurement",
            "run_id": "ch-test",
            "scenario": "path_profile",
            "condition": "wan",
            "backend": "netns",
            "profile": "wan",
            "figures": check,
        }
    )
    page = report.build([parse(item) for item in data])
    assert ">Path profiles<" in page and "20.4 (spec 20) ms" in page and "30 (spec 50) Mbit/s" in page
    assert "within spec" in page and "path 2 up: 30 Mbit/s" in page
    assert "No path profile in these results" in report.build(records())


def test_the_report_judges_with_the_settings_the_run_recorded():
    """Tolerances come from the run record's typed settings, never from option text re-read by the report."""
    from dataclasses import replace

    from harness import options
    from harness.model.records import RunRecord
    from harness.model.settings import Settings, Tolerances, recorded

    # throughput 250/300 = 0.83x: red at the default 0.9, green at 0.8
    strict, lenient = records(), records()
    lenient[0] = replace(lenient[0], settings=recorded(Settings(tolerances=Tolerances(throughput=0.8))))
    verdicts = {
        name: [
            r["verdict"]["ok"] for r in report.cost_rows(recs, report.run_tolerances(recs)) if r["metric"] == "tcp_up"
        ]
        for name, recs in (("default", strict), ("recorded 0.8", lenient))
    }
    assert verdicts == {"default": [False], "recorded 0.8": [True]}, verdicts
    # a file written before settings were recorded: its option text, parsed by the options table
    old = records()
    old[0] = replace(old[0], options={"throughput_tolerance": "0.8"})
    recovered = options.with_recorded_settings(old)
    assert isinstance(recovered[0], RunRecord) and report.run_tolerances(recovered).throughput == 0.8
    assert report.run_tolerances(old).throughput == Tolerances().throughput  # not re-derived from text


def _evidence(down_share: float) -> dict:
    from test_proof import evidence  # the proof tests' evidence: 4 switches, healthy delivery on both paths

    good = [(1, 1.0, 100), (2, 0.95, 100), (1, 0.9, 100), (2, 1.0, 100)]
    down = [(1, 1.0, 100), (2, down_share, 100), (1, 1.0, 100), (2, down_share, 100)]
    return evidence(windows_up=good, windows_down=down).to_dict()


def test_a_cost_row_stands_only_on_proven_migrations():
    """Proven repetitions give a ratio; one that followed less closely than --min-adherence makes the row
    'unproven', with the proof's reason and no ratio, and keeps it out of the cost chart."""
    proven, unproven = raw_records(), raw_records()
    for data in proven:
        if data["kind"] == "measurement" and data["interval"]:
            data["evidence"] = _evidence(0.95)
    for data in unproven:
        if data["kind"] == "measurement" and data["interval"]:
            data["evidence"] = _evidence(0.45 if data["repetition"] == 1 else 0.95)
    rows = {
        name: {r["metric"]: r["proof"] for r in report.cost_rows(recs, report.run_tolerances(recs))}
        for name, recs in (("proven", [parse(d) for d in proven]), ("unproven", [parse(d) for d in unproven]))
    }
    assert {str(p.outcome) for p in rows["proven"].values()} == {"proven"}
    tcp = rows["unproven"]["tcp_up"]
    assert (str(tcp.outcome), tcp.reason) == ("unproven", "repetition 2 of 3: path 2 adherence down 0.45 < 0.6")
    assert tcp.adherence_down == pytest.approx(0.725)
    page = report.build([parse(d) for d in unproven])
    assert "unproven: repetition 2 of 3: path 2 adherence down 0.45 &lt; 0.6" in page
    assert "no cost: unproven" in page and "up 0.96, down 0.72" in page
    charts = report.cost_vs_interval([parse(d) for d in unproven])
    assert all(not series.points for chart in charts for series in chart.series)
    assert "within tolerance" in report.build([parse(d) for d in proven]) or "beyond tolerance" in report.build(
        [parse(d) for d in proven]
    )
