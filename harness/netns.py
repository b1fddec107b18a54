"""The namespace backend: each host is a network + mount namespace held by a keeper process.

Links are veth pairs made over netlink; WireGuard is the kernel module or wireguard-go in the host.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

from harness import proc
from harness.errors import BackendError
from harness.hosts import Host
from harness.network import Network
from harness.topology import HostSpec, LinkSpec

PRIVATE_DIRS = ("/run/wireguard", "/etc/wireguard")
KEEPER_TIMEOUT = 10.0

# The keeper: private tmpfs on the WireGuard directories (as a container has), the host's
# sysctls, then it sleeps under a name that `comps-harness clean` can find. Arguments are
# sysctls as path=value (net/ipv4/ip_forward=1); nothing is interpolated into the script.
KEEPER_SCRIPT = r"""
set -eu
for dir in /run/wireguard /etc/wireguard; do mount -t tmpfs -o mode=0700,size=4m tmpfs "$dir"; done
for setting in "$@"; do printf '%s\n' "${setting#*=}" > "/proc/sys/${setting%%=*}"; done
echo ready
exec -a "$COMPS_HARNESS_KEEPER" sleep infinity
"""


def keeper_name(run_id: str, host: str) -> str:
    return f"comps-harness:{run_id}:{host}"


VETH_INDEX_BASE = 100
BRIDGE_NETFILTER = "net/bridge/bridge-nf-call-iptables"


def host_sysctls(spec: HostSpec) -> list[str]:
    settings = ["net/ipv4/conf/all/rp_filter=2", "net/ipv4/conf/default/rp_filter=2",
                # the topology is IPv4; no IPv6 chatter (router solicitations, MLD) in counters or tunnels
                "net/ipv6/conf/all/disable_ipv6=1", "net/ipv6/conf/default/disable_ipv6=1"]
    if spec.role == "client":
        # wg-quick's setting: the fwmark counts in the reverse-path check of tunnelled packets.
        settings.append("net/ipv4/conf/all/src_valid_mark=1")
    if spec.forwarding:
        settings.append("net/ipv4/ip_forward=1")
    if spec.role == "server" and os.path.exists(f"/proc/sys/{BRIDGE_NETFILTER}"):
        # br_netfilter (loaded by dockerd) would pass the server's bridged frames through iptables
        settings.append(f"{BRIDGE_NETFILTER}=0")
    return settings


class NetnsHost(Host):
    """A host whose commands run through `nsenter` into its keeper's namespaces."""

    def __init__(self, spec: HostSpec, run_id: str, log_dir: Path) -> None:
        super().__init__(spec.name, run_id, log_dir)
        self.spec = spec
        self.keeper = proc.Process(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "bash", "-c", KEEPER_SCRIPT,
             "keeper", *host_sysctls(spec)],
            name=f"{spec.name}/keeper", env=self.env({"COMPS_HARNESS_KEEPER": keeper_name(run_id, spec.name)}),
            log_path=log_dir / f"{spec.name}-keeper.log", stdout=subprocess.PIPE)
        self.pid = self.keeper.pid

    def wait_ready(self, timeout: float = KEEPER_TIMEOUT) -> None:
        stream = self.keeper.popen.stdout
        assert stream is not None
        readable, _, _ = select.select([stream], [], [], timeout)
        line = stream.readline().decode(errors="replace").strip() if readable else ""
        if line != "ready":
            self.keeper.stop()
            raise BackendError(f"{self.name}: namespace keeper did not start "
                               f"({self.keeper.log_tail() or 'no output'}); is this root with CAP_SYS_ADMIN?")

    def command_prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--"]

    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def path(self, inside: str) -> Path:
        """A path inside the host's mount namespace, as seen from outside (through /proc/<pid>/root)."""
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def destroy(self) -> None:
        self.close_netlink()
        self.keeper.stop(sig=signal.SIGKILL)


class NetnsNetwork(Network):
    """The topology in network namespaces on this machine: no daemon, up in about a second."""

    backend = "netns"

    def _create_hosts(self) -> None:
        for directory in PRIVATE_DIRS:
            os.makedirs(directory, exist_ok=True)  # mount points for the hosts' private tmpfs
        self._stack.callback(self._destroy_hosts)
        for spec in self.topology.hosts:
            self.hosts[spec.name] = NetnsHost(spec, self.run_id, self.workdir)
        for host in self.hosts.values():
            host.wait_ready()
        for host in self.hosts.values():
            host.netlink.link("set", index=host.link_index("lo"), state="up")
        for bridge in self.topology.bridges:
            ipr = self.hosts[bridge.host].netlink
            ipr.link("add", ifname=bridge.ifname, kind="bridge")
            index = self.hosts[bridge.host].link_index(bridge.ifname)
            ipr.addr("add", index=index, address=str(bridge.address.ip), prefixlen=bridge.address.network.prefixlen)
            ipr.link("set", index=index, state="up", mtu=self.topology.mtus.underlay)
        for number, link in enumerate(self.topology.links):
            self._create_link(link, VETH_INDEX_BASE + 2 * number)

    def _create_link(self, link: LinkSpec, index_a: int) -> None:
        """A veth pair whose two ends never share an interface index.

        The kernel handles a carrier change at once only for a device whose index differs from its
        peer's (linkwatch's "urgent" test); fresh namespaces number both ends alike (3 and 3), which
        delayed the carrier, and so a bridge port, by up to a second.
        """
        a, b = self.hosts[link.a_host], self.hosts[link.b_host]
        mtu = self.topology.mtus.underlay
        a.netlink.link("add", ifname=link.a_ifname, kind="veth", index=index_a,
                       peer={"ifname": link.b_ifname, "net_ns_pid": b.pid, "index": index_a + 1})
        for host, ifname, address in ((a, link.a_ifname, link.a_address), (b, link.b_ifname, link.b_address)):
            index = host.link_index(ifname)
            if address is not None:
                host.netlink.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            extra = {"master": b.link_index(link.b_bridge)} if host is b and link.b_bridge else {}
            host.netlink.link("set", index=index, state="up", mtu=mtu, **extra)

    def _destroy_hosts(self) -> None:
        hosts = [h for h in self.hosts.values() if isinstance(h, NetnsHost)]
        # Signal every daemon first and wait afterwards: teardown costs one exit, not one per daemon.
        for host in hosts:
            host.signal_processes(signal.SIGTERM)
        for host in hosts:
            host.stop_processes()
        for host in reversed(hosts):
            host.destroy()
