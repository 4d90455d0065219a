"""Running a search on a Ray cluster: join it, size it, and keep its files where every node sees them.

`connect(address)` starts a local Ray or joins a cluster and returns a `ClusterInfo` (nodes,
resources now and at full scale when an autoscaler's config says); `check_storage` refuses a
node-local output_dir on a multi-node or autoscaling cluster before any trial runs; `plan_storage`,
`push`, `pull` and `MirrorCallback` handle an output_dir that is a URI (s3://, gs://, ...).
Cluster launcher configs sit next to this file: aws.yaml (`ray up`) and kuberay.yaml (KubeRay).
"""

from pathlib import Path

from search.cluster.autoscaler import Autoscaler
from search.cluster.info import ClusterInfo, connect
from search.cluster.storage import (
    EXPERIMENT_DIR,
    MirrorCallback,
    Storage,
    check_storage,
    is_uri,
    plan_storage,
    pull,
    push,
)

CONFIG_DIR = Path(__file__).parent  # aws.yaml, kuberay.yaml
LAUNCHER_CONFIGS = {"aws": CONFIG_DIR / "aws.yaml", "kuberay": CONFIG_DIR / "kuberay.yaml"}

__all__ = [
    "CONFIG_DIR",
    "EXPERIMENT_DIR",
    "LAUNCHER_CONFIGS",
    "Autoscaler",
    "ClusterInfo",
    "MirrorCallback",
    "Storage",
    "check_storage",
    "connect",
    "is_uri",
    "plan_storage",
    "pull",
    "push",
]
