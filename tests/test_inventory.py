"""The ssh backend's pure parts: the inventory and its one-line errors, the pre-flight facts and problems,
the remote command lines and the dry run (no root, no ssh, nothing written)."""

from __future__ import annotations

import shlex
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.model.inventory import Inventory, RemoteHost, parse_inventory, render_inventory
from harness.model.preflight import Needs, needs_of, parse_facts, problems
from harness.system.ssh import Connection, DryRun, remote_command

BASE = Path("/inventory")
GOOD = """
[defaults]
identity = "/keys/id"
known_hosts = "/keys/known"

[wgnet1]
ssh = "203.0.113.11"
address = "203.0.113.11"

[wgnet2]
ssh = "admin@198.51.100.7:2222"
address = "198.51.100.7"

[server]
ssh = "192.0.2.5"
address = "192.0.2.5"
proxy_command = "ssh -W %h:%p jump"
"""


def parse(text: str) -> Inventory:
    return parse_inventory(text, "hosts.toml", BASE, check_files=False)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--inventory hosts.toml: ")
    return message


def test_a_good_inventory_gives_every_role_in_order():
    inventory = parse(GOOD)
    assert [host.role for host in inventory.hosts] == ["wgnet1", "wgnet2", "server"]
    assert inventory.paths == 2
    wgnet2 = inventory.proxy(2)
    assert (wgnet2.user, wgnet2.host, wgnet2.port) == ("admin", "198.51.100.7", 2222)
    assert inventory.proxy(1).user == "root" and inventory.proxy(1).port == 22
    assert inventory.server.address == IPv4Address("192.0.2.5")
    assert inventory.server.proxy_command == "ssh -W %h:%p jump"
    assert inventory.server.identity == Path("/keys/id")


def test_relative_files_are_taken_from_the_inventory_folder():
    inventory = parse(GOOD.replace('"/keys/known"', '"known_hosts"'))
    assert inventory.server.known_hosts == BASE / "known_hosts"


def test_a_missing_field_is_named_with_its_role():
    assert 'has no "address"' in error(GOOD.replace('address = "192.0.2.5"\n', ""))
    assert "[server]" in error(GOOD.replace('address = "192.0.2.5"\n', ""))
    assert 'has no "identity"' in error(GOOD.replace('identity = "/keys/id"\n', ""))


def test_an_unknown_role_is_named():
    message = error(GOOD + '\n[wgnet-backup]\nssh = "x"\naddress = "192.0.2.9"\n')
    assert "[wgnet-backup] is not a role" in message


def test_an_unknown_field_is_named():
    assert "unknown field 'adress'" in error(GOOD.replace('address = "203.0.113.11"', 'adress = "203.0.113.11"'))


def test_a_duplicate_address_names_both_roles():
    message = error(GOOD.replace('address = "198.51.100.7"', 'address = "203.0.113.11"'))
    assert "wgnet1 and wgnet2 have the same address 203.0.113.11" in message


def test_a_key_file_that_does_not_exist_is_named(tmp_path_factory):
    with pytest.raises(ConfigError) as caught:
        parse_inventory(GOOD, "hosts.toml", BASE, check_files=True)
    assert str(caught.value) == "--inventory hosts.toml: [wgnet1] identity /keys/id does not exist"


def test_proxies_must_be_contiguous_and_two_or_more():
    assert "not wgnet1, wgnet3" in error(GOOD.replace("[wgnet2]", "[wgnet3]"))
    one = GOOD.split("[wgnet2]", maxsplit=1)[0] + "[server]" + GOOD.split("[server]")[1]
    assert "not wgnet1" in error(one)


def test_bad_values_are_named():
    assert "is not [user@]host[:port]" in error(GOOD.replace('ssh = "192.0.2.5"', 'ssh = "root@@x"'))
    assert "port 70000 is not a TCP port" in error(GOOD.replace("198.51.100.7:2222", "198.51.100.7:70000"))
    assert "is not an IP address" in error(GOOD.replace('address = "192.0.2.5"', 'address = "server.example"'))
    assert "IPv6" in error(GOOD.replace('address = "192.0.2.5"', 'address = "2001:db8::5"'))
    assert "has no [server]" in error(GOOD.split("[server]", maxsplit=1)[0])
    assert "is not TOML" in error("[wgnet1")


def test_the_rendered_inventory_parses_back():
    inventory = parse(GOOD)
    again = parse_inventory(render_inventory(inventory), "rendered", BASE, check_files=False)
    assert again.hosts == inventory.hosts


