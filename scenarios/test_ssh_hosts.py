"""The ssh backend's ground, with real SSH: local SSH hosts (Debian's sshd in namespaces of their own)
reached through the same inventory and connection code as real machines.

Each check here is shown to fail where it can: a wrong host key, a killed connection, a missing tool,
forwarding off, a taken port, and a key written to a host's disk on purpose are all caught.
"""

from __future__ import annotations

import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from harness.backends.netns import NetnsHost
from harness.backends.remote import RemoteHosts, SshHost, preflight, read_skew, sweep_host
from harness.backends.sshlab import LocalSshHosts
from harness.errors import BackendError, CommandError
from harness.model.inventory import render_inventory
from harness.model.preflight import needs_of
from harness.model.topology import HostSpec
from harness.runtime.configure import WIREGUARD_GO_ENV
from harness.system import cleanup
from harness.system.ssh import DryRun, remote_workdir

pytestmark = pytest.mark.network
ROLES = ["wgnet1", "wgnet2", "server"]
ROUNDS = 10
# What a remote host looks like to the checks that must change nothing on it.
STATE_COMMAND = (
    "ip -o link; ip -o addr; ip route; iptables-save | grep -v '^#'; sysctl -n net.ipv4.ip_forward; ls -a /tmp"
)


@pytest.fixture
def lab(child_run_ids) -> Iterator[LocalSshHosts]:
    run_id = child_run_ids()
    workdir = Path(tempfile.mkdtemp(prefix=cleanup.workdir_prefix(run_id)))
    try:
        with LocalSshHosts(run_id, workdir, ROLES) as hosts:
            yield hosts
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def accepted(lab: LocalSshHosts, role: str) -> int:
    return lab.sshd_log(role).count("Accepted publickey")


def test_one_connection_per_host_carries_every_command_in_parallel(lab):
    assert lab.inventory is not None
    with RemoteHosts(lab.inventory, lab.run_id, lab.workdir) as hosts:
        for _ in range(ROUNDS):
            hosts.each(lambda c: c.run(["true"], timeout=10))
        # three hosts at once: each command reports when it started and ended (one clock: one machine)
        spans = hosts.each(lambda c: c.run(["sh", "-c", "date +%s.%N; sleep 0.5; date +%s.%N"]).stdout.split())
        starts = [float(span[0]) for span in spans.values()]  # type: ignore[attr-defined]
        ends = [float(span[1]) for span in spans.values()]  # type: ignore[attr-defined]
        assert max(starts) < min(ends), f"the hosts' commands did not overlap: {spans}"
        # counters of every host at once, with their skew; read one after the other they are further apart
        names = {role: ["eth0", "lo"] for role in ROLES}
        together = [hosts.read_counters(names) for _ in range(5)]
        apart = []
        for _ in range(5):
            spans = {}
            for role in ROLES:
                start = time.monotonic()
                hosts.read_counters({role: names[role]})
                spans[role] = (start, time.monotonic())
            apart.append(read_skew(spans)[0])
        assert all(set(read.counters[role]) == {"eth0", "lo"} for read in together for role in ROLES)
        assert statistics.median(r.skew_s for r in together) < statistics.median(apart), (together, apart)
    for role in ROLES:
        assert accepted(lab, role) == 1, f"{role}: {accepted(lab, role)} logins for every command"


@pytest.mark.expect_red
def test_an_unknown_host_key_is_an_error_naming_the_host(lab):
    assert lab.inventory is not None
    known = lab.inventory.server.known_hosts
    lines = known.read_text().splitlines()
    # wgnet2's entry now carries the server's key: wgnet2's real key is unknown to this file
    lines[1] = lines[1].split()[0] + " " + " ".join(lines[2].split()[1:])
    known.write_text("\n".join(lines) + "\n")
    with pytest.raises(BackendError) as caught:
        RemoteHosts(lab.inventory, lab.run_id, lab.workdir).__enter__()
    message = str(caught.value)
    assert message.startswith("wgnet2: ") and "host key" in message and "nothing was accepted" in message, message
    assert accepted(lab, "wgnet2") == 0


