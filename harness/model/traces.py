"""Delivery traces in Mahimahi's format, and the seeded generator of the shipped ones (pure but `main`).

A trace file has one line per delivery opportunity: the millisecond (an integer, from 0, never
decreasing) at which one packet of up to 1500 bytes may leave; several lines with the same millisecond
are several packets in it. A trace repeats when it ends. `--event trace=NAME|FILE@...` (harness.model.
events) replays one; the shipped ones live in harness/data/traces/ as NAME.up and NAME.down, with their
seed and statistics in traces.json. They are the generator's output for that seed, and a unit test
regenerates them to check it. Write them anew with:

    .venv/bin/python -m harness.cli.traces

The generator makes a rate per 100 ms slot from a small model of each link, then turns the rate into
opportunities by a running credit of bits (12,000 a packet):
- lte-stable: 20 Mbit/s down and 8 up, an AR(1) wobble of ~10 %;
- driving: 12 down and 4 up between deep fades (to 2-10 % of that, 0.5-3 s long, every ~6 s on average);
- wifi-dropouts: 30 Mbit/s each way with ~15 % wobble and a dropout of 1-2 s every 7-9 s in both.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.errors import ConfigError

PACKET_BITS = 1500 * 8
SLOT_MS = 100
SECONDS = 20
SHIPPED_SEED = 20261204
DIRECTIONS = ("up", "down")


def parse_trace(text: str, what: str) -> list[int]:
    """The opportunities (ms) of a Mahimahi trace; a bad line is one ConfigError naming `what` and the line."""
    stamps: list[int] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            stamp = int(line)
        except ValueError:
            raise ConfigError(f"{what}: line {number} ({line[:20]!r}) is not a whole number of ms") from None
        if stamp < 0 or (stamps and stamp < stamps[-1]):
            raise ConfigError(
                f"{what}: line {number} ({stamp}) goes back in time (after {stamps[-1] if stamps else 0})"
            )
        stamps.append(stamp)
    if not stamps:
        raise ConfigError(f"{what}: no delivery opportunity in it")
    if stamps[-1] == 0:
        raise ConfigError(f"{what}: every opportunity is at 0 ms: the trace has no length")
    return stamps


def rate_per_second(stamps: Sequence[int]) -> list[float]:
    """Mbit/s the trace offers in each whole second of its length (the last part-second left out)."""
    seconds = max(1, stamps[-1] // 1000)
    counts = [0] * seconds
    for stamp in stamps:
        if stamp // 1000 < seconds:
            counts[stamp // 1000] += 1
    return [count * PACKET_BITS / 1e6 for count in counts]


def stats(stamps: Sequence[int]) -> dict[str, float]:
    """Mean and percentiles of the per-second rate, and the seconds below 1 Mbit/s (fades, dropouts)."""
    rates = sorted(rate_per_second(stamps))

    def pct(q: float) -> float:
        return rates[min(len(rates) - 1, int(q * len(rates)))]

    return {
        "seconds": len(rates),
        "mean_mbit": round(statistics.fmean(rates), 2),
        "p10_mbit": round(pct(0.10), 2),
        "p50_mbit": round(pct(0.50), 2),
        "p90_mbit": round(pct(0.90), 2),
        "seconds_below_1_mbit": sum(1 for rate in rates if rate < 1.0),
    }


def opportunities(rates_mbit: Iterable[float], slot_ms: int = SLOT_MS) -> list[int]:
    """Rates per slot -> the ms of each packet's opportunity, by a running credit of bits."""
    stamps, credit, now = [], 0.0, 0
    for rate in rates_mbit:
        per_ms = max(0.0, rate) * 1000.0  # bits per ms
        for _ in range(slot_ms):
            credit += per_ms
            while credit >= PACKET_BITS:
                stamps.append(now)
                credit -= PACKET_BITS
            now += 1
    return stamps


def _wobble(rng: random.Random, slots: int, mean: float, spread: float, keep: float = 0.8) -> list[float]:
    """An AR(1) process around `mean` with a relative standard deviation of about `spread`."""
    out, x = [], 0.0
    scale = spread * math.sqrt(1 - keep * keep)
    for _ in range(slots):
        x = keep * x + rng.gauss(0.0, scale)
        out.append(mean * max(0.05, 1.0 + x))
    return out


def _fades(rng: random.Random, slots: int, mean_gap_s: float, length_s: tuple[float, float]) -> list[bool]:
    faded, slot = [False] * slots, 0
    while slot < slots:
        slot += max(1, int(rng.expovariate(1.0 / mean_gap_s) * 1000 / SLOT_MS))
        length = int(rng.uniform(*length_s) * 1000 / SLOT_MS)
        for k in range(slot, min(slots, slot + length)):
            faded[k] = True
        slot += length
    return faded


