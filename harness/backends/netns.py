"""The namespace backend: each host is a network + mount namespace held by a keeper process.

Links are veth pairs made over netlink; WireGuard is the kernel module or wireguard-go in the host.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

from harness.backends.registry import Prepared
from harness.errors import BackendError
from harness.model.settings import RunSettings
from harness.model.topology import BRIDGE_NETFILTER, HostSpec, LinkSpec, host_sysctls
from harness.runtime.hosts import Host
from harness.runtime.network import Builder, Network, Progress
from harness.system import prereq, proc
from harness.system.wait import wait_until

PRIVATE_DIRS = ("/run/wireguard", "/etc/wireguard")
KEEPER_TIMEOUT = 10.0
VETH_INDEX_BASE = 100

# The keeper: private tmpfs on the WireGuard directories (as a container has; a local SSH host adds
# /tmp, /root and sshd's directory: harness/backends/sshlab.py), the host's sysctls, then it sleeps
# under a name that `comps-harness clean` can find. Arguments are sysctls as path=value
# (net/ipv4/ip_forward=1), the directories come in $COMPS_HARNESS_PRIVATE_DIRS; nothing is
# interpolated into the script.
KEEPER_SCRIPT = r"""
set -eu
for dir in $COMPS_HARNESS_PRIVATE_DIRS; do mount -t tmpfs -o mode=0700,size=16m tmpfs "$dir"; done
for setting in "$@"; do printf '%s\n' "${setting#*=}" > "/proc/sys/${setting%%=*}"; done
echo ready
exec -a "$COMPS_HARNESS_KEEPER" sleep infinity
"""


def keeper_name(run_id: str, host: str) -> str:
    return f"comps-harness:{run_id}:{host}"


# -- the registry's interface ---------------------------------------------------------------
def check(settings: RunSettings, progress: Progress) -> Prepared:
    return Prepared(prereq.check_netns_backend(settings.wireguard), {})


def builder(prepared: Prepared) -> Builder:
    return NetnsBuilder()


def sweep(run_id: str) -> list[str]:
    return []  # every namespace dies with its keeper: processes and work dirs are the generic sweep's


def leftovers(run_id: str) -> list[str]:
    return []


def run_ids() -> set[str]:
    return set()


class NetnsHost(Host):
    """A host whose commands run through `nsenter` into its keeper's namespaces."""

    def __init__(
        self,
        spec: HostSpec,
        run_id: str,
        log_dir: Path,
        private_dirs: tuple[str, ...] = PRIVATE_DIRS,
        *,
        own_pids: bool = False,
    ) -> None:
        """`own_pids`: the host also gets a PID namespace of its own (with its own /proc), so what runs in it
        sees only its own processes, as on a machine of its own (the local SSH hosts); the keeper is then
        its pid 1, and every process in it dies with the keeper."""
        bridge_netfilter = os.path.exists(f"/proc/sys/{BRIDGE_NETFILTER}")
        pids = ["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"] if own_pids else []
        keeper = proc.Process(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                *pids,
                "--",
                "bash",
                "-c",
                KEEPER_SCRIPT,
                "keeper",
                *host_sysctls(spec, bridge_netfilter=bridge_netfilter),
            ],
            name=f"{spec.name}/keeper",
            env=proc.tagged_env(
                run_id,
                {
                    "COMPS_HARNESS_KEEPER": keeper_name(run_id, spec.name),
                    "COMPS_HARNESS_PRIVATE_DIRS": " ".join(private_dirs),
                },
            ),
            log_path=log_dir / f"{spec.name}-keeper.log",
            stdout=subprocess.PIPE,
        )
        super().__init__(spec.name, run_id, log_dir, keeper.pid)
        self.spec = spec
        self.keeper = keeper
        self.own_pids = own_pids

    def wait_ready(self, timeout: float = KEEPER_TIMEOUT) -> None:
        stream = self.keeper.popen.stdout
        if stream is None:
            raise BackendError(f"{self.name}: the namespace keeper has no output pipe")
        readable, _, _ = select.select([stream], [], [], timeout)
        line = stream.readline().decode(errors="replace").strip() if readable else ""
        if line != "ready":
            self.keeper.stop()
            raise BackendError(
                f"{self.name}: namespace keeper did not start "
                f"({self.keeper.log_tail() or 'no output'}); is this root with CAP_SYS_ADMIN?"
            )
        if self.own_pids:  # the host's pid 1 (unshare's forked child) is the process in all its namespaces
            children = Path(f"/proc/{self.keeper.pid}/task/{self.keeper.pid}/children").read_text().split()
            if len(children) != 1:
                raise BackendError(f"{self.name}: the keeper has {len(children)} children, not its pid 1")
            self.pid = int(children[0])

    def command_prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", *(["-p"] if self.own_pids else []), "--"]

    def destroy(self) -> None:
        self.close_netlink()
        self.keeper.stop(sig=signal.SIGKILL)
        if self.own_pids and self.pid != self.keeper.pid:
            # the host's pid 1 gets its SIGKILL from the kernel as the keeper dies, a moment later: wait for
            # it (and with it every process of the host), so that "destroyed" means gone
            wait_until(
                lambda: not os.path.exists(f"/proc/{self.pid}"), timeout=KEEPER_TIMEOUT, what=f"{self.name}'s pid 1"
            )


