"""Background traffic through wg0, so that migration has something to move."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.errors import BackendError
from harness.runtime.network import Network
from harness.system.wait import wait_until


@contextlib.contextmanager
def ping_stream(network: Network, interval_s: float = 0.002, size: int = 200) -> Iterator[None]:
    """A steady ICMP stream client -> origin (default 500 packets/s) for as long as the block runs."""
    origin = str(network.topology.origin_address().ip)
    process = network.client.spawn(
        ["ping", "-n", "-q", "-i", f"{interval_s:g}", "-s", str(size), origin], name="ping-stream"
    )
    try:
        yield
    finally:
        process.stop()


STREAM_PORT = 9001
PROBE_AGENT = "agents/probe.py"


@contextlib.contextmanager
def udp_stream(network: Network, rate: float = 500.0, size: int = 200) -> Iterator[None]:
    """A constant-rate UDP stream client -> origin and its echo back, for as long as the block runs.

    Unlike ping, whose pace follows the replies, it keeps sending through an outage, so that a
    broken path shows as packets lost at a hop rather than as packets never sent.
    """
    origin, client = network.origin, network.client
    address = str(network.topology.origin_address().ip)
    echo = origin.spawn(origin.python(PROBE_AGENT) + ["echo", "--port", str(STREAM_PORT)], name="stream-echo")
    sender = client.spawn(
        client.python(PROBE_AGENT)
        + [
            "send",
            "--to",
            address,
            "--port",
            str(STREAM_PORT),
            "--rate",
            f"{rate:g}",
            "--seconds",
            "3600",
            "--size",
            str(size),
        ],
        name="stream-send",
    )
    received = client.interface_counters("wg0").rx_packets
    try:
        wait_until(
            lambda: client.interface_counters("wg0").rx_packets > received + 10 or not sender.running(),
            timeout=60,  # two Python agents start first: seconds under TCG
            interval=0.01,
            what="the UDP stream's first echo",
        )
        if not sender.running():
            raise BackendError(f"the UDP stream did not start: {sender.log_tail()}")
        yield
    finally:
        sender.stop()
        echo.stop()


def ping_origin(network: Network, count: int = 10) -> str | None:
    """`count` pings client -> origin through wg0; None when all came back, else what went wrong."""
    origin = str(network.topology.origin_address().ip)
    result = network.client.exec(
        ["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "2", origin], check=False, timeout=30
    )
    if result.returncode == 0 and f"{count} received" in result.stdout:
        return None
    return f"client could not reach origin {origin} through wg0: {result.stdout.strip()} {result.stderr.strip()}"
