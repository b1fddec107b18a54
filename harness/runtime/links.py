"""Impairments of links, as objects: what a degraded proxy path does to the packets it forwards.

An `Impairment` is a frozen value (validated); `ImpairedPath` applies one to a proxy's underlay
links for as long as its block runs and undoes it afterwards. Where a path profile shapes the link
(runtime/shaping.py), the profile's own qdisc gets the lower rate (delay and loss stay), and gets
its own back afterwards: stacking a second shaper below the first stalled the link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.model.profiles import limited, qdisc_args, rate_mbit

if TYPE_CHECKING:
    from harness.runtime.network import Network


@dataclass(frozen=True)
class Impairment:
    """Drop a random share of forwarded packets (iptables `statistic`), and/or limit the rate (tc tbf)."""

    drop: float | None = None
    rate: str | None = None  # a tc rate: 20mbit

    def __post_init__(self) -> None:
        if self.drop is None and self.rate is None:
            raise ConfigError("an impairment needs a drop probability, a rate, or both")
        if self.drop is not None and not 0 < self.drop < 1:
            raise ConfigError(f"drop probability {self.drop} must be between 0 and 1")


class ImpairedPath:
    """Impair proxy `path` (both directions of its underlay links) until the block ends."""

    def __init__(self, network: Network, path: int, impairment: Impairment) -> None:
        self.network, self.path, self.impairment = network, path, impairment
        self._undo: list[list[str]] = []

    def __enter__(self) -> ImpairedPath:
        proxy, impairment = self.network.proxy(self.path), self.impairment
        try:
            if impairment.drop is not None:
                rule = [
                    "FORWARD",
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    f"{impairment.drop:g}",
                    "-m",
                    "comment",
                    "--comment",
                    f"comps-degrade-{self.network.run_id}",
                    "-j",
                    "DROP",
                ]
                proxy.exec(["iptables", "-I", *rule], timeout=10)
                self._undo.append(["iptables", "-D", *rule])
            if impairment.rate is not None:  # egress of both underlay links: towards the server and the client
                for dev in self.network.topology.underlay_devices(proxy.name):
                    shape = self.network.shapes.get((proxy.name, dev))
                    if shape is not None:  # a path profile shapes this link: the same qdisc, its rate limited
                        proxy.exec(
                            [
                                "tc",
                                "qdisc",
                                "replace",
                                "dev",
                                dev,
                                "root",
                                *qdisc_args(limited(shape, rate_mbit(impairment.rate))),
                            ],
                            timeout=10,
                        )
                        self._undo.append(["tc", "qdisc", "replace", "dev", dev, "root", *qdisc_args(shape)])
                    else:
                        proxy.exec(
                            [
                                "tc",
                                "qdisc",
                                "replace",
                                "dev",
                                dev,
                                "root",
                                "tbf",
                                "rate",
                                impairment.rate,
                                "burst",
                                "32kbit",
                                "latency",
                                "50ms",
                            ],
                            timeout=10,
                        )
                        self._undo.append(["tc", "qdisc", "del", "dev", dev, "root"])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        proxy = self.network.proxy(self.path)
        while self._undo:
            proxy.exec(self._undo.pop(), timeout=10, check=False)
