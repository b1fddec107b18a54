"""Talk to a userspace WireGuard daemon over its UAPI socket (the protocol `wg` itself speaks).

Used for the one write that must be fast: re-setting a peer's endpoint right after a path switch.
"""

from __future__ import annotations

import base64
import socket
from ipaddress import IPv4Address

from harness.errors import BackendError


def set_peer_endpoint(
    socket_path: str, public_key: str, endpoint: tuple[IPv4Address, int], timeout: float = 2.0
) -> None:
    """Set one peer's endpoint; this also drops the sticky source address and interface.

    wireguard-go sends with IP_PKTINFO (source address and interface index) learned from the last
    packet it received, so a route change alone never moves an established session to another
    path. A fresh endpoint has no sticky source, and the next packet follows the routing tables.
    """
    request = (
        f"set=1\npublic_key={base64.b64decode(public_key).hex()}\nendpoint={endpoint[0]}:{endpoint[1]}\n\n"
    ).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
            sock.sendall(request)
            reply = b""
            while not reply.endswith(b"\n\n"):
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
        except OSError as exc:
            raise BackendError(f"WireGuard UAPI {socket_path}: {exc}") from None
    if reply.strip() != b"errno=0":
        raise BackendError(f"WireGuard UAPI {socket_path} refused the endpoint update: {reply.decode().strip()}")


def peer_endpoints(socket_path: str, timeout: float = 2.0) -> dict[str, tuple[IPv4Address, int] | None]:
    """Public key (base64) -> endpoint of every peer, read in-process (fast enough to poll every ms).

    The daemon's reply also holds the interface's private key; it is skipped while parsing and the
    raw reply is never kept, logged or raised.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
            sock.sendall(b"get=1\n\n")
            chunks = []
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"".join(chunks[-2:]).endswith(b"\n\n"):
                    break
        except OSError as exc:
            raise BackendError(f"WireGuard UAPI {socket_path}: {exc}") from None
    result: dict[str, tuple[IPv4Address, int] | None] = {}
    key = None
    for line in b"".join(chunks).decode().splitlines():
        name, _, value = line.partition("=")
        if name == "public_key":
            key = base64.b64encode(bytes.fromhex(value)).decode()
            result[key] = None
        elif name == "endpoint" and key is not None:
            host, _, port = value.rpartition(":")
            result[key] = (IPv4Address(host.strip("[]")), int(port))
    return result
