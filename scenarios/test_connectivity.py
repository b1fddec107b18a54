"""Real traffic from client to origin through wg0 over path 1, then path 2 after a switch.

Evidence: the server's view of the client's endpoint, and each proxy's own WireGuard counters.
"""

from __future__ import annotations

import pytest

from harness.runtime import traffic

pytestmark = pytest.mark.network

# A passive WireGuard keepalive is 32 bytes; an idle path may carry at most a couple of them.
IDLE_PATH_ALLOWANCE_BYTES = 64


def ping_origin(network, count: int = 10) -> None:
    problem = traffic.ping_origin(network, count)
    assert problem is None, problem


@pytest.mark.ssh
def test_traffic_moves_from_path_1_to_path_2(network):
    assert network.current_path() == 1
    before = network.path_transfer()
    ping_origin(network)
    after_first = network.path_transfer()
    assert network.path_of_endpoint(network.server_endpoint()) == 1, (
        f"server's wg0 sees the client at {network.server_endpoint()}, not at proxy 1"
    )

    network.set_path(2)
    assert network.current_path() == 2
    ping_origin(network)
    after_second = network.path_transfer()
    assert network.path_of_endpoint(network.server_endpoint()) == 2, (
        f"after the switch the server still sees the client at {network.server_endpoint()}: the endpoint did not move"
    )

    phase1 = {k: (after_first[k] - before[k]).total for k in before}
    phase2 = {k: (after_second[k] - after_first[k]).total for k in before}
    assert phase1[1] > 0, "proxy 1 carried nothing while it was the path"
    assert phase1[2] <= IDLE_PATH_ALLOWANCE_BYTES, f"proxy 2 carried {phase1[2]} bytes while idle"
    assert phase2[2] > 0, "proxy 2 carried nothing after the switch"
    assert phase2[1] <= IDLE_PATH_ALLOWANCE_BYTES, f"proxy 1 carried {phase2[1]} bytes after the switch"


@pytest.mark.ssh
def test_every_path_reaches_the_origin(network):
    for path in network.topology.path_ids:
        network.set_path(path)
        ping_origin(network, count=3)
        assert network.path_of_endpoint(network.server_endpoint()) == path


@pytest.mark.ssh
def test_route_change_alone_moves_kernel_wireguard_but_not_wireguard_go(network):
    """Why the harness releases wireguard-go's sticky source after a switch (see harness.wireguard.uapi),
    and why kernel WireGuard needs no release: it looks the route up for every packet."""
    from harness.model.topology import PATH_TABLE

    ping_origin(network, count=3)
    client = network.client
    client.netlink.route("replace", dst="0.0.0.0/0", oif=client.link_index("wgnet2"), table=PATH_TABLE)
    ping_origin(network, count=3)
    if network.wireguard_impl == "kernel":
        assert network.path_of_endpoint(network.server_endpoint()) == 2, "kernel WireGuard did not follow the route"
        return
    assert network.path_of_endpoint(network.server_endpoint()) == 1
    network.release_sticky_source()
    ping_origin(network, count=3)
    assert network.path_of_endpoint(network.server_endpoint()) == 2


@pytest.mark.ssh
def test_demo_migrate_script_runs_unchanged_on_the_client(network):
    """harness/data/migrate.sh, copied to /etc/wireguard/migrate.sh as the demo mounts it, alternates the paths."""
    import time

    from harness.data import MIGRATE_SCRIPT

    network.client.write_file("/etc/wireguard/migrate.sh", MIGRATE_SCRIPT.read_text(), mode=0o755)
    seen: list[int | None] = []
    migrate = network.client.spawn(["/etc/wireguard/migrate.sh", "0.2"], name="migrate")
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert migrate.running(), f"migrate.sh exited early: {migrate.log_tail()}"
            seen.append(network.current_path())
            time.sleep(0.02)
    finally:
        migrate.stop()
    changes = [b for a, b in zip(seen, seen[1:]) if b is not None and a != b]
    assert set(changes) >= set(network.topology.path_ids), f"route in table 51821 did not alternate: {seen}"
    assert len(changes) >= 4, f"expected a switch about every 0.2 s over 1.5 s, saw {len(changes)}: {seen}"


def test_a_page_loads_in_chromium_through_the_session(network, origin_services):
    """Chromium, attached to the client's network namespace, loads a page from origin through wg0 and path 1."""
    from harness.errors import HarnessError
    from harness.measure.services import require_measurement_tools

    try:
        require_measurement_tools(browser=True)
    except HarnessError as exc:  # a missing browser is an error naming it, never a skip
        pytest.fail(str(exc), pytrace=False)
    before = network.path_transfer()
    (load,) = origin_services.page_set(["small.html"], timeout=30, screenshots=network.workdir / "screenshots")["loads"]
    after = network.path_transfer()
    assert load["ok"], load
    carried = {path: (after[path] - before[path]).total for path in before}
    assert carried[1] > 5_000, f"path 1 carried {carried[1]} bytes for a page of two 5 kB objects"
