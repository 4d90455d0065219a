"""Ray's fake multi-node autoscaler on this machine: a head with no GPU and a GPU worker type at 0.

A search with resources.gpu_per_trial=0.5 makes the autoscaler launch GPU workers (2 trials per
logical GPU), the trials run there, and once the search is over the idle workers are removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml
from helpers import read_record
from test_cluster_multinode import LOOPBACK
from test_search import small_search

from search.cluster import autoscaler, check_storage, connect
from trainables.errors import UserInputError

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HEAD_TYPE, GPU_TYPE = "ray.head.default", "gpu_worker"
IDLE_TIMEOUT_MIN = 0.05  # 3 s: workers go soon after the search
SCALE_DOWN_WAIT_S = 60


def fake_cluster_config(gcs_address: str) -> dict:
    """An autoscaling config for provider fake_multinode: workers are local Ray nodes."""
    return {
        "cluster_name": "loss-search-fake",
        "max_workers": 2,
        "upscaling_speed": 10.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,  # all fake nodes share 127.0.0.1
            "disable_node_updaters": True,  # nothing to ssh into
            "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": "ray"},
        "head_node_type": HEAD_TYPE,
        "available_node_types": {
            HEAD_TYPE: {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            GPU_TYPE: {
                "resources": {"CPU": 2, "GPU": 1, "object_store_memory": 100 * 2**20},
                "node_config": {},
                "min_workers": 0,
                "max_workers": 2,
            },
        },
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_session(session_dir: str) -> None:
    """Kill what is left of this cluster's processes (fake workers outlive a dead monitor)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        with contextlib.suppress(OSError):
            if pid != os.getpid() and session_dir.encode() in cmdline.read_bytes():
                os.kill(pid, signal.SIGKILL)


def alive_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


@pytest.fixture(scope="module")
def autoscaling(tmp_path_factory):
    """Head (1 CPU, no GPU) + autoscaler; the driver reads the config as on a `ray up` head."""
    ray = pytest.importorskip("ray")
    from ray.autoscaler._private.util import validate_config
    from ray.cluster_utils import Cluster

    port = free_port()
    config = fake_cluster_config(f"127.0.0.1:{port}")
    validate_config(config)  # Ray's own schema check of the config written here
    path = tmp_path_factory.mktemp("fake-cluster") / "autoscaling.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_FAKE_CLUSTER", "1")  # the monitor refuses the fake provider otherwise
        mp.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
        mp.setattr(autoscaler, "BOOTSTRAP_CONFIG", path)
        with pytest.MonkeyPatch.context() as head_env:
            head_env.setenv("RAY_NODE_TYPE_NAME", HEAD_TYPE)  # as `ray up` starts its head
            cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": 1,
                    "num_gpus": 0,
                    "gcs_server_port": port,
                    "autoscaling_config": str(path),
                    "include_dashboard": False,
                    **LOOPBACK,
                },
            )
        session = cluster.head_node.get_session_dir_path()
        try:
            yield cluster, connect(cluster.address)
        finally:
            ray.shutdown()
            cluster.shutdown()
            kill_session(session)


def test_connect_sees_the_autoscaler_and_its_full_size(autoscaling):
    cluster, info = autoscaling
    assert (info.nodes, info.cpus, info.gpus) == (1, 1.0, 0.0)
    assert info.autoscaler.node_types == (GPU_TYPE,) and info.multi_node
    assert (info.max_cpus, info.max_gpus) == (1.0 + 2 * 2, 2 * 1.0)
    assert info.describe() == (
        f"cluster {cluster.address}: 1 node(s), 1 CPU(s), 0 GPU(s); "
        f"autoscales up to 5 CPU(s), 2 GPU(s) ({GPU_TYPE})"
    )
    # without the config file, the node type the head was started as still gives it away
    assert autoscaler.named_node_types() == (HEAD_TYPE,)
    # and `ray status`, the fallback, reads the autoscaler's report (once it has written its
    # first: on a loaded machine that can take a few seconds)
    deadline = time.monotonic() + 60
    while "Node status" not in autoscaler.ray_status() and time.monotonic() < deadline:
        time.sleep(1)
    assert "Node status" in autoscaler.ray_status()


def test_node_local_output_dir_is_refused_while_scaled_to_zero(autoscaling, tmp_path):
    _, info = autoscaling
    with pytest.raises(UserInputError, match=r"autoscales.*cluster\.shared_storage=true"):
        check_storage(str(tmp_path / "out"), info)
    check_storage(str(tmp_path / "out"), info, shared=True)
    check_storage("s3://bucket/searches/elf", info)


def test_gpu_trials_scale_gpu_workers_up_then_down(autoscaling, tmp_path):
    import ray

    cluster, _ = autoscaling
    head = ray.get_runtime_context().get_node_id()
    assert [n["NodeID"] for n in alive_nodes(ray)] == [head]
    _, outcome = small_search(
        tmp_path,
        f"cluster.address={cluster.address}",
        "cluster.shared_storage=true",
        "search.num_samples=4",
        "train.max_epochs=2",
        "scheduler=fifo",
        "resources.gpu_per_trial=0.5",
        "resources.cpu_per_trial=1",
    )
    events = read_record(outcome.output_dir / "record.jsonl")
    ends = [e for e in events if e["event"] == "end"]
    assert len(ends) == 4 and {e["state"] for e in ends} == {"completed"}
    results = [e for e in events if e["event"] == "result"]
    nodes = {e["node"] for e in results}
    # all four trials were queued at once (the autoscaler's config says 2 GPUs at full scale),
    # so the autoscaler launched both GPU workers, two trials per logical GPU
    assert len(nodes) == 2 and head not in nodes
    assert {e["device"] for e in results} == {"cpu"}, "logical GPUs only: torch sees no CUDA"

    deadline = time.monotonic() + SCALE_DOWN_WAIT_S
    while len(alive_nodes(ray)) > 1 and time.monotonic() < deadline:
        time.sleep(1)
    assert [n["NodeID"] for n in alive_nodes(ray)] == [head], "idle GPU workers were not removed"