def test_records_describe_a_host_without_its_key():
    host = parse(GOOD).proxy(2)
    assert host.describe() == {"role": "wgnet2", "ssh": "admin@198.51.100.7:2222", "address": "198.51.100.7"}


FACTS = """tool ip yes
tool wg yes
tool tcpdump no
uid 0
capeff 000001ffffffffff
kernel 6.1.0-27-cloud-amd64
wireguard-module available
wireguard-go no
tun yes
ip_forward 1
interface lo
interface eth0
interface wgnet1
udp 51820
udp 68
version wg wireguard-tools v1.0.20210914
"""


def test_facts_are_parsed():
    facts = parse_facts(FACTS)
    assert facts.tools == {"ip": True, "wg": True, "tcpdump": False}
    assert facts.uid == 0 and facts.capeff >> 12 & 1
    assert facts.interfaces == {"lo", "eth0", "wgnet1"} and facts.udp_ports == {51820, 68}
    assert facts.describe("auto") == {
        "kernel": "6.1.0-27-cloud-amd64",
        "wireguard": "kernel",
        "versions": {"wg": "wireguard-tools v1.0.20210914"},
    }


def test_every_problem_is_one_line_naming_the_host():
    facts = parse_facts(FACTS.replace("ip_forward 1", "ip_forward 0"))
    needs = Needs(("ip", "wg", "tcpdump"), udp_ports=(51820, 51821), interfaces=("wgnet1", "wg0"))
    found = problems("wgnet1", facts, needs, "auto")
    assert found == [
        "wgnet1: tcpdump not found on PATH (apt-get install tcpdump)",
        "wgnet1: IP forwarding is off (sysctl -w net.ipv4.ip_forward=1); the check changes nothing",
        "wgnet1: UDP port 51820 the run listens on is already taken",
        "wgnet1: interface wgnet1 the run creates already exists",
    ]


def test_a_ready_host_has_no_problem():
    facts = parse_facts(FACTS.replace("tool tcpdump no", "tool tcpdump yes"))
    assert problems("wgnet1", facts, Needs(("ip", "wg", "tcpdump")), "auto") == []


def test_wireguard_and_privileges_are_named():
    no_kernel = FACTS.replace("wireguard-module available", "wireguard-module none")
    assert "has no WireGuard module" in problems("server", parse_facts(no_kernel), Needs(()), "kernel")[0]
    assert "wireguard-go is missing" in problems("server", parse_facts(no_kernel), Needs(()), "auto")[0]
    no_tun = no_kernel.replace("wireguard-go no", "wireguard-go yes").replace("tun yes", "tun no")
    assert "/dev/net/tun" in problems("server", parse_facts(no_tun), Needs(()), "auto")[0]
    user = FACTS.replace("uid 0", "uid 1000").replace("capeff 000001ffffffffff", "capeff 0000000000000000")
    assert "not root and no CAP_NET_ADMIN" in problems("server", parse_facts(user), Needs(()), "auto")[0]
    assert "did not run to its end" in problems("server", parse_facts("tool ip yes"), Needs(()), "auto")[0]


def test_the_server_needs_what_serves_the_content():
    assert "iperf3" in needs_of("server").tools and "iperf3" not in needs_of("wgnet1").tools


def test_a_remote_command_is_quoted_and_tagged():
    line = remote_command(["sh", "-c", "echo $HOME; rm -rf 'x y'"], "run-1", {"A": "b c"})
    assert shlex.split(line) == ["env", "COMPS_HARNESS_RUN=run-1", "A=b c", "sh", "-c", "echo $HOME; rm -rf 'x y'"]
    assert shlex.split(remote_command(["true"], None)) == ["env", "true"]


def connection(dry_run: DryRun | None = None) -> Connection:
    host = RemoteHost("wgnet1", "203.0.113.11", "root", 2222, Path("/k/id"), Path("/k/known"), IPv4Address("1.2.3.4"))
    return Connection(host, "run-1", Path("/work"), dry_run=dry_run)


def test_ssh_is_strict_and_never_reconnects_on_its_own():
    argv = connection().argv("true")
    options = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    assert "StrictHostKeyChecking=yes" in options and "BatchMode=yes" in options
    assert "UserKnownHostsFile=/k/known" in options and "GlobalKnownHostsFile=/dev/null" in options
    assert "ControlMaster=no" in options and "ProxyCommand=false" in options
    assert argv[argv.index("-p") + 1] == "2222" and argv[-2:] == ["root@203.0.113.11", "true"]


