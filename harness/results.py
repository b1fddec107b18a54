"""Results as data: one JSON object per line, appended (and flushed) as each result is produced.

An interrupted run keeps everything it measured; reports are rebuilt from this file alone.
No record ever holds a private key: records are built from measurements and public settings.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from harness import prereq

RESULTS_FILE = "results.jsonl"


class ResultsWriter:
    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = (run_dir / RESULTS_FILE).absolute()  # tests may change the working directory
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._environment: dict | None = None
        self._by_test: dict[str, list[dict]] = {}

    @property
    def environment(self) -> dict:
        if self._environment is None:
            self._environment = prereq.environment()
        return self._environment

    def record(self, kind: str, **fields: Any) -> dict:
        """Append one record and return it."""
        record = {"kind": kind, "run_id": self.run_id, "time": round(time.time(), 3), **fields,
                  "environment": self.environment}
        line = json.dumps(record, sort_keys=True, default=str)
        with self._lock:
            with self.path.open("a") as out:
                out.write(line + "\n")
            if kind == "measurement" and fields.get("test"):
                self._by_test.setdefault(fields["test"], []).append(record)
        return record

    def measurement(self, scenario: str, test: str, condition: str, repetition: int, network, result) -> dict:
        """One measurement (one condition, one repetition of a scenario; `result` a measure.ConditionResult)."""
        plan = result.plan
        return self.record("measurement", scenario=scenario, test=test, condition=condition, repetition=repetition,
                           backend=network.backend, wireguard=network.wireguard_impl,
                           topology=network.topology.describe(), strategy=plan.strategy,
                           interval=None if plan.strategy == "none" else plan.interval, mechanism=plan.mechanism,
                           seed=plan.seed, figures=result.figures, evidence=result.evidence.to_dict())

    def measurements_of(self, test: str) -> list[dict]:
        """The measurement records one test (by name) wrote in this session."""
        with self._lock:
            return list(self._by_test.get(test, []))


def load(path: Path) -> list[dict]:
    """Every record of a results file (a truncated last line, from a killed run, is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
