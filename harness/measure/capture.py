"""Packet captures: tcpdump on a host (headers only), and a pure parser of pcap files and WireGuard headers.

`Capture` runs `tcpdump -w -` inside a host (namespace or container) and streams the file into the
run's work dir; `read_pcap` turns its bytes into `Packet`s (Ethernet or Linux cooked, IPv4, UDP),
each with the WireGuard message in its UDP payload: type, receiver index, counter, length.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import MeasurementError
from harness.system.wait import wait_until

if TYPE_CHECKING:
    from harness.runtime.hosts import Host

PCAP_MAGIC = {
    # microseconds
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    # nanoseconds
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",
}
LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW = 1, 113, 101
WG_DATA = 4
WG_DATA_OVERHEAD = 32  # type(1) reserved(3) receiver(4) counter(8) + the 16-byte tag
SNAPLEN = 128  # enough for outer headers and the WireGuard data header, never the payload
DRAIN_S, DRAIN_STEP_S = 3.0, 0.15
BUFFER_KIB = 32768  # a kernel buffer that holds a burst of whole packets while tcpdump catches up


@dataclass(frozen=True)
class Packet:
    time: float
    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int
    udp_length: int  # the UDP payload's length on the wire (not the captured part)
    ip_length: int  # the IP packet's length on the wire
    wg_type: int | None = None
    receiver: int | None = None
    counter: int | None = None

    @property
    def is_data(self) -> bool:
        return self.wg_type == WG_DATA

    @property
    def inner_length(self) -> int:
        """The encrypted payload's length: the inner packet, padded to 16 bytes by WireGuard."""
        return max(0, self.udp_length - WG_DATA_OVERHEAD) if self.is_data else 0


def _ip_offset(linktype: int, frame: bytes) -> int | None:
    if linktype == LINKTYPE_ETHERNET:
        return 14 if frame[12:14] == b"\x08\x00" else None
    if linktype == LINKTYPE_LINUX_SLL:
        return 16 if frame[14:16] == b"\x08\x00" else None
    if linktype == LINKTYPE_RAW:
        return 0
    raise MeasurementError(f"capture has link type {linktype}; expected Ethernet, Linux cooked or raw IP")


def _packet(at: float, frame: bytes, linktype: int) -> Packet | None:
    offset = _ip_offset(linktype, frame)
    if offset is None or len(frame) < offset + 28 or frame[offset] >> 4 != 4 or frame[offset + 9] != 17:
        return None  # not IPv4 UDP (ARP, ICMP...)
    header = (frame[offset] & 0x0F) * 4
    src, dst = IPv4Address(frame[offset + 12 : offset + 16]), IPv4Address(frame[offset + 16 : offset + 20])
    udp = offset + header
    sport, dport, length = struct.unpack_from("!HHH", frame, udp)
    payload = frame[udp + 8 :]
    wg_type = receiver = counter = None
    if len(payload) >= 4 and payload[0] in (1, 2, 3, 4) and payload[1:4] == b"\0\0\0":
        wg_type = payload[0]
        if wg_type == WG_DATA and len(payload) >= 16:
            receiver, counter = struct.unpack_from("<IQ", payload, 4)
        elif wg_type in (2, 3) and len(payload) >= 12:  # response / cookie: the receiver follows the sender
            receiver = struct.unpack_from("<I", payload, 8 if wg_type == 2 else 4)[0]
    ip_length = struct.unpack_from("!H", frame, offset + 2)[0]
    return Packet(at, src, dst, sport, dport, length - 8, ip_length, wg_type, receiver, counter)


def read_pcap(data: bytes) -> list[Packet]:
    """The IPv4 UDP packets of a pcap file (a truncated last record, from a stopped capture, is dropped)."""
    if len(data) < 24:
        return []
    order = PCAP_MAGIC.get(data[:4])
    if order is None:
        raise MeasurementError("not a pcap file (unknown magic number)")
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    packets, position = [], 24
    while position + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack_from(order + "IIII", data, position)
        frame = data[position + 16 : position + 16 + captured]
        if len(frame) < captured:
            break
        position += 16 + captured
        packet = _packet(seconds + fraction / (1e9 if nano else 1e6), frame, linktype)
        if packet is not None:
            packets.append(packet)
    return packets


def write_pcap(frames: list[tuple[float, bytes]], linktype: int = LINKTYPE_RAW) -> bytes:
    """A pcap file of raw frames (for tests and small saved captures)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for at, frame in frames:
        out.append(struct.pack("<IIII", int(at), int((at % 1) * 1e6), len(frame), len(frame)) + frame)
    return b"".join(out)


class Capture:
    """tcpdump -i IFACE on a host for as long as the block runs; `.packets()` afterwards."""

    def __init__(self, host: Host, interface: str, out: Path, bpf: str = "udp", snaplen: int = SNAPLEN) -> None:
        self.host, self.interface, self.out, self.bpf, self.snaplen = host, interface, out, bpf, snaplen

    def __enter__(self) -> Capture:
        self._file = open(self.out, "wb")
        argv = [
            "tcpdump",
            "-i",
            self.interface,
            "-n",
            "-U",
            "--immediate-mode",
            "-B",
            str(BUFFER_KIB),
            "-s",
            str(self.snaplen),
            "-w",
            "-",
            *self.bpf.split(),
        ]
        self.process = self.host.spawn(argv, name=f"tcpdump-{self.interface}", stdout=self._file.fileno())
        # tcpdump prints "listening on ..." to stderr (its log) once the capture runs
        wait_until(
            lambda: "listening on" in self.process.log_tail(3) or not self.process.running(),
            timeout=10,
            interval=0.01,
            what=f"tcpdump on {self.host.name} {self.interface}",
        )
        if not self.process.running():
            raise MeasurementError(f"tcpdump on {self.host.name} {self.interface} failed: {self.process.log_tail()}")
        return self

    def __exit__(self, *exc: object) -> None:
        # tcpdump drops what the kernel handed it but it has not written yet when it is stopped:
        # let it drain until the file stops growing (at most DRAIN_S)
        deadline, size = time.monotonic() + DRAIN_S, -1
        while time.monotonic() < deadline and self.process.running():
            if (now := self.out.stat().st_size) == size:
                break
            size = now
            time.sleep(DRAIN_STEP_S)
        self.process.stop(timeout=5)
        self._file.close()

    def packets(self) -> list[Packet]:
        return read_pcap(self.out.read_bytes())

    @property
    def dropped(self) -> int | None:
        """Packets the kernel dropped because tcpdump fell behind (from its closing statistics)."""
        match = re.search(r"(\d+) packets? dropped by kernel", self.process.log_tail(5))
        return int(match.group(1)) if match else None
