"""What each proxy sees of the session: shares, stretches, linkability, what the counters reveal (pure).

Input: the packets captured on every proxy's tunnel interface (wgnetK), i.e. what the proxy has
after decrypting the client's outer tunnel: the client's wg0 messages, whose WireGuard header
(type, receiver index, counter) is in clear. Up = towards the server's port, down = from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.measure.capture import Packet

DIRECTIONS = ("up", "down")


def direction_of(packet: Packet, server_port: int) -> str | None:
    if packet.dport == server_port:
        return "up"
    if packet.sport == server_port:
        return "down"
    return None


@dataclass(frozen=True)
class ProxyView:
    path: int
    share_packets: dict[str, float]  # direction -> share of the session's data messages this proxy carried
    share_bytes: dict[str, float]
    longest_stretch: dict[str, int]  # direction -> most consecutive session counters all seen here
    receiver_indices: list[int]  # distinct inner sessions (receiver indices) of the data messages seen
    total_estimate: dict[str, int]  # direction -> the session's size as this proxy's counter span reveals it
    total_estimate_error: dict[str, float]  # |estimate - true| / true
    handshakes: list[float]  # capture times of handshake messages seen
    plaintext_hits: int = 0

    def to_dict(self) -> dict:
        return {
            "share_packets": self.share_packets,
            "share_bytes": self.share_bytes,
            "longest_stretch": self.longest_stretch,
            "receiver_indices": len(self.receiver_indices),
            "total_estimate": self.total_estimate,
            "total_estimate_error": self.total_estimate_error,
            "handshakes": len(self.handshakes),
            "plaintext_hits": self.plaintext_hits,
        }


@dataclass(frozen=True)
class ObserverView:
    proxies: dict[int, ProxyView]
    linkable: dict[str, bool]  # "1-2" -> whether the two proxies saw a common receiver index
    page_shares: list[dict[int, float]] = field(default_factory=list)  # per page load: path -> share of bytes
    timeline: list[tuple[float, dict[int, float]]] = field(default_factory=list)  # (bin start, path -> share)

    @property
    def any_linkable(self) -> bool:
        return any(self.linkable.values())

    @property
    def max_page_share(self) -> float | None:
        shares = [max(load.values()) for load in self.page_shares if load]
        return max(shares) if shares else None

    def to_dict(self) -> dict:
        return {
            "proxies": {str(k): v.to_dict() for k, v in sorted(self.proxies.items())},
            "linkable": self.linkable,
            "any_linkable": self.any_linkable,
            "max_page_share": self.max_page_share,
            "page_shares": [{str(k): round(v, 4) for k, v in load.items()} for load in self.page_shares],
            "timeline": [
                [round(t, 3), {str(k): round(v, 3) for k, v in shares.items()}] for t, shares in self.timeline
            ],
        }


def _longest_runs(ordered: list[int]) -> dict[int, int]:
    """path -> the longest run of consecutive entries equal to it."""
    best: dict[int, int] = {}
    run_path, run = None, 0
    for path in ordered:
        run = run + 1 if path == run_path else 1
        run_path = path
        best[path] = max(best.get(path, 0), run)
    return best


def analyse(
    captures: dict[int, list[Packet]],
    server_port: int,
    page_windows: Iterable[tuple[float, float]] = (),
    plaintext_hits: dict[int, int] | None = None,
    origin: float | None = None,
    bin_s: float = 0.1,
) -> ObserverView:
    """The observer view from each proxy's captured tunnel packets (times on the capture's clock).

    `origin`: the capture-clock time the timeline counts from (the migration's start); `bin_s` its step.
    """
    data = {
        path: [(p, d) for p in packets if p.is_data and (d := direction_of(p, server_port))]
        for path, packets in captures.items()
    }
    totals = {d: sum(1 for items in data.values() for _, dd in items if dd == d) for d in DIRECTIONS}
    total_bytes = {d: sum(p.udp_length for items in data.values() for p, dd in items if dd == d) for d in DIRECTIONS}
    # the session's counters in order, each with the proxy that carried it (per direction)
    by_counter = {
        d: [
            path
            for _, path in sorted(
                (p.counter, path)
                for path, items in data.items()
                for p, dd in items
                if dd == d and p.counter is not None
            )
        ]
        for d in DIRECTIONS
    }
    runs = {d: _longest_runs(by_counter[d]) for d in DIRECTIONS}
    views = {}
    for path, items in data.items():
        share_packets, share_bytes, estimate, error = {}, {}, {}, {}
        for d in DIRECTIONS:
            mine = [p for p, dd in items if dd == d]
            share_packets[d] = round(len(mine) / totals[d], 4) if totals[d] else 0.0
            share_bytes[d] = round(sum(p.udp_length for p in mine) / total_bytes[d], 4) if total_bytes[d] else 0.0
            counters = [p.counter for p in mine if p.counter is not None]
            estimate[d] = (max(counters) - min(counters) + 1) if counters else 0
            error[d] = round(abs(estimate[d] - totals[d]) / totals[d], 4) if totals[d] else 0.0
        views[path] = ProxyView(
            path,
            share_packets,
            share_bytes,
            {d: runs[d].get(path, 0) for d in DIRECTIONS},
            sorted({p.receiver for p, _ in items if p.receiver is not None}),
            estimate,
            error,
            [p.time for p in captures[path] if p.wg_type in (1, 2)],
            (plaintext_hits or {}).get(path, 0),
        )
    paths = sorted(views)
    linkable = {
        f"{a}-{b}": bool(set(views[a].receiver_indices) & set(views[b].receiver_indices))
        for i, a in enumerate(paths)
        for b in paths[i + 1 :]
    }
    page_shares = []
    for start, end in page_windows:
        seen = {path: sum(p.udp_length for p, _ in items if start <= p.time <= end) for path, items in data.items()}
        total = sum(seen.values())
        if total:
            page_shares.append({path: value / total for path, value in seen.items()})
    return ObserverView(views, linkable, page_shares, _timeline(data, origin, bin_s))


def _timeline(
    data: dict[int, list[tuple[Packet, str]]], origin: float | None, bin_s: float
) -> list[tuple[float, dict[int, float]]]:
    """Per time bin: each proxy's share of the session's data messages (both directions)."""
    times = [p.time for items in data.values() for p, _ in items]
    if not times:
        return []
    start = min(times) if origin is None else origin
    counts: dict[int, dict[int, int]] = {}
    for path, items in data.items():
        for p, _ in items:
            bucket = counts.setdefault(int((p.time - start) // bin_s), {})
            bucket[path] = bucket.get(path, 0) + 1
    return [
        (round(b * bin_s, 6), {path: n / sum(bucket.values()) for path, n in sorted(bucket.items())})
        for b, bucket in sorted(counts.items())
    ]


def count_marker(data: bytes, marker: bytes) -> int:
    """How often `marker` appears in a capture file's bytes (a full-packet capture: payloads included)."""
    return data.count(marker)
