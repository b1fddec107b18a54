"""What each proxy sees of a migrating session, from captures on the proxies' tunnels (both backends).

The plaintext check: a marker in every page the browser loads never appears in a proxy's capture
(whole packets); the server's wg0, where the session is decrypted, shows it: the control that the
check can find it.
"""

from __future__ import annotations

import pytest

from harness.measure.observe import observed_migration
from harness.measure.services import require_measurement_tools
from harness.model.schedule import MigrationPlan

pytestmark = [pytest.mark.network, pytest.mark.migration]


def test_what_each_proxy_sees(network, origin_services, results, request, tolerances, proof_gate):
    require_measurement_tools(browser=True)
    plan = MigrationPlan(interval=0.1, duration=60.0, paths=network.topology.path_ids)
    seen = observed_migration(origin_services, plan, page_sets=1)
    results.migration(
        request.node.name,
        network,
        seen.evidence,
        seen.evidence.failures(tolerances),
        {"observer": seen.view.to_dict(), "capture_dropped": seen.capture_dropped},
    )
    assert seen.loads == 3 and seen.view.page_shares, "no page load fell inside the captures"
    assert seen.server_hits > 0, "the control failed: the marker is not even at the server's wg0"
    for path, view in seen.view.proxies.items():
        assert view.plaintext_hits == 0, f"proxy {path} saw the page's marker in clear {view.plaintext_hits} times"
    if not proof_gate([seen]):  # the split each proxy saw is of a migration only when it happened as scheduled
        return
    for path, view in seen.view.proxies.items():
        for direction in ("up", "down"):
            assert 0.1 < view.share_packets[direction] < 0.9, (
                f"proxy {path} carried {view.share_packets[direction]:.0%} of the session {direction}: no split"
            )
    assert set(seen.view.proxies) == set(network.topology.path_ids)
