"""Render WireGuard configs from a Topology and a run's fresh keys.

Two formats, as the demo uses them: `wg setconf` files, and `wg-quick` files for the proxies and server.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.model.topology import Topology, WireGuardSpec
from harness.wireguard.keys import KeyPair


@dataclass(frozen=True)
class Keyring:
    """One fresh key pair per WireGuard interface of the topology, keyed by (host, ifname)."""

    pairs: dict[tuple[str, str], KeyPair]

    def __repr__(self) -> str:
        return f"Keyring({len(self.pairs)} key pairs)"

    @classmethod
    def generate(cls, topology: Topology) -> Keyring:
        return cls({(spec.host, spec.ifname): KeyPair.generate() for spec in topology.wireguard})

    def public(self, host: str, ifname: str) -> str:
        return self.pairs[(host, ifname)].public

    def private(self, host: str, ifname: str) -> str:
        return self.pairs[(host, ifname)].private


def _peer_lines(spec: WireGuardSpec, keys: Keyring) -> list[str]:
    lines: list[str] = []
    for peer in spec.peers:
        lines += [
            "",
            "[Peer]",
            f"PublicKey = {keys.public(peer.host, peer.ifname)}",
            "AllowedIPs = " + ", ".join(str(net) for net in peer.allowed_ips),
        ]
        if peer.endpoint is not None:
            lines.append(f"Endpoint = {peer.endpoint[0]}:{peer.endpoint[1]}")
    return lines


def render_setconf(spec: WireGuardSpec, keys: Keyring) -> str:
    """The file `wg setconf <ifname> FILE` reads: keys, port, fwmark and peers, nothing wg-quick only."""
    lines = ["[Interface]", f"PrivateKey = {keys.private(spec.host, spec.ifname)}"]
    if spec.listen_port is not None:
        lines.append(f"ListenPort = {spec.listen_port}")
    if spec.fwmark is not None:
        lines.append(f"FwMark = {spec.fwmark}")
    return "\n".join(lines + _peer_lines(spec, keys)) + "\n"


def forwarding_rules(spec: WireGuardSpec) -> list[tuple[str, str, str]]:
    """The demo's PostUp rules as (table, chain, match): forward through the tunnel, masquerade on the way out."""
    if spec.masquerade_out is None:
        return []
    return [
        ("filter", "FORWARD", f"-i {spec.ifname} -j ACCEPT"),
        ("filter", "FORWARD", f"-o {spec.ifname} -j ACCEPT"),
        ("nat", "POSTROUTING", f"-o {spec.masquerade_out} -j MASQUERADE"),
    ]


def iptables_commands(spec: WireGuardSpec, verb: str = "-A") -> list[str]:
    """The same rules as `iptables` command lines (wg-quick's PostUp = -A, PostDown = -D)."""
    return [
        f"iptables {'-t nat ' if table == 'nat' else ''}{verb} {chain} {match}"
        for table, chain, match in forwarding_rules(spec)
    ]


def iptables_restore_text(specs: list[WireGuardSpec]) -> str:
    """The same rules for several interfaces as one `iptables-restore --noflush` input."""
    tables: dict[str, list[str]] = {}
    for spec in specs:
        for table, chain, match in forwarding_rules(spec):
            tables.setdefault(table, []).append(f"-A {chain} {match}")
    return "".join(
        f"*{table}\n" + "".join(f"{rule}\n" for rule in rules) + "COMMIT\n" for table, rules in tables.items()
    )


def render_wg_quick(spec: WireGuardSpec, keys: Keyring) -> str:
    """A `wg-quick` file (Address, MTU, PostUp/PostDown) for a proxy or the server, as the demo's containers use."""
    lines = [
        "[Interface]",
        f"Address = {spec.address}",
        f"MTU = {spec.mtu}",
        f"PrivateKey = {keys.private(spec.host, spec.ifname)}",
    ]
    if spec.listen_port is not None:
        lines.insert(2, f"ListenPort = {spec.listen_port}")
    if spec.fwmark is not None:
        lines.append(f"FwMark = {spec.fwmark}")
    for verb, key in (("-A", "PostUp"), ("-D", "PostDown")):
        lines += [f"{key} = {command}" for command in iptables_commands(spec, verb)]
    return "\n".join(lines + _peer_lines(spec, keys)) + "\n"
