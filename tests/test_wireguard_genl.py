"""Kernel WireGuard's peers as generic netlink gives them: a reply built with pyroute2's own message
class, split and read as the harness reads it (pure: no socket, no kernel module)."""

from __future__ import annotations

from base64 import b64encode
from ipaddress import IPv4Address

from pyroute2.netlink.generic.wireguard import wgmsg

from harness.wireguard.genl import peer_endpoints_of, split_messages


def reply_with_peers() -> bytes:
    msg = wgmsg()
    msg["cmd"], msg["version"] = 0, 1
    msg["header"]["type"], msg["header"]["flags"] = 30, 2
    msg["attrs"] = [
        ["WGDEVICE_A_IFNAME", "wg0"],
        [
            "WGDEVICE_A_PEERS",
            [
                {
                    "attrs": [
                        ["WGPEER_A_PUBLIC_KEY", {"value": b64encode(b"a" * 32)}],
                        ["WGPEER_A_ENDPOINT", {"addr": "10.1.2.3", "port": 51820}],
                    ]
                },
                {"attrs": [["WGPEER_A_PUBLIC_KEY", {"value": b64encode(b"b" * 32)}]]},  # no endpoint yet
            ],
        ],
    ]
    msg.encode()
    return msg.data


def test_peers_and_their_endpoints_are_read_from_a_dump():
    data = reply_with_peers()
    parts = split_messages(data + data)  # two messages in one datagram, as a dump sends them
    assert [(kind, len(message)) for kind, _, message in parts] == [(30, len(data))] * 2
    reply = wgmsg(parts[0][2])
    reply.decode()
    assert peer_endpoints_of([reply]) == {
        b64encode(b"a" * 32).decode(): (IPv4Address("10.1.2.3"), 51820),
        b64encode(b"b" * 32).decode(): None,
    }


def test_the_hand_decoder_reads_what_pyroute2_reads():
    from harness.wireguard.genl import peer_endpoints_raw

    data = reply_with_peers()
    reply = wgmsg(data)
    reply.decode()
    assert peer_endpoints_raw(data) == peer_endpoints_of([reply])
    assert peer_endpoints_raw(data)[b64encode(b"a" * 32).decode()] == (IPv4Address("10.1.2.3"), 51820)
    assert peer_endpoints_raw(data[:24]) == {}  # a reply cut short names no peer
