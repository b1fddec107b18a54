"""Local SSH hosts: "remote" machines on this one, for the ssh backend's tests and its bench.

With `--backend ssh` and no `--inventory`, the harness makes these and an inventory for them; the
inventory then goes down the same code path as a real one (harness.model.inventory,
harness.system.ssh): only its origin differs.

- Each host is a network and mount namespace held by a keeper (harness.backends.netns), with private
  tmpfs on /tmp, /root, /run/sshd and WireGuard's directories: what it writes there dies with it,
  and a test can read every file it has (`private_files`).
- It runs Debian's OpenSSH server (`sshd -D -e`) with a host key made in its own /tmp, root login by
  key only, no PAM; its log is the host's sshd log in the run's work dir.
- The hosts' network is a namespace of its own, the lab's "internet": host k's eth0 is 172.31.k.2/24
  with its gateway 172.31.k.1 there, and that namespace routes between them. This is the underlay
  the others reach a host on, and its management link: ssh reaches it from this machine's root
  namespace through the inventory's proxy_command (`nsenter --net=... nc %h %p`, netcat-openbsd),
  so nothing is added to the root namespace.
- The harness's client key is made fresh per run in the run's work dir; each host's known_hosts
  line is its own host key, so strict host-key checking is exercised as on a real inventory.
"""

from __future__ import annotations

import os
import signal
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from harness.backends.netns import PRIVATE_DIRS, NetnsHost
from harness.errors import BackendError
from harness.model.inventory import Inventory, RemoteHost
from harness.model.topology import HostSpec
from harness.system import prereq
from harness.system.ssh import private_key_pair
from harness.system.wait import wait_until

