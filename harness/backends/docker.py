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
from collections import defaultdict
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from harness.backends.registry import Prepared
from harness.errors import BackendError, PrerequisiteError
from harness.model.settings import RunSettings
from harness.model.topology import (
    BRIDGE_NETFILTER,
    CLIENT,
    ORIGIN,
    AddressPlan,
    HostSpec,
    Topology,
    host_sysctls,
)
from harness.runtime.configure import parallel
from harness.runtime.hosts import HARNESS_DIR, Host
from harness.runtime.network import Builder, Network, Progress
from harness.system import prereq, proc
from harness.system.wait import wait_until

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
        raise PrerequisiteError(
            f"the docker backend needs the Python packages docker and testcontainers ({exc}): "
            "pip install -e '.[docker]' (bootstrap.sh does)"
        ) from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the SDK raises several kinds for "no engine"
        raise PrerequisiteError(
            f"no Docker engine answers ({type(exc).__name__}): start dockerd (./bootstrap.sh starts one when none runs)"
        ) from None
    return client


def sysctl_map(spec: HostSpec) -> dict[str, str]:
    """The topology's per-host sysctls in Docker's form (net.ipv4.ip_forward: 1)."""
    bridge_netfilter = os.path.exists(f"/proc/sys/{BRIDGE_NETFILTER}")
    return {
        key.replace("/", "."): value
        for key, value in (s.split("=", 1) for s in host_sysctls(spec, bridge_netfilter=bridge_netfilter))
    }


# -- the registry's interface ---------------------------------------------------------------
def check(settings: RunSettings, progress: Progress) -> Prepared:
    """The engine answers and the images exist (built on first use); wireguard-go is in the node image."""
    return Prepared(prereq.resolve_wireguard(settings.wireguard), {"images": docker_images(progress)})


def builder(prepared: Prepared) -> Builder:
    return DockerBuilder(prepared.extra["images"])


def docker_images(progress: Progress | None = None) -> dict[str, str]:
    """name -> tag of the Docker backend's images, built if missing; the engine must answer."""
    from harness.backends.images import Images

    prereq.require_binaries(["docker"])
    return Images(docker_client(), progress or (lambda message: None)).ensure()


DOCKER_SOCKET = "/var/run/docker.sock"


def _engine():
    """A client of the local engine, or None when there is none (then there is nothing of ours in it)."""
    if not os.path.exists(DOCKER_SOCKET):
        return None
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:  # no SDK, or no engine behind the socket
        return None


def labelled(run_id: str, client=None) -> list[tuple[str, object]]:
    """(kind, object) of the containers, networks and volumes labelled with exactly `run_id`."""
    client = client or _engine()
    if client is None:
        return []
    found = []
    for kind, collection in (
        ("container", client.containers),
        ("network", client.networks),
        ("volume", client.volumes),
    ):
        kwargs = {"all": True} if kind == "container" else {}
        found += [(kind, item) for item in collection.list(filters={"label": f"{RUN_LABEL}={run_id}"}, **kwargs)]
    return found


def _describe(kind: str, item) -> str:
    return f"docker {kind} {getattr(item, 'name', None) or item.id}"


def sweep(run_id: str) -> list[str]:
    """Remove the run's containers first (they hold the networks), then its networks and volumes."""
    removed = []
    for kind, item in labelled(run_id):
        try:
            if kind == "container":
                item.remove(force=True, v=True)
            else:
                item.remove()
        except Exception:  # already gone, or still in use: leftovers() reports what stays
            continue
        removed.append(_describe(kind, item))
    return removed


def leftovers(run_id: str) -> list[str]:
    return [_describe(kind, item) for kind, item in labelled(run_id)]


def run_ids() -> set[str]:
    """The run ids of everything labelled by this harness in the engine (for a plain `clean`)."""
    client = _engine()
    if client is None:
        return set()
    ids = set()
    for collection, kwargs in ((client.containers, {"all": True}), (client.networks, {}), (client.volumes, {})):
        for item in collection.list(filters={"label": RUN_LABEL}, **kwargs):
            labels = item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels") or {}
            ids.add(labels.get(RUN_LABEL, ""))
    return ids - {""}


class DockerProcess(proc.Process):
    """A process started with `docker exec`; stopping it signals the process inside the container.

    (Signalling the docker CLI would leave the process running in the container.)
    """

    def __init__(
        self,
        container_id: str,
        argv: list[str],
        *,
        name: str,
        env: dict[str, str],
        log_path: Path | None,
        stdout: int | None,
    ) -> None:
        self.container_id = container_id
        self.pidfile = f"/run/comps-harness-{name.replace('/', '-')}.pid"
        wrapped = ["docker", "exec", "-i", container_id, "sh", "-c", 'echo $$ > "$0"; exec "$@"', self.pidfile, *argv]
        super().__init__(wrapped, name=name, env=env, log_path=log_path, stdout=stdout)

    def send_signal(self, sig: int) -> None:
        """The process inside the container; the docker CLI keeps relaying what it prints until it exits."""
        if self.running():
            self._signal_inside(sig)

    def stop(self, timeout: float = 2.0, sig: int = signal.SIGTERM) -> int | None:
        if self.running():
            self._signal_inside(sig)
        return super().stop(timeout, sig)

    def _signal_inside(self, sig: int) -> None:
        proc.run(
            [
                "docker",
                "exec",
                self.container_id,
                "sh",
                "-c",
                f'[ -f "$0" ] && kill -{int(sig)} "$(cat "$0")"',
                self.pidfile,
            ],
            where=self.name,
            env=dict(os.environ),
            timeout=10,
            check=False,
        )


