"""Cluster pieces without a cluster: the shipped launcher configs pass Ray's own validation, the
full-scale arithmetic, the storage check and the URI copy (file:// stands in for s3://)."""

from __future__ import annotations

import copy

import pytest
import yaml

from search.cluster import (
    LAUNCHER_CONFIGS,
    Autoscaler,
    ClusterInfo,
    Storage,
    check_storage,
    plan_storage,
    pull,
    push,
    push_callback,
)
from search.cluster import storage as storage_module
from search.cluster.autoscaler import from_config, full_scale, status_node_types
from search.cluster.client import is_client
from search.cluster.info import init_args
from search.cluster.push_callback import PushCallback
from trainables.errors import UserInputError


def load(name: str) -> dict:
    return yaml.safe_load(LAUNCHER_CONFIGS[name].read_text())


STATUS = """\
======== Autoscaler status: 2026-01-01 00:00:00 ========
Node status
-------------------------------------------------------
Active:
 1 ray.head.default
 2 gpu_worker
Idle:
 1 node_0123abcd
Pending:
 cpu_worker, 1 launching
Recent failures:
 (no failures)

Resources
-------------------------------------------------------
Total Usage:
 1.0/5.0 CPU
"""


def test_status_node_types_reads_the_nodes_ray_status_lists():
    assert status_node_types(STATUS) == ["ray.head.default", "gpu_worker", "node_0123abcd"]
    assert (
        status_node_types("Node status\nActive:\n (no active nodes)\nIdle:\n (no idle nodes)") == []
    )
    assert status_node_types("No cluster status. It may take a few seconds ...") == []


def test_aws_config_passes_ray_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(load("aws"))  # fills Ray's AWS defaults, as `ray up` does
    validate_config(config)  # Ray's JSON schema and cross-field checks
    head, gpu = config["available_node_types"]["head"], config["available_node_types"]["gpu"]
    assert head["resources"] == {"CPU": 0} and head["max_workers"] == 0
    assert (gpu["min_workers"], gpu["max_workers"], gpu["resources"]["GPU"]) == (0, 4, 1)
    assert any("pip install" in c and "-e ~/loss-search" in c for c in config["setup_commands"])
    assert from_config(config) == Autoscaler(("gpu",), max_cpus=16.0, max_gpus=4.0)


def test_kuberay_manifest_becomes_a_valid_autoscaling_config():
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    ray_cr = load("kuberay")
    assert ray_cr["spec"]["enableInTreeAutoscaling"] is True
    ray_cr["metadata"]["namespace"] = "default"  # the API server fills it in
    # What KubeRay's autoscaler does with the RayCluster; it ends in Ray's validate_config.
    config = _derive_autoscaling_config_from_ray_cr(ray_cr)
    types = config["available_node_types"]
    assert types["headgroup"]["resources"]["CPU"] == 0
    assert (types["gpu"]["min_workers"], types["gpu"]["max_workers"]) == (0, 4)
    assert (types["gpu"]["resources"]["GPU"], types["gpu"]["resources"]["CPU"]) == (1, 8)
    assert config["idle_timeout_minutes"] == 5
    assert from_config(config) == Autoscaler(("gpu",), max_cpus=32.0, max_gpus=4.0)


def test_full_scale_spends_a_global_cap_on_gpu_types_first():
    config = {
        "head_node_type": "head",
        "max_workers": 3,
        "available_node_types": {
            "head": {"resources": {"CPU": 2}},
            "cpu": {"resources": {"CPU": 16}, "max_workers": 10},
            "gpu": {"resources": {"CPU": 4, "GPU": 2}, "max_workers": 2},
        },
    }
    # 2 GPU nodes, then 1 of the 10 CPU nodes the cap of 3 leaves room for
    assert full_scale(config) == {"CPU": 2 + 2 * 4 + 1 * 16, "GPU": 2 * 2}
    no_workers = copy.deepcopy(config)
    for name in ("cpu", "gpu"):
        no_workers["available_node_types"][name]["max_workers"] = 0
    assert from_config(no_workers) is None


def info(nodes: int, autoscaler: Autoscaler | None = None) -> ClusterInfo:
    return ClusterInfo("auto", nodes, 8.0, 0.0, autoscaler)


