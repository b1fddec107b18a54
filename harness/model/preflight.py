"""The pre-flight check of a remote host (ssh backend): what it has, read by one script that changes nothing.

`FACTS_SCRIPT` runs on the host (POSIX sh, over the run's SSH connection) and prints one fact a line;
`parse_facts` reads them and `problems` names, one line each, what keeps that host from its role:
a tool, root or CAP_NET_ADMIN, WireGuard (the module or wireguard-go with /dev/net/tun), IP
forwarding, and a UDP port or an interface name the run needs that is already taken. Pure, so
every branch has a unit test; the same facts go into the records (kernel, WireGuard, tool versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.model.kinds import WireGuardChoice, WireGuardImpl, wireguard_request

CAP_NET_ADMIN = 12
# What a role calls on its host, and the Debian package that brings it (the hint in the line).
TOOLS = {
    "ip": "iproute2",
    "tc": "iproute2",
    "ss": "iproute2",
    "wg": "wireguard-tools",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "tcpdump": "tcpdump",
    "sh": "dash",
}
SERVER_TOOLS = {"iperf3": "iperf3", "python3": "python3"}  # the server also serves origin's content
VERSIONED = ("wg", "iperf3", "tcpdump", "ip")

# Every line is "key value"; nothing is written, loaded or started. `command -v` is POSIX; the
# module test reads /sys and modinfo only (no modprobe).
FACTS_SCRIPT = r"""
for tool in "$@"; do
  if command -v "$tool" >/dev/null 2>&1; then echo "tool $tool yes"; else echo "tool $tool no"; fi
done
echo "uid $(id -u)"
echo "capeff $(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
echo "kernel $(uname -r)"
if [ -d /sys/module/wireguard ]; then echo "wireguard-module loaded"
elif modinfo wireguard >/dev/null 2>&1; then echo "wireguard-module available"
else echo "wireguard-module none"; fi
if command -v wireguard-go >/dev/null 2>&1; then echo "wireguard-go yes"; else echo "wireguard-go no"; fi
if [ -c /dev/net/tun ]; then echo "tun yes"; else echo "tun no"; fi
echo "ip_forward $(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo unknown)"
ip -o link show 2>/dev/null | awk -F': ' '{ split($2, name, "@"); print "interface " name[1] }'
ss -Hlun 2>/dev/null | while read -r _ _ _ local _; do echo "udp ${local##*:}"; done
for tool in wg iperf3 tcpdump ip; do
  command -v "$tool" >/dev/null 2>&1 || continue
  case $tool in wg) v=$(wg --version 2>&1);; ip) v=$(ip -V 2>&1);; *) v=$($tool --version 2>&1);; esac
  echo "version $tool $(printf '%s' "$v" | head -n 1)"
done
"""


@dataclass(frozen=True)
class Needs:
    """What one role's host must offer the run."""

    tools: tuple[str, ...]
    udp_ports: tuple[int, ...] = ()
    interfaces: tuple[str, ...] = ()
    forwarding: bool = True


def needs_of(role: str, *, udp_ports: tuple[int, ...] = (), interfaces: tuple[str, ...] = ()) -> Needs:
    tools = tuple(TOOLS) + (tuple(SERVER_TOOLS) if role == "server" else ())
    return Needs(tools, udp_ports, interfaces)


