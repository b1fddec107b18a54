"""The command line's own checks: bad input is refused before anything starts (no network needed)."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.plugin import estimate_left


@pytest.mark.parametrize("argv, expected", [
    (["sweep", "--intervals", "0"], "interval must be a finite number above 0"),
    (["sweep", "--intervals", "nan"], "interval must be a finite number above 0"),
    (["sweep", "--backend", "vmware"], "unknown backend 'vmware'"),
    (["sweep", "--repeat", "0"], "--repeat must be at least 1"),
    (["sweep", "--out", "reports/bad name"], "may hold only letters, digits and dashes"),
    (["compare", "/nonexistent/a.jsonl", "/nonexistent/b.jsonl"], "is not a results file"),
    (["compare", "a", "b", "--tolerance", "2"], "must be at most 1"),
    (["report", "/nonexistent/results.jsonl"], "is not a results file"),
    (["bench", "migration", "--intervals", "0.1,0.1"], "repeats a value"),
])
def test_bad_input_is_one_clear_error(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "reports").exists()


def test_unknown_options_are_refused_except_for_the_sweep(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "x.jsonl", "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_progress_estimate_uses_the_durations_of_the_same_scenario():
    assert estimate_left(["a", "b"], {}) is None
    assert estimate_left(["a", "a", "b"], {"a": [10.0, 20.0], "c": [3.0]}) == pytest.approx(15 + 15 + 11)
