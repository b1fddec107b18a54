"""comps-harness: build the CoMPS double-tunnel WireGuard topology and test connection migration.

The public API is re-exported here; the pytest plugin (harness.plugin) is a thin layer on top.
"""

from harness.backends import network_for
from harness.errors import (BackendError, CommandError, ConfigError, HarnessError, MeasurementError,
                            MigrationError, PrerequisiteError)
from harness.network import Network
from harness.settings import RunSettings
from harness.topology import AddressPlan, Mtus, Topology

__all__ = ["AddressPlan", "BackendError", "CommandError", "ConfigError", "HarnessError", "MeasurementError",
           "MigrationError", "Mtus", "Network", "PrerequisiteError", "RunSettings", "Topology", "network_for"]
