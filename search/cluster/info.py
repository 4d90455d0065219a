"""Where trials run: start a local Ray or join a cluster, and describe what the driver found."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from search.cluster import autoscaler
from search.cluster.autoscaler import Autoscaler
from search.cluster.client import client_runtime_env, is_client
from trainables.errors import UserInputError

LOOPBACK = "127.0.0.1"
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's single-node switch (see keep_local)


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
    """`ray.init` arguments: a local Ray with no dashboard (never a cluster some `ray start` left
    on this machine), or join `address`; a Ray Client ships this checkout's packages to the
    cluster."""
    if not address:
        return {"address": "local", "include_dashboard": False, "log_to_driver": False}
    args: dict[str, Any] = {"address": address, "log_to_driver": False}
    if is_client(address):  # the driver runs on the head: its progress table streams back
        return args | {"runtime_env": client_runtime_env(), "log_to_driver": True}
    return args


def keep_local(address: str) -> None:
    """Before Ray is imported: a local Ray (address "") binds every server to 127.0.0.1.

    Ray listens on the host's address unless its single-node switch, the environment variable
    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, was set when it was imported (processes it starts
    inherit it); a cluster's address leaves the environment as it is.
    """
    if not address:
        os.environ[SINGLE_NODE_ENV] = "0"


def connect(address: str) -> ClusterInfo:
    """Join the cluster at `address` (auto, host:port, ray://host:10001) or start a local Ray,
    refused (one line) if that Ray would listen beyond 127.0.0.1 (see `keep_local`)."""
    import ray

    if not ray.is_initialized():
        host = ray.util.get_node_ip_address()  # the address a local Ray would bind
        if not address and host != LOOPBACK:
            raise UserInputError(
                f"a local Ray would listen on {host}, not {LOOPBACK}: ray was imported before "
                f"{SINGLE_NODE_ENV}=0 was set; set it before importing ray (python -m search.run "
                "does), or start Ray yourself and pass cluster.address"
            )
        ray.init(**init_args(address))
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    found = autoscaler.detect() if address else None
    return ClusterInfo(address, nodes, res.get("CPU", 0.0), res.get("GPU", 0.0), found)
