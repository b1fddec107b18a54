"""Bad input and missing prerequisites: one clear error line, exit 2, and nothing created.

Runs the real `comps-harness up` as a child process, the way a user meets these errors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.model.settings import new_run_id
from harness.system.cleanup import find_leftovers

pytestmark = pytest.mark.network

NEEDED = (
    "unshare",
    "nsenter",
    "wg",
    "wireguard-go",
    "iptables-restore",
    "ip",
    "ping",
    "iperf3",
    "chromium",
    "chromedriver",
    "setpriv",
)


def run_up(*args: str, env: dict | None = None, prefix: tuple[str, ...] = ()) -> tuple[int, list[str], str]:
    run_id = new_run_id()
    out = subprocess.run(
        [*prefix, sys.executable, "-m", "harness", "up", "--run-id", run_id, "--hold", "0.1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return out.returncode, [line for line in out.stderr.splitlines() if line.strip()], run_id


def path_without(tmp_path: Path, missing: str) -> dict:
    """An environment whose PATH holds every tool the harness calls except `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in NEEDED:
        found = shutil.which(tool)
        if tool != missing and found:
            (bin_dir / tool).symlink_to(found)
    return {**os.environ, "PATH": str(bin_dir)}


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--paths", "1"), "--paths 1"),
        (("--paths", "9"), "--paths 9"),
        (("--hold", "nan"), "--hold"),
        (("--wireguard", "boringtun"), "--wireguard 'boringtun'"),
        (("--paths", "abc"), "--paths 'abc' is not a whole number"),
    ],
)
def test_bad_options_fail_before_anything_starts(args, expected):
    code, lines, run_id = run_up(*args)
    assert code == 2, lines
    assert len(lines) == 1 and expected in lines[0], lines
    assert not find_leftovers(run_id)


def test_unknown_backend_is_refused():
    code, lines, _ = run_up("--backend", "vmware")
    assert code == 2 and len(lines) == 1 and "--backend 'vmware' is unknown" in lines[0], lines


@pytest.mark.parametrize("missing", ["wg", "wireguard-go", "unshare", "iptables-restore"])
def test_missing_binary_is_named(tmp_path, missing):
    code, lines, run_id = run_up("--wireguard", "userspace", env=path_without(tmp_path, missing))
    assert code == 2, lines
    assert len(lines) == 1 and f"{missing} not found on PATH" in lines[0] and "apt-get install" in lines[0], lines
    assert not find_leftovers(run_id)


def test_kernel_wireguard_is_used_only_where_the_module_exists():
    from harness.system.prereq import kernel_wireguard_available

    code, lines, _ = run_up("--wireguard", "kernel")
    if kernel_wireguard_available():
        assert code == 0, lines
    else:
        assert code == 2 and len(lines) == 1 and "no WireGuard module" in lines[0], lines


def test_without_root_the_error_says_so():
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root for this check"
    code, lines, _ = run_up(
        prefix=(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert code == 2 and len(lines) == 1 and "needs root" in lines[0], lines


def test_docker_backend_without_an_engine_says_so(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    code, lines, run_id = run_up("--backend", "docker", env=env)
    assert code == 2 and len(lines) == 1 and "no Docker engine answers" in lines[0], lines
    assert not find_leftovers(run_id)
