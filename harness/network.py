"""A built topology, whatever the backend: hosts, keys, and the runtime view scenarios use.

Backends subclass `Network` and provide the hosts and WireGuard devices; the configuration on top is shared.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from pathlib import Path

from harness import cleanup, proc, signals
from harness.errors import BackendError
from harness.hosts import Host
from harness.topology import (CLIENT, DEFAULT_ROUTE, ORIGIN, PATH_TABLE, SERVER, RouteSpec, Topology,
                              WireGuardSpec, proxy_name)
from harness.wgconfig import Keyring, iptables_restore_text, render_setconf
from harness.wgstate import PeerTransfer

log = logging.getLogger(__name__)
WIREGUARD_GO_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
DEVICE_TIMEOUT = 10.0
MAIN_TABLE = 254
FIB_RULE_INVERT = 0x2
Progress = Callable[[str], None]


def _no_progress(message: str) -> None:
    pass


class Network(ABC):
    """Owns every resource of one topology instance; a context manager that tears down in reverse."""

    backend = "abstract"
    uses_docker = False  # whether the last sweep of a teardown must look for labelled Docker objects

    def __init__(self, topology: Topology, *, run_id: str, wireguard: str, progress: Progress | None = None) -> None:
        self.topology = topology
        self.run_id = run_id
        self.workdir = Path("/nonexistent")
        self.wireguard_impl = wireguard
        self.progress = progress or _no_progress
        self.hosts: dict[str, Host] = {}
        self.keys = Keyring.generate(topology)
        self._stack = contextlib.ExitStack()
        self.built_at: float | None = None
        self._path_ifindex: dict[int, int] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Network:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove everything this network created, in reverse order; safe to call twice."""
        with signals.deferred():
            self.progress(f"{self.run_id}: tearing down")
            self._stack.close()
        self.hosts.clear()

    def _build(self) -> None:
        started = time.monotonic()
        # Registered first, so it runs last: whatever escaped its owner is found by its run tag.
        self._stack.callback(cleanup.remove_run, self.run_id, docker=self.uses_docker)
        self.workdir = Path(tempfile.mkdtemp(prefix=cleanup.workdir_prefix(self.run_id)))
        self.progress(f"{self.run_id}: creating hosts ({self.backend})")
        self._create_hosts()
        self.progress(f"{self.run_id}: starting WireGuard ({self.wireguard_impl})")
        self._create_wireguard_devices()
        self.progress(f"{self.run_id}: configuring tunnels and routing")
        self._parallel(self._configure_wireguard, self.topology.wireguard)
        self._configure_client_routing()
        self._configure_forwarding()
        self._add_routes(self.topology.origin_routes)
        self.progress(f"{self.run_id}: handshaking every path")
        self._warm_up()
        self.built_at = time.time()
        log.info("%s: topology up in %.3f s", self.run_id, time.monotonic() - started)
        self.progress(f"{self.run_id}: ready")

    def _warm_up(self, timeout: float = 15.0) -> None:
        """Complete the WireGuard handshakes of wg0 and every path, so "up" means traffic flows.

        Without this the first seconds of a run would measure handshakes (about a second for the
        nested tunnels), not the topology.
        """
        origin = str(self.topology.origin_address().ip)
        for path in (*self.topology.path_ids[1:], self.topology.path_ids[0]):
            self.set_path(path)
            result = self.client.exec(["ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", str(int(timeout)), origin],
                                      check=False, timeout=timeout + 5)
            if result.returncode != 0:
                raise BackendError(f"no traffic through wg0 over path {path} within {timeout:.0f} s: "
                                   f"{result.stdout.strip()} {result.stderr.strip()}")

    @abstractmethod
    def _create_hosts(self) -> None:
        """Create every host and underlay link, registering teardown on self._stack."""

    def _create_wireguard_devices(self) -> None:
        """Create the WireGuard interfaces of topology.wireguard (down, unconfigured)."""
        specs = self.topology.wireguard
        if self.wireguard_impl == "kernel":
            for spec in specs:
                self.hosts[spec.host].netlink.link("add", ifname=spec.ifname, kind="wireguard")
            return
        # wireguard-go in the foreground, owned by its host; spawned from this thread so that
        # the die-with-parent signal is tied to a thread that lives as long as the run.
        daemons = {(spec.host, spec.ifname): self.hosts[spec.host].spawn(
            ["wireguard-go", "-f", spec.ifname], name=f"wireguard-go-{spec.ifname}", env=WIREGUARD_GO_ENV)
            for spec in specs}
        deadline = time.monotonic() + DEVICE_TIMEOUT
        for spec in specs:
            self._wait_for_device(spec, daemons[(spec.host, spec.ifname)], deadline)

    def _wait_for_device(self, spec: WireGuardSpec, daemon: proc.Process, deadline: float) -> None:
        host = self.hosts[spec.host]
        socket_path = host.path(f"/run/wireguard/{spec.ifname}.sock")
        while not (socket_path.exists() and host.netlink.link_lookup(ifname=spec.ifname)):
            if not daemon.running():
                raise BackendError(f"{spec.host}: wireguard-go {spec.ifname} exited with {daemon.popen.returncode}: "
                                   f"{daemon.log_tail() or 'no output'}")
            if time.monotonic() > deadline:
                raise BackendError(f"{spec.host}: wireguard-go {spec.ifname} did not create its device and socket "
                                   f"within {DEVICE_TIMEOUT:g} s")
            time.sleep(0.002)

    @staticmethod
    def _parallel(function: Callable, items) -> list:
        items = list(items)
        with ThreadPoolExecutor(max_workers=min(8, len(items) or 1)) as pool:
            return list(pool.map(function, items))

    # -- shared configuration --------------------------------------------------------------
    def _configure_wireguard(self, spec: WireGuardSpec) -> None:
        host = self.hosts[spec.host]
        path = f"/etc/wireguard/{spec.ifname}.conf"
        host.write_file(path, render_setconf(spec, self.keys), mode=0o600)
        host.exec(["wg", "setconf", spec.ifname, path], timeout=15)
        ipr = host.netlink
        index = host.link_index(spec.ifname)
        ipr.addr("add", index=index, address=str(spec.address.ip), prefixlen=spec.address.network.prefixlen)
        ipr.link("set", index=index, mtu=spec.mtu, state="up")

    def _add_routes(self, routes: tuple[RouteSpec, ...]) -> None:
        for route in routes:
            host = self.hosts[route.host]
            kwargs: dict = {"dst": str(route.dst)}
            if route.dev is not None:
                kwargs["oif"] = host.link_index(route.dev)
            if route.gateway is not None:
                kwargs["gateway"] = str(route.gateway)
            if route.table is not None:
                kwargs["table"] = route.table
            host.netlink.route("replace", **kwargs)

    def _configure_client_routing(self) -> None:
        self._add_routes(self.topology.client_routes(current_path=1))
        ipr = self.hosts[CLIENT].netlink
        for rule in self.topology.client_rules:
            table = MAIN_TABLE if rule.table == "main" else rule.table
            ipr.rule("add", priority=rule.priority, fwmark=rule.fwmark, fwmask=0xFFFFFFFF, table=table,
                     flags=FIB_RULE_INVERT if rule.invert else 0)

    def _configure_forwarding(self) -> None:
        """The demo's PostUp lines on proxies and server, loaded in one iptables-restore per host."""
        by_host: dict[str, list[WireGuardSpec]] = {}
        for spec in self.topology.wireguard:
            if spec.masquerade_out is not None:
                by_host.setdefault(spec.host, []).append(spec)
        for host_name, specs in by_host.items():
            self.hosts[host_name].exec(["iptables-restore", "--noflush"], input=iptables_restore_text(specs),
                                       timeout=15)

    # -- runtime view ----------------------------------------------------------------------
    @property
    def client(self) -> Host:
        return self.hosts[CLIENT]

    @property
    def server(self) -> Host:
        return self.hosts[SERVER]

    @property
    def origin(self) -> Host:
        return self.hosts[ORIGIN]

    def proxy(self, path: int) -> Host:
        return self.hosts[proxy_name(path)]

    def current_path(self) -> int | None:
        """The path the client's route in table 51821 points at now (None while there is none)."""
        ipr = self.client.netlink
        for route in ipr.get_routes(table=PATH_TABLE, family=socket.AF_INET):
            if route["dst_len"] == 0 and route.get_attr("RTA_TABLE") == PATH_TABLE:
                (link,) = ipr.get_links(route.get_attr("RTA_OIF"))
                return self.topology.path_of_device(link.get_attr("IFLA_IFNAME"))
        return None

    def set_path(self, path: int) -> None:
        """Move wg0's traffic to `path` with one atomic route replace (no window without a route)."""
        self.client.netlink.route("replace", dst=str(DEFAULT_ROUTE), oif=self.path_ifindex(path), table=PATH_TABLE)
        self.release_sticky_source()

    def path_ifindex(self, path: int) -> int:
        """The client's interface index of a path's tunnel (looked up once: switches are on a hot path)."""
        if path not in self._path_ifindex:
            self._path_ifindex[path] = self.client.link_index(self.topology.path_device(path))
        return self._path_ifindex[path]

    def release_sticky_source(self) -> None:
        """Make wg0's next packet follow table 51821 again (WireGuard pins the last path it heard from)."""
        (peer,) = self.topology.wireguard_of(CLIENT, "wg0").peers
        assert peer.endpoint is not None
        self.client.reset_peer_endpoint("wg0", self.keys.public(peer.host, peer.ifname), peer.endpoint)

    def path_transfer(self) -> dict[int, PeerTransfer]:
        """Bytes each proxy moved for the client, from the proxy's own WireGuard counters."""
        result = {}
        for k in self.topology.path_ids:
            name = proxy_name(k)
            counters = self.proxy(k).wg_transfer(name)
            result[k] = counters.get(self.keys.public(CLIENT, name), PeerTransfer(0, 0))
        return result

    def path_packets(self) -> dict[int, int]:
        """Packets each proxy's tunnel interface moved (both directions), from its interface counters."""
        result = {}
        for k in self.topology.path_ids:
            counters = self.proxy(k).interface_counters(proxy_name(k))
            result[k] = counters.rx_packets + counters.tx_packets
        return result

    def server_endpoint(self) -> tuple[IPv4Address, int] | None:
        """Where the server's wg0 believes the client is now (a proxy's address once traffic flowed)."""
        return self.server.wg_endpoints("wg0").get(self.keys.public(CLIENT, "wg0"))

    def path_of_endpoint(self, endpoint: tuple[IPv4Address, int] | None) -> int | None:
        """Which proxy an endpoint seen by the server belongs to (None if it is none of them)."""
        if endpoint is None:
            return None
        for k in self.topology.path_ids:
            if endpoint[0] == self.proxy_address_seen_by_server(k):
                return k
        return None

    def proxy_address_seen_by_server(self, path: int) -> IPv4Address:
        return self.topology.proxy_backbone_address(path).ip

    @contextlib.contextmanager
    def degraded_path(self, path: int, *, drop: float | None = None, rate: str | None = None):
        """Degrade proxy `path` until the block ends: drop a random share of what it forwards
        (iptables `statistic`), and/or limit both directions to `rate` (tc tbf, e.g. "20mbit")."""
        if drop is None and rate is None:
            raise ValueError("a degraded path needs a drop probability, a rate, or both")
        if drop is not None and not 0 < drop < 1:
            raise ValueError(f"drop probability {drop} must be between 0 and 1")
        proxy, undo = self.proxy(path), []
        try:
            if drop is not None:
                rule = ["FORWARD", "-m", "statistic", "--mode", "random", "--probability", f"{drop:g}",
                        "-m", "comment", "--comment", f"comps-degrade-{self.run_id}", "-j", "DROP"]
                proxy.exec(["iptables", "-I", *rule], timeout=10)
                undo.append(["iptables", "-D", *rule])
            if rate is not None:  # egress of both underlay links: towards the server and towards the client
                for link in (link for link in self.topology.links if proxy.name in (link.a_host, link.b_host)):
                    dev = link.a_ifname if link.a_host == proxy.name else link.b_ifname
                    proxy.exec(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate,
                                "burst", "32kbit", "latency", "50ms"], timeout=10)
                    undo.append(["tc", "qdisc", "del", "dev", dev, "root"])
            yield
        finally:
            for argv in reversed(undo):
                proxy.exec(argv, timeout=10, check=False)

    def run_browser(self, args: list[str], timeout: float) -> proc.CommandResult:
        """Run `python -m harness.browser ARGS` so that Chromium's traffic leaves from the client."""
        return self.client.exec(self.client.python() + ["-m", "harness.browser", *args], check=False,
                                timeout=timeout)

    def describe(self) -> dict:
        return {"backend": self.backend, "run_id": self.run_id, "wireguard": self.wireguard_impl,
                "topology": self.topology.describe()}

