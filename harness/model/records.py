"""Typed, versioned result records: the one module that writes and reads results.jsonl lines.

Each line is a JSON object with `schema_version` and `kind`. Writers build records from these
dataclasses; the report and `compare` read them back through `parse`/`load`, never as raw dicts.
Files written before versioning (no `schema_version`) are read as version 1.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from harness.model.evidence import ProofFailure

# 3: proof failures are records (code, path, direction, figure, limit, text); 4: every measurement carries its
# proof (proven, failed, unproven) and the evidence adherence per direction; 5: every record carries its
# sweep_id and shard, the run record the sweep's tests (`sweep`, for comps-harness merge)
SCHEMA_VERSION = 5
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    kind: ClassVar[str] = "abstract"
    run_id: str = ""
    time: float = 0.0
    sweep_id: str = ""  # the sweep it belongs to (--sweep-id; the run id when not sharded)
    shard: str = ""  # K/N (--shard; 1/1 when not sharded)

    def to_json(self) -> str:
        data = {"schema_version": SCHEMA_VERSION, "kind": self.kind, **asdict(self)}
        return json.dumps(data, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


class Placed:
    """A record of a network: its backend and path profile, which reports and compare group by."""

    backend: str | None
    profile: str

    @property
    def where(self) -> str:
        """The backend, and the path profile when there is one (lan: none)."""
        backend = self.backend or ""
        return backend if self.profile in ("", "lan") else f"{backend}/{self.profile}"


@dataclass(frozen=True)
class RunRecord(Record):
    """One invocation: the exact command, its options, the machine."""

    kind: ClassVar[str] = "run"
    argv: list[str] = field(default_factory=list)
    cwd: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    backends: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    reproduce: list[str] = field(default_factory=list)  # a command that makes a new run like this one
    settings: dict[str, Any] = field(default_factory=dict)  # the typed settings it ran with (settings.recorded)
    # the sweep (its id and this shard are the record's own sweep_id and shard): this shard's tests, the
    # whole sweep's (collected), its durations table
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TestRecord(Placed, Record):
    """The outcome of one test phase (a call, or a setup/teardown that did not pass)."""

    kind: ClassVar[str] = "test"
    __test__: ClassVar[bool] = False  # a record, not a pytest test class
    test: str = ""
    scenario: str = ""
    phase: str = "call"
    outcome: str = "passed"
    check: str = "proof"  # proof (the harness's own checks and self-checks) or research (a measurement verdict)
    reason: str = ""
    detail: str = ""  # the traceback of an error (not of a verdict)
    duration_s: float = 0.0
    backend: str | None = None
    profile: str = "lan"  # the path profile the network ran with (harness/data/profiles)
    interval: float | None = None
    strategy: str | None = None
    mechanism: str | None = None
    label: str | None = None
    params: str = ""  # the test's parameters as in its id (backend, interval, fault, profile, ...)
    expects_red: bool = False  # marker expect_red: it breaks its check on purpose; passed means caught


@dataclass(frozen=True)
class MeasurementRecord(Placed, Record):
    """One condition, one repetition of a measurement scenario, with the migration evidence of that run."""

    kind: ClassVar[str] = "measurement"
    scenario: str = ""
    test: str = ""
    condition: str = ""
    repetition: int = 0
    backend: str = ""
    profile: str = "lan"  # the path profile the network ran with (harness/data/profiles)
    wireguard: str = ""
    topology: dict[str, Any] = field(default_factory=dict)
    strategy: str = "none"
    interval: float | None = None
    mechanism: str = "netlink"
    seed: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    proof: dict[str, Any] = field(default_factory=dict)  # a migrating repetition's Proof.to_dict (schema 4)

    @property
    def migrating(self) -> bool:
        return self.interval is not None and self.condition != "baseline"

    def bits_per_second(self, kind: str) -> float | None:
        run = self.figures.get(kind)
        return None if run is None else float(run["bits_per_second"])

    def loads(self) -> list[dict[str, Any]]:
        """The page loads that succeeded."""
        return [load for load in self.figures.get("loads", []) if load.get("ok")]

    def switch_times_s(self) -> list[float]:
        return [switch["actual_s"] for switch in self.evidence.get("switches", [])]


@dataclass(frozen=True)
class MigrationRecord(Placed, Record):
    """One migration test's proof: the plan, the evidence, and why it did not prove migration (if so)."""

    kind: ClassVar[str] = "migration"
    test: str = ""
    backend: str = ""
    profile: str = "lan"  # the path profile the network ran with (harness/data/profiles)
    wireguard: str = ""
    topology: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    proof_failures: list[ProofFailure] = field(default_factory=list)

    @property
    def interval(self) -> float | None:
        return self.plan.get("interval_s")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        failures = [ProofFailure.read(item) for item in data.get("proof_failures") or []]
        return super().from_dict({**data, "proof_failures": failures})


KINDS: dict[str, type[Record]] = {cls.kind: cls for cls in (RunRecord, TestRecord, MeasurementRecord, MigrationRecord)}


def parse(data: dict[str, Any]) -> Record | None:
    """A record from one decoded line; None for a kind or version this harness does not know."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        log.warning("skipping a record of schema version %r (this harness reads up to %d)", version, SCHEMA_VERSION)
        return None
    cls = KINDS.get(data.get("kind", ""))
    return None if cls is None else cls.from_dict(data)


def load(path: Path) -> list[Record]:
    """Every record of a results file (a truncated last line, from a killed run, is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            record = parse(json.loads(line))
        except (json.JSONDecodeError, TypeError, AttributeError):
            continue
        if record is not None:
            records.append(record)
    return records


def of_kind(records: list[Record], cls: type[Record]) -> list[Any]:
    return [record for record in records if isinstance(record, cls)]
