"""The demo's topology when the proxies and the server are machines of an inventory (the ssh backend).

The same roles, tunnels, keys and client routing as `Topology`; what changes is the underlay:

- a proxy's and the server's underlay address is the inventory's (where the others reach it), so the
  client's wgnetK endpoint is proxy K's address and its wg0 endpoint is the server's address;
- a proxy has one underlay interface (a machine's NIC, from the inventory or `ip route get`) towards
  the client and the server alike;
- origin is the server itself: its content is served on the server's wg0 address, so nothing leaves
  the server towards the Internet and no rule is needed there for it;
- the proxies' forwarding rules are narrowed to the session (`-s` the wgnet tunnel) and carry the run's
  tag, so that on a machine that is not the run's alone nothing else is masqueraded and teardown and
  `clean` find exactly them (`remote_forwarding_rules`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Interface
from typing import Any

from harness.errors import ConfigError
from harness.model.inventory import Inventory
from harness.model.topology import (
    CLIENT,
    SERVER,
    BridgeSpec,
    HostSpec,
    LinkSpec,
    RouteSpec,
    Topology,
    WireGuardSpec,
    proxy_name,
)

TAG = "comps-harness:{run_id}"  # interface alias and iptables comment of what a run makes on a remote host


def remote_tag(run_id: str) -> str:
    return TAG.format(run_id=run_id)


@dataclass(frozen=True)
class RemoteTopology(Topology):
    inventory: Inventory | None = None
    interfaces: tuple[str, ...] = ()  # proxy K's underlay interface is interfaces[K - 1]
    client_address: IPv4Interface = field(default_factory=lambda: IPv4Interface("172.31.100.2/24"))
    client_interface: str = "eth0"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inventory is None:
            raise ConfigError("the ssh backend's topology needs an inventory")
        if self.inventory.paths != self.paths:
            raise ConfigError(f"--paths {self.paths}: the inventory has {self.inventory.paths} proxies")
        if len(self.interfaces) != self.paths:
            raise ConfigError(f"the ssh topology needs one underlay interface per proxy, not {self.interfaces}")

    @property
    def _inventory(self) -> Inventory:
        assert self.inventory is not None
        return self.inventory

    @cached_property
    def hosts(self) -> tuple[HostSpec, ...]:
        return (
            HostSpec(CLIENT, "client"),
            *(HostSpec(name, "proxy", forwarding=True) for name in self.proxies),
            HostSpec(SERVER, "server", forwarding=True),
        )

    # -- addresses: the inventory's -----------------------------------------------------------
    def client_path_address(self, path: int) -> IPv4Interface:
        return self.client_address

    def proxy_path_address(self, path: int) -> IPv4Interface:
        return IPv4Interface(f"{self._inventory.proxy(path).address}/32")

    def proxy_backbone_address(self, path: int) -> IPv4Interface:
        return self.proxy_path_address(path)  # one address: the one the server sees the session come from

    def server_backbone_address(self) -> IPv4Interface:
        return IPv4Interface(f"{self._inventory.server.address}/32")

    def server_internet_address(self) -> IPv4Interface:
        return self.server_backbone_address()

    def origin_address(self) -> IPv4Interface:
        return self.server_tunnel_address()

    # -- links: the client's underlay to each proxy's one interface -----------------------------
    @cached_property
    def bridges(self) -> tuple[BridgeSpec, ...]:
        return ()

    @cached_property
    def links(self) -> tuple[LinkSpec, ...]:
        return tuple(
            LinkSpec(
                CLIENT,
                self.client_interface,
                self.client_address,
                proxy_name(k),
                self.interfaces[k - 1],
                self.proxy_path_address(k),
            )
            for k in self.path_ids
        )

    @cached_property
    def wireguard(self) -> tuple[WireGuardSpec, ...]:
        # the shared configuration installs no forwarding rule here: remote_forwarding_rules does, tagged
        return tuple(dataclasses.replace(spec, masquerade_out=None) for spec in super().wireguard)

    @cached_property
    def origin_routes(self) -> tuple[RouteSpec, ...]:
        return ()

    def remote_forwarding_rules(self, run_id: str) -> dict[str, str]:
        """Proxy name -> iptables-restore input (--noflush): forward its tunnel, masquerade only its
        session's packets out of its underlay interface, every rule with the run's comment."""
        comment = f'-m comment --comment "{remote_tag(run_id)}"'
        rules = {}
        for k in self.path_ids:
            name, tunnel = proxy_name(k), self.plan.wgnet_tunnel(k)
            rules[name] = (
                "*filter\n"
                f"-A FORWARD -i {name} {comment} -j ACCEPT\n"
                f"-A FORWARD -o {name} {comment} -j ACCEPT\n"
                "COMMIT\n*nat\n"
                f"-A POSTROUTING -s {tunnel} -o {self.interfaces[k - 1]} {comment} -j MASQUERADE\n"
                "COMMIT\n"
            )
        return rules

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["hosts"] = [h.name for h in self.hosts]
        described["remote"] = [host.describe() for host in self._inventory.hosts]
        return described
