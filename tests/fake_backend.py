"""A fake backend for unit tests: hosts that keep their routes, counters and endpoints in memory.

It lets Network's lifecycle and the migration controller run without root, namespaces or
WireGuard. Traffic is modelled simply: every switch credits the path it leaves with `bytes_per_read`
(so a path carries traffic while the route names it), unless that path is marked dead; the
server sees the client on the path the route names (kernel WireGuard's behaviour).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from ipaddress import IPv4Address

from harness.model.topology import CLIENT, PATH_TABLE, SERVER, proxy_name
from harness.runtime.hosts import Host, LinkCounters
from harness.runtime.network import Builder, Network
from harness.runtime.watchers import Worker
from harness.system.proc import CommandResult
from harness.wireguard.state import PeerTransfer


class FakeWorld:
    """What the fake hosts share: the client's current path, the server's view, the counters."""

    def __init__(self, network: Network, bytes_per_read: int = 10_000) -> None:
        self.network = network
        self.current: int | None = None
        self.server_sees: int | None = None
        self.dead: set[int] = set()
        self.bytes: dict[int, int] = {}
        self.bytes_per_read = bytes_per_read
        self.route_listeners: list[Callable[[int], None]] = []
        self.releases = 0
        self.lock = threading.Lock()

    def route_to(self, path: int) -> None:
        self.credit(self.current)  # the path being left carried traffic until now
        self.current = path
        if path not in self.dead:
            self.server_sees = path  # kernel WireGuard's behaviour: the session follows the route
        for listener in self.route_listeners:
            listener(path)

    def release(self) -> None:
        self.releases += 1
        if self.current not in self.dead:
            self.server_sees = self.current

    def credit(self, path: int | None) -> None:
        with self.lock:
            if path is not None and path not in self.dead:
                self.bytes[path] = self.bytes.get(path, 0) + self.bytes_per_read

    def carried(self, path: int) -> int:
        with self.lock:
            return self.bytes.get(path, 0)


class FakeNetlink:
    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def route(self, command: str, *, table: int, dst: str | None = None, oif: int | None = None) -> list:
        if command == "dump":  # the switcher's warm-up
            return []
        if table == PATH_TABLE and oif is not None:
            self.host.world.route_to(self.host.index_path[oif])
        return []

    def link_lookup(self, ifname: str) -> list[int]:
        return [index for index, name in self.host.links.items() if name == ifname]


class FakeHost(Host):
    def __init__(self, name: str, world: FakeWorld, links: dict[int, str], index_path: dict[int, int]) -> None:
        super().__init__(name, "fake-run", world.network.workdir, pid=0)
        self.world, self.links, self.index_path = world, links, index_path
        self.commands: list[list[str]] = []
        self._fake_netlink = FakeNetlink(self)

    def command_prefix(self) -> list[str]:
        return ["fake", self.name]

    @property
    def netlink(self):  # type: ignore[override]
        return self._fake_netlink

    def netns_path(self) -> str:
        return f"fake:{self.name}"

    def exec(self, argv, **kwargs) -> CommandResult:  # type: ignore[override]
        self.commands.append(list(argv))
        out = ""
        if argv[:1] == ["iptables-save"]:  # the server's accounting rules: every packet arrived
            out = "\n".join(
                f"[{self.world.carried(k) // 100}:0] -A COMPS-ACCT-{chain} -m comment --comment "
                f"comps-path-{k}-{direction}"
                for k in self.world.network.topology.path_ids
                for chain, direction in (("IN", "up"), ("OUT", "down"))
            )
        return CommandResult(list(argv), 0, out, "", 0.0)

    def counters_by_name(self, names: list[str]) -> dict[str, LinkCounters]:
        known = {"wg0", *self.world.network.topology.proxies}  # the fake has no underlay links
        return {name: self.interface_counters(name) for name in names if name in known}

    def reset_peer_endpoint(self, ifname, public_key, endpoint) -> None:  # type: ignore[override]
        self.world.release()

    def wg_transfer(self, ifname: str) -> dict[str, PeerTransfer]:
        path = self.world.network.topology.path_of_device(ifname)
        return {self.world.network.keys.public(CLIENT, ifname): PeerTransfer(self.world.carried(path), 0)}

    def interface_counters(self, ifname: str) -> LinkCounters:
        topology = self.world.network.topology
        if ifname == "wg0":  # the session: everything every path carried
            packets = sum(self.world.carried(k) for k in topology.path_ids) // 100
        else:
            packets = self.world.carried(topology.path_of_device(ifname)) // 100
        return LinkCounters(packets * 100, packets * 100, packets, packets)

    def wg_endpoints(self, ifname: str) -> dict:
        seen = self.world.server_sees
        if seen is None:
            return {}
        address = self.world.network.topology.proxy_backbone_address(seen).ip
        return {self.world.network.keys.public(CLIENT, "wg0"): (IPv4Address(address), 51821)}


class FakeBuilder(Builder):
    backend = "fake"

    def __init__(self, fail_after_hosts: bool = False) -> None:
        super().__init__()
        self.fail_after_hosts = fail_after_hosts
        self.events: list[str] = []
        self.world: FakeWorld | None = None

    def build(self, network: Network) -> None:
        self.world = world = FakeWorld(network)
        topology = network.topology
        client_links = {100 + k: proxy_name(k) for k in topology.path_ids}
        index_path = {100 + k: k for k in topology.path_ids}
        for spec in topology.hosts:
            links = client_links if spec.name == CLIENT else {}
            network.hosts[spec.name] = FakeHost(spec.name, world, links, index_path)
            network.on_close(self.events.append, f"remove {spec.name}")
            self.events.append(f"create {spec.name}")
        if self.fail_after_hosts:
            raise RuntimeError("the fake backend failed on purpose")
        network.hosts[SERVER]

    def sweep(self, run_id: str) -> list[str]:
        self.events.append("sweep")
        return []


class FakeMonitor(Worker):
    """The route monitor, fed by the fake netlink instead of a kernel socket."""

    def __init__(
        self,
        netns_path: str,
        path_of_index: dict[int, int],
        on_switch: Callable[[float, int, float | None], None],
        *,
        world: FakeWorld,
    ) -> None:
        super().__init__("fake-route-monitor")
        import time

        world.route_listeners.append(lambda path: on_switch(time.monotonic(), path, None))

    def run(self) -> None:
        self.stopping.wait()
