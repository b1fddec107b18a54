"""The ssh backend's own promises, on local SSH hosts made once per test (so their state can be compared
before the run and after it): teardown leaves every host as it found it, a lost connection is not
replaced and is named, and a sweep from a new connection removes what the run left on that host.

(The generic scenarios marked `ssh`, connectivity and interrupt, run over it as over any backend.)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.registry import Prepared, check_backend, network_for
from harness.backends.remote import RemoteHosts, sweep_host
from harness.backends.sshlab import LocalSshHosts
from harness.errors import CommandError
from harness.model.remote import remote_tag
from harness.runtime import traffic
from harness.system import cleanup

pytestmark = pytest.mark.network
ROLES = ["wgnet1", "wgnet2", "server"]
# What a host is, for "as it found it": links (with aliases), addresses, routes, rules, files of the run.
STATE = (
    "ip -o link show | sed 's/link\\/ether [^ ]*//'; ip -o addr show; ip route show table all; "
    "iptables-save | grep '^-'; ls -a /tmp /run/wireguard"
)


@pytest.fixture
def lab(child_run_ids, run_settings) -> Iterator[tuple[LocalSshHosts, Prepared]]:
    run_id = child_run_ids()
    workdir = Path(tempfile.mkdtemp(prefix=cleanup.workdir_prefix(run_id)))
    checked = check_backend("ssh", run_settings)
    try:
        with LocalSshHosts(run_id, workdir, ROLES) as hosts:
            yield hosts, Prepared(checked.wireguard, {**checked.extra, "inventory": hosts.inventory, "lab": hosts})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def states(lab: LocalSshHosts) -> dict[str, str]:
    return {role: lab.hosts[role].exec(["sh", "-c", STATE]).stdout for role in ROLES}


@pytest.mark.expect_red
def test_teardown_leaves_every_host_as_it_found_it(lab, run_settings, child_run_ids):
    hosts, prepared = lab
    before = states(hosts)
    run_id = child_run_ids()
    with network_for("ssh", run_settings, run_id=run_id, prepared=prepared) as network:
        assert traffic.ping_origin(network, 3) is None
        during = states(hosts)
        assert remote_tag(run_id) in during["wgnet1"] and "wgnet1" in during["wgnet1"], "nothing tagged was made"
        assert during != before
        # the check can fail: a rule the run did not tag stays behind and is seen
        hosts.hosts["server"].exec(["iptables", "-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"])
    after = states(hosts)
    assert after["server"] != before["server"], "a leftover on a host went unseen"
    hosts.hosts["server"].exec(["iptables", "-D", "INPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT"])
    assert states(hosts) == before, "teardown left something on a host"


@pytest.mark.expect_red
def test_a_lost_connection_is_named_and_a_sweep_removes_what_the_run_left_there(lab, run_settings, child_run_ids):
    hosts, prepared = lab
    before = states(hosts)
    run_id = child_run_ids()
    network = network_for("ssh", run_settings, run_id=run_id, prepared=prepared)
    lines: list[str] = []
    network._progress = lines.append  # what teardown says
    with network:
        assert traffic.ping_origin(network, 3) is None
        connection = network.builder.remote["wgnet2"]  # type: ignore[attr-defined]
        connection.master.popen.kill()  # the connection to path 2's proxy is lost mid-run
        connection.master.popen.wait(5)
        with pytest.raises(CommandError) as caught:
            network.path_transfer()
        assert "wgnet2" in str(caught.value) and "lost its ssh connection" in str(caught.value)
        assert hosts.sshd_log("wgnet2").count("Accepted publickey") == 1, "ssh reconnected on its own"
    assert any("lost the ssh connection to wgnet2" in line and f"--run-id {run_id}" in line for line in lines), lines
    left = states(hosts)
    assert left["wgnet2"] != before["wgnet2"], "nothing was left on the lost host"
    assert {role: left[role] for role in ("wgnet1", "server")} == {r: before[r] for r in ("wgnet1", "server")}
    assert hosts.inventory is not None
    with RemoteHosts(hosts.inventory, f"{run_id}-clean", hosts.workdir, remote_dir=False) as again:
        removed = sweep_host(again["wgnet2"], run_id)
    assert any("iptables rule" in line for line in removed), removed
    assert states(hosts)["wgnet2"] == before["wgnet2"], f"the sweep left something: {removed}"
