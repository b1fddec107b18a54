"""Path profiles on real links: applied with tc, measured, and the measurement shown able to say no.

Rate alone runs on any kernel (tbf). Delay, jitter and loss need netem: where the kernel has it the
wan profile is applied and measured; where it lacks it, the run stops before anything starts with
one line that names the way out (the VM runner, where scenarios/test_vm.py measures a netem profile).
"""

from __future__ import annotations

import time

import pytest

from harness.data import PROFILES_FILE
from harness.errors import PrerequisiteError
from harness.model.profiles import load_profiles, parse_profiles
from harness.runtime.shaping import ShapedPaths, require_qdiscs, verify
from harness.system.prereq import available_qdiscs

pytestmark = pytest.mark.network

RATE_ONLY = """
[slow2]
description = "path 2 limited to 30 Mbit/s each way, nothing else"
[slow2.path.2]
rate_mbit = 30
"""


def test_a_rate_only_profile_is_applied_and_measured_as_specified(network):
    (profile,) = parse_profiles(RATE_ONLY, "test").values()
    with ShapedPaths(network, profile):
        check = verify(network, profile)
    assert check["failures"] == [], check
    assert set(check["paths"]) == {"2"}  # path 1 is unshaped: nothing to check there
    measured = check["paths"]["2"]
    assert measured["spec"]["rate_mbit"] == 30 and 27 <= measured["rate_mbit"] <= 33, measured
    qdiscs = network.client.exec(["tc", "qdisc", "show", "dev", network.topology.path_link(2).a_ifname]).stdout
    assert "tbf" not in qdiscs, f"the profile's qdisc outlived its block: {qdiscs}"


@pytest.mark.expect_red
def test_a_path_that_is_not_what_its_profile_says_fails_the_check(network):
    """The check must be able to say no: path 2 is limited to 10 Mbit/s behind the profile's back."""
    (profile,) = parse_profiles(RATE_ONLY, "test").values()
    device = network.topology.path_link(2).a_ifname
    with ShapedPaths(network, profile):
        network.client.exec(
            [
                "tc",
                "qdisc",
                "replace",
                "dev",
                device,
                "root",
                "tbf",
                "rate",
                "10mbit",
                "burst",
                "32kbit",
                "latency",
                "50ms",
            ]
        )
        check = verify(network, profile)
    assert any(failure.startswith("path 2 up:") and "spec 30 Mbit/s" in failure for failure in check["failures"]), (
        check["failures"]
    )


def test_a_delay_profile_runs_where_netem_is_and_is_refused_plainly_where_not(network):
    wan = load_profiles(PROFILES_FILE)["wan"]
    if "netem" not in (available_qdiscs() or []):
        with pytest.raises(PrerequisiteError) as refused:
            require_qdiscs(wan, network.topology.path_ids)
        assert "needs netem" in str(refused.value) and "--vm" in str(refused.value)
        return
    with ShapedPaths(network, wan):
        check = verify(network, wan)
    assert not check["failures"], "; ".join(check["failures"])  # whole lines: test_vm reads them
    assert all(abs(path["rtt_ms"] - 20) <= 3 for path in check["paths"].values()), check


STEPPED = """
[stepping]
description = "path 1's rate steps between 40 and 8 Mbit/s every 1.5 s"
[stepping.path.1]
rate_mbit = 40
period_s = 3
steps = [{ at_s = 0, rate_mbit = 40 }, { at_s = 1.5, rate_mbit = 8 }]
"""


def test_a_profile_that_varies_over_time_changes_the_link_on_its_clock(network):
    (profile,) = parse_profiles(STEPPED, "test").values()
    device = network.topology.path_link(1).a_ifname

    def rate_now() -> str:
        shown = network.client.exec(["tc", "qdisc", "show", "dev", device]).stdout
        return next(word for word in shown.split() if word.endswith("bit"))

    with ShapedPaths(network, profile):
        seen = []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            seen.append(rate_now())
            time.sleep(0.25)
    changes = [b for a, b in zip(seen, seen[1:]) if a != b]
    assert {"40Mbit", "8Mbit"} <= set(seen) and len(changes) >= 2, seen


def test_an_impairment_on_a_shaped_path_lowers_its_rate_and_gives_the_profile_back(network):
    """The degraded-path self-checks under --profile: the impairment must not wipe the profile's shaping."""
    from harness.runtime.links import ImpairedPath, Impairment

    (profile,) = parse_profiles(RATE_ONLY, "test").values()
    device = network.topology.path_link(2).b_ifname  # the proxy's end of path 2
    proxy = network.proxy(2)
    with ShapedPaths(network, profile):
        with ImpairedPath(network, 2, Impairment(rate="5mbit")):
            shown = proxy.exec(["tc", "qdisc", "show", "dev", device]).stdout
            assert "rate 5Mbit" in shown, shown
            limited = verify(network, profile)
        assert "rate 30Mbit" in proxy.exec(["tc", "qdisc", "show", "dev", device]).stdout
        restored = verify(network, profile)
    assert any(failure.startswith("path 2 down:") for failure in limited["failures"]), limited["failures"]
    assert restored["failures"] == [], restored["failures"]
