"""comps-harness: build the CoMPS double-tunnel WireGuard topology and test connection migration.

The public API is re-exported here; the pytest plugin (harness.plugin) is a thin layer on top.
See docs/architecture.md for the layers and what each module does.
"""

from harness.backends.registry import check_backend, network_for
from harness.errors import (
    BackendError,
    CommandError,
    ConfigError,
    HarnessError,
    MeasurementError,
    MigrationError,
    PrerequisiteError,
    WaitTimeout,
)
from harness.model.kinds import Mechanism, Outcome, Strategy, WireGuardImpl
from harness.model.schedule import MigrationPlan, baseline_of, build_plans
from harness.model.settings import (
    MeasureSettings,
    PlanOptions,
    RunSettings,
    Settings,
    Tolerances,
)
from harness.model.topology import AddressPlan, Mtus, Topology
from harness.runtime.migration import MigrationController, run_migration
from harness.runtime.network import Builder, Network

__all__ = [
    "AddressPlan",
    "BackendError",
    "Builder",
    "CommandError",
    "ConfigError",
    "HarnessError",
    "MeasureSettings",
    "MeasurementError",
    "Mechanism",
    "MigrationController",
    "MigrationError",
    "MigrationPlan",
    "Mtus",
    "Network",
    "Outcome",
    "PlanOptions",
    "PrerequisiteError",
    "RunSettings",
    "Settings",
    "Strategy",
    "Tolerances",
    "Topology",
    "WaitTimeout",
    "WireGuardImpl",
    "baseline_of",
    "build_plans",
    "check_backend",
    "network_for",
    "run_migration",
]
