"""Path events' pure parts: what the session lived through, the median's interval, the trace replay's check,
the bench's verdicts, and the proof judging the time outside an event (no root, nothing written)."""

from __future__ import annotations

import json

import pytest

from harness.measure.eventbench import default_events, key_of, stream_seconds
from harness.measure.lived import lived_through, summarize, verdict
from harness.model.events import AppliedEvent, parse_events
from harness.model.evidence import MigrationEvidence, PathDelivery, PathUse, SwitchRecord
from harness.model.schedule import MigrationPlan
from harness.model.stats import median_interval
from harness.model.traces import replay_errors, slot_rates


def probe(sent: int, rate: float, lost_up: set[int], lost_down: set[int], delay: float = 0.001) -> dict:
    period = 1 / rate
    up = [[seq, 100 + seq * period + delay] for seq in range(sent) if seq not in lost_up]
    echoes = [[seq, 100 + seq * period, at + delay] for seq, at in up if seq not in lost_down]
    return {"sent": sent, "rate": rate, "started_at": 100.0, "echoes": echoes, "received_up": up}


def test_loss_stall_and_recovery_are_told_apart_per_direction():
    # 100 packets/s for 10 s; up lost for 1 s from 2 s (200..299), down lost for 0.5 s from 5 s (500..549)
    figures = lived_through(probe(1000, 100, set(range(200, 300)), set(range(500, 550))), 102.0, 103.0)
    assert figures["lost_up"] == 100 and figures["lost_down"] == 50
    assert figures["stall_ms_up"] == pytest.approx(1000.0) and figures["stall_ms_down"] == pytest.approx(500.0)
    assert figures["recovery_ms_up"] == pytest.approx(1.0, abs=0.01)
    assert figures["session_survived"] is True
    # what was lost up cannot count as lost down: the origin never had it to send back
    assert lived_through(probe(1000, 100, set(range(200, 900)), set()), 102.0, 103.0)["lost_down"] == 0


def test_a_session_that_never_delivers_again_did_not_survive_and_a_short_stream_cannot_tell():
    dead = lived_through(probe(1000, 100, set(range(200, 1000)), set()), 102.0, 103.0)
    assert dead["session_survived"] is False and dead["recovery_ms_up"] is None
    short = lived_through(probe(400, 100, set(range(200, 400)), set()), 102.0, 103.0)
    assert short["session_survived"] is None  # the stream ended before 5 s after the event: unknown, not dead


def test_the_medians_interval_is_distribution_free_and_says_its_coverage():
    assert median_interval([5, 1, 3]) == (1, 5, 0.75)
    low, high, coverage = median_interval(list(range(6)))
    assert (low, high) == (0, 5) and coverage == pytest.approx(0.9688, abs=1e-4)
    low, high, coverage = median_interval(list(range(10)))
    assert (low, high) == (1, 8) and coverage >= 0.95


def test_the_bench_verdict_needs_the_whole_interval_on_one_side():
    assert verdict([10, 20, 30, 5, 8, 9]) == "more"
    assert verdict([-10, -20, -3, -5, -8, -9]) == "less"
    assert verdict([-10, 20, 3, 5, 8, 9]) == "the same"
    assert verdict([1, 2, 3]).startswith("undecided: 3 pairs give a 75% interval")
    row = {"lost_up": 3, "lost_down": 0, "stall_ms_up": 6.0, "stall_ms_down": 0.0, "recovery_ms_up": 1.0}
    row |= {"recovery_ms_down": 2.0, "session_survived": True}
    out = summarize([row] * 3, [row] * 3, [("proven", ""), ("unproven", "too late"), ("proven", "")])
    assert out["n"] == 3 and out["lost_up_with"] == 3 and out["lost_up_with_ci"] == [3, 3]
    assert out["stall_ms_with"] == 6.0 and out["recovery_ms_with"] == 2.0
    assert out["session_survived_with"] is True and out["verdict"] == "unproven: too late"


def test_the_bench_names_its_events_and_streams_past_each_ones_end():
    specs = default_events()
    assert [key_of(s, specs) for s in specs] == [
        "blackhole", "flap", "rate", "trace", "rebind", "conntrack-expiry", "rekey", "mtu"
    ]  # fmt: skip
    twice = parse_events("rekey@2,rekey@3:1")
    assert [key_of(s, twice) for s in twice] == ["rekey@2", "rekey@3:1"]
    assert stream_seconds(parse_events("blackhole@1.5+1.5:1")[0]) == pytest.approx(8.5)


