"""The VM runner's pure parts: kernel discovery, virtme-ng's command line, the accel choice, options."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness import options
from harness.errors import ConfigError
from harness.model.kinds import Accel
from harness.model.settings import VmSettings, parse_memory
from harness.system.prereq import QDISC_PROBES, qdisc_probe_script
from harness.vm import kernel
from harness.vm.command import (
    GuestSpec,
    choose_accel,
    guest_script,
    kvm_booted,
    outermost,
    passed_back,
    probe_argv,
    qemu_wrapper_script,
    vng_argv,
)

APT_DEPENDS = """linux-image-amd64
  Depends: linux-image-6.1.0-56-amd64
"""


def bzimage(version: str) -> bytes:
    """A minimal x86 setup header: 'HdrS' at 0x202 and the version string's offset (-0x200) at 0x20e."""
    data = bytearray(0x400)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x300 - 0x200).to_bytes(2, "little")
    text = f"{version} (debian-kernel@lists.debian.org) #1 SMP".encode()
    data[0x300 : 0x300 + len(text)] = text
    return bytes(data)


def unpacked_kernel(
    root: Path, version: str, modules: tuple[str, ...] = kernel.REQUIRED_MODULES, complete: bool = True
) -> Path:
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{version}").write_bytes(bzimage(version))
    moddir = root / "lib" / "modules" / version / "kernel"
    moddir.mkdir(parents=True)
    for name in modules:
        (moddir / f"{name}.ko").write_bytes(b"")
    if complete:
        (root / kernel.COMPLETE).write_text("x\n")
    return root


def test_the_kernel_package_behind_the_metapackage():
    assert kernel.parse_depends(APT_DEPENDS) == "linux-image-6.1.0-56-amd64"
    assert kernel.parse_depends("linux-image-amd64\n") is None


def test_the_version_comes_from_the_name_or_the_bzimage_header(tmp_path):
    assert kernel.bzimage_version(bzimage("6.12.1-test")) == "6.12.1-test"
    assert kernel.bzimage_version(b"\0" * 0x400) is None
    image = tmp_path / "bzImage"
    image.write_bytes(bzimage("6.1.0-9-amd64"))
    assert kernel.image_version(image) == "6.1.0-9-amd64"
    (tmp_path / "junk").write_bytes(b"\0" * 100)
    with pytest.raises(ConfigError, match=r"--kernel .*junk: not an x86 kernel image"):
        kernel.image_version(tmp_path / "junk")


def test_the_cache_finds_only_complete_kernels(tmp_path):
    assert kernel.cached(tmp_path) is None
    unpacked_kernel(tmp_path / "kernels" / "linux-image-6.1.0-55-amd64_6.1.1-1", "6.1.0-55-amd64", complete=False)
    assert kernel.cached(tmp_path) is None  # a fetch that was cut short is not a kernel
    unpacked_kernel(tmp_path / "kernels" / "linux-image-6.1.0-56-amd64_6.1.2-1", "6.1.0-56-amd64")
    found = kernel.cached(tmp_path)
    assert found.version == "6.1.0-56-amd64"
    assert found.modules == tmp_path / "kernels" / "linux-image-6.1.0-56-amd64_6.1.2-1" / "lib/modules/6.1.0-56-amd64"
    assert kernel.resolve("auto", tmp_path, progress=print) == found  # cached: nothing fetched


def test_a_given_kernel_needs_its_modules(tmp_path):
    root = unpacked_kernel(tmp_path / "mine", "6.9.0")
    given = kernel.resolve(str(root / "boot" / "vmlinuz-6.9.0"), tmp_path, progress=print)
    assert given.modules == root / "lib/modules/6.9.0" and given.source.startswith("given")
    bare = tmp_path / "bare" / "vmlinuz-6.9.1"
    bare.parent.mkdir()
    bare.write_bytes(bzimage("6.9.1"))
    with pytest.raises(ConfigError, match=r"--kernel .*: no lib/modules/6.9.1/ above it"):
        kernel.resolve(str(bare), tmp_path, progress=print)
    short = unpacked_kernel(tmp_path / "short", "6.9.2", modules=("9p", "9pnet_virtio"))
    with pytest.raises(ConfigError, match="lack wireguard, sch_netem"):
        kernel.resolve(str(short / "boot" / "vmlinuz-6.9.2"), tmp_path, progress=print)
    with pytest.raises(ConfigError, match="--kernel /nonexistent: no such file"):
        kernel.resolve("/nonexistent", tmp_path, progress=print)


def test_builtin_modules_count_as_present(tmp_path):
    root = unpacked_kernel(tmp_path / "k", "6.9.3", modules=())
    (root / "lib/modules/6.9.3/modules.builtin").write_text(
        "\n".join(f"kernel/x/{name}.ko" for name in kernel.REQUIRED_MODULES)
    )
    assert kernel.missing_modules(root / "lib/modules/6.9.3") == []


def spec(tmp_path: Path, accel: Accel = Accel.TCG) -> GuestSpec:
    return GuestSpec(
        image=Path("/cache/boot/vmlinuz-6.1"),
        accel=accel,
        cpus=2,
        memory="2G",
        rwdirs=(Path("/repo"), Path("/repo")),
        cwd=Path("/repo/sub dir"),
        state_dir=tmp_path,
        env=(("A", "x y"), ("PATH", "/venv/bin:/usr/bin")),
        command=("pytest", "-k", "i1s and x"),
    )


