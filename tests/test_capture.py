"""The pcap and WireGuard header parser, on small captures made here (pure)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from harness.errors import MeasurementError
from harness.measure.capture import LINKTYPE_ETHERNET, read_pcap, write_pcap


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    total = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, IPv4Address(src).packed, IPv4Address(dst).packed)
    return ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def wg_data(receiver: int, counter: int, inner: int) -> bytes:
    return bytes([4, 0, 0, 0]) + struct.pack("<IQ", receiver, counter) + b"\0" * (inner + 16)


def test_data_messages_carry_receiver_counter_and_length():
    frames = [
        (1.5, ipv4_udp("172.30.1.2", "172.30.1.3", 51831, 51821, wg_data(0xDEAD, 7, 304))),
        (1.6, ipv4_udp("172.30.1.3", "172.30.1.2", 51821, 51831, bytes([1, 0, 0, 0]) + b"\1" * 144)),
    ]
    first, second = read_pcap(write_pcap(frames))
    assert (first.receiver, first.counter, first.is_data, first.inner_length) == (0xDEAD, 7, True, 304)
    assert first.ip_length == 20 + 8 + 16 + 304 + 16 and first.time == pytest.approx(1.5)
    assert (second.wg_type, second.is_data, second.inner_length, second.dport) == (1, False, 0, 51831)


def test_ethernet_frames_other_protocols_and_a_torn_last_record():
    ether = b"\xff" * 12 + b"\x08\x00"
    arp = b"\xff" * 12 + b"\x08\x06" + b"\0" * 28
    udp = ether + ipv4_udp("10.0.0.1", "10.0.0.2", 1, 2, b"hello")
    data = write_pcap([(0.0, udp), (0.1, arp), (0.2, udp)], linktype=LINKTYPE_ETHERNET)
    packets = read_pcap(data[:-3])  # the capture was stopped mid-record
    assert len(packets) == 1 and packets[0].wg_type is None and packets[0].udp_length == 5
    assert read_pcap(b"") == []
    with pytest.raises(MeasurementError, match="not a pcap"):
        read_pcap(b"\0" * 40)
