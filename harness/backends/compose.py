"""The docker-compose demo (docker/demo/): its configs, rendered with fresh keys, and its topology.

`comps-harness render-demo DIR` writes DIR/docker-compose.yml and DIR/config/<service>/ (mounted at /etc/wireguard):
wg-quick files for the proxies and the server, as the demo's containers use them, and for the
client `wg setconf` files plus client.sh, which builds the demo's double tunnel and policy
routing. No key is ever committed: config/ is ignored by git and made fresh on every render.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.backends.docker import DockerHost, docker_client
from harness.backends.docker import sweep as docker_sweep
from harness.data import DEMO_DIR, MIGRATE_SCRIPT
from harness.errors import ConfigError
from harness.model.kinds import WireGuardImpl
from harness.model.topology import (
    CLIENT,
    ORIGIN,
    SERVER,
    AddressPlan,
    Topology,
    proxy_name,
)
from harness.runtime import accounting, content
from harness.runtime.network import Builder, Network
from harness.system import proc
from harness.system.wait import wait_until
from harness.wireguard.config import Keyring, render_setconf, render_wg_quick

# Not the harness's own 172.30.0.0/16, so the demo and a Docker-backend run can be up together;
# the demo scenario uses SCENARIO_UNDERLAY, so it coexists with a demo brought up by hand.
DEMO_UNDERLAY = "172.31.0.0/16"
SCENARIO_UNDERLAY = "172.28.0.0/16"
DEMO_OVERLAY = "10.67.0.0/16"
SERVICES = {CLIENT: "wg_client", SERVER: "wg_server", ORIGIN: "origin"}


def demo_topology(underlay: str = DEMO_UNDERLAY) -> Topology:
    if not underlay.endswith(".0.0/16"):
        raise ConfigError(f"the compose demo's underlay {underlay} must be a /16 (its file names a.b.x.y)")
    return Topology(paths=2, plan=AddressPlan.parse(underlay, DEMO_OVERLAY))


def service_name(host: str) -> str:
    """Compose service (and container) name of a topology host: wg_client, wgnet1, wgnet2, wg_server, origin."""
    return SERVICES.get(host, host)


def client_script(topology: Topology) -> str:
    """client.sh: wireguard-go devices, `wg setconf`, addresses, and the demo's tables and rules."""
    lines = [
        "#!/bin/sh",
        "# Made by comps-harness render-demo: the CoMPS client's double tunnel and policy routing.",
        "set -eu",
    ]
    specs = [spec for spec in topology.wireguard if spec.host == CLIENT]
    for spec in specs:
        lines += [
            f"wireguard-go {spec.ifname}",
            f"while [ ! -S /run/wireguard/{spec.ifname}.sock ]; do sleep 0.05; done",
            f"wg setconf {spec.ifname} /etc/wireguard/{spec.ifname}.conf",
            f"ip address add {spec.address} dev {spec.ifname}",
            f"ip link set {spec.ifname} mtu {spec.mtu} up",
        ]
    for route in topology.client_routes(current_path=1):
        lines.append(f"ip route add default dev {route.dev} table {route.table}")
    for rule in topology.client_rules:
        table = "main" if rule.table == "main" else rule.table
        lines.append(
            f"ip rule add priority {rule.priority} {'not ' if rule.invert else ''}fwmark {rule.fwmark} lookup {table}"
        )
    lines += ["echo 'wg_client ready'", "exec sleep infinity"]
    return "\n".join(lines) + "\n"


