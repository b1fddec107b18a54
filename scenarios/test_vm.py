"""The VM runner: a guest with Debian's stock kernel runs the harness with kernel WireGuard and netem.

The guest boots under virtme-ng (KVM where it works, else TCG), with the repository writable at
the same path; inside it the netns backend uses kernel WireGuard with no sticky-source release at
all. The inner pytest's results land in this run's directory on the host, and are read here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.model.records import MigrationRecord, RunRecord, TestRecord, load, of_kind
from harness.system import cleanup
from harness.system.proc import read_until

pytestmark = [pytest.mark.vm]

REPO = Path(__file__).resolve().parent.parent
BOOT_TIMEOUT_S = 240  # TCG boots in ~25 s on 2 cores; a loaded CI machine is slower
INNER_TIMEOUT_S = 900


def harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def test_kernel_wireguard_migrates_inside_the_guest(run_settings):
    out = (run_settings.run_dir / "guest").absolute()
    out.mkdir(parents=True, exist_ok=True)
    inner = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "scenarios/test_connectivity.py",
        "scenarios/test_migration.py",
        "scenarios/test_path_profiles.py",
        "-k",
        # the profile checks that need netem, or say no; the tbf-only ones (rate-only, stepping) run on the host
        "traffic_moves or route_change_alone or (moves_the_traffic and (i0.1s or i1s)) or delay_profile"
        " or not_what_its_profile_says or impairment_on_a_shaped_path",
        "--intervals",
        "0.1,1",
        "--wireguard",
        "kernel",
        "--run-id",
        f"{run_settings.run_id}-guest",
        "--run-dir",
        str(out),
    ]
    done = subprocess.run(
        harness("vm", "--guest", "qemu", "--run-id", f"{run_settings.run_id}-vm", "--rwdir", str(out), "--", *inner),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=INNER_TIMEOUT_S,
    )
    said = f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-2000:]}"
    records = load(out / "results.jsonl") if (out / "results.jsonl").exists() else []
    assert records, f"the guest's pytest wrote no results (exit {done.returncode})\n{said}"
    environment = of_kind(records, RunRecord)[0].environment
    vm = environment["vm"]
    assert vm and vm["accel"] in ("kvm", "tcg") and vm["kernel"] != os.uname().release, environment
    assert "netem" in (environment["qdiscs"] or []), environment["qdiscs"]
    outcomes = {record.test.split("::")[-1]: record for record in of_kind(records, TestRecord)}
    for name in (
        "test_traffic_moves_from_path_1_to_path_2[netns]",
        "test_route_change_alone_moves_kernel_wireguard_but_not_wireguard_go[netns]",
        "test_migration_moves_the_traffic[netns-alternate-i1s]",
        "test_a_path_that_is_not_what_its_profile_says_fails_the_check[netns]",
    ):
        assert outcomes[name].outcome == "passed", f"{name}: {outcomes[name].reason}\n{said}"
    proofs = {record.plan["interval_s"]: record for record in of_kind(records, MigrationRecord)}
    one_second = proofs[1.0]
    assert one_second.wireguard == "kernel" and one_second.evidence["sticky_source"] == "off"
    assert one_second.evidence["releases"] == 0, "kernel WireGuard was helped with a sticky-source release"
    fast = outcomes["test_migration_moves_the_traffic[netns-alternate-i0.1s]"]
    # with netem in the guest: the wan profile applied and measured within 10 % (+1 ms)
    wan = outcomes["test_a_delay_profile_runs_where_netem_is_and_is_refused_plainly_where_not[netns]"]
    if vm["accel"] == "tcg":
        # TCG keeps a 0.1 s schedule only just (the switcher 24-29 ms late at the median on a quiet machine,
        # against the quarter interval the proof allows): either the proof holds, or the verdict says the
        # machine could not follow; nothing else.
        honest = fast.outcome == "failed" and "the machine could not" in fast.reason
        assert fast.outcome == "passed" or honest, fast.reason
        # TCG cannot carry wan's 50 Mbit/s: its iperf3 sent 40.7 of the 62.5 Mbit/s offered over a bare veth
        # with netem, which dropped nothing. The check must then fail on the rates it measured below the spec,
        # and on nothing else (netem's delay, the RTT, still within 10 % + 1 ms).
        assert wan.outcome == "passed" or tcg_rate_shortfall_only(wan.reason), wan.reason
        assert done.returncode == (0 if fast.outcome == wan.outcome == "passed" else 1), said
    else:
        assert fast.outcome == wan.outcome == "passed", (fast.reason, wan.reason)
        assert done.returncode == 0, said


def tcg_rate_shortfall_only(reason: str) -> bool:
    """Whether a profile check's failure lines are all rates measured below a 50 Mbit/s spec."""
    lines = reason.split("AssertionError: ", 1)[-1].split("\n", maxsplit=1)[0].split("; ")
    shortfall = re.compile(r"path \d (up|down): ([\d.]+) Mbit/s, spec 50 Mbit/s \(±10 %[^)]*\)")
    matches = [shortfall.fullmatch(line.strip()) for line in lines]
    return all(m is not None and float(m.group(2)) < 50 for m in matches)


def test_an_interrupt_powers_the_guest_off_and_leaves_nothing(run_settings):
    run_id = f"{run_settings.run_id}-vmint"
    child = subprocess.Popen(
        harness("vm", "--guest", "qemu", "--run-id", run_id, "--", "sh", "-c", "echo guest-up; sleep 600"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines, up = read_until(child.stdout, "guest-up", BOOT_TIMEOUT_S)  # a deadline on every read
        if not up:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=60)
            said = "\n".join(lines[-20:]) + f"\nstderr: {err[-3000:]}"
            pytest.fail(f"the guest did not say guest-up within {BOOT_TIMEOUT_S} s (exit {child.returncode})\n{said}")
        child.send_signal(signal.SIGINT)
        said = child.communicate(timeout=60)[1]
        assert child.returncode == 130, said
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert "interrupted" in said
    left = cleanup.find_leftovers(run_id)
    assert not left.processes and not left.directories, left.describe()  # no qemu, vng or work dir of this run


@pytest.mark.parametrize(
    "args, option",
    [
        (("--memory", "10"), "--memory"),
        (("--accel", "fast"), "--accel"),
        (("--kernel", "/nonexistent"), "--kernel"),
        (("--cpus", "0"), "--cpus"),
    ],
)
def test_bad_vm_options_stop_before_anything_boots(args, option):
    done = subprocess.run(harness("vm", *args, "--", "true"), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], done.stderr