def test_the_vng_command_line(tmp_path):
    argv = vng_argv(spec(tmp_path), "/venv/bin/vng")
    assert argv[:10] == [
        "/venv/bin/vng",
        "--run",
        "/cache/boot/vmlinuz-6.1",
        "--qemu",
        str(tmp_path / "qemu"),
        "--cpus",
        "2",
        "--memory",
        "2G",
        "--disable-kvm",
    ]
    assert argv.count("--rwdir") == 2 and argv[argv.index("--rwdir") + 1] == "/repo"  # once per directory
    assert argv[argv.index("--cwd") + 1] == "/repo/sub dir"
    assert argv[-2:] == ["--", f"sh {tmp_path / 'guest.sh'}"]  # the script is a file: the kernel cmdline stays short
    assert "--disable-kvm" not in vng_argv(spec(tmp_path, Accel.KVM), "vng")


def test_the_kernel_command_line_stays_short_whatever_the_environment(tmp_path):
    """x86 cuts the kernel command line at 2048 bytes; virtme-ng puts the script there (base64), and a script
    cut short never runs: the guest idled until its test timed out (a 2156-byte command line did)."""
    import base64
    import dataclasses

    from harness.vm.command import KERNEL_CMDLINE_MAX

    big = dataclasses.replace(spec(tmp_path), env=(("COMPS_HARNESS_REPRODUCE", "x" * 4000),))
    script = vng_argv(big, "vng")[-1]
    assert len(base64.b64encode(script.encode())) < KERNEL_CMDLINE_MAX / 4


def test_the_guest_script_marks_up_loads_modules_and_quotes_everything(tmp_path):
    script = guest_script(spec(tmp_path))
    words = shlex.split(script.splitlines()[3])
    assert words[:3] == ["env", "A=x y", "PATH=/venv/bin:/usr/bin"]
    assert words[3:] == ["pytest", "-k", "i1s and x"]
    assert script.endswith(f"echo $status > {tmp_path / 'exit-status'}\nexit $status\n")
    assert script.startswith(f": > {tmp_path / 'guest-up'}")
    assert "modprobe -a -q wireguard sch_netem" in script
    assert "cd '/repo/sub dir'" in script


def test_a_guest_that_cannot_pass_its_status_back_is_named():
    assert passed_back(3, "3\n") == (3, None)
    status, line = passed_back(255, "3\n")  # no udev: the console fallback loses output and status
    assert status == 3 and "exited 3, but virtme-ng passed back 255" in line and "udev" in line
    status, line = passed_back(255, None)
    assert status == 255 and "wrote no exit status" in line and "\n" not in line
    assert "unreadable" in passed_back(0, "x")[1]


def test_writable_dirs_are_given_once_and_never_inside_another():
    assert outermost([Path("/repo"), Path("/repo/reports/x"), Path("/tmp/s"), Path("/repo")]) == [
        Path("/repo"),
        Path("/tmp/s"),
    ]
    assert outermost([Path("/repo/reports"), Path("/repo")]) == [Path("/repo")]


def test_qemu_dies_with_vng():
    script = qemu_wrapper_script("/usr/bin/qemu-system-x86_64")
    assert script.splitlines()[1] == 'exec setpriv --pdeathsig TERM /usr/bin/qemu-system-x86_64 "$@"'


def test_the_kvm_probe_and_the_accel_choice():
    assert "--disable-kvm" not in probe_argv(Path("/k"), "vng", Path("/tmp/q"))
    assert kvm_booted("kvm-clock tsc hpet acpi_pm \n") and not kvm_booted("hpet acpi_pm \n")
    assert choose_accel(Accel.AUTO, True, "") == (Accel.KVM, None)
    accel, line = choose_accel(Accel.AUTO, False, "a probe boot did not finish within 30 s")
    assert accel == Accel.TCG and line.count("\n") == 0 and "using TCG" in line and "within 30 s" in line
    assert choose_accel(Accel.TCG, True, "") == (Accel.TCG, None)
    assert choose_accel(Accel.KVM, False, "no /dev/kvm") == (Accel.KVM, None)  # asked for: qemu will say why not


def test_vm_options_are_checked_with_one_line_naming_the_option():
    assert parse_memory("2g", "--memory") == "2G" and parse_memory("1536M", "--memory") == "1536M"
    for bad in ("2", "100M", "2T", "-1G", ""):
        with pytest.raises(ConfigError, match="--memory"):
            parse_memory(bad, "--memory")
    with pytest.raises(ConfigError, match="--accel 'fast'"):
        options.settings_from({"accel": "fast"})
    with pytest.raises(ConfigError, match="--cpus"):
        options.settings_from({"cpus": "0"})
    assert options.settings_from({"accel": "tcg", "cpus": "4"}).vm == VmSettings(accel=Accel.TCG, cpus=4)


def test_the_qdisc_probe_tries_each_qdisc_once():
    script = qdisc_probe_script()
    assert all(script.count(f"root handle 1: {name} ") == 1 for name in QDISC_PROBES)
    assert "netem delay 1ms" in script