def test_a_dry_run_records_every_command_and_sends_nothing():
    dry = DryRun()
    c = connection(dry)
    c.open()
    c.run(["ip", "link", "add", "wgnet1", "type", "wireguard"])
    c.run(["wg", "set", "wgnet1", "private-key", "/dev/stdin"], input="secret")
    text = dry.text()
    assert text.splitlines() == [
        "wgnet1: env COMPS_HARNESS_RUN=run-1 ip link add wgnet1 type wireguard",
        "wgnet1: env COMPS_HARNESS_RUN=run-1 wg set wgnet1 private-key /dev/stdin  < (stdin)",
    ]
    assert "secret" not in text


def test_the_shipped_example_inventory_parses():
    example = Path(__file__).resolve().parent.parent / "examples" / "hosts.toml"
    inventory = parse_inventory(example.read_text(), str(example), example.parent, check_files=False)
    assert [host.role for host in inventory.hosts] == ["wgnet1", "wgnet2", "server"]


def test_the_skew_of_parallel_reads_is_the_spread_of_their_middles():
    from harness.backends.remote import read_skew

    assert read_skew({}) == (0.0, 0.0)
    skew, uncertainty = read_skew({"wgnet1": (10.0, 10.02), "wgnet2": (10.01, 10.05), "server": (10.0, 10.01)})
    assert skew == pytest.approx(0.025) and uncertainty == pytest.approx(0.02)


def remote_topology(**overrides):
    from harness.model.remote import RemoteTopology

    fields = {"paths": 2, "inventory": parse(GOOD), "interfaces": ("eth0", "ens5")} | overrides
    return RemoteTopology(**fields)


def test_the_remote_topology_uses_the_inventory_addresses_as_endpoints():
    topology = remote_topology()
    endpoints = {(spec.host, spec.ifname): spec.peers[0].endpoint for spec in topology.wireguard}
    assert endpoints[("client", "wgnet1")] == (IPv4Address("203.0.113.11"), 51821)
    assert endpoints[("client", "wgnet2")] == (IPv4Address("198.51.100.7"), 51821)
    assert endpoints[("client", "wg0")] == (IPv4Address("192.0.2.5"), 51820)
    assert all(spec.masquerade_out is None for spec in topology.wireguard)  # tagged rules of its own instead
    assert topology.origin_address() == topology.server_tunnel_address()
    assert topology.proxy_client_device(2) == "ens5" and topology.origin_routes == ()
    assert [host.name for host in topology.hosts] == ["client", "wgnet1", "wgnet2", "server"]


def test_the_proxies_rules_are_narrowed_to_the_session_and_tagged():
    rules = remote_topology().remote_forwarding_rules("run-7")["wgnet2"].splitlines()
    masquerade = [line for line in rules if "MASQUERADE" in line]
    assert masquerade == [
        '-A POSTROUTING -s 10.66.2.0/24 -o ens5 -m comment --comment "comps-harness:run-7" -j MASQUERADE'
    ]
    assert all('--comment "comps-harness:run-7"' in line for line in rules if line.startswith("-A"))


def test_the_remote_topology_refuses_what_does_not_fit():
    with pytest.raises(ConfigError, match="has 2 proxies"):
        remote_topology(paths=3, interfaces=("a", "b", "c"))
    with pytest.raises(ConfigError, match="one underlay interface per proxy"):
        remote_topology(interfaces=("eth0",))


def test_one_wireguard_for_the_whole_topology():
    from harness.backends.ssh import choose_wireguard
    from harness.errors import PrerequisiteError

    kernel = parse_facts(FACTS)  # module available, no wireguard-go
    userspace = parse_facts(
        FACTS.replace("wireguard-module available", "wireguard-module none").replace(
            "wireguard-go no", "wireguard-go yes"
        )
    )
    assert choose_wireguard("kernel", "auto", {"wgnet1": kernel, "server": kernel}) == "kernel"
    assert choose_wireguard("wireguard-go", "auto", {"wgnet1": userspace, "server": userspace}) == "wireguard-go"
    with pytest.raises(PrerequisiteError, match="wgnet1 has no wireguard-go"):
        choose_wireguard("wireguard-go", "auto", {"wgnet1": kernel, "server": userspace})
