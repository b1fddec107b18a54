"""Mahimahi delivery traces: the parser, the per-second rate, and the shipped traces being the generator's."""

from __future__ import annotations

import json

import pytest

from harness.data import TRACES_DIR
from harness.errors import ConfigError
from harness.model import traces


def test_a_trace_is_read_and_its_rate_counted_per_second():
    stamps = traces.parse_trace("0\n0\n5\n999\n1000\n\n1500\n2000\n", "--trace t")
    assert stamps == [0, 0, 5, 999, 1000, 1500, 2000]
    assert traces.rate_per_second(stamps) == [4 * 0.012, 2 * 0.012]  # 1500-byte packets; the last ms left out


@pytest.mark.parametrize(
    ("text", "message"),
    [("0\nx\n", "line 2"), ("5\n3\n", "goes back in time"), ("\n", "no delivery"), ("0\n0\n", "no length")],
)
def test_a_bad_trace_is_one_line_naming_it(text, message):
    with pytest.raises(ConfigError, match=message) as refused:
        traces.parse_trace(text, "--trace t")
    assert str(refused.value).startswith("--trace t")


def test_a_rate_becomes_opportunities_by_a_running_credit_of_bits():
    stamps = traces.opportunities([12.0, 0.0, 1.2])  # per 100 ms slot: 12 Mbit/s = one packet a ms
    assert stamps[:3] == [0, 1, 2] and sum(1 for s in stamps if s < 100) == 100
    assert not [s for s in stamps if 100 <= s < 200]  # nothing in a dead slot
    assert sum(1 for s in stamps if s >= 200) == 10  # 1.2 Mbit/s over 100 ms: ten packets


def test_the_shipped_traces_are_the_generators_output_for_their_seed():
    shipped = json.loads((TRACES_DIR / "traces.json").read_text())
    assert shipped["seed"] == traces.SHIPPED_SEED and sorted(shipped["traces"]) == sorted(traces.SHIPPED)
    for name in traces.SHIPPED:
        made = traces.generate(name, shipped["seed"])
        for direction in traces.DIRECTIONS:
            text = (TRACES_DIR / f"{name}.{direction}").read_text()
            assert text == traces.text_of(getattr(made, direction)), f"{name}.{direction} is not its seed's"
            assert shipped["traces"][name][direction] == traces.stats(traces.parse_trace(text, name))


def test_the_traces_have_the_character_they_are_named_for():
    stable, driving, wifi = (traces.generate(name) for name in traces.SHIPPED)
    lte = traces.stats(stable.down)
    assert lte["seconds_below_1_mbit"] == 0 and lte["p10_mbit"] > 0.8 * lte["p50_mbit"]
    drive = traces.stats(driving.down)
    assert drive["p10_mbit"] < 0.6 * drive["p50_mbit"]  # deep fades
    rates = traces.rate_per_second(wifi.down)
    assert min(rates) < 0.5 * statistics_median(rates)  # the dropouts show in whole seconds
    assert traces.generate("driving", 1).down != traces.generate("driving", 2).down
    with pytest.raises(ConfigError, match="not one the generator makes"):
        traces.generate("satellite")


def statistics_median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
