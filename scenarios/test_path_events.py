"""Path events while the session migrates: what the session lived through, with and without migration.

Each event is played on path 1, the path a session that does not migrate keeps (harness.measure.eventbench),
once without migration and once with alternate at 0.1 s, interleaved, under the two-way probe. Each test
checks that the event took effect (the single-path session lost packets in it, the NAT gave a new port, a
new handshake was made, the timeouts read back), that the migrating run's proof, which judges the time
outside the event, holds, and that the session survived both ways. The verdicts (more, less, the same,
with their intervals) need more pairs than a test spends: `comps-harness bench events` gives them.
The trace replay is checked against its file, and the check is shown to fail against another file; the
same blackhole given as --fault turns the proof red (scenarios/test_faults.py, `blackhole`), and as an
event it does not (below).
"""

from __future__ import annotations

import pytest

from harness.measure.eventbench import measure_event
from harness.measure.lived import summarize
from harness.measure.replay import check_replay
from harness.model.events import parse_events
from harness.model.schedule import MigrationPlan
from harness.runtime.migration import run_migration
from harness.runtime.traffic import udp_stream

pytestmark = [pytest.mark.network]

# short events, so that a pair of runs takes about 17 s; `bench events` plays the longer ones
EVENTS = {
    "blackhole": "blackhole@1+1:1",
    "flap": "flap=0.4@1+1.2:1",
    "rate": "rate=0.5@1+1:1",  # below the probe's ~1.4 Mbit/s on the wire
    "trace": "trace={trace}@1+1.2:1",  # a file of this test's: 10 Mbit/s for 300 ms, nothing for 300 ms
    "rebind": "rebind@1.5:1",
    "conntrack-expiry": "conntrack-expiry=1@1+1:1",
    "rekey": "rekey@1.5",
    "mtu": "mtu=1280/noicmp@1+1:1",
}
LOSES_ON_ONE_PATH = {"blackhole", "flap", "rate", "trace", "mtu"}  # a single-path session must lose in them
EFFECT_NOTE = {"rebind": "->", "rekey": "new handshake", "conntrack-expiry": "(read back: 1, 1)"}


def dropout_trace(directory) -> str:
    """Mahimahi's format: an opportunity every 1.2 ms (10 Mbit/s) for 300 ms, then none until the last one at
    599 ms (a trace is as long as its last line, then it repeats)."""
    stamps = [int(t / 10) for t in range(0, 3000, 12)] + [599]
    path = directory / "dropouts.trace"
    path.write_text("".join(f"{stamp}\n" for stamp in stamps))
    return str(path)


@pytest.mark.parametrize("event", list(EVENTS))
def test_what_the_session_lived_through(event, network, origin_services, record_condition, proof_gate, tmp_path):
    (spec,) = parse_events(EVENTS[event].format(trace=dropout_trace(tmp_path)))

    def record(kind: str, condition: str, rep: int, result) -> None:
        record_condition("path-events", condition, rep, result)

    without, with_, migrating = measure_event(origin_services, spec, 1, record)
    summary = summarize(
        without, with_, [(str(r.evidence.judge().outcome), r.evidence.judge().reason) for r in migrating]
    )
    print(f"{spec.describe()}: {summary}")
    for rows, side in ((without, "without"), (with_, "with")):
        (row,) = rows
        assert "error" not in row, f"{side} migration: {row['error']}"
        assert row["applied_s"] is not None, f"{spec.describe()} was not applied {side} migration"
        if event in EFFECT_NOTE:
            assert EFFECT_NOTE[event] in row["note"], f"{spec.describe()} {side} migration: {row['note']}"
    if event in LOSES_ON_ONE_PATH:
        assert without[0]["lost_up"] > 0, f"{spec.describe()} took nothing from the session on its path: {without[0]}"
    assert summary["session_survived_without"], f"the session did not survive {spec.describe()}: {without[0]}"
    if not proof_gate(migrating):  # an event is expected loss: the proof judges the time outside it
        return
    assert summary["session_survived_with"], f"the migrating session did not survive {spec.describe()}: {with_[0]}"


def test_a_blackhole_as_an_event_is_judged_apart(network, results, request):
    """The control of test_faults' `blackhole`: the same outage, given as an event, leaves the proof green."""
    plan = MigrationPlan(
        interval=0.1, duration=2.0, paths=network.topology.path_ids, events=parse_events("blackhole@0.5:2")
    )
    with udp_stream(network):
        evidence = run_migration(network, plan)
    failures = evidence.failures()
    results.migration(request.node.name, network, evidence, failures)
    (applied,) = evidence.events
    assert applied.applied_s is not None and evidence.event_windows, "the blackhole was not applied"
    lost = sum(d.up_sent - d.up_entered for d in evidence.event_delivery.values())
    assert lost > 0, f"the blackhole lost nothing in its own windows: {evidence.event_delivery}"
    assert not failures, f"the proof judged the event's own time: {[str(f) for f in failures]}"


def test_a_trace_replay_delivers_what_its_file_offers(network):
    checked = check_replay(network, "lte-stable", 1, 5.0)
    assert not checked["failures"], f"the replay of lte-stable is not its file: {checked['failures']}"
    assert checked["up"]["judged"] >= 4 and checked["down"]["judged"] >= 4, checked


@pytest.mark.expect_red
def test_the_replay_check_turns_red_against_another_file(network):
    checked = check_replay(network, "lte-stable", 1, 5.0, against="driving")
    assert checked["failures"], "a replay of lte-stable passed as the driving trace"


def test_a_profiles_events_play_in_every_run(network, results, request):
    """A profile's `events = [...]` (the fixture sets them on the network): played in a run that asks for none."""
    network.profile_events = parse_events("blackhole@0.5+0.5:2")
    plan = MigrationPlan(interval=0.1, duration=2.0, paths=network.topology.path_ids)
    with udp_stream(network):
        evidence = run_migration(network, plan)
    failures = evidence.failures()
    results.migration(request.node.name, network, evidence, failures)
    assert [event.event for event in evidence.events] == ["blackhole@0.5+0.5:2"]
    assert evidence.events[0].ended_by == "plan" and evidence.event_windows
    assert not failures, f"the proof judged the profile's event: {[str(f) for f in failures]}"
