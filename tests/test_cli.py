"""The command line's own checks: bad input is refused before anything starts (no network needed)."""

from __future__ import annotations

import pytest

from harness.cli import REPO, main
from harness.plugin import estimate_left

REPO_REPORTS = REPO / "reports"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["sweep", "--intervals", "0"], "--intervals must be a finite number above 0"),
        (["sweep", "--intervals", "nan"], "--intervals must be a finite number above 0"),
        (["sweep", "--intervals", "0.1,,1"], "--intervals '0.1,,1' has an empty item"),
        (["sweep", "--intervals", "1e9"], "--intervals 1e9 is above the maximum"),
        (["sweep", "--backend", "vmware"], "--backend 'vmware' is unknown"),
        (["sweep", "--repeat", "0"], "--min-pairs 0 must be between 1 and 1000"),
        (["sweep", "--min-pairs", "4", "--max-pairs", "3"], "--max-pairs 3: below --min-pairs 4"),
        (["sweep", "--paths", "abc"], "--paths 'abc' is not a whole number"),
        (["sweep", "--switch-tolerance", "abc"], "--switch-tolerance 'abc' is not a number"),
        (["sweep", "--weights", "0.7,0.3"], "--weights applies to --strategy weighted-random only"),
        (["sweep", "--fixed", "0.5:2"], "--fixed applies to --strategy fixed only"),
        (["sweep", "--switch-mechanism", "pigeon"], "choose netlink, script or both"),
        (["sweep", "--download-sizes", "5000"], "--download-sizes 5000 is above the maximum"),
        (["clean", "--run-id", ""], "--run-id '' may hold only letters, digits and dashes"),
        (["compare", "/nonexistent/a.jsonl", "/nonexistent/b.jsonl"], "is not a results file"),
        (["compare", "a", "b", "--tolerance", "2"], "must be at most 1"),
        (["report", "/nonexistent/results.jsonl"], "is not a results file"),
        (["bench", "migration", "--intervals", "0.1,0.1"], "repeats a value"),
        (
            ["sweep", "--strategy", "weighted-random", "--weights", "-1,2"],
            "--weights must be a finite number 0 or more",
        ),
        # constraints across options, once pytest's own usage errors (with a second, misleading line)
        (["sweep", "--fault", "forward-drop@1:7"], "--fault forward-drop@1:7 names path 7, but --paths 2"),
        (["sweep", "--strategy", "fixed", "--fixed", "0:3"], "--fixed names path 3, but --paths 2"),
        (["sweep", "--intervals", "0.1", "--jitter", "5"], "--jitter 5 s must stay below half the interval"),
        (["sweep", "--intervals", "1", "--duration", "1"], "a migration needs at least 2"),
        (["vm", "--accel", "fast", "--", "true"], "--accel"),
    ],
)
def test_bad_input_is_one_clear_error(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(REPO_REPORTS.iterdir()) if REPO_REPORTS.is_dir() else set()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "reports").exists()
    after = set(REPO_REPORTS.iterdir()) if REPO_REPORTS.is_dir() else set()
    assert after == before, f"a run that never started left {sorted(after - before)}"


def test_unknown_options_are_refused_except_for_the_sweep(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "x.jsonl", "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_progress_estimate_uses_the_durations_of_the_same_scenario():
    assert estimate_left(["a", "b"], {}) is None
    assert estimate_left(["a", "a", "b"], {"a": [10.0, 20.0], "c": [3.0]}) == pytest.approx(15 + 15 + 11)


def test_a_sweep_into_a_non_empty_directory_is_refused(capsys, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.jsonl").write_text("{}\n")
    assert main(["sweep", "--out", str(tmp_path / "old")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not empty" in err[0] and "--force" in err[0], err


def test_intervals_take_units():
    from harness.model.settings import parse_intervals

    assert parse_intervals("10ms,0.1s,1") == (0.01, 0.1, 1.0)
