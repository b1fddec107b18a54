"""The Docker backend: each host is a container of the demo's kind, made with testcontainers-python.

One internal Docker network per underlay subnet of the topology (a network per proxy path, the
backbone between proxies and server, the 'Internet' between server and origin), fixed addresses
from the topology's address plan (.1 of every /24 is the Docker bridge), interfaces renamed to
the topology's names, and a browser container in the client container's network namespace.
Everything carries the label org.comps-harness.run=<run id>; teardown removes it by hand
(testcontainers' reaper cannot run without a registry), and `comps-harness clean` finds leftovers.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections import defaultdict
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from harness import proc
from harness.errors import BackendError, PrerequisiteError
from harness.hosts import HARNESS_DIR, Host
from harness.network import Network
from harness.netns import host_sysctls
from harness.topology import CLIENT, ORIGIN, HostSpec

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # its reaper image cannot be pulled offline

RUN_LABEL = "org.comps-harness.run"
HARNESS_IN_CONTAINER = "/opt/comps-harness/harness"
CHROMEDRIVER_PORT = 9515
MANAGEMENT_RULE_PRIORITY = 50
READY_TIMEOUT = 20.0


def docker_client():
    """The engine's client, or PrerequisiteError saying how to get one."""
    try:
        import docker
        importlib.import_module("testcontainers.core.container")  # the backend is built on it
    except ImportError as exc:
        raise PrerequisiteError(f"the docker backend needs the Python packages docker and testcontainers ({exc}): "
                                "pip install -e '.[docker]' (bootstrap.sh does)") from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the SDK raises several kinds for "no engine"
        raise PrerequisiteError(f"no Docker engine answers ({type(exc).__name__}): start dockerd "
                                "(./bootstrap.sh starts one when none runs)") from None
    return client


def sysctl_map(spec: HostSpec) -> dict[str, str]:
    """The namespace backend's per-host sysctls in Docker's form (net.ipv4.ip_forward: 1)."""
    return {key.replace("/", "."): value for key, value in (s.split("=", 1) for s in host_sysctls(spec))}


class DockerProcess(proc.Process):
    """A process started with `docker exec`; stopping it signals the process inside the container.

    (Signalling the docker CLI would leave the process running in the container.)
    """

    def __init__(self, container_id: str, argv: list[str], *, name: str, env: dict[str, str],
                 log_path: Path | None, stdout: int | None) -> None:
        self.container_id = container_id
        self.pidfile = f"/run/comps-harness-{name.replace('/', '-')}.pid"
        wrapped = ["docker", "exec", "-i", container_id, "sh", "-c",
                   'echo $$ > "$0"; exec "$@"', self.pidfile, *argv]
        super().__init__(wrapped, name=name, env=env, log_path=log_path, stdout=stdout)

    def stop(self, timeout: float = 2.0, sig: int = signal.SIGTERM) -> int | None:
        if self.running():
            proc.run(["docker", "exec", self.container_id, "sh", "-c",
                      f'[ -f "$0" ] && kill -{int(sig)} "$(cat "$0")"', self.pidfile],
                     where=self.name, env=dict(os.environ), timeout=10, check=False)
        return super().stop(timeout, sig)


