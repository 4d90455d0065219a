"""Where trials run: start a local Ray or join a cluster, describe it, and check its storage."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.errors import UserInputError

URI_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "hdfs://")


@dataclass(frozen=True)
class ClusterInfo:
    """What the driver saw when it connected."""

    address: str  # "" for a local Ray started by this process
    nodes: int
    cpus: float
    gpus: float

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else "local Ray"
        return f"{where}: {self.nodes} node(s), {self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"


def connect(address: str) -> ClusterInfo:
    """Join the cluster at `address`, or start a local Ray bound to 127.0.0.1 with no dashboard."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterInfo(address, nodes, res.get("CPU", 0.0), res.get("GPU", 0.0))


def check_storage(output_dir: str, info: ClusterInfo) -> None:
    """Refuse a node-local output_dir on a multi-node cluster, before any trial runs."""
    if info.nodes > 1 and not output_dir.startswith(URI_SCHEMES):
        raise UserInputError(
            f"output_dir={output_dir}: this cluster has {info.nodes} nodes, so trials on other "
            "nodes cannot write checkpoints there; set output_dir to shared storage (s3://..., "
            "gs://..., or a path mounted on every node, declared with cluster.shared_storage=true)"
        )
