"""A built topology, whatever the backend: its lifecycle (one ExitStack) and the runtime view scenarios use.

A backend's `Builder` creates the hosts and links and registers each undo on the network right
after the create; configuration on top is harness.runtime.configure; impairments are
harness.runtime.links. Teardown runs in reverse order of creation, with signals held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from harness.errors import BackendError
from harness.model.topology import (
    CLIENT,
    DEFAULT_ROUTE,
    ORIGIN,
    PATH_TABLE,
    SERVER,
    Topology,
    proxy_name,
)
from harness.runtime.configure import configure
from harness.runtime.hosts import Host
from harness.system import cleanup, signals
from harness.wireguard.config import Keyring
from harness.wireguard.state import PeerTransfer

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def _no_progress(message: str) -> None:
    pass


class Builder(ABC):
    """What a backend contributes to a Network: its hosts and links, its browser, its leftovers sweep."""

    backend = "abstract"

    def __init__(self) -> None:
        # run after the hosts exist and before configuration (a test holds a port there, for one)
        self.before_configure: list[Callable[[Network], None]] = []

    @abstractmethod
    def build(self, network: Network) -> None:
        """Create hosts and links (registering each undo with network.on_close), then configure them."""

    def configure(self, network: Network) -> None:
        """The shared configuration on top of the hosts, after the before_configure hooks."""
        for hook in self.before_configure:
            hook(network)
        configure(network)

    def browser_url(self, network: Network) -> str | None:
        """A chromedriver that runs in the client's network namespace (None: run the browser in the client)."""
        return None

    def sweep(self, run_id: str) -> list[str]:
        """Remove what this backend made for `run_id` outside the processes and work dir (its own cleanup)."""
        return []


class Network:
    """Owns every resource of one topology instance; a context manager that tears down in reverse."""

    def __init__(
        self, topology: Topology, *, run_id: str, wireguard: str, builder: Builder, progress: Progress | None = None
    ) -> None:
        self.topology = topology
        self.run_id = run_id
        self.workdir = Path("/nonexistent")
        self.wireguard_impl = wireguard
        self.profile = "lan"  # the path profile shaping its paths (harness.runtime.shaping), for records
        self.profile_events: tuple = ()  # its path events: every run on this network plays them (EventSpec)
        self.shapes: dict = {}  # (host, device) -> the profile's Shape there, while one is applied
        self.settlers: list[Callable[[], None]] = []  # run before a final counter read (shaped queues drain)
        self.builder = builder
        self._progress = progress or _no_progress
        self.hosts: dict[str, Host] = {}
        self.keys = Keyring.generate(topology)
        self._stack = contextlib.ExitStack()
        self.built_at: float | None = None
        self._path_ifindex: dict[int, int] = {}

    @property
    def backend(self) -> str:
        return self.builder.backend

    # -- lifecycle -------------------------------------------------------------------------
    def on_close(self, callback: Callable[..., Any], *args: Any) -> None:
        """Register an undo; undos run in reverse order of registration when the network closes."""
        self._stack.callback(callback, *args)

    def __enter__(self) -> Network:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def progress(self, message: str) -> None:
        """One progress line; then a signal its handler deferred (it landed in logging's code) is raised."""
        self._progress(message)
        signals.checkpoint()

    def close(self) -> None:
        """Remove everything this network created, in reverse order; safe to call twice."""
        with signals.deferred():
            self.progress(f"{self.run_id}: tearing down")
            self._stack.close()
        self.hosts.clear()

    def _build(self) -> None:
        started = time.monotonic()
        # Registered first, so they run last: whatever escaped its owner is found by its run tag.
        self.on_close(cleanup.remove_run, self.run_id)
        self.on_close(self.builder.sweep, self.run_id)
        self.workdir = Path(tempfile.mkdtemp(prefix=cleanup.workdir_prefix(self.run_id)))
        (self.workdir / cleanup.OWNER_FILE).write_text(str(os.getpid()))
        self.progress(f"{self.run_id}: creating hosts ({self.backend})")
        self.builder.build(self)
        signals.checkpoint()  # a signal swallowed during the build (it forks a lot) stops it here
        self.progress(f"{self.run_id}: handshaking every path")
        self.warm_up()
        signals.checkpoint()
        self.built_at = time.time()
        log.info("%s: topology up in %.3f s", self.run_id, time.monotonic() - started)
        self.progress(f"{self.run_id}: ready")

    def warm_up(self, timeout: float = 15.0) -> None:
        """Complete the WireGuard handshakes of wg0 and every path, so "up" means traffic flows.

        Without this the first seconds of a run would measure handshakes (about a second for the
        nested tunnels), not the topology.
        """
        origin = str(self.topology.origin_address().ip)
        for path in (*self.topology.path_ids[1:], self.topology.path_ids[0]):
            self.set_path(path)
            result = self.client.exec(
                ["ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", str(int(timeout)), origin],
                check=False,
                timeout=timeout + 5,
            )
            if result.returncode != 0:
                raise BackendError(
                    f"no traffic through wg0 over path {path} within {timeout:.0f} s: "
                    f"{result.stdout.strip()} {result.stderr.strip()}"
                )

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

    def settle(self) -> None:
        """Let what is queued on the way arrive before counters are compared (a shaped link holds packets)."""
        for settle in list(self.settlers):
            settle()

    def current_path(self) -> int | None:
        """The path the client's route in table 51821 points at now (None while there is none)."""
        ipr = self.client.netlink
        for route in ipr.get_routes(table=PATH_TABLE, family=socket.AF_INET):
            if route["dst_len"] == 0 and route.get_attr("RTA_TABLE") == PATH_TABLE:
                (link,) = ipr.get_links(route.get_attr("RTA_OIF"))
                return self.topology.path_of_device(link.get_attr("IFLA_IFNAME"))
        return None

    def route_to(self, path: int) -> None:
        """Point table 51821 at `path` with one atomic route replace (no window without a route)."""
        self.client.netlink.route("replace", dst=str(DEFAULT_ROUTE), oif=self.path_ifindex(path), table=PATH_TABLE)

    def set_path(self, path: int) -> None:
        """route_to(path), then release WireGuard's sticky source so wg0's next packet follows the route
        (set-up and scenarios; the migration controller releases as its sticky-source mode says)."""
        self.route_to(path)
        self.release_sticky_source()

    def path_ifindex(self, path: int) -> int:
        """The client's interface index of a path's tunnel (looked up once: switches are on a hot path)."""
        if path not in self._path_ifindex:
            self._path_ifindex[path] = self.client.link_index(self.topology.path_device(path))
        return self._path_ifindex[path]

    def release_sticky_source(self) -> None:
        """Make wg0's next packet follow table 51821 again (WireGuard pins the last path it heard from)."""
        peer = self.topology.client_wg0_peer
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
            if endpoint[0] == self.topology.proxy_backbone_address(k).ip:
                return k
        return None

    def drop_thread_netlink(self) -> None:
        """Close the calling thread's netlink handles on every host (call it before a thread ends)."""
        for host in self.hosts.values():
            host.drop_thread_netlink()

    def browser_url(self) -> str | None:
        return self.builder.browser_url(self)

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "run_id": self.run_id,
            "wireguard": self.wireguard_impl,
            "topology": self.topology.describe(),
        }
