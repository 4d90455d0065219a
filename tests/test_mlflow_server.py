"""A real `mlflow server` on 127.0.0.1: a small Ray search logs to it over HTTP, then is read back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import ray
from mlflow import MlflowClient
from ray import tune

from search.tracking import SearchTracker, TrackerSettings, check_reachable, ui_command
from search.tracking.server import LocalServer
from search.tracking.writer import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

pytestmark = pytest.mark.slow
EPOCHS = 3
GAMMAS = [1.0, 2.0, 3.0]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests


def f1_at(gamma: float, epoch: int) -> float:
    return gamma * (epoch + 1) / 10


def toy_trainable(config: dict) -> None:
    for epoch in range(EPOCHS):
        f1 = f1_at(config["loss.gamma"], epoch)
        tune.report({"epoch": epoch, "val_macro_f1": f1, "val_loss": 1 - f1, "device": "cpu"})


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The server process, booting (~10-25 s) while the next fixture starts Ray."""
    local = LocalServer(tmp_path_factory.mktemp("server")).launch()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def server(launched, ray_local):
    return launched.wait_ready()


def test_search_logs_over_http(server, tmp_path):
    check_reachable(server.url)
    assert ui_command(server.url) == server.url
    (tmp_path / "resolved.yaml").write_text("space: toy\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "front.csv").write_text("trial,f1\n")
    settings = TrackerSettings(
        tracking_uri=server.url,
        experiment="http-exp",
        search_name="http-search",
        output_dir=tmp_path / "out",
        config={"search.max_epochs": EPOCHS, "space": "toy"},
        tags={"space": "toy"},
        artifacts=(tmp_path / "resolved.yaml",),
        max_epochs=EPOCHS,
        flush_interval_s=0.2,
    )
    with SearchTracker(settings) as tracker:
        tune.Tuner(
            toy_trainable,
            param_space={"loss.kind": "ce", "loss.gamma": tune.grid_search(GAMMAS)},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name="toy",
                storage_path=str(tmp_path / "ray"),
                callbacks=[tracker.callback()],
                verbose=0,
            ),
        ).fit()
        tracker.log_artifacts(tmp_path / "report", "report")

    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("http-exp")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and len(children) == len(GAMMAS)
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"search.max_epochs": str(EPOCHS), "space": "toy"}
    paths = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert paths == {"resolved.yaml", "report"}
    local = client.download_artifacts(parent.info.run_id, "report/front.csv", str(tmp_path))
    assert Path(local).read_text() == "trial,f1\n"
    assert list(server.folder.glob("mlartifacts/**/front.csv"))  # stored by the server's proxy
    assert sorted(float(r.data.params["loss.gamma"]) for r in children) == GAMMAS
    for run in children:
        gamma = float(run.data.params["loss.gamma"])
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert (run.info.status, run.data.tags["end_state"]) == ("FINISHED", "completed")
        history = client.get_metric_history(run.info.run_id, "val_macro_f1")
        assert [(m.step, m.value) for m in history] == [(e, f1_at(gamma, e)) for e in range(EPOCHS)]