def _gone(pid: int) -> bool:
    """The process has ended (a zombie counts: it runs nothing and holds no namespace's processes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class NetnsBuilder(Builder):
    """The topology in network namespaces on this machine: no daemon, up in about a second."""

    backend = "netns"

    def build(self, network: Network) -> None:
        for directory in PRIVATE_DIRS:
            os.makedirs(directory, exist_ok=True)  # mount points for the hosts' private tmpfs
        topology, hosts = network.topology, network.hosts
        network.on_close(self._destroy_hosts, network)
        for spec in topology.hosts:
            hosts[spec.name] = NetnsHost(spec, network.run_id, network.workdir)
        for host in hosts.values():
            host.wait_ready()
        for host in hosts.values():
            host.netlink.link("set", index=host.link_index("lo"), state="up")
        for bridge in topology.bridges:
            ipr = hosts[bridge.host].netlink
            ipr.link("add", ifname=bridge.ifname, kind="bridge")
            index = hosts[bridge.host].link_index(bridge.ifname)
            ipr.addr("add", index=index, address=str(bridge.address.ip), prefixlen=bridge.address.network.prefixlen)
            ipr.link("set", index=index, state="up", mtu=topology.mtus.underlay)
        for number, link in enumerate(topology.links):
            self._create_link(network, link, VETH_INDEX_BASE + 2 * number)
        self.configure(network)

    @staticmethod
    def _create_link(network: Network, link: LinkSpec, index_a: int) -> None:
        """A veth pair whose two ends never share an interface index.

        The kernel handles a carrier change at once only for a device whose index differs from its
        peer's (linkwatch's "urgent" test); fresh namespaces number both ends alike (3 and 3), which
        delayed the carrier, and so a bridge port, by up to a second.
        """
        a, b = network.hosts[link.a_host], network.hosts[link.b_host]
        mtu = network.topology.mtus.underlay
        a.netlink.link(
            "add",
            ifname=link.a_ifname,
            kind="veth",
            index=index_a,
            peer={"ifname": link.b_ifname, "net_ns_pid": b.pid, "index": index_a + 1},
        )
        for host, ifname, address in ((a, link.a_ifname, link.a_address), (b, link.b_ifname, link.b_address)):
            index = host.link_index(ifname)
            if address is not None:
                host.netlink.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            extra = {"master": b.link_index(link.b_bridge)} if host is b and link.b_bridge else {}
            host.netlink.link("set", index=index, state="up", mtu=mtu, **extra)

    @staticmethod
    def _destroy_hosts(network: Network) -> None:
        hosts = [h for h in network.hosts.values() if isinstance(h, NetnsHost)]
        # Signal every daemon first and wait afterwards: teardown costs one exit, not one per daemon.
        for host in hosts:
            host.signal_processes(signal.SIGTERM)
        for host in hosts:
            host.stop_processes()
        for host in reversed(hosts):
            host.destroy()
