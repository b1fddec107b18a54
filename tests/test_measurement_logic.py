"""Unit tests of the measurement parsers and the comparison method (pure code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import MeasurementError
from harness.measure.iperf import client_argv, parse
from harness.measure.loss import analyze
from harness.measure.verdicts import (
    describe,
    loss_verdict,
    ratio_verdict,
    throughput_verdicts,
)
from harness.runtime.content import generate, page_html

DATA = Path(__file__).with_name("data")


def test_iperf3_tcp_and_udp_json():
    tcp = parse((DATA / "iperf3-tcp.json").read_text())
    assert tcp.bits_per_second > 0 and tcp.retransmits is not None and tcp.lost_percent is None
    assert len(tcp.series) == 10 and tcp.series[-1][0] == pytest.approx(1.0, abs=0.05)
    udp = parse((DATA / "iperf3-udp.json").read_text())
    assert udp.lost_percent == 0 and udp.retransmits is None
    assert "-R" in client_argv("10.0.0.1", seconds=2, reverse=True)
    assert client_argv("10.0.0.1", seconds=2, udp_rate="50M")[-3:] == ["-u", "-b", "50M"]


@pytest.mark.parametrize("text", ["not json", '{"error": "unable to connect"}', '{"end": {}}'])
def test_iperf3_failures_are_measurement_errors(text):
    with pytest.raises(MeasurementError):
        parse(text)


def probe(sent, rate, start, echoed):
    return {"sent": sent, "rate": rate, "started_at": start, "echoes": echoed}


def test_loss_is_attributed_to_the_nearest_switch():
    rate, start = 1000.0, 100.0
    lost = {500, 501, 502, 1500}
    echoes = [[s, start + s / rate, start + s / rate + 0.001] for s in range(2000) if s not in lost]
    report = analyze(probe(2000, rate, start, echoes), [start + 0.5005, start + 1.2], attribution_s=0.05)
    assert report.lost == 4 and report.received == 1996
    assert report.lost_per_switch == [3, 0]
    assert report.lost_without_switch == 1  # 1.5 s is 0.3 s from the nearest switch
    assert report.loss_window_ms == [3.0]


def test_duplicates_and_reordering():
    rate, start = 1000.0, 0.0
    arrival = [0, 1, 4, 2, 3, 5, 5]
    echoes = [[s, s / rate, 1 + i / 1000] for i, s in enumerate(arrival)]
    report = analyze(probe(6, rate, start, echoes), [])
    assert report.duplicated == 1 and report.reordered == 2 and report.reorder_depth_max == 2
    assert report.lost == 0 and report.to_dict()["lost_per_switch"] is None


def test_ratio_verdicts_judge_the_interval():
    up = ratio_verdict([100, 110, 90], [95, 99, 93], limit=0.9, higher_is_better=True)
    assert up["ok"] and up["ratio"] == pytest.approx(0.96, abs=0.002) and up["n"] == 3
    assert up["low"] < up["ratio"] < up["high"]
    worse = ratio_verdict([100, 110, 90, 105, 95], [72, 80, 64, 76, 68], limit=0.9, higher_is_better=True)
    assert not worse["ok"] and worse["high"] < 0.9  # the whole interval below the limit: significant
    noisy = ratio_verdict([100, 100, 100], [60, 120, 95], limit=0.9, higher_is_better=True)
    assert noisy["ok"] and noisy["ratio"] < 0.9 and noisy["high"] > 0.9  # below, but not significantly
    assert "beyond the limit, but not significantly" in describe("tcp_up", noisy)
    assert not ratio_verdict([100], [80], limit=0.9, higher_is_better=True)["ok"]  # n=1: the point decides
    assert "no interval: n=1" in describe("x", ratio_verdict([100], [80], limit=0.9, higher_is_better=True))
    assert not ratio_verdict([1.0], [1.2], limit=1.15, higher_is_better=False)["ok"]
    unjudged = ratio_verdict([1.0], [5.0], limit=None, higher_is_better=False)
    assert unjudged["ok"] and not unjudged["judged"]
    assert describe("tcp_up", worse).startswith("tcp_up: 0.7") and "significantly beyond the limit" in describe(
        "tcp_up", worse
    )
    with pytest.raises(MeasurementError):
        ratio_verdict([], [1.0], limit=1.0, higher_is_better=True)


def test_throughput_verdicts_per_kind():
    def figures(up, down):
        return {"tcp_up": {"bits_per_second": up}, "tcp_down": {"bits_per_second": down}}

    verdicts = throughput_verdicts(
        [figures(100e6, 100e6)] * 3, [figures(95e6, 50e6), figures(97e6, 60e6), figures(96e6, 55e6)], limit=0.9
    )
    assert set(verdicts) == {"tcp_up", "tcp_down"}
    assert verdicts["tcp_up"]["ok"] and not verdicts["tcp_down"]["ok"]
    assert verdicts["tcp_down"]["ratio"] == pytest.approx(0.55, abs=0.01)
    assert "(55 vs 100 Mbit/s" in describe("tcp_down", verdicts["tcp_down"])


def test_loss_verdict():
    def loss(worst, switches=4):
        return {
            "switches": switches,
            "lost_per_switch": {"max": worst} if switches else None,
            "lost": worst,
            "sent": 1000,
            "lost_without_switch": 0,
        }

    assert loss_verdict(loss(0), 0)["ok"]
    bad = loss_verdict(loss(3), 0)
    assert not bad["ok"] and "up to 3 probe packets" in bad["reason"]
    assert loss_verdict(loss(3), 3)["ok"]
    none = loss_verdict(loss(0, switches=0), 0)
    assert not none["ok"] and "no switch" in none["reason"]


def test_generated_content_stays_on_the_origin(tmp_path):
    paths = generate(tmp_path, file_sizes=(1000,))
    assert (tmp_path / "file-1000B.bin").stat().st_size == 1000
    heavy = sum(f.stat().st_size for f in (tmp_path / "heavy").iterdir())
    assert 1_900_000 <= heavy <= 2_100_000 and len(list((tmp_path / "heavy").iterdir())) == 50
    assert "http" not in page_html("many", 3) and paths["pages"] == ["small.html", "heavy.html", "many.html"]
