"""A trace replay checked against its file: a saturating UDP stream each way over one path's link while the
trace event replays, and per second what the receiving end got against what the trace offered.

The streams are iperf3 over the link alone (the proxy's address on it looked up in the main table, as the
profile check does), offered at 1.25x the trace's highest slot rate; the receiving ends' byte counters are
read at every 100 ms slot of the replay's own clock (harness.runtime.events.Trace), so a second of the
check is exactly a second of the trace.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.model.events import EventKind, EventSpec
from harness.model.timeline import Direction
from harness.model.traces import replay_errors
from harness.runtime.events import EventPlayer, load_trace
from harness.runtime.network import Network
from harness.runtime.shaping import VERIFY_PORT, VERIFY_RULE_PRIORITY

OFFERED = 1.25
PAYLOAD = 1472  # 1500-byte IP packets: one Mahimahi opportunity each


def check_replay(network: Network, trace: str, path: int, seconds: float, against: str | None = None) -> dict[str, Any]:
    """Replay `trace` on `path` for `seconds` under saturating streams; judge it against the file `against`
    names (default: the same trace; another one is how the check is shown to fail)."""
    link = network.topology.path_link(path)
    assert link.b_address is not None
    address = str(link.b_address.ip)
    proxy, client = network.proxy(path), network.client
    rates = {direction: load_trace(trace, direction) for direction in ("up", "down")}
    rule = ["rule", "add", "to", f"{address}/32", "lookup", "main", "priority", str(VERIFY_RULE_PRIORITY)]
    client.exec(["ip", *rule], timeout=10)
    servers = [
        proxy.spawn(["iperf3", "-s", "-p", str(VERIFY_PORT + i), "--bind", address], name=f"replay-iperf3-{i}")
        for i in range(2)
    ]
    results: dict[str, str] = {}
    try:
        time.sleep(0.3)
        spec = EventSpec(EventKind.TRACE, 0.0, seconds, path, Direction.BOTH, trace=trace)
        player = EventPlayer(network, (spec,), time.monotonic() + 0.5)
        player.exit_hooks.append(network.drop_thread_netlink)

        def stream(direction: str, port: int) -> None:
            mbit = max(rates[direction]) * OFFERED
            argv = ["iperf3", "-c", address, "-p", str(port), "-u", "-b", f"{mbit:.1f}M", "-l", str(PAYLOAD)]
            argv += ["-t", f"{seconds + 1:g}"] + (["-R"] if direction == "down" else [])
            results[direction] = client.exec(argv, check=False, timeout=seconds + 60).stdout

        threads = [
            threading.Thread(target=stream, args=(direction, VERIFY_PORT + i), daemon=True)
            for i, direction in enumerate(("up", "down"))
        ]
        for thread in threads:
            thread.start()
        player.start()
        for thread in threads:
            thread.join(timeout=seconds + 70)
        player.stop()
        problems = player.undo_all()
        (applied,) = player.applied()
    finally:
        for server in servers:
            server.stop()
        client.exec(["ip", "rule", "del", *rule[2:]], timeout=10, check=False)
    judged = against or trace
    out: dict[str, Any] = {"trace": trace, "judged_against": judged, "path": path, "seconds": seconds}
    failures = list(problems)
    for direction in ("up", "down"):
        per_second, wrong = replay_errors(applied.delivered.get(direction, []), load_trace(judged, direction))
        judged_seconds = [s for s in per_second if s["trace_mbit"] >= 2.0]
        out[direction] = {"seconds": per_second, "judged": len(judged_seconds), "failures": wrong}
        failures += [f"{direction} {line}" for line in wrong]
        if not judged_seconds:
            failures.append(f"{direction}: no second of the replay could be judged")
    out["failures"] = failures
    return out