@pytest.mark.expect_red
def test_a_lost_connection_is_not_reconnected_and_a_sweep_removes_what_the_run_left(lab):
    assert lab.inventory is not None
    with RemoteHosts(lab.inventory, lab.run_id, lab.workdir) as hosts:
        wgnet1 = hosts["wgnet1"]
        sleeper = wgnet1.spawn(["sleep", "600"], name="wgnet1/sleeper", log_path=lab.workdir / "s.log", stdout=None)
        deadline = time.monotonic() + 10
        while not any(line.startswith("sleep 600") for line in lab.processes("wgnet1")):
            assert time.monotonic() < deadline and sleeper.running(), "the remote sleep did not start"
            time.sleep(0.05)
        assert wgnet1.master is not None
        wgnet1.master.popen.kill()  # the connection is lost (as a network outage or a reboot would end it)
        wgnet1.master.popen.wait(5)
        with pytest.raises(CommandError) as caught:
            wgnet1.run(["true"], timeout=10)
        assert "wgnet1" in str(caught.value) and "lost its ssh connection" in str(caught.value)
        assert accepted(lab, "wgnet1") == 1, "ssh reconnected on its own"
        hosts["wgnet2"].run(["true"], timeout=10)  # the other hosts keep their connections
        assert any(line.startswith("sleep 600") for line in lab.processes("wgnet1")), "nothing was left to sweep"
    # what `clean` does: a connection of its own, and the run's tag
    with RemoteHosts(lab.inventory, f"{lab.run_id}-clean", lab.workdir, remote_dir=False) as again:
        removed = sweep_host(again["wgnet1"], lab.run_id)
        assert any("sleep 600" in line for line in removed), removed
        assert f"wgnet1: directory {remote_workdir(lab.run_id)}" in removed
        assert not any(line.startswith("sleep") for line in lab.processes("wgnet1"))
        assert any("sshd" in line for line in lab.processes("wgnet1")), "the sweep touched what is not the run's"
        assert sweep_host(again["wgnet2"], lab.run_id) == [f"wgnet2: directory {remote_workdir(lab.run_id)}"]


