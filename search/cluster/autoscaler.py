"""What an autoscaling cluster is and what it can grow to, from the autoscaler's own records.

Two sources, both written by Ray itself:
- the autoscaling config on the head node (`ray up` leaves it at ~/ray_bootstrap_config.yaml; Ray
  Tune reads the same file to tell an autoscaling cluster): its node types give the resources at
  full scale, so the search can queue enough trials for the autoscaler to see the whole demand;
- the node types an autoscaler names for the nodes it manages (v1 or v2, KubeRay included), even
  while its worker groups are scaled to zero: the `ray.io/node-group` label Ray gives a node
  started with its type (`ray up`, autoscaler v2, KubeRay), else the nodes `ray status` lists.
  Ray has no public Python API for the autoscaler's status; its CLI is the public one.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")  # where `ray up` puts it on the head
READONLY_PREFIX = "node_"  # the name `ray status` gives a node no autoscaler launched
NODE_GROUP_LABEL = "ray.io/node-group"  # Ray's default label: the node type a node started as
STATUS_TIMEOUT_S = 60.0  # `ray status` starts a Python process that imports Ray
STATUS_SECTIONS = ("Active:", "Idle:")  # `ray status` lists the nodes it knows under these
STATUS_NODE_LINE = re.compile(r"^ (\d+) (\S+)$")  # " <count> <node type>"


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
    """Node types an autoscaler names for the alive nodes (their labels, else `ray status`),
    readonly (no autoscaler) ones left out."""
    names = _named(labelled_node_types()) or _named(status_node_types(ray_status()))
    return tuple(sorted(names))


def _named(names: list[str]) -> set[str]:
    return {n for n in names if not n.startswith(READONLY_PREFIX)}


def labelled_node_types() -> list[str]:
    """The `ray.io/node-group` label of each alive node that has one."""
    import ray

    try:
        nodes = ray.nodes()
    except Exception:  # not connected: no evidence of an autoscaler
        return []
    labels = [n.get("Labels") or {} for n in nodes if n.get("Alive")]
    return [label[NODE_GROUP_LABEL] for label in labels if NODE_GROUP_LABEL in label]


def status_node_types(text: str) -> list[str]:
    """The node types `ray status` lists as active or idle (`text`: its output)."""
    names, listing = [], False
    for line in text.splitlines():
        if not line.startswith(" "):
            listing = line.strip() in STATUS_SECTIONS
        elif listing and (match := STATUS_NODE_LINE.match(line.rstrip())):
            names.append(match.group(2))
    return names


def ray_status() -> str:
    """What `ray status` prints for the connected cluster; "" when it cannot tell (Ray Client, no
    `ray` command, an old GCS): no evidence of an autoscaler."""
    import ray

    try:
        address = ray.get_runtime_context().gcs_address
    except Exception:
        return ""
    beside = Path(sys.executable).with_name("ray")  # this environment's CLI, activated or not
    command = str(beside) if beside.is_file() else shutil.which("ray")
    if not address or command is None:
        return ""
    try:
        done = subprocess.run(
            [command, "status", "--address", address],
            capture_output=True,
            text=True,
            timeout=STATUS_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("cannot read the autoscaler's status (ray status): %s", e)
        return ""
    return done.stdout if done.returncode == 0 else ""


def detect() -> Autoscaler | None:
    """The cluster's autoscaler: from its config (BOOTSTRAP_CONFIG) when readable, else from its
    node types (labels, `ray status`); None when nodes come and go only by hand."""
    config = read_config(BOOTSTRAP_CONFIG)
    if config is not None:
        return from_config(config)
    names = named_node_types()
    return Autoscaler(names) if names else None