def render(out: Path, keys: Keyring | None = None, topology: Topology | None = None) -> Keyring:
    """Write config/<service>/ for every service with fresh keys (or `keys`); returns the keys used."""
    topology = topology or demo_topology()
    keys = keys or Keyring.generate(topology)
    if out.exists():
        shutil.rmtree(out)
    for host in (CLIENT, SERVER, ORIGIN, *topology.proxies):
        (out / service_name(host)).mkdir(parents=True, mode=0o700)
    for spec in topology.wireguard:
        directory = out / service_name(spec.host)
        if spec.host == CLIENT:
            text = render_setconf(spec, keys)
        else:  # compose names interfaces in its own order: masquerade whatever leaves by another interface
            text = render_wg_quick(spec, keys).replace(
                f"-o {spec.masquerade_out} -j MASQUERADE", f"! -o {spec.ifname} -j MASQUERADE"
            )
        path = directory / f"{spec.ifname}.conf"
        path.write_text(text)
        path.chmod(0o600)
    client = out / service_name(CLIENT)
    (client / "client.sh").write_text(client_script(topology))
    shutil.copy(MIGRATE_SCRIPT, client / "migrate.sh")
    for script in (client / "client.sh", client / "migrate.sh"):
        script.chmod(0o755)
    content.generate(out / service_name(ORIGIN) / "www", file_sizes=(content.MB,))
    return keys


def proxy_services(topology: Topology) -> list[str]:
    return [service_name(proxy_name(k)) for k in topology.path_ids]


class ComposeDemoBuilder(Builder):
    """The compose demo (docker/demo/docker-compose.yml) brought up with docker-compose.

    The containers configure themselves, as in the demo (wg-quick, client.sh); the harness only
    renders the configs with this run's keys, waits for traffic to flow, and observes.
    """

    backend = "docker-compose"

    def __init__(self, images: dict[str, str]) -> None:
        super().__init__()
        self.images = images

    def sweep(self, run_id: str) -> list[str]:
        return docker_sweep(run_id)

    def build(self, network: Network) -> None:
        project = network.workdir / "demo"
        project.mkdir()
        shutil.copy(DEMO_DIR / "docker-compose.yml", project)
        render(project / "config", keys=network.keys, topology=network.topology)
        prefix = ".".join(str(network.topology.plan.underlay.network_address).split(".")[:2])
        env = proc.tagged_env(
            network.run_id,
            {
                "COMPS_NODE_IMAGE": self.images["node"],
                "COMPS_ORIGIN_IMAGE": self.images["origin"],
                "COMPS_DEMO_NET": prefix,
            },
        )
        name = project_name(network.run_id)
        compose = ["docker-compose", "--no-ansi", "-p", name, "-f", str(project / "docker-compose.yml")]
        network.on_close(
            lambda: proc.run(
                compose + ["down", "--volumes", "--timeout", "1"],
                where="docker-compose",
                env=env,
                timeout=120,
                check=False,
            )
        )
        network.progress(f"{network.run_id}: docker-compose up")
        proc.run(compose + ["up", "-d"], where="docker-compose", env=env, timeout=180)
        engine = docker_client()

        def container(host: str):
            labels = [f"com.docker.compose.project={name}", f"com.docker.compose.service={service_name(host)}"]
            (found,) = engine.containers.list(filters={"label": labels})
            return found

        for spec in network.topology.hosts:
            network.hosts[spec.name] = host = DockerHost(spec, network.run_id, network.workdir, container(spec.name))
            network.on_close(host.close_netlink)
        wait_until(
            lambda: b"wg_client ready" in container(CLIENT).logs(),
            timeout=30,
            interval=0.1,
            what="wg_client's client.sh",
        )
        accounting.install(network)  # counting rules on the server: observation for the proof, no decision


def project_name(run_id: str) -> str:
    """The compose project of a run (docker-compose 1.x keeps lower-case letters, digits, - and _)."""
    return re.sub(r"[^-_a-z0-9]", "", f"comps-{run_id}".lower())


def compose_demo_network(
    *, run_id: str, images: dict[str, str], underlay: str = DEMO_UNDERLAY, progress=None
) -> Network:
    """The compose demo as a Network (unbuilt: enter it to bring the demo up) on `underlay` (a /16)."""
    return Network(
        demo_topology(underlay),
        run_id=run_id,
        wireguard=WireGuardImpl.WIREGUARD_GO,
        builder=ComposeDemoBuilder(images),
        progress=progress,
    )