LAB_PRIVATE_DIRS = (*PRIVATE_DIRS, "/tmp", "/root", "/run/sshd")
LAB_NAME = "lab-net"
SSHD = "/usr/sbin/sshd"  # sshd refuses to start by a relative name
SSHD_DIR = "/tmp/sshd"  # in the host's private /tmp
SSHD_TIMEOUT = 10.0
VETH_INDEX_BASE = 300
SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {dir}/host_ed25519
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes yes
LogLevel INFO
"""
REQUIRED_BINARIES = ["unshare", "nsenter", "ssh", "ssh-keygen", "sshd", "nc"]


def lab_run_id(run_id: str) -> str:
    return f"{run_id}-sshlab"


def host_address(number: int) -> IPv4Interface:
    return IPv4Interface(f"172.31.{number}.2/24")


def gateway_address(number: int) -> IPv4Interface:
    return IPv4Interface(f"172.31.{number}.1/24")


def check() -> None:
    """What the local hosts need of this machine (PrerequisiteError names the package)."""
    prereq.require_privileges()
    prereq.require_binaries(REQUIRED_BINARIES)


class LocalSshHosts:
    """The local "remote" hosts of one run, for `roles` (wgnet1 .. wgnetN, server), and their inventory."""

    def __init__(self, run_id: str, workdir: Path, roles: list[str]) -> None:
        self.run_id = run_id
        # The hosts' own processes (keepers, sshd) carry a tag of their own: on a real host sshd is not the
        # run's, and the remote sweep of the run must leave it running, as it must here.
        self.lab_id = lab_run_id(run_id)
        self.workdir = workdir
        self.roles = list(roles)
        self.hosts: dict[str, NetnsHost] = {}
        self.lab: NetnsHost | None = None
        self.inventory: Inventory | None = None

    def __enter__(self) -> LocalSshHosts:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Inventory:
        check()
        for directory in LAB_PRIVATE_DIRS:
            os.makedirs(directory, exist_ok=True)  # mount points of the hosts' private tmpfs
        self.lab = NetnsHost(HostSpec(LAB_NAME, "origin", forwarding=True), self.lab_id, self.workdir)
        for role in self.roles:
            self.hosts[role] = NetnsHost(
                HostSpec(role, "proxy", forwarding=True), self.lab_id, self.workdir, LAB_PRIVATE_DIRS, own_pids=True
            )
        for host in (self.lab, *self.hosts.values()):
            host.wait_ready()
            host.netlink.link("set", index=host.link_index("lo"), state="up")
        identity = self.workdir / "ssh-client-key"
        client_key = private_key_pair(identity, f"comps-harness-{self.run_id}")
        known_hosts = self.workdir / "ssh-known-hosts"
        lines, remote = [], []
        for number, (role, host) in enumerate(self.hosts.items(), start=1):
            self.attach(host, number)
            lines.append(f"{host_address(number).ip} {self._start_sshd(host, number, client_key)}")
            remote.append(
                RemoteHost(
                    role=role,
                    host=str(host_address(number).ip),
                    user="root",
                    port=22,
                    identity=identity,
                    known_hosts=known_hosts,
                    address=host_address(number).ip,
                    proxy_command=f"nsenter --net=/proc/{self.lab.pid}/ns/net nc %h %p",
                    interface="eth0",
                )
            )
        known_hosts.write_text("\n".join(lines) + "\n")
        self.inventory = Inventory(f"local SSH hosts of run {self.run_id}", tuple(remote))
        for number, host in enumerate(self.hosts.values(), start=1):
            self._wait_listening(host, host_address(number).ip)
        return self.inventory

    def attach(self, host: NetnsHost, number: int) -> None:
        """Host `number`'s eth0 to the lab namespace (172.31.<number>.2/24), and its default route there;
        also how a local namespace (the client) reaches the hosts, as this machine reaches real ones."""
        assert self.lab is not None
        index = VETH_INDEX_BASE + 2 * number
        lab_if = f"lab{number}"
        self.lab.netlink.link(
            "add",
            ifname=lab_if,
            kind="veth",
            index=index,
            peer={"ifname": "eth0", "net_ns_pid": host.pid, "index": index + 1},
        )
        for side, ifname, address in (
            (self.lab, lab_if, gateway_address(number)),
            (host, "eth0", host_address(number)),
        ):
            link = side.link_index(ifname)
            side.netlink.addr("add", index=link, address=str(address.ip), prefixlen=address.network.prefixlen)
            side.netlink.link("set", index=link, state="up")
        host.netlink.route("replace", dst="0.0.0.0/0", gateway=str(gateway_address(number).ip))

    def _start_sshd(self, host: NetnsHost, number: int, client_key: str) -> str:
        """sshd in `host` with a fresh host key; returns the known_hosts key of it."""
        host.exec(["mkdir", "-p", SSHD_DIR, "/root/.ssh"], timeout=10)
        host.exec(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{SSHD_DIR}/host_ed25519"], timeout=15)
        host.write_file(f"{SSHD_DIR}/config", SSHD_CONFIG.format(address=host_address(number).ip, dir=SSHD_DIR))
        host.write_file("/root/.ssh/authorized_keys", client_key + "\n")
        host.spawn([SSHD, "-D", "-e", "-f", f"{SSHD_DIR}/config"], name="sshd")
        key = host.path(f"{SSHD_DIR}/host_ed25519.pub").read_text().split()
        return f"{key[0]} {key[1]}"

    def _wait_listening(self, host: NetnsHost, address: IPv4Address) -> None:
        def listening() -> bool:
            for process in host._processes:
                if process.name.endswith("/sshd") and not process.running():
                    raise BackendError(f"{host.name}: sshd exited: {process.log_tail() or 'no output'}")
            text = Path(f"/proc/{host.pid}/net/tcp").read_text()
            wanted = f"{int.from_bytes(address.packed, 'little'):08X}:0016"
            return any(line.split()[1] == wanted and line.split()[3] == "0A" for line in text.splitlines()[1:])

        wait_until(listening, timeout=SSHD_TIMEOUT, interval=0.02, what=f"{host.name}: sshd on {address}:22")

    def sshd_log(self, role: str) -> str:
        path = self.workdir / f"{role}-sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def private_files(self, role: str) -> dict[str, bytes]:
        """Every file in the host's private directories, by its path in the host (for the key-material test)."""
        host = self.hosts[role]
        found: dict[str, bytes] = {}
        for directory in LAB_PRIVATE_DIRS:
            base = host.path(directory)
            for root, _, names in os.walk(base):
                for name in names:
                    path = Path(root) / name
                    if path.is_file() and not path.is_symlink():
                        found["/" + str(path.relative_to(host.path("/")))] = path.read_bytes()
        return found

    def processes(self, role: str) -> list[str]:
        """The command lines of the processes in the host (its own PID namespace), its pid 1 left out."""
        host = self.hosts[role]
        mine = os.readlink(f"/proc/{host.pid}/ns/pid")
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == host.pid:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != mine:
                    continue
                found.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
            except OSError:
                continue
        return found

    def close(self) -> None:
        hosts = list(self.hosts.values())
        for host in hosts:
            host.signal_processes(signal.SIGTERM)
        for host in hosts:
            host.stop_processes()
        for host in (*reversed(hosts), *([self.lab] if self.lab else [])):
            host.destroy()
        self.hosts.clear()
        self.lab = None
        for name in ("ssh-client-key", "ssh-client-key.pub", "ssh-known-hosts"):
            (self.workdir / name).unlink(missing_ok=True)
