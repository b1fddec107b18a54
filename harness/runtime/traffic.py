"""Background traffic through wg0, so that migration has something to move."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.runtime.network import Network


@contextlib.contextmanager
def ping_stream(network: Network, interval_s: float = 0.002, size: int = 200) -> Iterator[None]:
    """A steady ICMP stream client -> origin (default 500 packets/s) for as long as the block runs."""
    origin = str(network.topology.origin_address().ip)
    process = network.client.spawn(["ping", "-n", "-q", "-i", f"{interval_s:g}", "-s", str(size), origin],
                                   name="ping-stream")
    try:
        yield
    finally:
        process.stop()


def ping_origin(network: Network, count: int = 10) -> str | None:
    """`count` pings client -> origin through wg0; None when all came back, else what went wrong."""
    origin = str(network.topology.origin_address().ip)
    result = network.client.exec(["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "2", origin],
                                 check=False, timeout=30)
    if result.returncode == 0 and f"{count} received" in result.stdout:
        return None
    return f"client could not reach origin {origin} through wg0: {result.stdout.strip()} {result.stderr.strip()}"