class DockerHost(Host):
    """A container; commands run through `docker exec`, netlink and files through its pid's /proc entries."""

    def __init__(self, spec: HostSpec, run_id: str, log_dir: Path, container) -> None:
        container.reload()  # a docker SDK container
        super().__init__(spec.name, run_id, log_dir, int(container.attrs["State"]["Pid"]))
        self.spec = spec
        self.id = container.id

    def command_prefix(self) -> list[str]:
        return ["docker", "exec", "-i", self.id]

    def python(self, script: str | None = None) -> list[str]:
        return ["python3"] + ([f"{HARNESS_IN_CONTAINER}/{script}"] if script else [])

    def spawn(
        self, argv: list[str], *, name: str, env: dict[str, str] | None = None, stdout: int | None = None
    ) -> proc.Process:
        process = DockerProcess(
            self.id,
            argv,
            name=f"{self.name}/{name}",
            env=self.env(env),
            log_path=self.log_dir / f"{self.name}-{name}.log",
            stdout=stdout,
        )
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


# /16s a Docker-backend run may use, in order (not 172.17, Docker's own bridge; not 172.28 and
# 172.31, the compose demo's scenario and by-hand subnets).
UNDERLAY_CANDIDATES = tuple(IPv4Network(f"172.{n}.0.0/16") for n in (30, 29, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18))


class SubnetTaken(BackendError):
    """Another Docker network took the subnet between the check and the create."""


def subnets_in_use() -> set[IPv4Network]:
    """Every IPv4 subnet of every Docker network (other runs, the compose demo, anything else)."""
    client = _engine()
    if client is None:
        return set()
    found = set()
    for net in client.networks.list():
        for config in (net.attrs.get("IPAM") or {}).get("Config") or []:
            try:
                subnet = IPv4Network(config.get("Subnet", ""), strict=False)
            except ValueError:
                continue
            found.add(subnet)
    return found


