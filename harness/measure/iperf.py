"""iperf3 through the CLI with -J (the PyPI wrapper cannot run inside namespaces or containers)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from harness.errors import MeasurementError

IPERF_PORT = 5201
# iperf3's own words for "the server cannot take this test now" (not a measurement failure)
# The server refused or dropped the test (busy, restarting, its control connection reset): the
# retry is counted in the result; anything else is a measurement error.
RETRYABLE = (
    "the server is busy",
    "unable to connect to server",
    "Connection refused",
    "Connection reset by peer",
    "unable to receive control message",
)
SERIES_INTERVAL_S = 0.1


def client_argv(
    server: str,
    *,
    seconds: float,
    reverse: bool = False,
    udp_rate: str | None = None,
    interval: float = SERIES_INTERVAL_S,
    port: int = IPERF_PORT,
) -> list[str]:
    argv = ["iperf3", "-c", server, "-p", str(port), "-J", "-t", f"{seconds:g}", "-i", f"{interval:g}"]
    if reverse:
        argv.append("-R")
    if udp_rate:
        argv += ["-u", "-b", udp_rate]
    return argv


@dataclass(frozen=True)
class IperfResult:
    bits_per_second: float
    series: list[tuple[float, float]] = field(default_factory=list)  # (end of interval s, bits/s)
    lost_percent: float | None = None  # UDP only
    retransmits: int | None = None  # TCP sender only
    started_monotonic: float | None = None  # CLOCK_MONOTONIC when the client started (set by the caller)
    retries: int = 0  # runs the server refused before this one (busy, or restarted)

    def to_dict(self) -> dict:
        return {
            "bits_per_second": round(self.bits_per_second),
            "lost_percent": self.lost_percent,
            "retransmits": self.retransmits,
            "started_monotonic": self.started_monotonic,
            "retries": self.retries,
            "series": [[round(t, 3), round(bps)] for t, bps in self.series],
        }


def parse(text: str) -> IperfResult:
    """The figures of one `iperf3 -J` run: the receiver's rate, the per-interval series."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise MeasurementError(f"iperf3 did not print JSON: {text[:200]!r}") from None
    if "error" in data:
        raise MeasurementError(f"iperf3 failed: {data['error']}")
    try:
        end = data["end"]
        series = [(float(iv["sum"]["end"]), float(iv["sum"]["bits_per_second"])) for iv in data["intervals"]]
        received = end["sum_received"]
        if data["start"]["test_start"]["protocol"] == "UDP":
            return IperfResult(
                float(received["bits_per_second"]), series, lost_percent=float(received.get("lost_percent", 0))
            )
        return IperfResult(
            float(received["bits_per_second"]), series, retransmits=end.get("sum_sent", {}).get("retransmits")
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MeasurementError(f"iperf3 JSON without the expected fields ({exc})") from None
