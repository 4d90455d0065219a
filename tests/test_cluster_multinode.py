"""A real four-node Ray cluster on this machine (head + three workers, a shared folder as storage).

Trials spread over the workers; two workers die mid-search, their trials resume from their last
checkpoint on the third, and the search still ends with every trial's epochs and MLflow run.
"""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from helpers import descendants, read_record
from mlflow import MlflowClient
from test_search import small_search

from search.cluster import connect
from search.recording import RecordCallback
from trainables.errors import UserInputError

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LOOPBACK = {"node_ip_address": "127.0.0.1"}  # with conftest's keep_local: every node on loopback
EPOCHS, TRIALS = 4, 6


def lose_node(cluster, node) -> None:
    """Remove `node` as a machine failure would: its raylet and every worker on it die at once
    (Cluster.remove_node alone leaves the workers running until they notice their raylet is gone)."""
    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    workers = descendants(raylet) - {raylet}
    cluster.remove_node(node, allow_graceful=False)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def four_nodes():
    """A head with no CPU (trials only on workers) and three 1-CPU workers: one trial each, so
    trials queue, and a trial that ends hands its actor to a queued one."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, **LOOPBACK},
    )
    workers = [cluster.add_node(num_cpus=1, **LOOPBACK) for _ in range(3)]
    info = connect(cluster.address)
    yield cluster, workers, info
    ray.shutdown()
    cluster.shutdown()


def test_connect_describes_the_cluster(four_nodes):
    cluster, _, info = four_nodes
    assert (info.nodes, info.cpus, info.gpus, info.autoscaler) == (4, 3.0, 0.0, None)
    assert info.multi_node and (info.max_cpus, info.max_gpus) == (3.0, 0.0)
    assert info.describe() == f"cluster {cluster.address}: 4 node(s), 3 CPU(s), 0 GPU(s)"


def test_node_local_output_dir_is_refused_before_any_trial(four_nodes, tmp_path):
    cluster, _, _ = four_nodes
    with pytest.raises(UserInputError, match=r"4 nodes.*cluster\.shared_storage=true"):
        small_search(tmp_path, f"cluster.address={cluster.address}")
    assert not (tmp_path / "out").exists()


def test_search_survives_losing_two_workers(four_nodes, tmp_path, monkeypatch):
    """One worker dies mid-trial (right after a trial's epoch 1), another as one of its trials ends
    and Ray would hand that trial's actor to the next trial; the third worker finishes the search."""
    import ray

    cluster, workers, _ = four_nodes
    driver_node = ray.get_runtime_context().get_node_id()
    alive = {w.node_id: w for w in workers if w.node_id != driver_node}  # never the driver's own
    raw: list[tuple[str, int, str, int]] = []  # every result Ray delivered, before de-duplication
    lost: dict[str, str] = {}  # when → node id
    on_result, on_complete = RecordCallback.on_trial_result, RecordCallback.on_trial_complete

    def lose(when: str, node: str) -> None:
        lost[when] = node
        lose_node(cluster, alive.pop(node))

    def spy_result(self, iteration, trials, trial, result, **info):
        raw.append(
            (trial.trial_id, result["epoch"], result["node"], result["iterations_since_restore"])
        )
        if "mid-trial" not in lost and result["epoch"] == 1 and result["node"] in alive:
            lose("mid-trial", result["node"])  # the trial waits in tune.report: it cannot finish
        return on_result(self, iteration, trials, trial, result, **info)

    def spy_complete(self, iteration, trials, trial, **info):
        node = trial.last_result.get("node")
        if "mid-trial" in lost and "handover" not in lost and node in alive:
            lose("handover", node)
        return on_complete(self, iteration, trials, trial, **info)

    monkeypatch.setattr(RecordCallback, "on_trial_result", spy_result)
    monkeypatch.setattr(RecordCallback, "on_trial_complete", spy_complete)
    _, outcome = small_search(
        tmp_path,
        f"cluster.address={cluster.address}",
        "cluster.shared_storage=true",
        f"search.num_samples={TRIALS}",
        f"train.max_epochs={EPOCHS}",
        "train.checkpoint_every_s=0",
        "scheduler=fifo",
        "resources.max_failures=2",
    )
    assert set(lost) == {"mid-trial", "handover"}, lost
    events = read_record(outcome.output_dir / "record.jsonl")
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    assert len(ends) == TRIALS
    assert {e["state"] for e in ends.values()} == {"completed"}, [e for e in ends.values()]
    results = [e for e in events if e["event"] == "result"]
    for tid in ends:
        assert [e["epoch"] for e in results if e["trial_id"] == tid] == list(range(EPOCHS))
    assert len({e["node"] for e in results}) == 3, "trials did not spread over the workers"

    victim = lost["mid-trial"]
    moved = {t for t, _, node, _ in raw if node == victim} & {
        t for t, _, node, _ in raw if node != victim
    }
    assert moved, "no trial of the lost node ran again elsewhere"
    for tid in moved:
        mine = [r for r in raw if r[0] == tid]
        last_on_victim = max(ep for _, ep, node, _ in mine if node == victim)
        resumed = next(r for r in mine if r[2] != victim)
        # restored from the last checkpoint Tune had registered (epoch 0, or 1 if that one made it
        # before the node died), not trained again from epoch 0
        assert 1 <= resumed[1] <= last_on_victim + 1 and resumed[3] == 1, (victim, mine)

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


def test_uri_output_dir_then_resume_from_it(four_nodes, tmp_path, monkeypatch):
    """output_dir as a URI (file:// stands in for s3://): trials on the workers write their
    checkpoints there through pyarrow, the driver's files are mirrored, and resume= reads it back."""
    from search.cluster import storage
    from search.run import resolve

    cluster, _, _ = four_nodes
    monkeypatch.setattr(storage, "STAGING_ROOT", tmp_path / "staging")
    remote = tmp_path / "bucket" / "elf"
    uri = f"file://{remote}"
    cfg, outcome = small_search(
        tmp_path,
        f"output_dir={uri}",
        f"cluster.address={cluster.address}",
        "cluster.shared_storage=true",  # file:// is a path on this machine, shared by its nodes
        "search.num_samples=2",
        "train.max_epochs=2",
        "train.checkpoint_every_s=0",
        "scheduler=fifo",
    )
    assert outcome.counts == {"completed": 2} and not outcome.interrupted
    ends = [e for e in read_record(remote / "record.jsonl") if e["event"] == "end"]
    assert len(ends) == 2
    assert (remote / "config.yaml").exists() and (remote / "optuna.journal").exists()
    assert len(list(remote.glob("tune/*/checkpoint_*/state.pt"))) == 2 * 2
    resumed_cfg, space = resolve([f"resume={uri}"], {})
    from search.driver import run

    again = run(resumed_cfg, space)
    assert again.counts == {"completed": 2} and not again.interrupted
