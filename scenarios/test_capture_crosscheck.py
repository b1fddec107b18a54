"""The proof's per-path figures agree with packet captures on the proxies (tcpdump), within 2 %."""

from __future__ import annotations

import pytest

from harness.measure.crosscheck import captured_migration
from harness.model.schedule import MigrationPlan

pytestmark = [pytest.mark.network, pytest.mark.migration]
LIMIT = 0.02


def test_per_path_figures_match_the_captures(network):
    plan = MigrationPlan(interval=0.1, duration=30.0, paths=network.topology.path_ids)
    evidence, checks = captured_migration(network, plan, seconds=2.0)
    assert not evidence.failures(), evidence.failures()
    for check in checks:
        assert check.capture_packets > 100, (
            f"path {check.path}: the capture holds only {check.capture_packets} data messages"
        )
        assert check.byte_error <= LIMIT, (
            f"path {check.path}: harness {check.harness_bytes} B, capture "
            f"{check.capture_bytes} B ({check.byte_error:.1%} apart)"
        )
        assert check.packet_error <= LIMIT, (
            f"path {check.path}: harness {check.harness_packets} packets, capture "
            f"{check.capture_packets} ({check.packet_error:.1%} apart)"
        )
