"""Reliability: `clean` never touches a live run, an interrupted sweep leaves nothing, a taken port
does not break bring-up. Every case runs the real command line as a child process, as a user would.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from harness.backends.registry import REGISTRY, network_for
from harness.runtime.traffic import ping_origin
from harness.system import cleanup
from harness.system.proc import read_until

pytestmark = pytest.mark.network
BRINGUP_TIMEOUT_S = 120  # the docker backend's first bring-up on a loaded machine included


def harness(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def start_up(backend: str, run_id: str, hold: float = 30) -> subprocess.Popen:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "up",
            "--backend",
            backend,
            "--run-id",
            run_id,
            "--hold",
            str(hold),
            "--traffic",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, found = read_until(child.stderr, "traffic running", BRINGUP_TIMEOUT_S)
    if found:
        return child
    child.kill()
    raise AssertionError(
        f"`up` never got to its traffic within {BRINGUP_TIMEOUT_S} s: exit {child.wait(10)}, said {lines[-3:]}"
    )


def leftovers_of(run_prefix: str) -> list[str]:
    """Everything on this machine whose run id starts with `run_prefix` (the runs a command made)."""
    found = [run_id for run_id in cleanup.run_ids_on_machine() if run_id.startswith(run_prefix)]
    found += [run_id for backend in REGISTRY.values() for run_id in backend.run_ids() if run_id.startswith(run_prefix)]
    return found


def test_clean_leaves_a_live_run_alone(backend, backend_ready, child_run_ids):
    run_id = child_run_ids()
    live = start_up(backend, run_id)
    try:
        before = cleanup.find_leftovers(run_id)
        prefix = harness("clean", "--run-id", run_id[:-1])  # a prefix of the live id: another run
        plain = harness("clean")
        after = cleanup.find_leftovers(run_id)
        assert prefix.returncode == 0 and plain.returncode == 0, (prefix.stderr, plain.stderr)
        assert f"left alone: run {run_id}" in plain.stdout, plain.stdout
        # every process the run had is still there; one that appeared meanwhile (a command still
        # in its exec chain when `before` was read, as once under CI's load) is not clean's doing
        gone = {p.pid for p in before.processes} - {p.pid for p in after.processes}
        assert not gone and after.directories == before.directories, (
            f"clean touched the live run {run_id}: {sorted(gone)} gone; {prefix.stdout} {plain.stdout}"
        )
        said = prefix.stdout + plain.stdout.replace(f"left alone: run {run_id}", "")
        assert not re.search(rf"{re.escape(run_id)}(?![\w-])", said), (prefix.stdout, plain.stdout)
        live.send_signal(signal.SIGINT)  # the run still works: it tears down by itself, as it should
        rest, _ = live.communicate(timeout=60)
    finally:
        if live.poll() is None:
            live.kill()
    assert live.returncode == 130, rest
    assert not cleanup.find_leftovers(run_id)


def test_clean_refuses_an_empty_run_id():
    out = harness("clean", "--run-id", "")
    assert out.returncode == 2 and "--run-id '' may hold only" in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_sweep_leaves_nothing(backend, backend_ready, child_run_ids, sig, tmp_path):
    out = tmp_path / child_run_ids()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "sweep",
            "--backend",
            backend,
            "--intervals",
            "1",
            "--out",
            str(out),
            "-k",
            "test_migration_moves_the_traffic",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        lines, found = read_until(child.stderr, "sweep ", BRINGUP_TIMEOUT_S)
        seen += [line.strip() for line in lines]
        if found:  # pytest starts now; its one test migrates for 10 s
            time.sleep(5.0)  # inside the test: the topology is up and migrating
            child.send_signal(sig)
        rest = child.communicate(timeout=120)[1]
        seen += rest.splitlines() if rest else []
    finally:
        if child.poll() is None:
            child.kill()
    expected = 143 if sig == signal.SIGTERM else 130
    assert child.returncode == expected, f"exit {child.returncode}: {seen[-5:]}"
    assert any("waiting for pytest to tear down" in line for line in seen), seen[-5:]
    left = leftovers_of(out.name)
    assert not left, f"an interrupted sweep left runs behind: {left}"


def hold_ports(network) -> None:
    """What made 1-2 % of CI runs fail: something in the client holds the port wg0 used to listen on."""
    holder = network.client.spawn(network.client.python() + ["-c", HOLD_SCRIPT], name="port-holder")
    time.sleep(0.3)
    assert holder.running(), holder.log_tail()


HOLD_SCRIPT = """
import socket, time
held = []
for address in ("0.0.0.0", "127.0.0.11"):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((address, 51820)); held.append(s)
    except OSError:
        pass
