"""A golden report: one stored results file gives the same sections, rows and figures, whatever moves inside.

`tests/data/results-sweep.jsonl.gz` is a real run's results (a fresh-clone `.ci/run`, both backends);
`tests/data/report-golden.json` holds its report's section titles, every table row and every chart
title. A refactor that changes what the report says fails here; a change meant to alter the report
regenerates the golden file (see `golden_of` below) in the same commit, where the diff shows it.
"""

from __future__ import annotations

import gzip
import json
from html.parser import HTMLParser
from pathlib import Path

from harness.model.records import load
from harness.reporting import report

DATA = Path(__file__).resolve().parent / "data"


class Outline(HTMLParser):
    """Headings, table rows (cell texts) and chart titles, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[list[str]] = []
        self._tag: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("h1", "h2", "h3", "title"):
            self._tag, self._cell = tag, []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._tag, self._cell = "cell", []

    def handle_endtag(self, tag: str) -> None:
        text = " ".join("".join(self._cell).split())
        if tag in ("h1", "h2", "h3", "title") and self._tag == tag:
            self.items.append([tag, text])
            self._tag = None
        elif tag in ("td", "th") and self._tag == "cell" and self._row is not None:
            self._row.append(text)
            self._tag = None
        elif tag == "tr" and self._row is not None:
            self.items.append(["row", *self._row])
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._tag is not None:
            self._cell.append(data)


def golden_of(results: Path) -> list[list[str]]:
    outline = Outline()
    outline.feed(report.build(load(results)))
    return outline.items


def test_the_report_of_a_stored_run_says_what_it_said(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_bytes(gzip.decompress((DATA / "results-sweep.jsonl.gz").read_bytes()))
    expected = json.loads((DATA / "report-golden.json").read_text())
    got = golden_of(results)
    assert len(got) == len(expected), f"{len(got)} headings and rows, the golden report has {len(expected)}"
    for number, (mine, theirs) in enumerate(zip(got, expected)):
        assert mine == theirs, f"item {number} differs:\n now:    {mine}\n golden: {theirs}"