def _dropouts(
    rng: random.Random, slots: int, every_s: tuple[float, float], length_s: tuple[float, float]
) -> list[bool]:
    down, at = [False] * slots, 0.0
    while True:
        at += rng.uniform(*every_s)
        start = int(at * 1000 / SLOT_MS)
        if start >= slots:
            return down
        length = rng.uniform(*length_s)
        for k in range(start, min(slots, start + int(length * 1000 / SLOT_MS))):
            down[k] = True
        at += length


@dataclass(frozen=True)
class Generated:
    name: str
    description: str
    up: list[int]
    down: list[int]


def generate(name: str, seed: int = SHIPPED_SEED, seconds: int = SECONDS) -> Generated:
    """One shipped trace pair, from its seed (the same seed gives the same lines)."""
    rng = random.Random(f"{name}:{seed}")
    slots = seconds * 1000 // SLOT_MS
    if name == "lte-stable":
        up, down = _wobble(rng, slots, 8.0, 0.1), _wobble(rng, slots, 20.0, 0.1)
        description = "a stable LTE-like link: 20 Mbit/s down, 8 up, ~10 % wobble"
    elif name == "driving":
        faded = _fades(rng, slots, 6.0, (0.5, 3.0))
        depth = [rng.uniform(0.02, 0.1) for _ in range(slots)]
        up = [r * (d if f else 1.0) for r, d, f in zip(_wobble(rng, slots, 4.0, 0.3), depth, faded)]
        down = [r * (d if f else 1.0) for r, d, f in zip(_wobble(rng, slots, 12.0, 0.3), depth, faded)]
        description = "a driving-like link: 12 Mbit/s down, 4 up, deep fades (to 2-10 %) of 0.5-3 s every ~6 s"
    elif name == "wifi-dropouts":
        gone = _dropouts(rng, slots, (7.0, 9.0), (1.0, 2.0))
        up = [0.0 if g else r for r, g in zip(_wobble(rng, slots, 30.0, 0.15), gone)]
        down = [0.0 if g else r for r, g in zip(_wobble(rng, slots, 30.0, 0.15), gone)]
        description = "Wi-Fi with periodic dropouts: 30 Mbit/s each way, gone for 1-2 s every 7-9 s"
    else:
        raise ConfigError(f"trace {name!r} is not one the generator makes; choose {', '.join(SHIPPED)}")
    return Generated(name, description, opportunities(up), opportunities(down))


SHIPPED = ("lte-stable", "driving", "wifi-dropouts")


def text_of(stamps: Sequence[int]) -> str:
    return "".join(f"{stamp}\n" for stamp in stamps)


def manifest(traces: Sequence[Generated], seed: int = SHIPPED_SEED) -> dict[str, object]:
    return {
        "generator": "harness.model.traces (python -m harness.cli.traces)",
        "seed": seed,
        "seconds": SECONDS,
        "format": "Mahimahi: one line per 1500-byte delivery opportunity, in ms; repeats when it ends",
        "traces": {t.name: {"description": t.description, "up": stats(t.up), "down": stats(t.down)} for t in traces},
    }


def slot_rates(stamps: Sequence[int], slot_ms: int = SLOT_MS) -> list[float]:
    """Mbit/s the trace offers in each `slot_ms` of its length, for a replay that steps a shaper's rate every
    slot (the trace repeats from its start when it ends, as in Mahimahi)."""
    slots = max(1, -(-(stamps[-1] + 1) // slot_ms))
    counts = [0] * slots
    for stamp in stamps:
        counts[min(slots - 1, stamp // slot_ms)] += 1
    return [count * PACKET_BITS / (slot_ms * 1000) for count in counts]


REPLAY_TOLERANCE = 0.10
REPLAY_FROM_MBIT = 2.0  # seconds the trace offers less than this are not judged (a few packets; tbf's bucket)


def replay_errors(
    delivered: Sequence[tuple[float, int]], rates_mbit: Sequence[float], slot_ms: int = SLOT_MS
) -> tuple[list[dict[str, float]], list[str]]:
    """Each whole second of a replay: what the receiving end got (its link's byte counter, read at every slot
    of the replay's clock) against what the trace offered in that second (slots repeat when it ends); and,
    as lines, the seconds offering >= 2 Mbit/s that were delivered off by more than 10 % (pure)."""
    per_second = 1000 // slot_ms
    marks = {round(at * 1000 / slot_ms): count for at, count in delivered}
    seconds, failures = [], []
    for second in range(1, int(max(marks, default=0) // per_second) + 1):
        first, last = (second - 1) * per_second, second * per_second
        if first not in marks or last not in marks:
            continue
        got = (marks[last] - marks[first]) * 8 / 1e6
        offered = sum(rates_mbit[slot % len(rates_mbit)] for slot in range(first, last)) / per_second
        seconds.append({"second": second - 1, "trace_mbit": round(offered, 3), "delivered_mbit": round(got, 3)})
        if offered >= REPLAY_FROM_MBIT and abs(got - offered) > REPLAY_TOLERANCE * offered:
            failures.append(f"second {second - 1}: delivered {got:.2f} Mbit/s, the trace {offered:.2f} (±10 %)")
    return seconds, failures