def test_a_replay_is_judged_per_second_on_its_own_clock():
    rates = slot_rates([t for t in range(0, 2000) if t % 2 == 0])  # one opportunity every 2 ms: 6 Mbit/s
    assert len(rates) == 20 and rates[0] == pytest.approx(6.0)
    good = [(k / 10, int(k * 0.1 * 6e6 / 8)) for k in range(21)]
    seconds, failures = replay_errors(good, rates)
    assert [s["delivered_mbit"] for s in seconds] == [6.0, 6.0] and failures == []
    slow = [(k / 10, int(k * 0.1 * 5e6 / 8)) for k in range(21)]
    assert len(replay_errors(slow, rates)[1]) == 2  # 5 of 6 Mbit/s: more than 10 % off, each second named
    low = slot_rates([t for t in range(0, 2000) if t % 10 == 0])  # 1.2 Mbit/s: below 2, not judged
    assert replay_errors(slow, low)[1] == []


def evidence_with_event(**overrides) -> MigrationEvidence:
    fields = dict(
        plan=MigrationPlan(interval=0.1, duration=2.0, events=parse_events("blackhole@0.5+1:1")),
        duration_s=2.0,
        planned_switches=20,
        scheduled_paths=[1, 2],
        switches=[SwitchRecord(0.1 * (i + 1), 1 + i % 2, 2 - i % 2) for i in range(20)],
        per_path={1: PathUse(1000, 10), 2: PathUse(1000, 10)},
        endpoint_changes=12,  # the server could not see the client move to path 1 while it was blackholed
        endpoint_paths=[1, 2],
        delivery={1: PathDelivery(500, 500, 500, 500, 500, 500), 2: PathDelivery(500, 500, 500, 500, 500, 500)},
        windows=[(1, 1.0, 100), (2, 1.0, 100)] * 5,
        events=[AppliedEvent("blackhole@0.5+1:1", "blackhole", 1, "both", 0.5, 1.5, 0.5, 1.5, "plan")],
        event_delivery={1: PathDelivery(500, 0, 0, 0, 0, 0), 2: healthy_half()},
        event_windows=[(1, 1.0, 50), (2, 1.0, 50)] * 5,
        event_planned_switches=10,
        event_endpoint_changes=2,
    )
    fields.update(overrides)
    return MigrationEvidence(**fields)


def healthy_half() -> PathDelivery:
    return PathDelivery(500, 500, 500, 500, 500, 500)


def test_the_proof_judges_the_time_outside_an_event_and_keeps_the_events_own_apart():
    proven = evidence_with_event()
    assert proven.judge().outcome == "proven", proven.failures()
    # the same loss outside the event is a broken path, as with --fault
    broken = evidence_with_event(delivery={1: PathDelivery(1000, 0, 0, 0, 0, 0), 2: healthy_half()})
    assert broken.judge().outcome == "failed" and "path 1" in broken.judge().reason
    # moves are judged outside the event alone: 10 switches there and 2 moves is not following
    few = evidence_with_event(endpoint_changes=4)
    assert any("2 times for 10 planned switches outside the events" in str(f) for f in few.failures())
    back = MigrationEvidence.from_dict(json.loads(json.dumps(proven.to_dict())))
    assert back.events == proven.events and back.event_delivery == proven.event_delivery
    assert back.judge() == proven.judge() and back.plan.events == proven.plan.events


def test_an_applied_event_knows_its_window():
    on = AppliedEvent("flap=0.4@1+2:1", "flap", 1, "both", 1.0, 3.0, 1.02, 3.01, "plan")
    assert on.window(10.0) == (1.02, 3.01)
    assert AppliedEvent("blackhole@1:1", "blackhole", 1, "both", 1.0, None, 1.0, None).window(4.0) == (1.0, 4.0)
    assert AppliedEvent("rebind@9:1", "rebind", 1, "both", 9.0, None, None, None).window(4.0) is None


