"""Where trials run: start a local Ray or join a cluster, and describe what the driver found."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from search.cluster import autoscaler
from search.cluster.autoscaler import Autoscaler
from search.cluster.client import client_runtime_env, is_client

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ClusterInfo:
    """What the driver saw when it connected: nodes and resources now, and the autoscaler if any."""

    address: str  # "" for a local Ray started by this process
    nodes: int
    cpus: float
    gpus: float
    autoscaler: Autoscaler | None = None

    @property
    def multi_node(self) -> bool:
        """More than one node now, or an autoscaler that may add some."""
        return self.nodes > 1 or (self.autoscaler is not None and self.autoscaler.can_add_nodes)

    @property
    def max_cpus(self) -> float:
        """CPUs the search may plan for: at full scale when the autoscaler's config says, else now."""
        top = self.autoscaler.max_cpus if self.autoscaler else None
        return max(self.cpus, top or 0.0)

    @property
    def max_gpus(self) -> float:
        """GPUs the search may plan for (see max_cpus): trials queued for them trigger scale-up."""
        top = self.autoscaler.max_gpus if self.autoscaler else None
        return max(self.gpus, top or 0.0)

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else "local Ray"
        text = f"{where}: {self.nodes} node(s), {self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"
        if self.autoscaler is None:
            return text
        if self.autoscaler.max_cpus is None:
            return f"{text}; autoscaling ({', '.join(self.autoscaler.node_types)}), size unknown"
        return (
            f"{text}; autoscales up to {self.max_cpus:g} CPU(s), {self.max_gpus:g} GPU(s) "
            f"({', '.join(self.autoscaler.node_types)})"
        )


def init_args(address: str) -> dict[str, Any]:
    """`ray.init` arguments: a local Ray on 127.0.0.1 with no dashboard, or join `address`.

    A cluster on this machine (host 127.0.0.1 or localhost) is joined from 127.0.0.1 too, so the
    driver finds its local raylet whatever address the machine's network interface has; a Ray
    Client ships this checkout's packages to the cluster.
    """
    if not address:  # "local": never join a cluster some `ray start` left on this machine
        return {
            "address": "local",
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
            "log_to_driver": False,
        }
    args: dict[str, Any] = {"address": address, "log_to_driver": False}
    if is_client(address):  # the driver runs on the head: its progress table streams back
        return args | {"runtime_env": client_runtime_env(), "log_to_driver": True}
    if address.rsplit(":", 1)[0] in LOOPBACK_HOSTS:
        args["_node_ip_address"] = "127.0.0.1"
    return args


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Make a local Ray bind every server to 127.0.0.1.

    Ray 2.x replaces `_node_ip_address="127.0.0.1"` with the host's address and listens on all
    interfaces unless its single-node mode is on. That switch is a private constant with no public
    equivalent (its environment variable is read once, when Ray is imported), so it is set here
    only, and only while a local Ray starts.
    """
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def connect(address: str) -> ClusterInfo:
    """Join the cluster at `address` (auto, host:port, ray://host:10001) or start a local Ray."""
    import ray

    if not ray.is_initialized():
        with contextlib.nullcontext() if address else loopback_only():
            ray.init(**init_args(address))
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    found = autoscaler.detect() if address else None
    return ClusterInfo(address, nodes, res.get("CPU", 0.0), res.get("GPU", 0.0), found)
