"""The topology's shared configuration on built hosts: WireGuard devices and keys, the client's policy
routing, the proxies' and server's NAT, the origin's route. Backends call `configure` after their hosts exist.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from harness.errors import BackendError
from harness.model.kinds import WireGuardImpl
from harness.model.topology import CLIENT, RouteSpec, WireGuardSpec
from harness.runtime import accounting
from harness.system import proc
from harness.system.wait import wait_until
from harness.wireguard.config import iptables_restore_text, render_setconf

if TYPE_CHECKING:
    from harness.runtime.hosts import HostsView

WIREGUARD_GO_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
DEVICE_TIMEOUT = 10.0
MAIN_TABLE = 254
FIB_RULE_INVERT = 0x2


def parallel(function: Callable, items) -> list:
    items = list(items)
    with ThreadPoolExecutor(max_workers=min(8, len(items) or 1)) as pool:
        return list(pool.map(function, items))


def configure(network: HostsView) -> None:
    """Everything above the hosts and links: WireGuard, routing, forwarding (as the demo's configs do)."""
    network.progress(f"{network.run_id}: starting WireGuard ({network.wireguard_impl})")
    create_wireguard_devices(network)
    network.progress(f"{network.run_id}: configuring tunnels and routing")
    parallel(lambda spec: configure_wireguard(network, spec), network.topology.wireguard)
    add_routes(network, network.topology.client_routes(current_path=1))
    add_client_rules(network)
    configure_forwarding(network)
    add_routes(network, network.topology.origin_routes)
    accounting.install(network)


def create_wireguard_devices(network: HostsView) -> None:
    """The WireGuard interfaces of topology.wireguard (down, unconfigured)."""
    specs = network.topology.wireguard
    if network.wireguard_impl == WireGuardImpl.KERNEL:
        for spec in specs:
            network.hosts[spec.host].add_wireguard_link(spec.ifname)
        return
    # wireguard-go in the foreground, owned by its host; spawned from this thread so that
    # the die-with-parent signal is tied to a thread that lives as long as the run.
    daemons = {
        (spec.host, spec.ifname): network.hosts[spec.host].spawn(
            ["wireguard-go", "-f", spec.ifname], name=f"wireguard-go-{spec.ifname}", env=WIREGUARD_GO_ENV
        )
        for spec in specs
    }
    parallel(lambda spec: _wait_for_device(network, spec, daemons[(spec.host, spec.ifname)]), specs)


def _wait_for_device(network: HostsView, spec: WireGuardSpec, daemon: proc.Process) -> None:
    host = network.hosts[spec.host]

    def ready() -> bool:
        if not daemon.running():
            raise BackendError(
                f"{spec.host}: wireguard-go {spec.ifname} exited with {daemon.popen.returncode}: "
                f"{daemon.log_tail() or 'no output'}"
            )
        return host.wireguard_ready(spec.ifname)

    wait_until(ready, timeout=DEVICE_TIMEOUT, what=f"{spec.host}: wireguard-go {spec.ifname}'s device and socket")


def configure_wireguard(network: HostsView, spec: WireGuardSpec) -> None:
    network.hosts[spec.host].wireguard_up(spec.ifname, render_setconf(spec, network.keys), spec.address, spec.mtu)


def add_routes(network: HostsView, routes: tuple[RouteSpec, ...]) -> None:
    for route in routes:
        network.hosts[route.host].replace_route(
            str(route.dst),
            dev=route.dev,
            gateway=None if route.gateway is None else str(route.gateway),
            table=route.table,
        )


def add_client_rules(network: HostsView) -> None:
    ipr = network.hosts[CLIENT].netlink
    for rule in network.topology.client_rules:
        table = MAIN_TABLE if rule.table == "main" else rule.table
        ipr.rule(
            "add",
            priority=rule.priority,
            fwmark=rule.fwmark,
            fwmask=0xFFFFFFFF,
            table=table,
            flags=FIB_RULE_INVERT if rule.invert else 0,
        )


def configure_forwarding(network: HostsView) -> None:
    """The demo's PostUp lines on proxies and server, loaded in one iptables-restore per host."""
    by_host: dict[str, list[WireGuardSpec]] = {}
    for spec in network.topology.wireguard:
        if spec.masquerade_out is not None:
            by_host.setdefault(spec.host, []).append(spec)
    parallel(
        lambda item: network.hosts[item[0]].exec(
            ["iptables-restore", "--noflush"], input=iptables_restore_text(item[1]), timeout=15
        ),
        by_host.items(),
    )
