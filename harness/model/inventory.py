"""The inventory of the ssh backend (`--inventory hosts.toml`): which machine plays which role, how to reach it.

Pure: it parses and checks, and names every problem in one line before anything starts. The client
is always this machine (in a network namespace of its own); every other role is a machine reached
over SSH. The file:

    [defaults]                       # any host field, for every host that does not set it
    user = "root"
    identity = "~/.ssh/comps_ed25519"
    known_hosts = "~/.ssh/known_hosts"

    [wgnet1]                         # the proxies: wgnet1 .. wgnetN, N >= 2, no gaps
    ssh = "203.0.113.11"             # [user@]host[:port], as ssh takes it
    address = "203.0.113.11"         # the underlay address the client and the server reach it on

    [wgnet2]
    ssh = "198.51.100.7:2222"
    address = "198.51.100.7"

    [server]                         # the inner session's far end; it also serves origin's content
    ssh = "admin@192.0.2.5"
    address = "192.0.2.5"

Host fields: ssh, address (both required), user, port, identity, known_hosts (required, from the host
or [defaults]), proxy_command (OpenSSH's ProxyCommand, for a jump host), interface (the underlay
interface; found with `ip route get` when absent).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.model.topology import MAX_PATHS, MIN_PATHS, SERVER, proxy_name

DEFAULTS = "defaults"
HOST_FIELDS = ("ssh", "address", "user", "port", "identity", "known_hosts", "proxy_command", "interface")
REQUIRED = ("ssh", "address", "identity", "known_hosts")
_PROXY = re.compile(r"^wgnet([1-9][0-9]*)$")
_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+)(?::(?P<port>[0-9]+))?$")
_INTERFACE = re.compile(r"^[A-Za-z0-9._@-]{1,15}$")


@dataclass(frozen=True)
class RemoteHost:
    """One machine of the inventory: its role, its SSH target and the underlay address others reach it on."""

    role: str
    host: str  # the SSH host name or address
    user: str
    port: int
    identity: Path
    known_hosts: Path
    address: IPv4Address
    proxy_command: str | None = None
    interface: str | None = None

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}"

    def describe(self) -> dict[str, Any]:
        """For records: where the role ran (no key material: the identity file's name only)."""
        return {"role": self.role, "ssh": f"{self.target}:{self.port}", "address": str(self.address)}


@dataclass(frozen=True)
class Inventory:
    source: str  # the file it came from, or what generated it
    hosts: tuple[RemoteHost, ...]

    @property
    def paths(self) -> int:
        return sum(1 for host in self.hosts if _PROXY.match(host.role))

    def role(self, name: str) -> RemoteHost:
        for host in self.hosts:
            if host.role == name:
                return host
        raise ConfigError(f"--inventory {self.source}: has no [{name}]")

    def proxy(self, path: int) -> RemoteHost:
        return self.role(proxy_name(path))

    @property
    def server(self) -> RemoteHost:
        return self.role(SERVER)


def _error(source: str, text: str) -> ConfigError:
    return ConfigError(f"--inventory {source}: {text}")


def _path(value: Any, source: str, role: str, name: str, base: Path, must_exist: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise _error(source, f"[{role}] {name} must be a file name")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if must_exist and not path.is_file():
        raise _error(source, f"[{role}] {name} {path} does not exist")
    return path


def _host(role: str, fields: dict[str, Any], source: str, base: Path, check_files: bool) -> RemoteHost:
    for name in fields:
        if name not in HOST_FIELDS:
            raise _error(source, f"[{role}] has an unknown field {name!r}; a host takes {', '.join(HOST_FIELDS)}")
    for name in REQUIRED:
        if name not in fields:
            raise _error(source, f'[{role}] has no "{name}" (set it there or in [{DEFAULTS}])')
    target = fields["ssh"]
    match = _TARGET.match(target) if isinstance(target, str) else None
    if match is None:
        raise _error(source, f"[{role}] ssh {target!r} is not [user@]host[:port]")
    user = match.group("user") or fields.get("user", "root")
    port = int(match.group("port") or fields.get("port", 22))
    if not isinstance(user, str) or not user:
        raise _error(source, f"[{role}] user must be a name")
    if not 0 < port < 65536:
        raise _error(source, f"[{role}] port {port} is not a TCP port")
    try:
        address = ipaddress.ip_address(fields["address"])
    except (TypeError, ValueError):
        raise _error(source, f"[{role}] address {fields['address']!r} is not an IP address") from None
    if not isinstance(address, IPv4Address):
        raise _error(source, f"[{role}] address {address} is IPv6; the underlay is IPv4 only")
    proxy_command = fields.get("proxy_command")
    if proxy_command is not None and (not isinstance(proxy_command, str) or not proxy_command.strip()):
        raise _error(source, f"[{role}] proxy_command must be a command line")
    interface = fields.get("interface")
    if interface is not None and (not isinstance(interface, str) or not _INTERFACE.match(interface)):
        raise _error(source, f"[{role}] interface {interface!r} is not an interface name")
    return RemoteHost(
        role=role,
        host=match.group("host"),
        user=user,
        port=port,
        identity=_path(fields["identity"], source, role, "identity", base, check_files),
        known_hosts=_path(fields["known_hosts"], source, role, "known_hosts", base, check_files),
        address=address,
        proxy_command=proxy_command,
        interface=interface,
    )


def parse_inventory(text: str, source: str, base: Path, *, check_files: bool = True) -> Inventory:
    """An inventory from TOML text; relative file names are taken from `base` (the file's folder)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(source, f"is not TOML ({exc})") from None
    defaults = data.pop(DEFAULTS, {})
    if not isinstance(defaults, dict):
        raise _error(source, f"[{DEFAULTS}] must be a table")
    hosts, numbers = [], []
    for role, fields in data.items():
        proxy = _PROXY.match(role)
        if role != SERVER and proxy is None:
            raise _error(
                source, f"[{role}] is not a role; the roles are wgnet1 .. wgnet{MAX_PATHS}, {SERVER} (and {DEFAULTS})"
            )
        if not isinstance(fields, dict):
            raise _error(source, f"{role} must be a table ([{role}])")
        if proxy:
            numbers.append(int(proxy.group(1)))
        hosts.append(_host(role, {**defaults, **fields}, source, base, check_files))
    if SERVER not in data:
        raise _error(source, f"has no [{SERVER}]")
    if len(numbers) < MIN_PATHS or sorted(numbers) != list(range(1, len(numbers) + 1)) or len(numbers) > MAX_PATHS:
        raise _error(
            source,
            f"the proxies must be wgnet1 .. wgnetN with {MIN_PATHS} <= N <= {MAX_PATHS}, "
            f"not {', '.join(proxy_name(n) for n in sorted(numbers)) or 'none'}",
        )
    seen: dict[IPv4Address, str] = {}
    for host in hosts:
        if host.address in seen:
            raise _error(source, f"{seen[host.address]} and {host.role} have the same address {host.address}")
        seen[host.address] = host.role
    order = {proxy_name(n): n for n in numbers} | {SERVER: len(numbers) + 1}
    return Inventory(source, tuple(sorted(hosts, key=lambda host: order[host.role])))


def load_inventory(path: Path) -> Inventory:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--inventory {path}: cannot be read ({exc.strerror})") from None
    return parse_inventory(text, str(path), path.resolve().parent)


def render_inventory(inventory: Inventory) -> str:
    """TOML that parses back into `inventory` (the generated local hosts' inventory file)."""
    lines = [f"# {inventory.source}"]
    for host in inventory.hosts:
        lines += ["", f"[{host.role}]"]
        lines.append(f'ssh = "{host.user}@{host.host}:{host.port}"')
        lines.append(f'address = "{host.address}"')
        lines.append(f'identity = "{host.identity}"')
        lines.append(f'known_hosts = "{host.known_hosts}"')
        if host.proxy_command:
            lines.append(f"proxy_command = {_toml_string(host.proxy_command)}")
        if host.interface:
            lines.append(f'interface = "{host.interface}"')
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