class DockerBuilder(Builder):
    """The topology as containers on internal Docker networks; the faithful twin of the namespace backend."""

    backend = "docker"

    def __init__(self, images: dict[str, str]) -> None:
        super().__init__()
        self.images = images
        self._networks: dict[IPv4Network, object] = {}
        self._lost: set[IPv4Network] = set()

    def sweep(self, run_id: str) -> list[str]:
        return sweep(run_id)

    # -- what lives where ------------------------------------------------------------------
    @staticmethod
    def _attachments(network: Network) -> dict[str, dict[IPv4Interface, str]]:
        """host -> {address: interface name}, from the topology's links and bridges."""
        found: dict[str, dict[IPv4Interface, str]] = defaultdict(dict)
        for link in network.topology.links:
            found[link.a_host][link.a_address] = link.a_ifname
            if link.b_address is not None:
                found[link.b_host][link.b_address] = link.b_ifname
        for bridge in network.topology.bridges:
            found[bridge.host][bridge.address] = bridge.ifname
        return found

    @staticmethod
    def _labels(network: Network) -> dict[str, str]:
        return {RUN_LABEL: network.run_id}

    @staticmethod
    def management_address(network: Network) -> str:
        """The client's address on path 1's network, where the harness reaches the browser's chromedriver."""
        return str(network.topology.client_path_address(network.topology.path_ids[0]).ip)

    # -- building --------------------------------------------------------------------------
    def _choose_underlay(self, network: Network) -> None:
        """Move the run onto a /16 no Docker network uses, so several runs (and the compose demo) coexist.

        Networks are created right after: a run that lost a race for the same /16 tries the next one.
        """
        taken = subnets_in_use()
        for candidate in UNDERLAY_CANDIDATES:
            if not any(candidate.overlaps(net) for net in taken | self._lost):
                plan = AddressPlan(underlay=candidate, overlay=network.topology.plan.overlay)
                network.topology = Topology(paths=network.topology.paths, plan=plan, mtus=network.topology.mtus)
                return
        raise BackendError(
            "no free /16 left among the Docker backend's candidates "
            f"({UNDERLAY_CANDIDATES[0]} ... {UNDERLAY_CANDIDATES[-1]}): `comps-harness clean`"
        )

    def _create_networks(self, network: Network) -> None:
        """One internal network per underlay subnet; on an overlap (another run was quicker), the next /16."""
        for _ in range(len(UNDERLAY_CANDIDATES)):
            self._choose_underlay(network)
            attachments = self._attachments(network)
            subnets = {address.network for per_host in attachments.values() for address in per_host}
            try:
                self._create_subnets(network, subnets)
                return
            except SubnetTaken:
                self._lost.add(network.topology.plan.underlay)
                for net in self._networks.values():
                    net.remove()
                self._networks.clear()
        raise BackendError("every candidate /16 was taken while this run tried it")

    def _create_subnets(self, network: Network, subnets: set[IPv4Network]) -> None:
        from docker.types import IPAMConfig, IPAMPool
        from testcontainers.core.network import Network as TcNetwork

        for subnet in sorted(subnets):
            gateway = str(next(subnet.hosts()))
            net = TcNetwork(
                docker_network_kw={
                    "driver": "bridge",
                    "internal": True,
                    "labels": self._labels(network),
                    "ipam": IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)]),
                    "options": {"com.docker.network.driver.mtu": str(network.topology.mtus.underlay)},
                }
            )
            net.name = f"comps-{network.run_id}-{subnet.network_address}"
            try:
                net.create()
            except Exception as exc:  # docker.errors.APIError; the SDK is imported lazily
                if "overlap" not in str(exc):
                    raise
                raise SubnetTaken(str(subnet)) from None
            self._networks[subnet] = net
            network.on_close(self._remove_network, subnet)

    def _remove_network(self, subnet: IPv4Network) -> None:
        net = self._networks.pop(subnet, None)
        if net is not None:
            net.remove()

    def _start_container(self, network: Network, spec: HostSpec, addresses: dict[IPv4Interface, str]) -> DockerHost:
        from docker.types import EndpointConfig
        from testcontainers.core.container import DockerContainer

        first, *others = sorted(addresses, key=lambda a: a.network)
        net = self._networks[first.network]
        image = self.images["origin" if spec.name == ORIGIN else "node"]
        container = DockerContainer(image).with_name(f"comps-{network.run_id}-{spec.name}")
        container.with_volume_mapping(str(HARNESS_DIR), HARNESS_IN_CONTAINER, "ro")
        if spec.name == ORIGIN:  # it serves the pages the harness generates in the work directory
            container.with_volume_mapping(str(network.workdir), str(network.workdir), "ro")
        container.with_kwargs(
            hostname=spec.name,
            cap_add=["NET_ADMIN"],
            devices=["/dev/net/tun:/dev/net/tun"],
            init=True,
            sysctls=sysctl_map(spec),
            labels=self._labels(network),
            network=net.name,
            networking_config={net.name: EndpointConfig("1.41", ipv4_address=str(first.ip))},
        )
        container.start()
        network.on_close(container.stop)
        wrapped = container.get_wrapped_container()
        engine = wrapped.client
        for address in others:
            engine.networks.get(self._networks[address.network].name).connect(wrapped, ipv4_address=str(address.ip))
        return DockerHost(spec, network.run_id, network.workdir, wrapped)

    def build(self, network: Network) -> None:
        self._create_networks(network)
        attachments = self._attachments(network)
        network.on_close(self._stop_host_processes, network)
        hosts = parallel(
            lambda spec: self._start_container(network, spec, attachments[spec.name]), network.topology.hosts
        )
        for host in hosts:
            network.hosts[host.name] = host
            network.on_close(host.close_netlink)
        parallel(lambda host: host.rename_interfaces(attachments[host.name]), hosts)
        # The harness talks to the browser's chromedriver at the client's path-1 address; its
        # replies must take the main table, not the client's catch-all rule into wg0.
        gateway = str(next(network.topology.plan.path(network.topology.path_ids[0]).hosts()))
        network.client.netlink.rule("add", priority=MANAGEMENT_RULE_PRIORITY, dst=gateway, dst_len=32, table=254)
        self._start_browser(network)
        self.configure(network)

    def _start_browser(self, network: Network) -> None:
        from testcontainers.core.container import DockerContainer

        client = network.hosts[CLIENT]
        if not isinstance(client, DockerHost):
            raise BackendError("the browser container needs the client as a container")
        browser = DockerContainer(self.images["browser"]).with_name(f"comps-{network.run_id}-browser")
        browser.with_kwargs(
            network_mode=f"container:{client.id}", labels=self._labels(network), shm_size="256m", init=True
        )
        browser.start()
        network.on_close(browser.stop)

    @staticmethod
    def _stop_host_processes(network: Network) -> None:
        for host in network.hosts.values():
            host.stop_processes()

    # -- the browser ------------------------------------------------------------------------
    def browser_url(self, network: Network) -> str:
        """The browser container's chromedriver (in the client's network namespace), once it answers."""
        import urllib.request

        url = f"http://{self.management_address(network)}:{CHROMEDRIVER_PORT}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/status", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(answers, timeout=READY_TIMEOUT, interval=0.1, what=f"the browser container's chromedriver at {url}")
        return url