class DockerHost(Host):
    """A container; commands run through `docker exec`, netlink and files through its pid's /proc entries."""

    def __init__(self, spec: HostSpec, run_id: str, log_dir: Path, container) -> None:
        super().__init__(spec.name, run_id, log_dir)
        self.spec = spec
        container.reload()  # a docker SDK container
        self.id = container.id
        self.pid = int(container.attrs["State"]["Pid"])

    def command_prefix(self) -> list[str]:
        return ["docker", "exec", "-i", self.id]

    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def path(self, inside: str) -> Path:
        return Path(f"/proc/{self.pid}/root") / inside.lstrip("/")

    def python(self, script: str | None = None) -> list[str]:
        return ["python3"] + ([f"{HARNESS_IN_CONTAINER}/{script}"] if script else [])

    def spawn(self, argv: list[str], *, name: str, env: dict[str, str] | None = None,
              stdout: int | None = None) -> proc.Process:
        process = DockerProcess(self.id, argv, name=f"{self.name}/{name}", env=self.env(env),
                                log_path=self.log_dir / f"{self.name}-{name}.log", stdout=stdout)
        self._processes.append(process)
        return process

    def rename_interfaces(self, names: dict[IPv4Interface, str]) -> None:
        """Give the interfaces Docker made (eth0, eth1, ... in its own order) the topology's names."""
        ipr = self.netlink
        current = {}
        for addr in ipr.get_addr(family=2):
            current[IPv4Interface(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")] = addr["index"]
        temporary = []
        for address, name in names.items():
            if address not in current:
                raise BackendError(f"{self.name}: Docker gave no interface the address {address}")
            index = current[address]
            ipr.link("set", index=index, state="down")
            ipr.link("set", index=index, ifname=f"tmp{index}")  # two-step: the names may be swapped
            temporary.append((index, name))
        for index, name in temporary:
            ipr.link("set", index=index, ifname=name)
            ipr.link("set", index=index, state="up")


class DockerNetwork(Network):
    """The topology as containers on internal Docker networks; the faithful twin of the namespace backend."""

    backend = "docker"
    uses_docker = True

    def __init__(self, *args, images: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.images = images
        self.browser = None
        self._networks: dict[IPv4Network, object] = {}

    # -- what lives where ------------------------------------------------------------------
    def _attachments(self) -> dict[str, dict[IPv4Interface, str]]:
        """host -> {address: interface name}, from the topology's links and bridges."""
        found: dict[str, dict[IPv4Interface, str]] = defaultdict(dict)
        for link in self.topology.links:
            found[link.a_host][link.a_address] = link.a_ifname
            if link.b_address is not None:
                found[link.b_host][link.b_address] = link.b_ifname
        for bridge in self.topology.bridges:
            found[bridge.host][bridge.address] = bridge.ifname
        return found

    def _labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id}

    def management_address(self) -> str:
        """The client's address on path 1's network, where the harness reaches the browser's chromedriver."""
        return str(self.topology.client_path_address(self.topology.path_ids[0]).ip)

    # -- building --------------------------------------------------------------------------
    def _create_networks(self, subnets: set[IPv4Network]) -> None:
        from docker.types import IPAMConfig, IPAMPool
        from testcontainers.core.network import Network as TcNetwork
        for subnet in sorted(subnets):
            gateway = str(next(subnet.hosts()))
            net = TcNetwork(docker_network_kw={
                "driver": "bridge", "internal": True, "labels": self._labels(),
                "ipam": IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)]),
                "options": {"com.docker.network.driver.mtu": str(self.topology.mtus.underlay)}})
            net.name = f"comps-{self.run_id}-{subnet.network_address}"
            try:
                net.create()
            except Exception as exc:  # docker.errors.APIError; the SDK is imported lazily
                if "overlap" not in str(exc):
                    raise
                raise BackendError(f"subnet {subnet} is taken by another Docker network (another run, or one "
                                   f"that crashed: `comps-harness clean` removes those): {exc}") from None
            self._stack.callback(net.remove)
            self._networks[subnet] = net

    def _start_container(self, spec: HostSpec, addresses: dict[IPv4Interface, str]) -> DockerHost:
        from docker.types import EndpointConfig
        from testcontainers.core.container import DockerContainer
        first, *others = sorted(addresses, key=lambda a: a.network)
        net = self._networks[first.network]
        image = self.images["origin" if spec.name == ORIGIN else "node"]
        container = DockerContainer(image).with_name(f"comps-{self.run_id}-{spec.name}")
        container.with_volume_mapping(str(HARNESS_DIR), HARNESS_IN_CONTAINER, "ro")
        if spec.name == ORIGIN:  # it serves the pages the harness generates in the work directory
            container.with_volume_mapping(str(self.workdir), str(self.workdir), "ro")
        container.with_kwargs(
            hostname=spec.name, cap_add=["NET_ADMIN"], devices=["/dev/net/tun:/dev/net/tun"],
            sysctls=sysctl_map(spec), labels=self._labels(), network=net.name,
            networking_config={net.name: EndpointConfig("1.41", ipv4_address=str(first.ip))})
        container.start()
        self._stack.callback(container.stop)
        wrapped = container.get_wrapped_container()
        for address in others:
            self._networks[address.network]._unwrap_network.connect(wrapped, ipv4_address=str(address.ip))
        return DockerHost(spec, self.run_id, self.workdir, wrapped)

    def _create_hosts(self) -> None:
        attachments = self._attachments()
        self._create_networks({address.network for per_host in attachments.values() for address in per_host})
        self._stack.callback(self._stop_host_processes)
        specs = list(self.topology.hosts)
        hosts = self._parallel(lambda spec: self._start_container(spec, attachments[spec.name]), specs)
        for host in hosts:
            self.hosts[host.name] = host
            self._stack.callback(host.close_netlink)
        self._parallel(lambda host: host.rename_interfaces(attachments[host.name]), hosts)
        # The harness talks to the browser's chromedriver at the client's path-1 address; its
        # replies must take the main table, not the client's catch-all rule into wg0.
        gateway = str(next(self.topology.plan.path(self.topology.path_ids[0]).hosts()))
        self.client.netlink.rule("add", priority=MANAGEMENT_RULE_PRIORITY, dst=gateway, dst_len=32, table=254)
        self._start_browser()

    def _start_browser(self) -> None:
        from testcontainers.core.container import DockerContainer
        client = self.hosts[CLIENT]
        assert isinstance(client, DockerHost)
        browser = DockerContainer(self.images["browser"]).with_name(f"comps-{self.run_id}-browser")
        browser.with_kwargs(network_mode=f"container:{client.id}", labels=self._labels(), shm_size="256m")
        browser.start()
        self._stack.callback(browser.stop)
        self.browser = browser

    def _stop_host_processes(self) -> None:
        for host in self.hosts.values():
            host.stop_processes()

    def _wait_for_chromedriver(self) -> None:
        url = f"http://{self.management_address()}:{CHROMEDRIVER_PORT}/status"
        import urllib.request
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BackendError(f"the browser container's chromedriver did not answer at {url}")
            time.sleep(0.1)

    # -- the browser ------------------------------------------------------------------------
    def run_browser(self, args: list[str], timeout: float) -> proc.CommandResult:
        self._wait_for_chromedriver()
        remote = f"http://{self.management_address()}:{CHROMEDRIVER_PORT}"
        return proc.run([sys.executable, "-m", "harness.browser", "--remote", remote, *args], where="browser",
                        env=proc.tagged_env(self.run_id), timeout=timeout, check=False)