def event_record(condition: str, rep: int, lost_up: int, interval: float | None) -> dict:
    figures = {
        "lost_up": lost_up, "lost_down": 0, "stall_ms_up": 2.0 * lost_up, "stall_ms_down": 0.0,
        "recovery_ms_up": 1.0, "recovery_ms_down": 1.5, "session_survived": True,
        "event": "blackhole@1:1", "note": "", "endpoint_moves": 10, "server_path": 1,
    }  # fmt: skip
    series = [
        (t / 10, [[1, 10 * t, 10 * t, 1000 * t, 1000 * t], [2, 5 * t, 5 * t, 500 * t, 500 * t]]) for t in range(30)
    ]
    evidence = {
        "started_monotonic": 100.0,
        "duration_s": 3.0,
        "planned_switches": 29 if interval else 0,
        "scheduled_paths": [1, 2] if interval else [1],
        "switches": [{"actual_s": 0.1 * k, "from_path": 1 + k % 2, "to_path": 2 - k % 2} for k in range(1, 30)]
        if interval
        else [],
        "events": [AppliedEvent("blackhole@1:1", "blackhole", 1, "both", 1.0, 2.0, 1.0, 2.0, "plan").to_dict()],
        "path_series": series,
    }
    return {
        "kind": "measurement", "run_id": "ch-test", "scenario": "path-events", "condition": condition,
        "test": "bench events blackhole", "interval": interval, "backend": "netns", "mechanism": "netlink",
        "repetition": rep, "wireguard": "wireguard-go", "figures": figures, "evidence": evidence,
    }  # fmt: skip


def test_the_report_shows_each_event_as_a_table_row_and_a_timeline_with_its_band():
    from harness.model.records import parse
    from harness.reporting import report

    raw = []
    for rep in range(6):
        raw += [event_record("baseline", rep, 700 + rep, None), event_record("alternate-i0.1s", rep, 350 + rep, 0.1)]
    records = [parse(json.loads(json.dumps(item))) for item in raw]
    html = report.build(records)
    section = html.split("<h2>Path events</h2>", 1)[1].split("<h2>", 1)[0]
    assert "blackhole@1:1" in section and "<td>6</td>" in section
    assert "702.5 [700, 705]" in section and "352.5 [350, 355]" in section  # medians with their intervals
    charts = report.event_timelines(records)
    assert len(charts) == 3 and charts[0].x_bands == [(1.0, 2.0)] and len(charts[1].markers) == 29
    assert charts[1].series[0].points[0][1] == pytest.approx(0.16)  # 2000 bytes per 0.1 s: 0.16 Mbit/s
    assert charts[2].series[0].points[0][1] == pytest.approx(20.0)  # 10 packets each way per 0.1 s
    assert 'fill="#f4c7c3"' in html  # the event's band is drawn


def test_a_trace_is_checked_before_anything_starts_and_trace_joins_the_events(tmp_path):
    from harness.errors import ConfigError
    from harness.model.schedule import build_plans
    from harness.model.settings import PlanOptions
    from harness.options import BY_FLAG

    with pytest.raises(ConfigError, match=r"--event trace=nope: no such trace file or shipped trace"):
        BY_FLAG["--event"].parse("trace=nope@1:1")
    bad = tmp_path / "bad.trace"
    bad.write_text("1\n2\nthree\n")
    with pytest.raises(ConfigError, match=r"--path-trace .*bad.trace: line 3"):
        BY_FLAG["--path-trace"].parse(str(bad))
    good = tmp_path / "good.trace"
    good.write_text("0\n5\n10\n")
    trace = BY_FLAG["--path-trace"].parse(str(good))
    assert trace.kind == "trace" and trace.at == 0 and trace.trace == str(good)
    (plan,) = build_plans(PlanOptions(intervals=(0.1,), events=parse_events("rekey@1"), trace=trace), (1, 2))
    assert [event.kind for event in plan.events] == ["rekey", "trace"]
    assert BY_FLAG["--event"].parse("trace=lte-stable@1+2:1:down")[0].direction == "down"


def test_a_profile_carries_path_events_and_refuses_bad_ones():
    from harness.errors import ConfigError
    from harness.model.profiles import parse_profiles

    (flaky,) = parse_profiles('[f]\nevents = ["flap=0.4@1:2", "rekey@3"]\n', "x.toml").values()
    assert [event.describe() for event in flaky.events] == ["flap=0.4@1:2", "rekey@3"]
    assert not flaky.shaped((1, 2))  # events alone shape nothing: the profile check measures nothing
    with pytest.raises(ConfigError, match=r"x.toml: \[f\] events flap@1: flap needs a value"):
        parse_profiles('[f]\nevents = ["flap@1"]\n', "x.toml")
    with pytest.raises(ConfigError, match=r"events is a list of strings"):
        parse_profiles('[f]\nevents = "flap=1@1"\n', "x.toml")


def test_events_that_cover_the_run_leave_nothing_to_judge():
    covered = evidence_with_event(event_planned_switches=19, endpoint_changes=2, event_endpoint_changes=2)
    proof = covered.judge()
    assert proof.outcome == "unproven" and "path events covered 19 of the 20 planned switches" in proof.reason
