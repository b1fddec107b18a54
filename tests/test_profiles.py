"""Path profiles (pure): the shipped file, validation, tc arguments, and the checks' arithmetic."""

from __future__ import annotations

import pytest

from harness.data import PROFILES_FILE
from harness.errors import ConfigError
from harness.model.profiles import (
    Shape,
    choose_profiles,
    limited,
    load_profiles,
    parse_profiles,
    qdisc_args,
    rate_mbit,
)
from harness.model.stats import wilson_interval
from harness.runtime.shaping import within


def test_the_shipped_profiles_say_what_the_issue_asks():
    profiles = load_profiles(PROFILES_FILE)
    assert {"lan", "wan", "asymmetric", "lossy", "cellular"} <= set(profiles)
    assert not profiles["lan"].shaped((1, 2))
    wan = profiles["wan"]
    assert [wan.path(k).rtt_ms for k in (1, 2)] == [20, 20] and wan.path(2).up.rate_mbit == 50
    asym = profiles["asymmetric"]
    assert (asym.path(1).rtt_ms, asym.path(1).up.rate_mbit) == (10, 100)
    assert (asym.path(2).rtt_ms, asym.path(2).down.rate_mbit, asym.path(2).up.loss) == (60, 10, 0.5)
    assert profiles["lossy"].path(1).up.expected_loss() == pytest.approx(0.5 / 40.5)
    cellular = profiles["cellular"]
    assert len(cellular.path(1).steps) == 3 and cellular.path(2).period_s == 10
    assert all(profile.needs_netem((1, 2)) for name, profile in profiles.items() if name not in ("lan", "flaky"))
    assert not profiles["flaky"].shaped((1, 2)) and profiles["flaky"].events[0].describe() == "flap=0.4@1+2:2"


def test_tc_arguments_use_tbf_for_a_rate_alone_and_netem_otherwise():
    assert qdisc_args(Shape()) is None
    assert qdisc_args(Shape(rate_mbit=20))[:3] == ["tbf", "rate", "20mbit"]
    args = qdisc_args(Shape(delay_ms=30, jitter_ms=2, loss=0.5, rate_mbit=10))
    assert args[:6] == ["netem", "delay", "30ms", "2ms", "distribution", "normal"]
    assert args[6:11] == ["loss", "random", "0.5%", "rate", "10mbit"] and args[-2] == "limit"
    ge = qdisc_args(Shape(delay_ms=1, loss_model="gilbert-elliott", ge_p=1, ge_r=30, ge_loss_bad=90))
    assert ge[ge.index("gemodel") + 1 : ge.index("gemodel") + 5] == ["1%", "30%", "90%", "0%"]
    # netem's limit holds the delay line and 100 ms of buffer at the rate: 1 Gbit/s for 200 ms ~ 16700 packets
    big = qdisc_args(Shape(delay_ms=100, rate_mbit=1000))
    assert 16000 < int(big[big.index("limit") + 1]) < 17000
    slow = qdisc_args(Shape(delay_ms=30, rate_mbit=10))
    assert slow[slow.index("limit") + 1] == "108"  # 0.83 packets/ms x 130 ms, not netem's 1000 (1.2 s of bloat)


