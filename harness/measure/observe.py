"""Observed runs: a migration with page loads while every proxy's tunnel and the server's wg0 are captured.

The proxies' captures (whole packets) give the observer view (harness.measure.observer) and the
plaintext check: the marker in every page must never show at a proxy; at the server's wg0, where
the session is decrypted, it must (the control that shows the check can see it).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from harness.measure.capture import Capture
from harness.measure.observer import ObserverView, analyse, count_marker
from harness.measure.services import OriginServices
from harness.model.evidence import MigrationEvidence
from harness.model.schedule import MigrationPlan
from harness.model.topology import SERVER_PORT, proxy_name
from harness.runtime.content import MARKER, PAGES
from harness.runtime.migration import MigrationController

FULL_PACKETS = 0  # tcpdump -s 0: whole packets, so a marker in a payload would be found


@dataclass(frozen=True)
class Observation:
    evidence: MigrationEvidence
    view: ObserverView
    server_hits: int  # the marker at the server's wg0 (the control)
    loads: int
    capture_dropped: dict[int, int | None]  # per proxy: packets its tcpdump could not keep up with


class ProxyCaptures:
    """Whole-packet captures on every proxy's tunnel and the server's wg0 while the block runs."""

    def __init__(self, network) -> None:
        self.network = network
        self.files = {k: network.workdir / f"observe-path{k}.pcap" for k in network.topology.path_ids}
        self.server_file = network.workdir / "observe-server.pcap"
        self._stack = ExitStack()

    def __enter__(self) -> ProxyCaptures:
        try:
            self.captures = {
                k: self._stack.enter_context(
                    Capture(
                        self.network.proxy(k),
                        proxy_name(k),
                        self.files[k],
                        f"udp port {SERVER_PORT}",
                        snaplen=FULL_PACKETS,
                    )
                )
                for k in self.network.topology.path_ids
            }
            self._stack.enter_context(
                Capture(self.network.server, "wg0", self.server_file, "tcp", snaplen=FULL_PACKETS)
            )
        except BaseException:
            self._stack.close()
            raise
        self.offset = time.time() - time.monotonic()  # capture times are wall-clock, the harness's monotonic
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def view(self, started_monotonic: float, page_windows=()) -> ObserverView:
        """The observer view (after the block), the timeline counted from `started_monotonic`."""
        marker = MARKER.encode()
        windows = [(start + self.offset, end + self.offset) for start, end in page_windows]
        return analyse(
            {k: capture.packets() for k, capture in self.captures.items()},
            SERVER_PORT,
            windows,
            {k: count_marker(self.files[k].read_bytes(), marker) for k in self.files},
            origin=started_monotonic + self.offset,
        )

    def server_hits(self) -> int:
        return count_marker(self.server_file.read_bytes(), MARKER.encode())

    def dropped(self) -> dict[int, int | None]:
        return {k: capture.dropped for k, capture in self.captures.items()}


def observed_migration(services: OriginServices, plan: MigrationPlan, page_sets: int = 2) -> Observation:
    """Run `plan` while Chromium loads the origin's pages `page_sets` times, capturing on every proxy."""
    network = services.network
    pages = [f"{name}.html" for name in PAGES]
    loads: list[dict] = []
    with ProxyCaptures(network) as captures:
        with MigrationController(network, plan) as controller:
            for _ in range(page_sets):
                loads += services.page_set(pages, timeout=30, screenshots=network.workdir / "screenshots")["loads"]
    windows = [(load["started_at"], load["started_at"] + load["load_ms"] / 1000) for load in loads]
    return Observation(
        controller.result(),
        captures.view(controller.start, windows),
        captures.server_hits(),
        len(loads),
        captures.dropped(),
    )


BENCH_INTERVALS = (0.1, 1.0)
BENCH_STRATEGIES = ("alternate", "weighted-random")


def bench(services: OriginServices, progress, page_sets: int = 2) -> dict:
    """`comps-harness bench observer`: the observer view for each strategy and interval, one topology."""
    paths = services.network.topology.path_ids
    out: dict = {
        "backend": services.network.backend,
        "wireguard": services.network.wireguard_impl,
        "proxies": {},
        "linkable": False,
        "max_page_share": {},
        "runs": {},
    }
    for interval in BENCH_INTERVALS:
        for strategy in BENCH_STRATEGIES:
            plan = MigrationPlan(strategy=strategy, interval=interval, duration=600.0, paths=paths, seed=1)
            seen = observed_migration(services, plan, page_sets=page_sets)
            view = seen.view.to_dict()
            out["max_page_share"].setdefault(f"{interval:g}", {})[strategy] = (
                None if seen.view.max_page_share is None else round(seen.view.max_page_share, 4)
            )
            out["linkable"] = out["linkable"] or seen.view.any_linkable
            out["runs"][f"{strategy}-{interval:g}s"] = {
                "proxies": {
                    path: {
                        key: view["proxies"][path][key]
                        for key in (
                            "share_packets",
                            "share_bytes",
                            "plaintext_hits",
                            "receiver_indices",
                            "total_estimate_error",
                            "longest_stretch",
                        )
                    }
                    for path in view["proxies"]
                },
                "server_plaintext_hits": seen.server_hits,
                "loads": seen.loads,
                "capture_dropped": seen.capture_dropped,
                "proof_failures": [str(failure) for failure in seen.evidence.failures()],
            }
            if strategy == "alternate" and interval == BENCH_INTERVALS[0]:
                out["proxies"] = out["runs"][f"{strategy}-{interval:g}s"]["proxies"]
            progress(
                f"bench observer: {strategy} at {interval:g} s: largest page share "
                f"{out['max_page_share'][f'{interval:g}'][strategy]}, linkable {seen.view.any_linkable}"
            )
    return out
