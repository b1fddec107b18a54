"""The ssh backend: the client on this machine, in a network namespace of its own; the proxies and the
server are the machines of an inventory (`--inventory hosts.toml`), or local SSH hosts without one.

Bring-up, in order, each step undone at teardown in reverse:
1. the hosts: local SSH hosts (harness.backends.sshlab) when there is no inventory;
2. one SSH connection per host (harness.backends.remote), then the pre-flight check on every host at
   once: a problem ends the bring-up with one line per problem, before anything is changed there;
3. the topology for those machines (harness.model.remote): their addresses, each proxy's underlay
   interface (the inventory's, else `ip route get` to the server), origin on the server;
4. the client's namespace and its underlay (on the local hosts' network);
5. the shared configuration (harness.runtime.configure) through the Host interface, where a remote host
   runs `ip` and `wg` over its connection, keys on stdin; then the proxies' forwarding rules, narrowed
   to the session and tagged.
Teardown stops the run's remote processes and sweeps every host by the run's tag (interfaces by alias,
iptables rules by comment, the run's directory), then closes the connections. `comps-harness clean
--inventory FILE --run-id RUN` does the same sweep after a crash or a lost connection.

What is not here yet (docs/remote.md): a client underlay for a real inventory (this machine's default
route), profiles and events on the remote ends, the origin's content services on the server.
"""

from __future__ import annotations

import signal
from typing import Any

from harness.backends.netns import NetnsHost
from harness.backends.registry import Prepared
from harness.backends.remote import RemoteHosts, SshHost, preflight, sweep_host
from harness.backends.sshlab import LocalSshHosts, lab_run_id
from harness.errors import BackendError, ConfigError, PrerequisiteError
from harness.model.inventory import Inventory, load_inventory
from harness.model.kinds import WireGuardImpl
from harness.model.preflight import Facts, needs_of
from harness.model.remote import RemoteTopology
from harness.model.settings import RunSettings
from harness.model.topology import CLIENT, ORIGIN, PROXY_PORT, SERVER, SERVER_PORT, HostSpec, proxy_name
from harness.runtime.accounting import CHAIN_IN, CHAIN_OUT
from harness.runtime.configure import parallel
from harness.runtime.network import Builder, Network, Progress
from harness.system import cleanup, prereq
from harness.system.ssh import Connection
from harness.wireguard.config import Keyring

# The server's accounting (harness.runtime.accounting) in its filter table, undone at teardown. Its chains
# have fixed names (no run tag fits iptables' 28 characters): a crash leaves them, and two runs on one
# server would share them (docs/remote.md).
ACCOUNTING_TEARDOWN = (
    f"iptables -D INPUT -j {CHAIN_IN}; iptables -D OUTPUT -j {CHAIN_OUT}; "
    f"iptables -F {CHAIN_IN}; iptables -X {CHAIN_IN}; iptables -F {CHAIN_OUT}; iptables -X {CHAIN_OUT}; true"
)
CLIENT_NUMBER = 100  # the client's place on the local SSH hosts' network (172.31.100.2/24)
LOCAL_BINARIES = ["unshare", "nsenter", "ssh", "wg", "ping"]


# -- the registry's interface ---------------------------------------------------------------
def check(settings: RunSettings, progress: Progress) -> Prepared:
    prereq.require_privileges()
    prereq.require_binaries(LOCAL_BINARIES)
    inventory = load_inventory(settings.inventory) if settings.inventory is not None else None
    if inventory is None:
        from harness.backends import sshlab

        sshlab.check()
    elif inventory.paths != settings.paths:
        raise ConfigError(f"--paths {settings.paths}: --inventory {inventory.source} has {inventory.paths} proxies")
    implementation = prereq.wireguard_implementation(settings.wireguard)
    return Prepared(implementation, {"inventory": inventory, "requested": str(settings.wireguard)})


def builder(prepared: Prepared) -> Builder:
    return SshBuilder(
        prepared.extra["inventory"], prepared.wireguard, prepared.extra["requested"], lab=prepared.extra.get("lab")
    )


def sweep(run_id: str) -> list[str]:
    """This machine's part: the local SSH hosts' processes (their own tag). The remote hosts' part needs the
    inventory: `comps-harness clean --inventory FILE --run-id RUN`."""
    return cleanup.remove_run(lab_run_id(run_id))


def leftovers(run_id: str) -> list[str]:
    return cleanup.find_leftovers(lab_run_id(run_id)).describe()


def run_ids() -> set[str]:
    return set()


def choose_wireguard(local: str, requested: str, facts: dict[str, Facts]) -> WireGuardImpl:
    """One implementation for the whole topology: kernel where this machine and every host have it (or
    were asked for it), else wireguard-go (every host has one or the pre-flight check named it)."""
    remote = {role: fact.wireguard(requested) for role, fact in facts.items()}
    if local == WireGuardImpl.KERNEL and all(found == WireGuardImpl.KERNEL for found in remote.values()):
        return WireGuardImpl.KERNEL
    without = [role for role, fact in facts.items() if fact.wireguard("wireguard-go") is None]
    if without:
        raise PrerequisiteError(
            f"WireGuard differs between the hosts and {', '.join(without)} has no wireguard-go: "
            "give every host the same implementation (--wireguard)"
        )
    return WireGuardImpl.WIREGUARD_GO