def test_check_storage_refuses_node_local_paths_on_multi_node_clusters(tmp_path):
    local = str(tmp_path / "out")
    check_storage(local, info(1))  # one node, no autoscaler: anything goes
    with pytest.raises(UserInputError, match=r"output_dir=.*: this cluster has 3 nodes.*s3://"):
        check_storage(local, info(3))
    with pytest.raises(UserInputError, match="autoscales"):
        check_storage(local, info(1, Autoscaler(("gpu",))))
    with pytest.raises(UserInputError, match="3 nodes"):
        check_storage(f"file://{local}", info(3))  # file:// is as node-local as the path
    check_storage(local, info(3), shared=True)
    for uri in ("s3://bucket/searches/elf", "gs://bucket/elf", "abfs://c@acct/elf"):
        check_storage(uri, info(3))


def test_cluster_info_plans_for_the_autoscalers_full_size():
    scaled = ClusterInfo("auto", 1, 8.0, 0.0, Autoscaler(("gpu",), max_cpus=24.0, max_gpus=4.0))
    assert (scaled.max_cpus, scaled.max_gpus, scaled.multi_node) == (24.0, 4.0, True)
    assert scaled.describe().endswith("; autoscales up to 24 CPU(s), 4 GPU(s) (gpu)")
    unknown = ClusterInfo("auto", 1, 8.0, 0.0, Autoscaler(("headgroup",)))
    assert (unknown.max_cpus, unknown.max_gpus) == (8.0, 0.0)  # plans for what it sees
    assert unknown.describe().endswith("autoscaling (headgroup), size unknown")
    assert ClusterInfo("", 1, 2.0, 0.0).describe() == "local Ray: 1 node(s), 2 CPU(s), 0 GPU(s)"


def test_init_args_per_address_kind():
    assert init_args("") == {"address": "local", "include_dashboard": False, "log_to_driver": False}
    assert init_args("10.0.0.5:6379") == {"address": "10.0.0.5:6379", "log_to_driver": False}
    assert init_args("auto") == {"address": "auto", "log_to_driver": False}
    client = init_args("ray://head:10001")
    assert is_client("ray://head:10001") and not is_client("auto") and client["log_to_driver"]
    shipped = {p.rsplit("/", 1)[-1] for p in client["runtime_env"]["py_modules"]}
    assert shipped == {
        "record",
        "trainables",
        "spaces",
        "mirrors",
        "reports",
        "search",
    }  # pyproject's


def test_a_path_output_dir_is_used_as_is(tmp_path):
    s = plan_storage(str(tmp_path / "out"))
    assert s == Storage(tmp_path / "out", str((tmp_path / "out").resolve()), None)
    assert push(s) == 0 and pull(s) == 0


def test_a_uri_output_dir_is_staged_locally_and_pushed(tmp_path, monkeypatch):
    monkeypatch.setattr(storage_module, "STAGING_ROOT", tmp_path / "staging")
    remote = tmp_path / "bucket" / "searches" / "elf"
    s = plan_storage(f"file://{remote}/")
    assert s.ray_path == s.remote == f"file://{remote}"  # Ray writes its experiment there
    assert s.local == tmp_path / "staging" / "file" / str(remote).strip("/")
    (s.local / "report").mkdir(parents=True)
    (s.local / "record.jsonl").write_text('{"event": "start"}\n')
    (s.local / "report" / "pareto.html").write_text("<html/>")
    assert push(s) == 2
    assert (remote / "record.jsonl").read_text() == '{"event": "start"}\n'
    assert (remote / "report" / "pareto.html").exists()
    (remote / "tune" / "trial").mkdir(parents=True)  # Ray's checkpoints stay remote
    (remote / "tune" / "trial" / "state.pt").write_bytes(b"x" * 10)
    (s.local / "record.jsonl").unlink()
    assert pull(s) == 2
    assert (s.local / "record.jsonl").exists() and not (s.local / "tune").exists()


def test_push_callback_pushes_on_its_period_and_at_the_end(tmp_path, monkeypatch):
    pushed = []
    monkeypatch.setattr(push_callback, "push", lambda s: pushed.append(s))
    s = Storage(tmp_path, "file:///x", "file:///x")
    pusher = PushCallback(s, period_s=3600)
    pusher.on_step_end(iteration=1, trials=[])
    assert pushed == []
    pusher.on_experiment_end(trials=[])
    assert pushed == [s]
    PushCallback(s, period_s=0).on_step_end(iteration=2, trials=[])
    assert pushed == [s, s]