@pytest.mark.expect_red
def test_preflight_names_what_is_missing_and_changes_nothing(lab):
    assert lab.inventory is not None
    with RemoteHosts(lab.inventory, lab.run_id, lab.workdir) as hosts:
        before = hosts.each(lambda c: c.run(["sh", "-c", STATE_COMMAND]).stdout)
        facts, problems = preflight(hosts, "wireguard-go")
        assert problems == [], problems
        assert facts["server"].describe("wireguard-go")["wireguard"] == "wireguard-go"
        assert "wg" in facts["wgnet1"].versions and facts["wgnet1"].kernel
        # break each thing the check checks, on the hosts themselves
        lab.hosts["wgnet1"].exec(["mount", "--bind", "/dev/null", shutil.which("tcpdump") or "/usr/bin/tcpdump"])
        lab.hosts["wgnet2"].exec(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
        taken = lab.hosts["server"].spawn(["nc", "-l", "-u", "-p", "51820"], name="taken", stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while "51820" not in lab.hosts["server"].exec(["ss", "-Hlun"]).stdout:
            assert time.monotonic() < deadline and taken.running(), "nc did not take the port"
            time.sleep(0.05)
        lab.hosts["server"].exec(["ip", "link", "add", "wg0", "type", "bridge"])
        before = hosts.each(lambda c: c.run(["sh", "-c", STATE_COMMAND]).stdout)
        needs = {role: needs_of(role, udp_ports=(51820,), interfaces=("wg0",)) for role in ROLES}
        _, problems = preflight(hosts, "wireguard-go", needs)
        assert problems == [
            "wgnet1: tcpdump not found on PATH (apt-get install tcpdump)",
            "wgnet2: IP forwarding is off (sysctl -w net.ipv4.ip_forward=1); the check changes nothing",
            "server: UDP port 51820 the run listens on is already taken",
            "server: interface wg0 the run creates already exists",
        ], problems
        after = hosts.each(lambda c: c.run(["sh", "-c", STATE_COMMAND]).stdout)
        assert after == before, "the pre-flight check changed a host"


@pytest.mark.expect_red
def test_a_private_key_travels_on_stdin_and_lands_on_no_host(lab):
    assert lab.inventory is not None
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, timeout=10).stdout.strip()
    with RemoteHosts(lab.inventory, lab.run_id, lab.workdir) as hosts:
        wgnet1 = hosts["wgnet1"]
        daemon = wgnet1.spawn(
            ["wireguard-go", "-f", "wgtest"],
            name="wgnet1/wireguard-go",
            env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"},
            log_path=lab.workdir / "wg.log",
            stdout=None,
        )
        deadline = time.monotonic() + 10
        while wgnet1.run(["test", "-S", "/run/wireguard/wgtest.sock"], check=False).returncode != 0:
            assert time.monotonic() < deadline and daemon.running(), "wireguard-go did not start"
            time.sleep(0.05)
        wgnet1.run(["wg", "set", "wgtest", "private-key", "/dev/stdin"], input=private + "\n")
        assert wgnet1.run(["wg", "show", "wgtest", "public-key"]).stdout.strip() == public, "the key was not set"
        assert leaks(lab, private) == [], "a host or a log holds the private key"
        # the check can fail: a key written to a host's disk is found
        wgnet1.run(["sh", "-c", 'cat > "$0"', "/root/leaked-on-purpose"], input=private)
        assert leaks(lab, private) == ["wgnet1:/root/leaked-on-purpose"]
        wgnet1.run(["rm", "/root/leaked-on-purpose"])
        daemon.stop()
    dry = DryRun()
    with RemoteHosts(lab.inventory, lab.run_id, lab.workdir, dry_run=dry) as planned:
        planned["wgnet1"].run(["wg", "set", "wgtest", "private-key", "/dev/stdin"], input=private)
    assert private not in dry.text() and "(stdin)" in dry.text()


def leaks(lab: LocalSshHosts, secret: str) -> list[str]:
    """Where `secret` is stored: every file of every host's private directories, and the run's local logs."""
    found = [
        f"{role}:{path}" for role in ROLES for path, data in lab.private_files(role).items() if secret.encode() in data
    ]
    found += [str(path) for path in lab.workdir.iterdir() if path.is_file() and secret.encode() in path.read_bytes()]
    return found


CLIENT_NUMBER = 100  # the local client namespace's place on the lab's underlay
TUNNEL_PORT = 51999


def tunnel_config(private: str, peer_public: str, endpoint: str | None, listen: int | None) -> str:
    lines = ["[Interface]", f"PrivateKey = {private}"] + ([f"ListenPort = {listen}"] if listen else [])
    lines += ["", "[Peer]", f"PublicKey = {peer_public}", "AllowedIPs = 10.99.0.0/24"]
    return "\n".join(lines + ([f"Endpoint = {endpoint}"] if endpoint else [])) + "\n"


def wg_keys() -> tuple[str, str]:
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, timeout=10).stdout.strip()
    return private, public


