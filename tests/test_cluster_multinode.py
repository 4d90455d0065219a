"""A real three-node Ray cluster on this machine (head + two workers, a shared folder as storage).

Trials spread over the workers; one worker is removed mid-search, its trials resume from their last
checkpoint on the other one, and the search still ends with every trial's epochs and MLflow run.
"""

from __future__ import annotations

import threading

import pytest
from mlflow import MlflowClient

from search.cluster import connect
from search.record import RecordCallback, read_record
from tests.test_search import small_search
from trainables.errors import UserInputError

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LOOPBACK = {"node_ip_address": "127.0.0.1"}
EPOCHS, TRIALS = 4, 6


def bind_to_loopback(mp: pytest.MonkeyPatch) -> None:
    """Every Ray process of the test cluster on 127.0.0.1, this one and those it starts."""
    from ray._private import ray_constants

    mp.setenv(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "0")  # processes started from here on
    mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # this process (read at call time)


@pytest.fixture(scope="module")
def three_nodes():
    """Head with no CPU (trials only on workers) and two workers with 2 logical CPUs each."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        bind_to_loopback(mp)
        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **LOOPBACK}
        )
        workers = [cluster.add_node(num_cpus=2, **LOOPBACK) for _ in range(2)]
        info = connect(cluster.address)
        yield cluster, workers, info
        ray.shutdown()
        cluster.shutdown()


def test_connect_describes_the_cluster(three_nodes):
    cluster, _, info = three_nodes
    assert (info.nodes, info.cpus, info.gpus, info.autoscaler) == (3, 4.0, 0.0, None)
    assert info.multi_node and info.max_cpus == 4.0
    assert info.describe() == f"cluster {cluster.address}: 3 node(s), 4 CPU(s), 0 GPU(s)"


def test_node_local_output_dir_is_refused_before_any_trial(three_nodes, tmp_path):
    cluster, _, _ = three_nodes
    with pytest.raises(UserInputError, match=r"3 nodes.*cluster\.shared_storage=true"):
        small_search(tmp_path, f"cluster.address={cluster.address}")
    assert not (tmp_path / "out").exists()


def test_search_survives_losing_a_worker(three_nodes, tmp_path, monkeypatch):
    import ray

    cluster, workers, _ = three_nodes
    driver_node = ray.get_runtime_context().get_node_id()
    by_id = {w.node_id: w for w in workers if w.node_id != driver_node}  # never the driver's own
    raw: list[tuple[str, int, str, int]] = []  # every result Ray delivered, before de-duplication
    removed: dict[str, str] = {}
    original = RecordCallback.on_trial_result

    def spy(self, iteration, trials, trial, result, **info):
        raw.append(
            (trial.trial_id, result["epoch"], result["node"], result["iterations_since_restore"])
        )
        if not removed and result["epoch"] == 1 and result["node"] in by_id:
            removed["node"] = result["node"]  # a checkpoint of epochs 0 and 1 exists: kill the node
            victim = by_id[result["node"]]
            threading.Thread(target=cluster.remove_node, args=(victim, False)).start()
        return original(self, iteration, trials, trial, result, **info)

    monkeypatch.setattr(RecordCallback, "on_trial_result", spy)
    _, outcome = small_search(
        tmp_path,
        f"cluster.address={cluster.address}",
        "cluster.shared_storage=true",
        f"search.num_samples={TRIALS}",
        f"train.max_epochs={EPOCHS}",
        "scheduler=fifo",
        "resources.max_failures=2",
    )
    assert removed, "no trial reached epoch 1 on a removable worker"
    events = read_record(outcome.output_dir / "record.jsonl")
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    assert len(ends) == TRIALS and {e["state"] for e in ends.values()} == {"completed"}
    results = [e for e in events if e["event"] == "result"]
    for tid in ends:
        assert [e["epoch"] for e in results if e["trial_id"] == tid] == list(range(EPOCHS))
    worker_ids = {w.node_id for w in workers}
    assert {e["node"] for e in results} == worker_ids, "trials did not run on both workers"

    moved = {t for t, _, node, _ in raw if node == removed["node"]} & {
        t for t, _, node, _ in raw if node != removed["node"]
    }
    assert moved, "no trial of the removed node ran again elsewhere"
    for tid in moved:
        mine = [r for r in raw if r[0] == tid]
        last_on_victim = max(ep for _, ep, node, _ in mine if node == removed["node"])
        resumed = next(r for r in mine if r[2] != removed["node"])
        # restored from the checkpoint of its last reported epoch, not trained again from epoch 0
        assert resumed[1] == last_on_victim + 1 and resumed[3] == 1, mine

    client = MlflowClient(outcome.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("elf").experiment_id])
    children = {r.data.tags["ray.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == set(ends)
    assert {r.info.status for r in runs} == {"FINISHED"}
    for tid, run in children.items():
        history = client.get_metric_history(run.info.run_id, "val_macro_f1")
        assert [m.step for m in history] == list(range(EPOCHS))
        if tid in moved:
            assert int(run.data.tags["retries"]) >= 1