@dataclass
class Facts:
    tools: dict[str, bool] = field(default_factory=dict)
    uid: int | None = None
    capeff: int = 0
    kernel: str = "unknown"
    wireguard_module: str = "none"  # loaded | available | none
    wireguard_go: bool = False
    tun: bool = False
    ip_forward: str = "unknown"
    interfaces: set[str] = field(default_factory=set)
    udp_ports: set[int] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)

    def wireguard(self, requested: str) -> WireGuardImpl | None:
        """The implementation a run asking for `requested` gets on this host, or None."""
        choice = wireguard_request(requested)
        kernel = self.wireguard_module in ("loaded", "available")
        userspace = self.wireguard_go and self.tun
        if choice == WireGuardChoice.KERNEL:
            return WireGuardImpl.KERNEL if kernel else None
        if choice == WireGuardChoice.WIREGUARD_GO:
            return WireGuardImpl.WIREGUARD_GO if userspace else None
        return WireGuardImpl.KERNEL if kernel else WireGuardImpl.WIREGUARD_GO if userspace else None

    def describe(self, requested: str) -> dict[str, Any]:
        """For records: the host's kernel, its WireGuard and its tools' versions."""
        found = self.wireguard(requested)
        return {"kernel": self.kernel, "wireguard": found.value if found else None, "versions": dict(self.versions)}


def parse_facts(text: str) -> Facts:
    facts = Facts()
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "tool":
            name, _, present = value.partition(" ")
            facts.tools[name] = present == "yes"
        elif key == "uid" and value.isdigit():
            facts.uid = int(value)
        elif key == "capeff":
            try:
                facts.capeff = int(value, 16)
            except ValueError:
                facts.capeff = 0
        elif key == "kernel":
            facts.kernel = value
        elif key == "wireguard-module":
            facts.wireguard_module = value
        elif key == "wireguard-go":
            facts.wireguard_go = value == "yes"
        elif key == "tun":
            facts.tun = value == "yes"
        elif key == "ip_forward":
            facts.ip_forward = value
        elif key == "interface" and value:
            facts.interfaces.add(value)
        elif key == "udp" and value.isdigit():
            facts.udp_ports.add(int(value))
        elif key == "version":
            name, _, version = value.partition(" ")
            facts.versions[name] = version.split(" - ")[0].split(", libbpf")[0]  # no URL, no library list
    return facts


def problems(role: str, facts: Facts, needs: Needs, wireguard: str) -> list[str]:
    """One line per thing that keeps `role`'s host from the run; empty when it is ready."""
    found: list[str] = []
    missing = [tool for tool in needs.tools if not facts.tools.get(tool, False)]
    if missing:
        packages = sorted({{**TOOLS, **SERVER_TOOLS}.get(tool, tool) for tool in missing})
        found.append(f"{role}: {', '.join(missing)} not found on PATH (apt-get install {' '.join(packages)})")
    if facts.uid is None:
        found.append(f"{role}: the facts script did not run to its end (no uid); is the login shell POSIX?")
    elif facts.uid != 0 and not facts.capeff >> CAP_NET_ADMIN & 1:
        found.append(f"{role}: not root and no CAP_NET_ADMIN (log in as root, or give the user that capability)")
    if facts.wireguard(wireguard) is None:
        choice = wireguard_request(wireguard)
        if choice == WireGuardChoice.KERNEL:
            found.append(f"{role}: --wireguard kernel, but this kernel ({facts.kernel}) has no WireGuard module")
        elif facts.wireguard_go and not facts.tun:
            found.append(f"{role}: wireguard-go needs /dev/net/tun, which is missing (modprobe tun)")
        else:
            found.append(
                f"{role}: no WireGuard: kernel {facts.kernel} has no module and wireguard-go is missing "
                "(apt-get install wireguard-go)"
            )
    if needs.forwarding and facts.ip_forward == "0":
        found.append(f"{role}: IP forwarding is off (sysctl -w net.ipv4.ip_forward=1); the check changes nothing")
    elif needs.forwarding and facts.ip_forward not in ("0", "1"):
        found.append(f"{role}: cannot read net.ipv4.ip_forward")
    taken = sorted(set(needs.udp_ports) & facts.udp_ports)
    if taken:
        found.append(f"{role}: UDP port {', '.join(map(str, taken))} the run listens on is already taken")
    names = sorted(set(needs.interfaces) & facts.interfaces)
    if names:
        found.append(f"{role}: interface {', '.join(names)} the run creates already exists")
    return found
