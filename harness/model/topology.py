"""The CoMPS topology as pure data: hosts, links, WireGuard interfaces, addresses, MTUs, routing.

Nothing here touches the machine; backends read a `Topology` and build it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from harness.errors import ConfigError

# The demo's numbers: fwmarks and routing tables of the client, and the listening ports.
WG0_FWMARK = 51820
WGNET_FWMARK = 51821
WG0_TABLE = 51820
PATH_TABLE = 51821
SERVER_PORT = 51820
PROXY_PORT = 51821
# The client's interfaces have no fixed listen port: the client initiates every session, and a
# fixed port can be taken by anything that bound a random one first (wireguard-go itself, Docker's
# DNS on 127.0.0.11). The ports others must reach are reserved in every host (host_sysctls).
RESERVED_PORTS = f"{SERVER_PORT}-{PROXY_PORT}"

MIN_PATHS = 2
MAX_PATHS = 8
# IPv4 + UDP + WireGuard data header (16) + auth tag (16); the underlay here is IPv4 only.
WIREGUARD_OVERHEAD_IPV4 = 20 + 8 + 32
DEFAULT_UNDERLAY_MTU = 1500
MIN_INNER_MTU = 576

CLIENT, SERVER, ORIGIN = "client", "server", "origin"


def proxy_name(path: int) -> str:
    """Proxy hosts and the client's tunnels to them carry the demo's names: wgnet1, wgnet2, ..."""
    return f"wgnet{path}"


def tunnel_mtu(outer_mtu: int) -> int:
    """MTU of a WireGuard interface whose packets travel over a link of `outer_mtu`."""
    return outer_mtu - WIREGUARD_OVERHEAD_IPV4


@dataclass(frozen=True)
class Mtus:
    """Underlay links, the client<->proxy tunnels (wgnetN) and the inner tunnel (wg0) inside them.

    Each tunnel level costs 60 bytes on an IPv4 underlay, so wg0 packets fit into wgnet packets
    without fragmentation (the demo used 1420 on all three, which fragments full-size wg0 packets).
    """

    underlay: int
    wgnet: int
    wg0: int

    @classmethod
    def for_underlay(cls, underlay: int = DEFAULT_UNDERLAY_MTU) -> Mtus:
        wgnet = tunnel_mtu(underlay)
        mtus = cls(underlay=underlay, wgnet=wgnet, wg0=tunnel_mtu(wgnet))
        if mtus.wg0 < MIN_INNER_MTU:
            raise ConfigError(
                f"underlay MTU {underlay} leaves wg0 only {mtus.wg0} bytes; "
                f"use an underlay MTU of at least {MIN_INNER_MTU + 2 * WIREGUARD_OVERHEAD_IPV4}"
            )
        return mtus


def _network(value: str | IPv4Network, what: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{what} {value!r} is not a network in CIDR form ({exc})") from None
    if not isinstance(net, IPv4Network):
        raise ConfigError(f"{what} {value} is IPv6; the address plan is IPv4 only")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified or net.is_reserved:
        raise ConfigError(f"{what} {value} is a special-purpose range; pick a private range such as 172.30.0.0/16")
    return net


@dataclass(frozen=True)
class AddressPlan:
    """Where every address comes from: two supernets carved into /24s.

    underlay /24 number 0 is the backbone (proxies and server), number k the path of proxy k,
    the last one the 'Internet' between server and origin. overlay /24 number 0 is wg0, number k
    the tunnel wgnetk. On each /24, .1 stays free for a Docker bridge gateway.
    """

    underlay: IPv4Network = field(default_factory=lambda: IPv4Network("172.30.0.0/16"))
    overlay: IPv4Network = field(default_factory=lambda: IPv4Network("10.66.0.0/16"))

    @classmethod
    def parse(cls, underlay: str, overlay: str) -> AddressPlan:
        return cls(_network(underlay, "underlay"), _network(overlay, "overlay"))

    def validate(self, paths: int) -> None:
        _network(self.underlay, "underlay")
        _network(self.overlay, "overlay")
        if self.underlay.overlaps(self.overlay):
            raise ConfigError(f"underlay {self.underlay} and overlay {self.overlay} overlap; give them disjoint ranges")
        for net, needed, what in ((self.underlay, paths + 2, "underlay"), (self.overlay, paths + 1, "overlay")):
            if net.prefixlen > 24 or 2 ** (24 - net.prefixlen) < needed:
                raise ConfigError(
                    f"{what} {net} holds fewer than the {needed} /24 subnets that {paths} paths need; "
                    "use a /16 or a larger prefix length budget"
                )

    def _slash24(self, supernet: IPv4Network, index: int) -> IPv4Network:
        return IPv4Network((int(supernet.network_address) + (index << 8), 24))

    def backbone(self) -> IPv4Network:
        return self._slash24(self.underlay, 0)

    def path(self, path: int) -> IPv4Network:
        return self._slash24(self.underlay, path)

    def internet(self) -> IPv4Network:
        return self._slash24(self.underlay, 2 ** (24 - self.underlay.prefixlen) - 1)

    def wg0_tunnel(self) -> IPv4Network:
        return self._slash24(self.overlay, 0)

    def wgnet_tunnel(self, path: int) -> IPv4Network:
        return self._slash24(self.overlay, path)


def host_address(net: IPv4Network, offset: int) -> IPv4Interface:
    return IPv4Interface((int(net.network_address) + offset, net.prefixlen))


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str  # client | proxy | server | origin
    forwarding: bool = False


@dataclass(frozen=True)
class LinkSpec:
    """A point-to-point underlay link; `b_bridge` names a bridge on host b that the b end joins."""

    a_host: str
    a_ifname: str
    a_address: IPv4Interface
    b_host: str
    b_ifname: str
    b_address: IPv4Interface | None
    b_bridge: str | None = None


@dataclass(frozen=True)
class BridgeSpec:
    host: str
    ifname: str
    address: IPv4Interface


@dataclass(frozen=True)
class PeerSpec:
    """A WireGuard peer, named by the (host, interface) whose key it carries."""

    host: str
    ifname: str
    allowed_ips: tuple[IPv4Network, ...]
    endpoint: tuple[IPv4Address, int] | None = None


@dataclass(frozen=True)
class WireGuardSpec:
    host: str
    ifname: str
    address: IPv4Interface
    listen_port: int | None  # None: whatever free port the kernel gives
    mtu: int
    peers: tuple[PeerSpec, ...]
    fwmark: int | None = None
    masquerade_out: str | None = None  # the demo's PostUp MASQUERADE rule, on this underlay interface


@dataclass(frozen=True)
class RouteSpec:
    host: str
    dst: IPv4Network  # 0.0.0.0/0 for a default route
    dev: str | None = None
    gateway: IPv4Address | None = None
    table: int | None = None


@dataclass(frozen=True)
class RuleSpec:
    """An `ip rule`: `fwmark` (or, with `invert`, everything else) looks up `table`."""

    host: str
    priority: int
    fwmark: int
    table: int | str
    invert: bool = False


DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")
BRIDGE_NETFILTER = "net/bridge/bridge-nf-call-iptables"


def host_sysctls(spec: HostSpec, *, bridge_netfilter: bool = False) -> tuple[str, ...]:
    """The sysctls (path=value) a host of the topology needs, whatever builds it.

    `bridge_netfilter`: br_netfilter is loaded (dockerd loads it); the server's bridged frames
    must then not pass through iptables.
    """
    settings = [
        "net/ipv4/conf/all/rp_filter=2",
        "net/ipv4/conf/default/rp_filter=2",
        # no random bind (a wireguard-go starting, a resolver) may take a port peers must reach
        f"net/ipv4/ip_local_reserved_ports={RESERVED_PORTS}",
        # the topology is IPv4; no IPv6 chatter (router solicitations, MLD) in counters or tunnels
        "net/ipv6/conf/all/disable_ipv6=1",
        "net/ipv6/conf/default/disable_ipv6=1",
    ]
    if spec.role == "client":
        # wg-quick's setting: the fwmark counts in the reverse-path check of tunnelled packets.
        settings.append("net/ipv4/conf/all/src_valid_mark=1")
    if spec.forwarding:
        settings.append("net/ipv4/ip_forward=1")
    if spec.role == "server" and bridge_netfilter:
        settings.append(f"{BRIDGE_NETFILTER}=0")
    return tuple(settings)


@dataclass(frozen=True)
class Topology:
    """The demo's four roles (plus origin, the 'Internet') for `paths` proxy paths."""

    paths: int = 2
    plan: AddressPlan = field(default_factory=AddressPlan)
    mtus: Mtus = field(default_factory=Mtus.for_underlay)

    def __post_init__(self) -> None:
        if isinstance(self.paths, bool) or not isinstance(self.paths, int):
            raise ConfigError(f"paths must be a whole number, not {self.paths!r}")
        if not MIN_PATHS <= self.paths <= MAX_PATHS:
            raise ConfigError(f"paths={self.paths}: migration needs between {MIN_PATHS} and {MAX_PATHS} proxy paths")
        self.plan.validate(self.paths)

    # -- hosts and names -------------------------------------------------------------------
    @cached_property
    def path_ids(self) -> tuple[int, ...]:
        return tuple(range(1, self.paths + 1))

    @cached_property
    def proxies(self) -> tuple[str, ...]:
        return tuple(proxy_name(k) for k in self.path_ids)

    @cached_property
    def hosts(self) -> tuple[HostSpec, ...]:
        return (
            HostSpec(CLIENT, "client"),
            *(HostSpec(name, "proxy", forwarding=True) for name in self.proxies),
            HostSpec(SERVER, "server", forwarding=True),
            HostSpec(ORIGIN, "origin"),
        )

    def path_device(self, path: int) -> str:
        """The client's tunnel interface that carries path `path`."""
        if path not in self.path_ids:
            raise ConfigError(f"path {path!r} does not exist; this topology has paths {list(self.path_ids)}")
        return proxy_name(path)

    def path_of_device(self, dev: str) -> int:
        for k in self.path_ids:
            if proxy_name(k) == dev:
                return k
        raise ConfigError(f"{dev!r} is not one of the client's path interfaces {list(self.proxies)}")

    # -- addresses -------------------------------------------------------------------------
    def client_path_address(self, path: int) -> IPv4Interface:
        return host_address(self.plan.path(path), 2)

    def proxy_path_address(self, path: int) -> IPv4Interface:
        return host_address(self.plan.path(path), 3)

    def proxy_backbone_address(self, path: int) -> IPv4Interface:
        return host_address(self.plan.backbone(), 10 + path)

    def server_backbone_address(self) -> IPv4Interface:
        return host_address(self.plan.backbone(), 2)

    def server_internet_address(self) -> IPv4Interface:
        return host_address(self.plan.internet(), 2)

    def origin_address(self) -> IPv4Interface:
        return host_address(self.plan.internet(), 3)

    def client_tunnel_address(self) -> IPv4Interface:
        return host_address(self.plan.wg0_tunnel(), 2)

    def server_tunnel_address(self) -> IPv4Interface:
        return host_address(self.plan.wg0_tunnel(), 1)

    # -- links -----------------------------------------------------------------------------
    @cached_property
    def bridges(self) -> tuple[BridgeSpec, ...]:
        return (BridgeSpec(SERVER, "br0", self.server_backbone_address()),)

    @cached_property
    def links(self) -> tuple[LinkSpec, ...]:
        links = []
        for k in self.path_ids:
            links.append(
                LinkSpec(
                    CLIENT, f"eth{k}", self.client_path_address(k), proxy_name(k), "eth1", self.proxy_path_address(k)
                )
            )
            links.append(
                LinkSpec(proxy_name(k), "eth0", self.proxy_backbone_address(k), SERVER, f"bb{k}", None, b_bridge="br0")
            )
        links.append(LinkSpec(ORIGIN, "eth0", self.origin_address(), SERVER, "eth0", self.server_internet_address()))
        return tuple(links)

    # -- WireGuard -------------------------------------------------------------------------
    @cached_property
    def wireguard(self) -> tuple[WireGuardSpec, ...]:
        everything = (DEFAULT_ROUTE,)
        specs = [
            WireGuardSpec(
                CLIENT,
                "wg0",
                self.client_tunnel_address(),
                None,
                self.mtus.wg0,
                (PeerSpec(SERVER, "wg0", everything, (self.server_backbone_address().ip, SERVER_PORT)),),
                fwmark=WG0_FWMARK,
            )
        ]
        for k in self.path_ids:
            name = proxy_name(k)
            tunnel = self.plan.wgnet_tunnel(k)
            specs.append(
                WireGuardSpec(
                    CLIENT,
                    name,
                    host_address(tunnel, 2),
                    None,
                    self.mtus.wgnet,
                    (PeerSpec(name, name, everything, (self.proxy_path_address(k).ip, PROXY_PORT)),),
                    fwmark=WGNET_FWMARK,
                )
            )
            specs.append(
                WireGuardSpec(
                    name,
                    name,
                    host_address(tunnel, 1),
                    PROXY_PORT,
                    self.mtus.wgnet,
                    (PeerSpec(CLIENT, name, (IPv4Network(f"{host_address(tunnel, 2).ip}/32"),)),),
                    masquerade_out="eth0",
                )
            )
        specs.append(
            WireGuardSpec(
                SERVER,
                "wg0",
                self.server_tunnel_address(),
                SERVER_PORT,
                self.mtus.wg0,
                (PeerSpec(CLIENT, "wg0", (IPv4Network(f"{self.client_tunnel_address().ip}/32"),)),),
                masquerade_out="eth0",
            )
        )
        return tuple(specs)

    def wireguard_of(self, host: str, ifname: str) -> WireGuardSpec:
        for spec in self.wireguard:
            if spec.host == host and spec.ifname == ifname:
                return spec
        raise ConfigError(f"the topology has no WireGuard interface {ifname} on {host}")

    @cached_property
    def client_wg0_peer(self) -> PeerSpec:
        """The server as the client's wg0 sees it (the endpoint a sticky-source release re-sets)."""
        (peer,) = self.wireguard_of(CLIENT, "wg0").peers
        return peer

    def proxy_client_device(self, path: int) -> str:
        """The proxy's end of its underlay link to the client (where the client's wgnet packets arrive)."""
        for link in self.links:
            if link.a_host == CLIENT and link.b_host == proxy_name(path):
                return link.b_ifname
        raise ConfigError(f"path {path} has no link between the client and its proxy")

    def path_link(self, path: int) -> LinkSpec:
        """The underlay link of path k: the client's eth<k> (a) and proxy k's eth1 (b): the WAN of a path."""
        for link in self.links:
            if link.a_host == CLIENT and link.b_host == proxy_name(path):
                return link
        raise ConfigError(f"the topology has no path {path}")

    def origin_link(self) -> LinkSpec:
        """The link between the origin (a) and the server (b): "the Internet"."""
        for link in self.links:
            if link.a_host == ORIGIN:
                return link
        raise ConfigError("the topology has no origin link")

    def underlay_devices(self, host: str) -> tuple[str, ...]:
        """The names of `host`'s ends of its underlay links."""
        return tuple(
            link.a_ifname if link.a_host == host else link.b_ifname
            for link in self.links
            if host in (link.a_host, link.b_host)
        )

    # -- the client's routing, as the demo does it ------------------------------------------
    def client_routes(self, current_path: int = 1) -> tuple[RouteSpec, ...]:
        return (
            RouteSpec(CLIENT, DEFAULT_ROUTE, dev="wg0", table=WG0_TABLE),
            RouteSpec(CLIENT, DEFAULT_ROUTE, dev=self.path_device(current_path), table=PATH_TABLE),
        )

    @cached_property
    def client_rules(self) -> tuple[RuleSpec, ...]:
        # Checked in priority order: the wgnet packets first (they must leave by the underlay),
        # then wg0's packets (they ride the current path), then everything else (into wg0).
        return (
            RuleSpec(CLIENT, 100, WGNET_FWMARK, "main"),
            RuleSpec(CLIENT, 200, WG0_FWMARK, PATH_TABLE),
            RuleSpec(CLIENT, 300, WG0_FWMARK, WG0_TABLE, invert=True),
        )

    @cached_property
    def origin_routes(self) -> tuple[RouteSpec, ...]:
        return (RouteSpec(ORIGIN, DEFAULT_ROUTE, gateway=self.server_internet_address().ip),)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (no keys) for results and reports."""
        return {
            "paths": self.paths,
            "underlay": str(self.plan.underlay),
            "overlay": str(self.plan.overlay),
            "mtu": {"underlay": self.mtus.underlay, "wgnet": self.mtus.wgnet, "wg0": self.mtus.wg0},
            "hosts": [h.name for h in self.hosts],
        }
