"""Kernel WireGuard's peers over generic netlink, read in-process: no `wg show` spawned per sample.

On a machine where a fork and exec is slow (a guest under TCG or User-mode Linux) the endpoint
sampler spawning `wg` every few milliseconds starved the switcher. Here one netlink socket, opened
inside the host's network namespace (harness.system.nslink), asks the kernel for the device and
reads each peer's public key and endpoint. Private keys in the reply are never kept.
"""

from __future__ import annotations

import base64
import errno
import socket
import struct
from ipaddress import IPv4Address

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.generic import CTRL_CMD_GETFAMILY, GENL_ID_CTRL, ctrlmsg
from pyroute2.netlink.generic.wireguard import WG_CMD_GET_DEVICE, WG_GENL_NAME, WG_GENL_VERSION, wgmsg

from harness.errors import BackendError

NETLINK_GENERIC = 16
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id


def _send(sock: socket.socket, msg: ctrlmsg | wgmsg, kind: int, flags: int, seq: int) -> None:
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    sock.send(msg.data)


def split_messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, flags, the whole message) of each netlink message in one datagram."""
    out, offset = [], 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, _, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        out.append((kind, flags, data[offset : offset + length]))
        offset += (length + 3) & ~3
    return out


def _raw_replies(sock: socket.socket, *, dump: bool) -> list[bytes]:
    """The undecoded replies to one request, until NLMSG_DONE (a dump) or the one answer; errors raise."""
    found = []
    while True:
        for kind, _, message in split_messages(sock.recv(65536)):
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", message, HEADER.size)[0]
                if code:
                    raise OSError(code, f"generic netlink: {errno.errorcode.get(code, code)}")
                continue
            if kind == NLMSG_DONE:
                return found
            found.append(message)
        if not dump:
            return found


def _replies(sock: socket.socket, decode: type[ctrlmsg] | type[wgmsg], *, dump: bool) -> list:
    """The replies to one request, decoded by pyroute2."""
    found = []
    for message in _raw_replies(sock, dump=dump):
        reply = decode(message)
        reply.decode()
        found.append(reply)
    return found


def family_id(sock: socket.socket) -> int:
    msg = ctrlmsg()
    msg["cmd"] = CTRL_CMD_GETFAMILY
    msg["version"] = 1
    msg["attrs"] = [["CTRL_ATTR_FAMILY_NAME", WG_GENL_NAME]]
    _send(sock, msg, GENL_ID_CTRL, NLM_F_REQUEST, 1)
    (reply,) = _replies(sock, ctrlmsg, dump=False)
    return int(reply.get_attr("CTRL_ATTR_FAMILY_ID"))


def peer_endpoints_of(replies: list[wgmsg]) -> dict[str, tuple[IPv4Address, int] | None]:
    """Peer public key (base64) -> its IPv4 endpoint, or None while it has none (pure: decoded replies)."""
    peers: dict[str, tuple[IPv4Address, int] | None] = {}
    for reply in replies:
        for peer in reply.get_attr("WGDEVICE_A_PEERS") or []:
            key = peer.get_attr("WGPEER_A_PUBLIC_KEY")
            endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
            if key is None:
                continue
            name = key.decode() if isinstance(key, bytes) else str(key)  # base64, as `wg show` prints it
            usable = endpoint is not None and endpoint.get("port") and endpoint.get("addr", "").count(".") == 3
            peers[name] = (IPv4Address(endpoint["addr"]), int(endpoint["port"])) if usable else None
    return peers


NLA = struct.Struct("=HH")  # an attribute's length (header included) and type
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
GENL_HEADER = 4  # cmd, version, reserved
WGDEVICE_A_PEERS = 8
WGPEER_A_PUBLIC_KEY = 1
WGPEER_A_ENDPOINT = 4
SOCKADDR_IN = struct.Struct("=H2s4s")  # family (host order), port (network order), address


def _attributes(data: bytes, start: int, end: int):
    """(type, payload start, payload end) of each attribute in data[start:end]."""
    while start + NLA.size <= end:
        length, kind = NLA.unpack_from(data, start)
        if length < NLA.size:
            return
        yield kind & NLA_TYPE_MASK, start + NLA.size, min(end, start + length)
        start += (length + 3) & ~3


def peer_endpoints_raw(message: bytes) -> dict[str, tuple[IPv4Address, int] | None]:
    """peer_endpoints_of() for one undecoded WG_CMD_GET_DEVICE reply, reading only the peers' public keys and
    endpoints (pure). pyroute2 decodes every attribute (allowed IPs, handshake times, counters), which at a
    sample every 2 ms was the sampler's largest cost in a one-CPU guest."""
    peers: dict[str, tuple[IPv4Address, int] | None] = {}
    length = HEADER.unpack_from(message, 0)[0]
    for kind, start, end in _attributes(message, HEADER.size + GENL_HEADER, min(length, len(message))):
        if kind != WGDEVICE_A_PEERS:
            continue
        for _, peer_start, peer_end in _attributes(message, start, end):
            key, endpoint = None, None
            for attr, begin, finish in _attributes(message, peer_start, peer_end):
                if attr == WGPEER_A_PUBLIC_KEY and finish - begin == 32:
                    key = base64.b64encode(message[begin:finish]).decode()
                elif attr == WGPEER_A_ENDPOINT and finish - begin >= SOCKADDR_IN.size:
                    family, port, address = SOCKADDR_IN.unpack_from(message, begin)
                    number = int.from_bytes(port, "big")
                    endpoint = (IPv4Address(address), number) if family == socket.AF_INET and number else None
            if key is not None:
                peers[key] = endpoint
    return peers


class KernelWireGuard:
    """One generic-netlink socket in a host's network namespace, for the thread that opened it."""

    def __init__(self, sock: socket.socket, timeout: float = 2.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)  # a deadline on every read
        self.sock.bind((0, 0))
        self.family = family_id(self.sock)
        self._seq = 1

    def peer_endpoints(self, ifname: str) -> dict[str, tuple[IPv4Address, int] | None]:
        self._seq += 1
        msg = wgmsg()
        msg["cmd"] = WG_CMD_GET_DEVICE
        msg["version"] = WG_GENL_VERSION
        msg["attrs"] = [["WGDEVICE_A_IFNAME", ifname]]
        try:
            _send(self.sock, msg, self.family, NLM_F_REQUEST | NLM_F_DUMP, self._seq)
            peers: dict[str, tuple[IPv4Address, int] | None] = {}
            for message in _raw_replies(self.sock, dump=True):
                peers.update(peer_endpoints_raw(message))
            return peers
        except (OSError, TimeoutError) as exc:
            raise BackendError(f"kernel WireGuard {ifname}: its peers cannot be read over netlink: {exc}") from exc

    def close(self) -> None:
        self.sock.close()