def test_a_wireguard_tunnel_set_up_through_the_host_interface_over_ssh_carries_traffic(lab):
    """The shared configuration's calls (runtime/configure.py) on a remote host: device, config over stdin,
    address and MTU, counters; the client is a local namespace on the lab's underlay, as this machine."""
    assert lab.inventory is not None
    client = NetnsHost(HostSpec("client", "client"), lab.lab_id, lab.workdir)
    try:
        client.wait_ready()
        client.netlink.link("set", index=client.link_index("lo"), state="up")
        lab.attach(client, CLIENT_NUMBER)
        with RemoteHosts(lab.inventory, lab.run_id, lab.workdir) as hosts:
            proxy = SshHost(hosts["wgnet1"], lab.workdir)
            with pytest.raises(BackendError, match="wgnet1 is a remote host"):
                proxy.netlink  # noqa: B018  (a remote host has no netlink here)
            (client_private, client_public), (proxy_private, proxy_public) = wg_keys(), wg_keys()
            proxy_address = lab.inventory.proxy(1).address
            configs = {
                proxy: tunnel_config(proxy_private, client_public, None, TUNNEL_PORT),
                client: tunnel_config(client_private, proxy_public, f"{proxy_address}:{TUNNEL_PORT}", None),
            }
            for number, host in enumerate((proxy, client), start=1):
                host.spawn(["wireguard-go", "-f", "wgt"], name="wireguard-go", env=WIREGUARD_GO_ENV)
                deadline = time.monotonic() + 10
                while not (host.wireguard_socket_exists("wgt") and host.has_link("wgt")):
                    assert time.monotonic() < deadline, f"{host.name}: wireguard-go did not come up"
                    time.sleep(0.05)
                host.set_wireguard("wgt", configs[host])
                host.address_up("wgt", IPv4Interface(f"10.99.0.{number}/24"), 1380)
            before = proxy.counters_by_name(["wgt", "eth0"])
            ping = client.exec(["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.99.0.1"], check=False, timeout=30)
            assert ping.returncode == 0, f"no traffic through the tunnel to the remote host: {ping.stdout[-300:]}"
            after = proxy.counters_by_name(["wgt", "eth0"])
            assert after["wgt"].rx_packets - before["wgt"].rx_packets >= 5, (before, after)
            endpoints = proxy.wg_endpoints("wgt")
            assert endpoints[client_public] is not None and str(endpoints[client_public][0]) == "172.31.100.2"
            assert leaks(lab, proxy_private) == [], "the remote host's private key landed in a file or a log"
            proxy.stop_processes()
            client.stop_processes()
    finally:
        client.stop_processes()
        client.destroy()


# A harness that dies outright (SIGKILL) while its processes run on every host: nothing of it can tear down.
CRASHING_RUN = """
import sys, time
from pathlib import Path
from harness.backends.remote import RemoteHosts
from harness.model.inventory import load_inventory
inventory, run_id, workdir = load_inventory(Path(sys.argv[1])), sys.argv[2], Path(sys.argv[3])
hosts = RemoteHosts(inventory, run_id, workdir)
hosts.open()
for role in hosts.connections:
    hosts[role].spawn(["sleep", "600"], name=f"{role}/left", env=None, log_path=workdir / f"{role}.log", stdout=None)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.expect_red
def test_clean_with_the_inventory_removes_what_a_killed_run_left_on_every_host(lab, child_run_ids):
    assert lab.inventory is not None
    inventory_file = lab.workdir / "hosts.toml"
    inventory_file.write_text(render_inventory(lab.inventory))
    crashed = child_run_ids()
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, str(inventory_file), crashed, str(lab.workdir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        readable, _, _ = select.select([child.stdout], [], [], 30)
        assert readable and child.stdout is not None and child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while not all(any(p.startswith("sleep 600") for p in lab.processes(role)) for role in ROLES):
            assert time.monotonic() < deadline, "the run's remote processes did not start"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(10)
    assert all(any(p.startswith("sleep 600") for p in lab.processes(role)) for role in ROLES), "nothing was left"
    harness = str(Path(sys.executable).with_name("comps-harness"))
    dry = subprocess.run(
        [harness, "clean", "--inventory", str(inventory_file), "--run-id", crashed, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0 and all(any(p.startswith("sleep 600") for p in lab.processes(r)) for r in ROLES)
    done = subprocess.run(
        [harness, "clean", "--inventory", str(inventory_file), "--run-id", crashed],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for role in ROLES:
        assert f"removed {role}: directory {remote_workdir(crashed)}" in done.stdout, done.stdout
        assert not any(p.startswith("sleep") for p in lab.processes(role)), f"{role} still runs the killed run's sleep"
        assert any("sshd" in p for p in lab.processes(role)), f"{role}: clean touched what is not the run's"
    again = subprocess.run(
        [harness, "clean", "--inventory", str(inventory_file), "--run-id", crashed],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.stdout.strip() == "nothing to clean", again.stdout
    for role in ROLES:  # and clean's own connections left nothing there either
        assert not [p for p in lab.private_files(role) if p.startswith("/tmp/comps-harness-")], role
        assert lab.hosts[role].exec(["sh", "-c", "ls -d /tmp/comps-harness-* 2>/dev/null; true"]).stdout == ""
