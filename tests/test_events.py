"""The one timeline grammar of --fault and --event, and the path events' specs (pure: no root, no I/O)."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.model.events import Direction, EventKind, EventSpec, check_events, parse_events
from harness.model.kinds import Fault
from harness.model.settings import FaultSpec, parse_faults
from harness.model.timeline import TimelineItem, parse_item


def test_the_grammar_reads_every_part():
    assert parse_item("flap=0.4@2+3:2:down", "--event", "x") == TimelineItem("flap", "0.4", 2.0, 3.0, 2, Direction.DOWN)
    assert parse_item("rebind@1.5", "--event", "x") == TimelineItem("rebind", None, 1.5, None, None, None)


def test_each_event_gets_its_value_and_defaults():
    events = parse_events(
        "blackhole@1+2:1:up,flap=0.5@0,rate=5@3:2,trace=lte-stable@0:1:down,rebind@2,conntrack-expiry=1@1,"
        "rekey@2:1,mtu=1280/noicmp@1+1"
    )
    assert events == (
        EventSpec(EventKind.BLACKHOLE, 1.0, 2.0, 1, Direction.UP),
        EventSpec(EventKind.FLAP, 0.0, period_s=0.5),
        EventSpec(EventKind.RATE, 3.0, path=2, rate_mbit=5.0),
        EventSpec(EventKind.TRACE, 0.0, path=1, direction=Direction.DOWN, trace="lte-stable"),
        EventSpec(EventKind.REBIND, 2.0),
        EventSpec(EventKind.CONNTRACK_EXPIRY, 1.0, idle_s=1.0),
        EventSpec(EventKind.REKEY, 2.0, path=1),
        EventSpec(EventKind.MTU, 1.0, 1.0, mtu=1280, icmp=False),
    )
    assert events[0].end == 3.0 and events[1].end is None
    assert [e.describe() for e in events[:3]] == ["blackhole@1+2:1:up", "flap=0.5@0", "rate=5@3:2"]
    assert parse_events(",".join(e.describe() for e in events)) == events  # describe() reads back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blackhole", "is not NAME"),
        ("melt@1", "is unknown"),
        ("rate@1", "rate needs a value"),
        ("rate=fast@1", "is not a number"),
        ("rate=0@1", "above 0"),
        ("blackhole=3@1", "takes no value"),
        ("rebind@1+2", "takes no duration"),
        ("rekey@1:1:up", "takes no direction"),
        ("blackhole@1+0", "duration must be"),
        ("blackhole@-1", "time must be"),
        ("blackhole@1:x", "is not a whole number"),
        ("blackhole@1:0", "at least 1"),
        ("blackhole@1::up", "an empty path"),
        ("blackhole@1:1:sideways", "direction"),
        ("flap=0.001@1", "below"),
        ("mtu=100@1", "between 576"),
        ("mtu=1280/quiet@1", "only noicmp"),
        ("blackhole@1,,rate=1@2", "an empty item"),
    ],
)
def test_bad_events_are_one_line_naming_the_option(text, message):
    with pytest.raises(ConfigError, match=message) as refused:
        parse_events(text)
    assert str(refused.value).startswith("--event") and "\n" not in str(refused.value)


def test_an_event_on_a_path_the_topology_lacks_or_after_the_run_is_refused():
    check_events(parse_events("blackhole@1:2"), (1, 2), 5.0)
    with pytest.raises(ConfigError, match="names path 3"):
        check_events(parse_events("blackhole@1:3"), (1, 2), 5.0)
    with pytest.raises(ConfigError, match="after the run's end"):
        check_events(parse_events("rebind@5"), (1, 2), 5.0)


def test_faults_share_the_grammar_and_take_none_of_its_extras():
    assert parse_faults("nat-removed@0.5:2") == (FaultSpec(Fault.NAT_REMOVED, 0.5, 2),)
    for text, message in (
        ("pinned=1@1", "takes no value"),
        ("pinned@1+2", "takes no duration"),
        ("pinned@1:1:up", "takes no direction"),
        ("flap=1@1", "is unknown"),  # an event is not a fault (blackhole is both: the one mechanism)
    ):
        with pytest.raises(ConfigError, match=message):
            parse_faults(text)
