"""The harness's per-path figures checked against packet captures on the proxies (issue: proof from the data plane).

While a migration runs with traffic only inside its counter window, tcpdump records the client-side
underlay link of every proxy; afterwards each path's captured frames and data messages are set
against the figures the proof used: the proxy's underlay counters (frames, bytes) and its tunnel
counters (the session's packets).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from harness.measure.capture import Capture
from harness.model.evidence import MigrationEvidence
from harness.model.schedule import MigrationPlan
from harness.model.topology import PROXY_PORT
from harness.runtime.migration import MigrationController
from harness.runtime.network import Network
from harness.runtime.traffic import udp_stream

ETHERNET_HEADER = 14


@dataclass(frozen=True)
class PathCheck:
    path: int
    harness_bytes: int  # the proxy's underlay link towards the client, both directions
    capture_bytes: int
    harness_packets: int  # the session's packets in the proxy's tunnel
    capture_packets: int  # WireGuard data messages with a payload

    @property
    def byte_error(self) -> float:
        return abs(self.capture_bytes - self.harness_bytes) / self.harness_bytes if self.harness_bytes else 1.0

    @property
    def packet_error(self) -> float:
        return abs(self.capture_packets - self.harness_packets) / self.harness_packets if self.harness_packets else 1.0


def captured_migration(
    network: Network, plan: MigrationPlan, seconds: float = 2.0
) -> tuple[MigrationEvidence, list[PathCheck]]:
    """Run `plan` with a UDP stream for `seconds` inside the window, capturing on every proxy."""
    captures = {}
    with ExitStack() as stack:
        for k in network.topology.path_ids:
            device = network.topology.proxy_client_device(k)
            out = network.workdir / f"capture-path{k}.pcap"
            captures[k] = stack.enter_context(Capture(network.proxy(k), device, out, f"udp port {PROXY_PORT}"))
        with MigrationController(network, plan) as controller:
            with udp_stream(network):
                time.sleep(seconds)
    evidence = controller.result()
    checks = []
    for k, capture in captures.items():
        packets = capture.packets()
        use = evidence.per_path.get(k)
        checks.append(
            PathCheck(
                k,
                harness_bytes=use.outer_bytes if use else 0,
                capture_bytes=sum(ETHERNET_HEADER + p.ip_length for p in packets),
                harness_packets=use.packets if use else 0,
                capture_packets=sum(1 for p in packets if p.is_data and p.inner_length > 0),
            )
        )
    return evidence, checks
