"""The observer view from small captures made here (pure): shares, stretches, linkability, estimates."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from harness.measure.capture import read_pcap, write_pcap
from harness.measure.observer import analyse, count_marker

SERVER = 51820


def wg(kind: int, receiver: int = 0, counter: int = 0, payload: int = 64) -> bytes:
    if kind == 4:
        return bytes([4, 0, 0, 0]) + struct.pack("<IQ", receiver, counter) + b"\0" * (payload + 16)
    return bytes([kind, 0, 0, 0]) + b"\1" * 144


def frame(src: str, dst: str, sport: int, dport: int, message: bytes) -> bytes:
    total = 28 + len(message)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, IPv4Address(src).packed, IPv4Address(dst).packed)
    return ip + struct.pack("!HHHH", sport, dport, 8 + len(message), 0) + message


def capture(path: int, counters: list[int], receiver: int, start: float = 0.0, handshake: bool = False):
    client = f"10.66.{path}.2"
    frames = [(start, frame(client, "172.30.0.2", 40000, SERVER, wg(1)))] if handshake else []
    frames += [(start + 0.001 * c, frame(client, "172.30.0.2", 40000, SERVER, wg(4, receiver, c))) for c in counters]
    frames += [
        (start + 0.001 * c, frame("172.30.0.2", client, SERVER, 40000, wg(4, receiver + 1, c))) for c in counters
    ]
    return read_pcap(write_pcap(frames))


def test_alternating_halves():
    # counters 0-9 on path 1, 10-19 on path 2, 20-29 on path 1: one session (same receiver index)
    one = capture(1, list(range(10)) + list(range(20, 30)), receiver=7, handshake=True)
    two = capture(2, list(range(10, 20)), receiver=7)
    view = analyse({1: one, 2: two}, SERVER, page_windows=[(0.0, 0.0095), (0.0, 0.0295)])
    p1, p2 = view.proxies[1], view.proxies[2]
    assert p1.share_packets == {"up": pytest.approx(2 / 3, abs=1e-3), "down": pytest.approx(2 / 3, abs=1e-3)}
    assert p2.share_bytes["up"] == pytest.approx(1 / 3, abs=1e-3)
    assert p1.longest_stretch == {"up": 10, "down": 10} and p2.longest_stretch["up"] == 10
    assert p1.receiver_indices == [7, 8] and view.linkable == {"1-2": True} and view.any_linkable
    # path 1 saw counters 0..29: its span reveals the session's total exactly; path 2's span 10 of 30
    assert p1.total_estimate["up"] == 30 and p1.total_estimate_error["up"] == 0.0
    assert p2.total_estimate["up"] == 10 and p2.total_estimate_error["up"] == pytest.approx(2 / 3, abs=1e-3)
    assert len(p1.handshakes) == 1 and len(p2.handshakes) == 0
    assert view.page_shares[0] == {1: 1.0, 2: 0.0} and view.max_page_share == 1.0
    assert view.page_shares[1][1] == pytest.approx(20 / 30)


def test_separate_sessions_are_not_linkable():
    view = analyse({1: capture(1, [0, 1, 2], receiver=100), 2: capture(2, [0, 1, 2], receiver=200)}, SERVER)
    assert view.linkable == {"1-2": False} and not view.any_linkable
    assert view.to_dict()["proxies"]["1"]["receiver_indices"] == 2


def test_marker_counting():
    assert count_marker(b"..COMPS-MARKER..COMPS-MARKER", b"COMPS-MARKER") == 2
    assert count_marker(b"encrypted", b"COMPS-MARKER") == 0


def test_timeline_shares_per_bin():
    view = analyse(
        {1: capture(1, list(range(10)), receiver=7), 2: capture(2, list(range(100, 110)), receiver=7, start=1.0)},
        SERVER,
        origin=0.0,
        bin_s=0.05,
    )
    assert (
        view.timeline[0][1] == {1: 1.0}
        and view.timeline[-1][1] == {2: 1.0}
        and all(sum(shares.values()) == pytest.approx(1.0) for _, shares in view.timeline)
    )
