"""What an autoscaling cluster is and what it can grow to, from the autoscaler's own records.

Two sources, both written by Ray itself:
- the autoscaling config on the head node (`ray up` leaves it at ~/ray_bootstrap_config.yaml; Ray
  Tune reads the same file to tell an autoscaling cluster): its node types give the resources at
  full scale, so the search can queue enough trials for the autoscaler to see the whole demand;
- the autoscaler's status in the GCS: an autoscaler that names node types (v1 or v2, KubeRay
  included) manages the cluster, even while its worker groups are scaled to zero.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")  # where `ray up` puts it on the head
STATUS_KEY = "__autoscaling_status"  # ray._private.ray_constants.DEBUG_AUTOSCALING_STATUS (v1)
READONLY_PREFIX = "node_"  # ray.autoscaler._private.util.format_readonly_node_type: no autoscaler


@dataclass(frozen=True)
class Autoscaler:
    """The autoscaler of a cluster: its node types and, when its config is readable, its full size."""

    node_types: tuple[str, ...]
    max_cpus: float | None = None  # at full scale: head + every worker type at its max_workers
    max_gpus: float | None = None

    @property
    def can_add_nodes(self) -> bool:
        return bool(self.node_types)


def full_scale(config: dict[str, Any]) -> dict[str, float]:
    """Resources with every worker type at `max_workers`, within the global `max_workers`.

    GPU types are counted first, so a global cap smaller than the sum of the types' caps is spent
    on the nodes the search wants most.
    """
    types = config["available_node_types"]
    head = config["head_node_type"]
    total = dict(types[head].get("resources", {}))
    budget = config.get("max_workers", sum(t.get("max_workers", 0) for t in types.values()))
    workers = sorted(
        (name for name in types if name != head),
        key=lambda name: -types[name].get("resources", {}).get("GPU", 0),
    )
    for name in workers:
        count = min(types[name].get("max_workers", 0), budget)
        budget -= count
        for resource, amount in types[name].get("resources", {}).items():
            total[resource] = total.get(resource, 0) + count * amount
    return total


def worker_types(config: dict[str, Any]) -> tuple[str, ...]:
    """The node types the autoscaler may launch (max_workers > 0), head excluded."""
    head = config["head_node_type"]
    return tuple(
        sorted(
            name
            for name, spec in config["available_node_types"].items()
            if name != head and spec.get("max_workers", 0) > 0
        )
    )


def from_config(config: dict[str, Any]) -> Autoscaler | None:
    """The autoscaler a launcher config describes; None when it can launch no worker."""
    names = worker_types(config)
    if not names:
        return None
    res = full_scale(config)
    return Autoscaler(names, res.get("CPU", 0.0), res.get("GPU", 0.0))


def read_config(path: Path) -> dict[str, Any] | None:
    """The autoscaling config at `path`, or None when there is none (not on a launched head)."""
    path = path.expanduser()
    if not path.is_file():
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        log.warning("cannot read the autoscaling config %s: %s", path, e)
        return None
    return config if isinstance(config, dict) and "available_node_types" in config else None


def named_node_types() -> tuple[str, ...]:
    """Node types an autoscaler reports in the GCS, readonly (no autoscaler) ones left out."""
    names = set(_v1_node_types()) | set(_v2_node_types())
    return tuple(sorted(n for n in names if not n.startswith(READONLY_PREFIX)))


def _v1_node_types() -> list[str]:
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        raw = _internal_kv_get(STATUS_KEY)
    except Exception:  # Ray Client or an old GCS: no status, no evidence of an autoscaler
        return []
    if not raw:
        return []
    report = json.loads(raw).get("autoscaler_report") or {}
    return list((report.get("node_type_mapping") or {}).values())


def _v2_node_types() -> list[str]:
    import ray
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    try:
        if not is_autoscaler_v2(fetch_from_server=True):
            return []
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(ray.get_runtime_context().gcs_address)
    except Exception:
        return []
    return [n.ray_node_type_name for n in status.active_nodes + status.idle_nodes]


def detect() -> Autoscaler | None:
    """The cluster's autoscaler: from its config (BOOTSTRAP_CONFIG) when readable, else from its
    GCS status; None when nodes come and go only by hand."""
    config = read_config(BOOTSTRAP_CONFIG)
    if config is not None:
        return from_config(config)
    names = named_node_types()
    return Autoscaler(names) if names else None
