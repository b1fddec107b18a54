"""Results as data: one typed record (harness.model.records) per line, appended and flushed as produced.

An interrupted run keeps everything it measured; reports are rebuilt from this file alone. The
file and its directory are created with the first record, after the run record, so a run that
measures nothing (unit tests, --collect-only) writes nothing. No record holds a private key.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from harness.model.metrics import Scenario
from harness.model.records import MeasurementRecord, MigrationRecord, Record, RunRecord
from harness.vm import facts

RESULTS_FILE = "results.jsonl"


class ResultsWriter:
    def __init__(
        self, run_dir: Path, run_id: str, *, run: dict | None = None, sweep_id: str | None = None, shard: str = "1/1"
    ) -> None:
        self.run_id = run_id
        self.stamp = {"sweep_id": sweep_id or run_id, "shard": shard}  # on every record
        self.path = (run_dir / RESULTS_FILE).absolute()  # tests may change the working directory
        self._run = run or {"argv": list(sys.argv), "cwd": str(Path.cwd())}
        self._lock = threading.Lock()
        self._started = False
        self._by_test: dict[str, list[MeasurementRecord]] = {}

    @property
    def written(self) -> bool:
        return self._started

    def _now(self) -> float:
        return round(time.time(), 3)

    def add_run_fields(self, **fields) -> None:
        """More of the run record (the sweep's tests, known once collected), before the first record."""
        if self._started:
            raise RuntimeError("the run record is written already")
        self._run.update(fields)

    def write(self, record: Record) -> Record:
        """Append one record (the run record goes first, with the first one), stamped with the sweep and shard."""
        record = replace(record, **self.stamp)
        with self._lock:
            if not self._started:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                head = RunRecord(
                    run_id=self.run_id, time=self._now(), environment=facts.environment(), **self.stamp, **self._run
                )
                with self.path.open("a") as out:
                    out.write(head.to_json() + "\n")
                self._started = True
            with self.path.open("a") as out:
                out.write(record.to_json() + "\n")
            if isinstance(record, MeasurementRecord) and record.test:
                self._by_test.setdefault(record.test, []).append(record)
        return record

    def measurement(
        self, scenario: str, test: str, condition: str, repetition: int, network, result, proof=None
    ) -> Record:
        """One measurement (one condition, one repetition of a scenario; `result` a ConditionResult; `proof`
        the Proof of a migrating repetition's evidence)."""
        plan = result.plan
        return self.write(
            MeasurementRecord(
                run_id=self.run_id,
                time=self._now(),
                scenario=scenario,
                test=test,
                condition=condition,
                repetition=repetition,
                backend=network.backend,
                profile=network.profile,
                wireguard=network.wireguard_impl,
                topology=network.topology.describe(),
                strategy=plan.strategy,
                interval=None if plan.strategy == "none" else plan.interval,
                mechanism=plan.mechanism,
                seed=plan.seed,
                figures=result.figures,
                evidence=result.evidence.to_dict(),
                proof=proof.to_dict() if proof is not None else {},
            )
        )

    def migration(self, test: str, network, evidence, failures: list, extra: dict | None = None) -> Record:
        """One migration test's proof (`evidence` a MigrationEvidence; `extra` joins its data, e.g. the observer)."""
        return self.write(
            MigrationRecord(
                run_id=self.run_id,
                time=self._now(),
                test=test,
                backend=network.backend,
                profile=network.profile,
                wireguard=network.wireguard_impl,
                topology=network.topology.describe(),
                plan=evidence.plan.describe(),
                evidence=evidence.to_dict() | (extra or {}),
                proof_failures=failures,
            )
        )

    def profile_check(self, network, check: dict) -> Record:
        """What a path profile measured like when it was applied (RTT, rate, loss per path; failures)."""
        return self.write(
            MeasurementRecord(
                run_id=self.run_id,
                time=self._now(),
                scenario=Scenario.PATH_PROFILE,
                test="",
                condition=check["profile"],
                backend=network.backend,
                profile=check["profile"],
                wireguard=network.wireguard_impl,
                topology=network.topology.describe(),
                figures=check,
            )
        )

    def measurements_of(self, test: str) -> list[MeasurementRecord]:
        """The measurement records one test (by name) wrote in this session."""
        with self._lock:
            return list(self._by_test.get(test, []))