assert held, "could not hold port 51820"
time.sleep(3600)
"""


def test_a_taken_port_in_the_client_does_not_break_bring_up(backend, backend_ready, run_settings):
    network = network_for(backend, run_settings, run_id=f"{run_settings.run_id}-ports", prepared=backend_ready)
    network.builder.before_configure.append(hold_ports)
    with network:
        problem = ping_origin(network, count=3)
        assert problem is None, problem


@pytest.mark.docker_only
def test_two_docker_runs_and_the_compose_demo_at_once(run_settings):
    """Each Docker-backend run takes a /16 no other Docker network uses; the demo uses its own."""
    from harness.backends.compose import SCENARIO_UNDERLAY, compose_demo_network
    from harness.backends.docker import docker_images
    from harness.backends.registry import check_backend

    prepared = check_backend("docker", run_settings)
    first = network_for("docker", run_settings, run_id=f"{run_settings.run_id}-both-a", prepared=prepared)
    second = network_for("docker", run_settings, run_id=f"{run_settings.run_id}-both-b", prepared=prepared)
    demo = compose_demo_network(
        run_id=f"{run_settings.run_id}-both-demo", images=docker_images(), underlay=SCENARIO_UNDERLAY
    )
    with first, second, demo:
        underlays = {net.topology.plan.underlay for net in (first, second, demo)}
        assert len(underlays) == 3, f"two of the three share an underlay: {underlays}"
        for net in (first, second, demo):
            problem = ping_origin(net, count=3)
            assert problem is None, f"{net.run_id}: {problem}"


KILLED_TEST = """
import subprocess, sys, time
import pytest
from harness.system.proc import read_until

pytestmark = pytest.mark.network


def test_held_until_its_timeout(child_run_ids):
    child = subprocess.Popen([sys.executable, "-m", "harness", "up", "--backend", "{backend}", "--run-id",
                              child_run_ids(), "--hold", "600"], stderr=subprocess.PIPE, text=True)
    _, up = read_until(child.stderr, ": ready", 120)
    assert up, "the topology did not come up"
    try:
        time.sleep(600)  # pytest-timeout ends this test
    finally:
        if {kill}:
            child.kill()  # as test_vm's finally did: the child dies, what it made stays
"""


@pytest.mark.parametrize("kill", [True, False], ids=["child-killed", "child-leaked"])
def test_a_test_killed_by_its_timeout_leaves_nothing(backend, backend_ready, child_run_ids, kill, tmp_path):
    """The end of the pytest session removes what its own killed tests left: a child killed outright
    (its work dir and daemons stay), or a child left running (it gets SIGTERM and tears down)."""
    (tmp_path / "test_killed.py").write_text(KILLED_TEST.format(backend=backend, kill=kill))
    inner = child_run_ids()
    timeout = 20 if backend == "netns" else 60  # after bring-up: the test is killed while it holds the topology
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(tmp_path),
            "--timeout",
            str(timeout),
            "--backend",
            backend,
            "--run-id",
            inner,
            "--run-dir",
            str(tmp_path / "inner"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout + 120,
    )
    assert done.returncode == 1 and "Timeout" in done.stdout, done.stdout[-2000:]
    assert "removed what this session's killed tests left" in done.stdout, done.stdout[-2000:]
    left = leftovers_of(f"{inner}-")
    assert not left, f"a test killed by its time-out left runs behind: {left}"
