"""Unit tests of the pure parts: address plan, MTUs, configs, keys, parsers, settings."""

from __future__ import annotations

import math
from ipaddress import IPv4Address

import pytest

from harness.errors import ConfigError, MeasurementError
from harness.model.settings import RunSettings, parse_backends, parse_intervals
from harness.model.topology import AddressPlan, Mtus, Topology
from harness.wireguard.config import (
    Keyring,
    iptables_restore_text,
    render_setconf,
    render_wg_quick,
)
from harness.wireguard.keys import KeyPair
from harness.wireguard.state import PeerTransfer, parse_endpoints, parse_transfer


@pytest.mark.parametrize("paths", [2, 3, 4, 8])
def test_addresses_are_unique_and_inside_the_plan(paths):
    topo = Topology(paths=paths)
    addresses = [
        topo.client_tunnel_address(),
        topo.server_tunnel_address(),
        topo.origin_address(),
        topo.server_backbone_address(),
        topo.server_internet_address(),
    ]
    for k in topo.path_ids:
        addresses += [topo.client_path_address(k), topo.proxy_path_address(k), topo.proxy_backbone_address(k)]
    assert len({a.ip for a in addresses}) == len(addresses)
    for address in addresses:
        assert address.ip in topo.plan.underlay or address.ip in topo.plan.overlay
    assert len(topo.hosts) == paths + 3
    assert len(topo.wireguard) == 2 * paths + 2


@pytest.mark.parametrize("paths", [0, 1, 9, 2.0, True])
def test_path_count_is_validated(paths):
    with pytest.raises(ConfigError):
        Topology(paths=paths)


@pytest.mark.parametrize(
    "underlay, overlay",
    [
        ("10.66.0.0/16", "10.66.0.0/16"),
        ("172.30.0.0/25", "10.66.0.0/16"),
        ("127.0.0.0/16", "10.66.0.0/16"),
        ("fd00::/64", "10.66.0.0/16"),
        ("172.30.0.1/16", "10.66.0.0/16"),
        ("banana", "10.66.0.0/16"),
    ],
)
def test_bad_address_plans_are_refused(underlay, overlay):
    with pytest.raises(ConfigError):
        Topology(plan=AddressPlan.parse(underlay, overlay))


def test_mtus_nest_without_fragmentation():
    mtus = Mtus.for_underlay(1500)
    assert (mtus.wgnet, mtus.wg0) == (1440, 1380)
    with pytest.raises(ConfigError):
        Mtus.for_underlay(600)


def test_client_routing_follows_the_demo():
    topo = Topology()
    rules = {(r.fwmark, r.invert): (r.priority, r.table) for r in topo.client_rules}
    assert rules[(51821, False)][1] == "main"
    assert rules[(51820, False)][1] == 51821
    assert rules[(51820, True)][1] == 51820
    # wgnet packets must be matched before the catch-all, or they would loop into wg0
    assert rules[(51821, False)][0] < rules[(51820, False)][0] < rules[(51820, True)][0]
    tables = {r.table: r.dev for r in topo.client_routes(current_path=2)}
    assert tables == {51820: "wg0", 51821: "wgnet2"}


def test_keys_are_fresh_and_hidden_from_repr():
    a, b = KeyPair.generate(), KeyPair.generate()
    assert a.private != b.private and len(a.public) == 44
    assert KeyPair.public_of(a.private) == a.public
    assert a.private not in repr(a) and a.private not in str(a)
    keyring = Keyring.generate(Topology())
    assert all(pair.private not in repr(keyring) for pair in keyring.pairs.values())


def test_rendered_configs_pair_up():
    topo = Topology()
    keys = Keyring.generate(topo)
    client_wg0 = render_setconf(topo.wireguard_of("client", "wg0"), keys)
    assert f"PrivateKey = {keys.private('client', 'wg0')}" in client_wg0
    assert f"PublicKey = {keys.public('server', 'wg0')}" in client_wg0
    assert "FwMark = 51820" in client_wg0 and "Endpoint = 172.30.0.2:51820" in client_wg0
    assert "Address" not in client_wg0  # setconf format has no wg-quick keys
    proxy = render_wg_quick(topo.wireguard_of("wgnet1", "wgnet1"), keys)
    assert "PostUp = iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE" in proxy
    assert "PostDown = iptables -t nat -D POSTROUTING -o eth0 -j MASQUERADE" in proxy
    assert "AllowedIPs = 10.66.1.2/32" in proxy and "MTU = 1440" in proxy
    text = iptables_restore_text([topo.wireguard_of("server", "wg0")])
    assert text.startswith("*filter\n") and "-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n" in text


def test_wg_show_parsers():
    endpoints = parse_endpoints("AAA=\t172.30.0.11:51820\nBBB=\t(none)\n")
    assert endpoints == {"AAA=": (IPv4Address("172.30.0.11"), 51820), "BBB=": None}
    assert parse_transfer("AAA=\t10\t20\n") == {"AAA=": PeerTransfer(10, 20)}
    assert (PeerTransfer(10, 20) - PeerTransfer(4, 5)).total == 21
    with pytest.raises(MeasurementError):
        parse_transfer("AAA=\tten\t20\n")
    with pytest.raises(MeasurementError):
        parse_endpoints("AAA=\n")


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "", "abc", "0.1,0.1"])
def test_bad_intervals_are_refused(text):
    with pytest.raises(ConfigError):
        parse_intervals(text)


def test_intervals_and_backends_parse():
    assert parse_intervals("0.01, 0.1s,1") == (0.01, 0.1, 1.0)
    assert parse_backends("all") == ("netns", "docker")
    with pytest.raises(ConfigError):
        parse_backends("vmware")
    with pytest.raises(ConfigError):
        RunSettings(paths=1)
    with pytest.raises(ConfigError):
        RunSettings(wireguard="boringtun")
    assert not math.isnan(parse_intervals("0.5")[0])


@pytest.mark.parametrize(
    "tool, package",
    [
        ("iperf3", "iperf3"),
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("wireguard-go", "wireguard-go"),
    ],
)
def test_a_missing_binary_is_named_with_its_package(monkeypatch, tmp_path, tool, package):
    from harness.errors import PrerequisiteError
    from harness.system.prereq import require_binaries

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrerequisiteError, match=rf"^{tool} not found on PATH: apt-get install {package}$"):
        require_binaries([tool])


def test_kernel_wireguard_request_without_module(monkeypatch):
    from harness.errors import ConfigError, PrerequisiteError
    from harness.system import prereq

    monkeypatch.setattr(prereq, "kernel_wireguard_available", lambda: False)
    with pytest.raises(PrerequisiteError, match="no WireGuard module"):
        prereq.wireguard_implementation("kernel")
    with pytest.raises(ConfigError, match="--wireguard 'boringtun' is unknown"):
        prereq.wireguard_implementation("boringtun")


def test_interface_counters_come_from_proc_net_dev():
    from harness.runtime.hosts import parse_net_dev

    text = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
        "carrier compressed\n"
        "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0 "
        "      0          0\n"
        "wgnet1: 3000000   20000    0    0    0     0          0         0  4000000   30000    0    0    0     0 "
        "      0          0\n"
    )
    counters = parse_net_dev(text)
    assert counters["wgnet1"].rx_bytes == 3000000 and counters["wgnet1"].rx_packets == 20000
    assert counters["wgnet1"].tx_bytes == 4000000 and counters["wgnet1"].tx_packets == 30000
    assert set(counters) == {"lo", "wgnet1"}
