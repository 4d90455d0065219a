"""Running a search on a Ray cluster: join it, size it, and keep its files where every node sees them.

`keep_local(address)`, before Ray is imported, keeps a local Ray on 127.0.0.1; `connect(address)`
starts a local Ray or joins a cluster and returns a `ClusterInfo` (nodes, resources now and at full
scale when an autoscaler's config says); `check_storage` refuses a node-local output_dir on a
multi-node or autoscaling cluster before any trial runs; `plan_storage`, `push` and `pull` (and
`push_callback.PushCallback` while the search runs) handle an output_dir that is a URI (s3://,
gs://, ...); `on_head` runs a function on the head node for a Ray Client (ray://) address (the
driver's `search.driver.run_on_head` passes it the driver). This package imports nothing else
from `search`.
Cluster launcher configs sit next to this file: aws.yaml (`ray up`) and kuberay.yaml (KubeRay).
"""

from pathlib import Path

from search.cluster.autoscaler import Autoscaler
from search.cluster.client import in_client_process, is_client, on_head
from search.cluster.info import ClusterInfo, connect, keep_local
from search.cluster.storage import (
    EXPERIMENT_DIR,
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
    "Storage",
    "check_storage",
    "connect",
    "in_client_process",
    "is_client",
    "is_uri",
    "keep_local",
    "on_head",
    "plan_storage",
    "pull",
    "push",
]