class SshBuilder(Builder):
    backend = "ssh"

    def __init__(
        self, inventory: Inventory | None, local_wireguard: str, requested: str, *, lab: LocalSshHosts | None = None
    ) -> None:
        """`lab`: local SSH hosts made beforehand, whose inventory this is (the bench keeps them over its
        runs, so that their start is not a bring-up's); without an inventory the build makes its own."""
        super().__init__()
        self.inventory = inventory if lab is None else lab.inventory
        self.local_wireguard = local_wireguard
        self.requested = requested
        self.lab: LocalSshHosts | None = lab
        self.remote: RemoteHosts | None = None
        self.facts: dict[str, dict[str, Any]] = {}

    def build(self, network: Network) -> None:
        paths = network.topology.paths
        roles = [*(proxy_name(k) for k in range(1, paths + 1)), SERVER]
        inventory = self.inventory
        if inventory is None:
            network.progress(f"{network.run_id}: making local SSH hosts ({', '.join(roles)})")
            self.lab = LocalSshHosts(network.run_id, network.workdir, roles)
            network.on_close(self.lab.close)
            inventory = self.lab.start()
        network.progress(f"{network.run_id}: connecting to {', '.join(roles)} over ssh")
        self.remote = remote = RemoteHosts(inventory, network.run_id, network.workdir)
        network.on_close(remote.close)
        remote.open()
        needs = {name: needs_of("proxy", udp_ports=(PROXY_PORT,), interfaces=(name,)) for name in roles[:-1]}
        needs[SERVER] = needs_of(SERVER, udp_ports=(SERVER_PORT,), interfaces=("wg0",))
        facts, problems = preflight(remote, self.requested, needs)
        if problems:
            raise PrerequisiteError("; ".join(problems))
        network.wireguard_impl = choose_wireguard(self.local_wireguard, self.requested, facts)
        self.facts = {role: fact.describe(network.wireguard_impl) for role, fact in facts.items()}
        interfaces = tuple(
            parallel(
                lambda k: inventory.proxy(k).interface or self._interface_towards(remote, proxy_name(k), inventory),
                range(1, paths + 1),
            )
        )
        topology = RemoteTopology(
            paths=paths,
            plan=network.topology.plan,
            mtus=network.topology.mtus,
            inventory=inventory,
            interfaces=interfaces,
        )
        network.topology = topology
        network.keys = Keyring.generate(topology)  # fresh, for the hosts they will be sent to
        self._client(network)
        for role in roles:
            network.hosts[role] = SshHost(remote[role], network.workdir)
        network.hosts[ORIGIN] = network.hosts[SERVER]  # origin's content is served by the server
        network.on_close(self._teardown_remote, network)
        self.configure(network)
        parallel(
            lambda item: network.hosts[item[0]].exec(["iptables-restore", "--noflush"], input=item[1], timeout=15),
            topology.remote_forwarding_rules(network.run_id).items(),
        )

    @staticmethod
    def _interface_towards(remote: RemoteHosts, role: str, inventory: Inventory) -> str:
        """The proxy's interface towards the server (`ip -o route get`), its underlay towards both ends."""
        out = remote[role].run(["ip", "-o", "route", "get", str(inventory.server.address)], timeout=10).stdout
        words = out.split()
        if "dev" not in words or words.index("dev") + 1 >= len(words):
            raise BackendError(f"{role}: no route to the server {inventory.server.address}: {out.strip()}")
        return words[words.index("dev") + 1]

    def _client(self, network: Network) -> None:
        spec = HostSpec(CLIENT, "client")
        client = NetnsHost(spec, network.run_id, network.workdir)
        network.hosts[CLIENT] = client
        network.on_close(self._destroy_client, client)
        client.wait_ready()
        client.netlink.link("set", index=client.link_index("lo"), state="up")
        if self.lab is None:
            raise ConfigError(
                "--inventory: the client's underlay to real hosts (this machine's default route) is not built "
                "yet; `comps-harness preflight --inventory FILE` checks the hosts (docs/remote.md)"
            )
        self.lab.attach(client, CLIENT_NUMBER)

    @staticmethod
    def _destroy_client(client: NetnsHost) -> None:
        client.signal_processes(signal.SIGTERM)
        client.stop_processes()
        client.destroy()

    def _teardown_remote(self, network: Network) -> None:
        """Stop the run's remote processes, then sweep every host by the run's tag (in parallel)."""
        remote = self.remote
        if remote is None:
            return

        def down(connection: Connection) -> None:
            host = network.hosts.get(connection.role)
            if isinstance(host, SshHost):
                host.stop_processes()
            if not connection.alive():
                return
            if connection.role == SERVER:  # the accounting chains carry no tag: removed by name
                connection.run(["sh", "-c", ACCOUNTING_TEARDOWN], timeout=15, check=False)
            sweep_host(connection, network.run_id)

        remote.each(down)  # every host at once
        lost = [c.role for c in remote.connections.values() if not c.alive()]
        if lost:
            network.progress(
                f"{network.run_id}: lost the ssh connection to {', '.join(lost)}; what the run left there goes "
                f"with `comps-harness clean --inventory FILE --run-id {network.run_id}`"
            )

    def describe(self) -> dict[str, Any]:
        return {"hosts": self.facts}
