"""The host interface every backend implements: run a command, start a process, read counters.

Scenarios and the migration controller talk to hosts only through this, never to a backend.
"""

from __future__ import annotations

import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pyroute2 import IPRoute

from harness.errors import BackendError
from harness.system import nslink, proc
from harness.wireguard import uapi
from harness.wireguard.genl import NETLINK_GENERIC, KernelWireGuard
from harness.wireguard.state import PeerTransfer, parse_transfer

if TYPE_CHECKING:
    from harness.model.topology import Topology
    from harness.wireguard.config import Keyring

HARNESS_DIR = Path(__file__).resolve().parent.parent  # the package, as mounted into containers


@dataclass(frozen=True)
class LinkCounters:
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


def parse_net_dev(text: str) -> dict[str, LinkCounters]:
    """/proc/net/dev -> interface -> counters (receive: bytes packets ...; transmit: bytes packets ...)."""
    found = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and len(fields) >= 10:
            found[name.strip()] = LinkCounters(int(fields[0]), int(fields[8]), int(fields[1]), int(fields[9]))
    return found


class Host(ABC):
    """One emulated machine of the topology (a namespace pair or a container)."""

    def __init__(self, name: str, run_id: str, log_dir: Path, pid: int) -> None:
        self.name = name
        self.pid = pid  # a process in the host's namespaces (the keeper, or the container's init)
        self.run_id = run_id
        self.log_dir = log_dir
        self._netlink = threading.local()
        self._netlink_handles: list[IPRoute] = []
        self._netlink_lock = threading.Lock()
        self._processes: list[proc.Process] = []

    # -- what a backend provides -----------------------------------------------------------
    @abstractmethod
    def command_prefix(self) -> list[str]:
        """The argv prefix that runs a command inside this host."""

    # -- shared behaviour ------------------------------------------------------------------
    def netns_path(self) -> str:
        """A path to this host's network namespace (for netlink)."""
        return f"/proc/{self.pid}/ns/net"

    def path(self, inside: str) -> Path:
        """A path inside the host's mount namespace, as seen from outside (through /proc/<pid>/root)."""
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def write_file(self, path: str, data: str, mode: int = 0o600) -> None:
        """Write a file inside the host (its own file system view, through `path()`), with `mode`."""
        fd = os.open(self.path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def python(self, script: str | None = None) -> list[str]:
        """The argv that runs Python (and a script of the harness package, by its path in the package,
        e.g. agents/probe.py) inside this host."""
        return [sys.executable] + ([str(HARNESS_DIR / script)] if script else [])

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return proc.tagged_env(self.run_id, extra)

    def exec(
        self,
        argv: list[str],
        *,
        timeout: float = 30.0,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> proc.CommandResult:
        return proc.run(
            self.command_prefix() + argv, where=self.name, env=self.env(env), timeout=timeout, check=check, input=input
        )

    def spawn(
        self, argv: list[str], *, name: str, env: dict[str, str] | None = None, stdout: int | None = None
    ) -> proc.Process:
        """Start a long-running process in the host; its stderr (and stdout unless piped) go to a log file."""
        process = proc.Process(
            self.command_prefix() + argv,
            name=f"{self.name}/{name}",
            env=self.env(env),
            log_path=self.log_dir / f"{self.name}-{name}.log",
            stdout=stdout,
        )
        self._processes.append(process)
        return process

    def signal_processes(self, sig: int) -> None:
        for process in self._processes:
            if process.running():
                process.popen.send_signal(sig)

    def kill_process(self, name: str, sig: int) -> bool:
        """Signal the running process this host started as `name` (its spawn name); False if none runs."""
        for process in self._processes:
            if process.name == f"{self.name}/{name}" and process.running():
                process.stop(timeout=2.0, sig=sig)
                return True
        return False

    def stop_processes(self) -> None:
        """Stop what this host started and is still running, newest first."""
        while self._processes:
            self._processes.pop().stop()

    @property
    def netlink(self) -> IPRoute:
        """This host's netlink handle for the calling thread, opened on first use, closed with the host."""
        handle = getattr(self._netlink, "handle", None)
        if handle is None:
            handle = nslink.open_iproute(self.netns_path())
            self._netlink.handle = handle
            with self._netlink_lock:
                self._netlink_handles.append(handle)
        return handle

    @property
    def kernel_wireguard(self) -> KernelWireGuard:
        """This host's generic-netlink handle to kernel WireGuard for the calling thread (as `netlink`)."""
        handle = getattr(self._netlink, "wireguard", None)
        if handle is None:
            handle = KernelWireGuard(nslink.netlink_socket(self.netns_path(), NETLINK_GENERIC))
            self._netlink.wireguard = handle
            with self._netlink_lock:
                self._netlink_handles.append(handle)
        return handle

    def drop_thread_netlink(self) -> None:
        """Close the calling thread's handles (a thread that ends must not leave its sockets open)."""
        for name in ("handle", "wireguard"):
            handle = getattr(self._netlink, name, None)
            if handle is None:
                continue
            setattr(self._netlink, name, None)
            with self._netlink_lock:
                if handle in self._netlink_handles:
                    self._netlink_handles.remove(handle)
            handle.close()

    def close_netlink(self) -> None:
        with self._netlink_lock:
            handles, self._netlink_handles = self._netlink_handles, []
        for handle in handles:
            handle.close()
        self._netlink = threading.local()

    def link_index(self, ifname: str) -> int:
        found = self.netlink.link_lookup(ifname=ifname)
        if not found:
            raise BackendError(f"{self.name} has no interface {ifname}")
        return found[0]

    def counters_by_name(self, names: list[str]) -> dict[str, LinkCounters]:
        """The counters of the named interfaces that exist, from the host's /proc/<pid>/net/dev.

        One small read and a split: parsing a netlink dump with pyroute2 takes milliseconds of the
        interpreter, which at a switch every 10 ms delayed the switcher itself.
        """
        try:
            text = Path(f"/proc/{self.pid}/net/dev").read_text()
        except OSError as exc:
            raise BackendError(f"{self.name}: cannot read its interface counters ({exc.strerror})") from None
        wanted = set(names)
        return {name: counters for name, counters in parse_net_dev(text).items() if name in wanted}

    def interface_counters(self, ifname: str) -> LinkCounters:
        found = self.counters_by_name([ifname])
        if ifname not in found:
            raise BackendError(f"{self.name} has no interface {ifname}")
        return found[ifname]

    # -- link, address and route changes of the shared configuration (runtime/configure.py) ----
    # Over this host's netlink here; a remote host (harness.backends.remote) runs `ip` over SSH instead.
    def has_link(self, ifname: str) -> bool:
        return bool(self.netlink.link_lookup(ifname=ifname))

    def add_wireguard_link(self, ifname: str) -> None:
        self.netlink.link("add", ifname=ifname, kind="wireguard")

    def address_up(self, ifname: str, address: IPv4Interface, mtu: int) -> None:
        """Give `ifname` its address and MTU and bring it up."""
        index = self.link_index(ifname)
        self.netlink.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        self.netlink.link("set", index=index, mtu=mtu, state="up")

    def replace_route(
        self, dst: str, *, dev: str | None = None, gateway: str | None = None, table: int | None = None
    ) -> None:
        kwargs: dict = {"dst": dst}
        if dev is not None:
            kwargs["oif"] = self.link_index(dev)
        if gateway is not None:
            kwargs["gateway"] = gateway
        if table is not None:
            kwargs["table"] = table
        self.netlink.route("replace", **kwargs)

    def wireguard_socket_exists(self, ifname: str) -> bool:
        """wireguard-go's UAPI socket for `ifname` is there (the device is ready for `wg`)."""
        return self.path(f"/run/wireguard/{ifname}.sock").exists()

    def wireguard_ready(self, ifname: str) -> bool:
        """wireguard-go's device `ifname` and its UAPI socket are both there."""
        return self.wireguard_socket_exists(ifname) and self.has_link(ifname)

    def wireguard_up(self, ifname: str, setconf: str, address: IPv4Interface, mtu: int) -> None:
        """Load the tunnel's config, then give it its address and MTU and bring it up (a remote host does
        both in one command)."""
        self.set_wireguard(ifname, setconf)
        self.address_up(ifname, address, mtu)

    def set_wireguard(self, ifname: str, setconf: str) -> None:
        """Load a `wg setconf` text (it holds the private key) into `ifname`: a 0600 file in the host's
        private /etc/wireguard (a tmpfs, as a container's), then `wg setconf`."""
        path = f"/etc/wireguard/{ifname}.conf"
        self.write_file(path, setconf, mode=0o600)
        self.exec(["wg", "setconf", ifname, path], timeout=15)

    def wg_endpoints(self, ifname: str) -> dict[str, tuple[IPv4Address, int] | None]:
        """Peer public key -> endpoint, in-process: over wireguard-go's UAPI socket where there is one, else
        from kernel WireGuard over generic netlink (no `wg show` spawned per sample)."""
        socket_path = self.path(f"/run/wireguard/{ifname}.sock")
        if socket_path.exists():
            return uapi.peer_endpoints(str(socket_path))
        return self.kernel_wireguard.peer_endpoints(ifname)

    def wg_transfer(self, ifname: str) -> dict[str, PeerTransfer]:
        return parse_transfer(self.exec(["wg", "show", ifname, "transfer"], timeout=10).stdout)

    def reset_peer_endpoint(self, ifname: str, public_key: str, endpoint: tuple[IPv4Address, int]) -> None:
        """Re-set a peer's endpoint, which clears WireGuard's sticky source (see harness.wireguard.uapi)."""
        socket_path = self.path(f"/run/wireguard/{ifname}.sock")
        if socket_path.exists():
            uapi.set_peer_endpoint(str(socket_path), public_key, endpoint)
        else:  # kernel WireGuard: no UAPI socket, the wg tool speaks netlink
            self.exec(["wg", "set", ifname, "peer", public_key, "endpoint", f"{endpoint[0]}:{endpoint[1]}"], timeout=10)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} run={self.run_id}>"


class HostsView(Protocol):
    """What configuration and accounting read of a Network (harness.runtime.network): its hosts, keys and
    plan. A protocol, so that network.py, which runs them, is not imported back by them."""

    topology: Topology
    run_id: str
    wireguard_impl: str
    hosts: dict[str, Host]
    keys: Keyring
    progress: Callable[[str], None]

    @property
    def client(self) -> Host: ...

    @property
    def server(self) -> Host: ...

    def proxy(self, path: int) -> Host: ...

    def drop_thread_netlink(self) -> None: ...