@pytest.mark.parametrize(
    "body, message",
    [
        ("[x.path]\ndelay_ms = -1", "a delay cannot be negative"),
        ("[x.path]\nloss = 150", "between 0 and 100"),
        ("[x.path]\nrate_mbit = 0", "a rate must be above 0"),
        ("[x.path]\ndelay_ms = 5\njitter_ms = 9", "jitter_ms 9 exceeds delay_ms 5"),
        ("[x.path]\ndelai_ms = 5", "unknown key 'delai_ms'"),
        ("[x.path.0]\ndelay_ms = 5", "numbered from 1"),
        ("[x.path]\nsteps = [{at_s = 0, rate_mbit = 2}]", "steps need a period_s"),
        ("[x]\npaths = 1", "unknown key 'paths'"),
        ("[x.path", "not valid TOML"),
    ],
)
def test_a_bad_profile_is_one_line_naming_the_file_table_and_value(body, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_profiles(body, "mine.toml")
    assert str(caught.value).startswith("mine.toml") and "\n" not in str(caught.value)


def test_per_path_and_per_direction_values_override_the_shared_ones():
    (profile,) = parse_profiles(
        "[p.path]\ndelay_ms = 10\nrate_mbit = 50\n[p.path.2]\nrate_mbit = 5\n[p.path.2.down]\ndelay_ms = 40\n", "t"
    ).values()
    assert profile.path(1).up == Shape(delay_ms=10, rate_mbit=50)
    assert profile.path(2).up == Shape(delay_ms=10, rate_mbit=5) and profile.path(2).down.delay_ms == 40
    assert profile.path(2).rtt_ms == 50 and profile.path(7) == profile.path(1)


def test_users_add_profiles_and_unknown_names_are_refused(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[slow]\ndescription = "mine"\n[slow.path]\nrate_mbit = 5\n')
    profiles = load_profiles(PROFILES_FILE, mine)
    assert [p.name for p in choose_profiles("slow,wan,slow", profiles)] == ["slow", "wan"]
    assert not profiles["slow"].needs_netem((1, 2))  # a rate alone runs without netem
    with pytest.raises(ConfigError, match="--profile 'nope' is unknown"):
        choose_profiles("nope", profiles)
    with pytest.raises(ConfigError, match=r"--profiles .*missing\.toml: no such file"):
        load_profiles(PROFILES_FILE, tmp_path / "missing.toml")


def test_the_verification_tolerances():
    assert within(21.0, 20, 1.0) and within(22.9, 20, 1.0) and not within(23.5, 20, 1.0)
    assert within(45.5, 50) and not within(44.0, 50)
    low, high = wilson_interval(1, 100)
    assert low < 0.005 < high < 0.06
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_an_impairment_composes_with_a_profile_by_lowering_its_rate():
    assert rate_mbit("20mbit") == 20 and rate_mbit("500kbit") == 0.5 and rate_mbit("1gbit") == 1000
    shape = Shape(delay_ms=30, loss=0.5, rate_mbit=10)
    assert limited(shape, 2.5) == Shape(delay_ms=30, loss=0.5, rate_mbit=2.5)  # delay and loss stay
    assert limited(shape, 20) == shape and limited(Shape(delay_ms=5), 20).rate_mbit == 20


def test_a_udp_check_whose_sender_offered_the_spec_gives_the_shapers_rate_in_wire_bits():
    from harness.runtime.shaping import UDP_WIRE, udp_rate

    end = {"sum_sent": {"bits_per_second": 60e6 / UDP_WIRE}, "sum_received": {"bits_per_second": 49e6 / UDP_WIRE}}
    rate, by = udp_rate(end, 50, 0.0)
    assert round(rate, 3) == 49.0 and by == "udp"
    rate, by = udp_rate(end, 50, 0.02)  # what the loss lets through is the shaper's rate over (1 - loss)
    assert round(rate, 3) == 50.0 and by == "udp"


def test_a_udp_sender_that_could_not_offer_the_spec_hands_a_lossless_link_to_tcp_and_says_so_on_a_lossy_one():
    from harness.runtime.shaping import UDP_WIRE, udp_rate

    end = {"sum_sent": {"bits_per_second": 24e6 / UDP_WIRE}, "sum_received": {"bits_per_second": 22e6 / UDP_WIRE}}
    assert udp_rate(end, 50, 0.0) is None
    rate, by = udp_rate(end, 50, 0.01)
    assert rate < 25 and "offered only 24.0 Mbit/s" in by
    assert udp_rate(None, 50, 0.0) == (None, "udp")
