"""The User-mode Linux guest's pure parts: the kernel's config fragment, the command line and the init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data import UML_CONFIG, data_path
from harness.errors import ConfigError
from harness.model.kinds import GuestKind
from harness.model.settings import VmSettings
from harness.vm import uml

# what the harness needs of the guest's kernel, and the option that gives it
NEEDED = {
    "kernel WireGuard": "CONFIG_WIREGUARD",
    "IPv6 (the keeper writes disable_ipv6)": "CONFIG_IPV6",
    "network namespaces": "CONFIG_NET_NS",
    "veth": "CONFIG_VETH",
    "the server's bridge": "CONFIG_BRIDGE",
    "TUN": "CONFIG_TUN",
    "ifb": "CONFIG_IFB",
    "policy routing": "CONFIG_IP_MULTIPLE_TABLES",
    "netem": "CONFIG_NET_SCH_NETEM",
    "tbf": "CONFIG_NET_SCH_TBF",
    "htb": "CONFIG_NET_SCH_HTB",
    "fq_codel": "CONFIG_NET_SCH_FQ_CODEL",
    "ingress and clsact": "CONFIG_NET_SCH_INGRESS",
    "u32 classifier": "CONFIG_NET_CLS_U32",
    "bpf classifier": "CONFIG_NET_CLS_BPF",
    "nf_tables": "CONFIG_NF_TABLES",
    "iptables over nf_tables": "CONFIG_NFT_COMPAT",
    "conntrack": "CONFIG_NF_CONNTRACK",
    "conntrack over netlink": "CONFIG_NF_CT_NETLINK",
    "NAT": "CONFIG_NF_NAT",
    "MASQUERADE": "CONFIG_NETFILTER_XT_TARGET_MASQUERADE",
    "statistic match (faults)": "CONFIG_NETFILTER_XT_MATCH_STATISTIC",
    "length match": "CONFIG_NETFILTER_XT_MATCH_LENGTH",
    "comment match (accounting)": "CONFIG_NETFILTER_XT_MATCH_COMMENT",
    "raw table": "CONFIG_IP_NF_RAW",
    "NOTRACK": "CONFIG_NETFILTER_XT_TARGET_NOTRACK",
    "hostfs": "CONFIG_HOSTFS",
    "power off from init": "CONFIG_MAGIC_SYSRQ",
}


@pytest.mark.parametrize("feature", sorted(NEEDED))
def test_the_fragment_builds_in_what_the_harness_needs(feature):
    assert uml.fragment_options(UML_CONFIG.read_text()).get(NEEDED[feature]) == "y", feature


def test_a_built_config_that_dropped_an_option_is_named():
    fragment = "CONFIG_NET_SCHED=y\nCONFIG_NET_SCH_NETEM=y\n# a comment\n"
    built = "CONFIG_NET_SCHED=y\n# CONFIG_NET_SCH_NETEM is not set\n"
    assert uml.dropped(fragment, built) == ["CONFIG_NET_SCH_NETEM"]
    assert uml.dropped(fragment, built + "CONFIG_NET_SCH_NETEM=y\n") == []


def spec(**changes) -> uml.UmlSpec:
    base = dict(
        binary=Path("/c/uml/6.1/linux"),
        memory="2G",
        rwdirs=(Path("/work/repo"), Path("/tmp/state")),
        readable=(Path("/root/.pyenv/versions/3.11"),),
        cwd=Path("/work/repo"),
        state_dir=Path("/tmp/state"),
        env=(("PATH", "/work/repo/.venv/bin:/usr/bin"),),
        command=("pytest", "-k", "a b"),
        umid="comps-harness-r1",
    )
    return uml.UmlSpec(**{**base, **changes})


def test_the_guest_boots_the_hosts_root_read_only_with_its_state_in_the_run():
    argv = uml.uml_argv(spec())
    assert argv[0] == "/c/uml/6.1/linux" and "ro" in argv and "rootfstype=hostfs" in argv
    assert "init=/tmp/state/init.sh" in argv and "uml_dir=/tmp/state" in argv and "umid=comps-harness-r1" in argv
    assert "mem=2G" in argv


def test_the_init_hides_the_hosts_private_dirs_before_it_mounts_what_may_be_written():
    lines = uml.init_script(spec()).splitlines()
    private = max(i for i, line in enumerate(lines) if "mount -t tmpfs" in line and "/root" in line)
    writable = lines.index("mkdir -p /tmp/state && mount -t hostfs none /tmp/state -o /tmp/state")
    readable = next(i for i, line in enumerate(lines) if "mount -r -t hostfs" in line and "/root/.pyenv" in line)
    assert private < readable < writable
    assert any("mount --bind /run/etc /etc" in line for line in lines)
    command = next(line for line in lines if line.startswith("env "))
    assert command.endswith("pytest -k 'a b'")
    assert lines.index(command) < next(i for i, line in enumerate(lines) if "exit-status" in line)
    assert "echo o > /proc/sysrq-trigger" in lines


@pytest.mark.parametrize("path, hidden", [("/root/x", True), ("/tmp", True), ("/work/repo", False), ("/usr", False)])
def test_what_a_private_tmpfs_hides(path, hidden):
    assert uml.masked(Path(path)) is hidden


def test_a_bad_guest_kind_names_the_option():
    with pytest.raises(ConfigError, match="--guest"):
        VmSettings(guest="xen")
    assert VmSettings(guest="uml").guest == GuestKind.UML


def test_the_report_says_a_run_was_in_a_uml_guest():
    from harness.reporting.report import _machine

    said = _machine({"vm": {"kind": "uml", "accel": "uml", "kernel_source": "6.1.192 (User-mode Linux, built ...)"}})
    assert "User-mode Linux" in said and "6.1.192" in said


def test_a_bench_names_its_guests_kind_and_the_kernels_build_time():
    from harness.vm.runner import Guest

    kernel = uml.UmlKernel(Path("/nonexistent/linux"), "6.1.192", "linux-source-6.1 6.1.192-3", 291.0)
    summary = Guest(kernel, "uml").summary(4.3)
    assert summary == {
        "kind": "uml",
        "accel": "uml",
        "kernel": kernel.describe(),
        "boot_s": 4.3,
        "build_s": 291.0,
    }


def test_a_kernel_built_before_the_fragment_changed_is_not_taken_from_the_cache(tmp_path):
    built = tmp_path / "uml" / "6.1.192"
    built.mkdir(parents=True)
    record = json.dumps({"patches": uml.patch_names()})
    for name, text in (
        ("linux", ""),
        (uml.COMPLETE, "x\n"),
        ("config", "CONFIG_WIREGUARD=y\n"),
        (uml.BUILD_FILE, record),
    ):
        (built / name).write_text(text)
    assert uml.cached(tmp_path, "CONFIG_WIREGUARD=y\n").release == "6.1.192"
    assert uml.cached(tmp_path, "CONFIG_WIREGUARD=y\nCONFIG_NET_SCH_CAKE=y\n") is None


def test_a_kernel_built_without_todays_patches_is_not_taken_from_the_cache(tmp_path):
    """A kernel built before uml-xstate.patch (or with an older copy of it) dies at init on a host whose XSAVE
    area is not 2696 bytes (AMX): it must be rebuilt, not booted."""
    built = tmp_path / "uml" / "6.1.192"
    built.mkdir(parents=True)
    for name, text in (("linux", ""), (uml.COMPLETE, "x\n"), ("config", "CONFIG_WIREGUARD=y\n")):
        (built / name).write_text(text)
    for patches in (None, [], ["uml-xstate.patch@000000000000"]):
        (built / uml.BUILD_FILE).write_text(json.dumps({} if patches is None else {"patches": patches}))
        assert uml.cached(tmp_path, "CONFIG_WIREGUARD=y\n") is None
    assert uml.patch_names() and all(name.startswith("uml-xstate.patch@") for name in uml.patch_names())


def test_the_shipped_patch_applies_to_the_source_it_names():
    """The patch's paths and hunks are those of arch/x86/um/os-Linux/registers.c (checked without the source:
    the file names and the anchors it changes)."""
    text = data_path("uml-xstate.patch").read_text()
    assert text.startswith("--- a/arch/x86/um/os-Linux/registers.c\n+++ b/arch/x86/um/os-Linux/registers.c\n")
    assert "PTRACE_SETREGSET" in text and "host_xstate_size" in text
