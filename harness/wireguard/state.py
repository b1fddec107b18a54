"""Parse what `wg show <ifname> endpoints|transfer` prints into values.

These subcommands never print private keys, which is why the harness uses them and not `dump`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Address

from harness.errors import MeasurementError


@dataclass(frozen=True)
class PeerTransfer:
    rx_bytes: int
    tx_bytes: int

    @property
    def total(self) -> int:
        return self.rx_bytes + self.tx_bytes

    def __sub__(self, other: PeerTransfer) -> PeerTransfer:
        return PeerTransfer(self.rx_bytes - other.rx_bytes, self.tx_bytes - other.tx_bytes)


def _rows(text: str, columns: int, what: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != columns:
            raise MeasurementError(f"unexpected `wg show {what}` line with {len(fields)} fields (wanted {columns})")
        rows.append(fields)
    return rows


def parse_endpoints(text: str) -> dict[str, tuple[IPv4Address, int] | None]:
    """Public key -> (address, port), or None for a peer whose endpoint is not known yet."""
    result: dict[str, tuple[IPv4Address, int] | None] = {}
    for key, endpoint in _rows(text, 2, "endpoints"):
        if endpoint == "(none)":
            result[key] = None
            continue
        host, _, port = endpoint.rpartition(":")
        try:
            result[key] = (ipaddress.IPv4Address(host.strip("[]")), int(port))
        except ValueError:
            raise MeasurementError(f"unreadable endpoint {endpoint!r} in `wg show endpoints`") from None
    return result


def parse_transfer(text: str) -> dict[str, PeerTransfer]:
    """Public key -> bytes received and sent through that peer."""
    try:
        return {key: PeerTransfer(int(rx), int(tx)) for key, rx, tx in _rows(text, 3, "transfer")}
    except ValueError:
        raise MeasurementError("non-numeric counter in `wg show transfer`") from None
