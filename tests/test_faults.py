"""Faults injected with trial parameters: a one-off crash is retried from its checkpoint, a
permanent crash or a NaN loss ends the trial `failed` everywhere while the others finish."""

from __future__ import annotations

import csv

import pytest
from helpers import SMALL
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.config import load_config
from search.record import read_record
from search.searcher import load_study
from search.tuner import STUDY_FILE
from spaces import load_space

pytestmark = pytest.mark.slow

FAULTS_SPACE = """\
# Run: python -m search.run space=<this file> (test: injected faults)
params:
  fault.kind: {choice: [none, raise, nan]}
  fault.epoch: 1
points_to_evaluate:
  - {fault.kind: none}
  - {fault.kind: raise}
  - {fault.kind: nan}
"""

ONE_OFF_SPACE = """\
# Run: python -m search.run space=<this file> (test: a crash that happens once)
params:
  fault.kind: raise
  fault.epoch: 2
  fault.marker: {marker}
"""


def search(tmp_path, space_text: str, *extra: str):
    from search.driver import run

    space_file = tmp_path / "space.yaml"
    space_file.write_text(space_text)
    cfg = load_config(
        [
            f"space={space_file}",
            f"output_dir={tmp_path / 'out'}",
            "scheduler=fifo",
            "resources.max_failures=1",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow.experiment=faults",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
            *extra,
        ]
    )
    return cfg, run(cfg, load_space(cfg.space))


def children(outcome) -> dict[str, object]:
    client = MlflowClient(outcome.tracking_uri)
    exp = client.get_experiment_by_name("faults")
    runs = client.search_runs([exp.experiment_id])
    return {r.data.tags["ray.trial_id"]: r for r in runs if "ray.trial_id" in r.data.tags}


def test_failures_end_failed_everywhere_while_others_finish(ray_local, tmp_path):
    cfg, outcome = search(tmp_path, FAULTS_SPACE, "search.num_samples=3", "train.max_epochs=3")
    events = read_record(outcome.output_dir / "record.jsonl")
    kind = {e["trial_id"]: e["params"]["fault.kind"] for e in events if e["event"] == "start"}
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    by_kind = {kind[t]: ends[t] for t in ends}
    assert by_kind["none"]["state"] == "completed"
    assert by_kind["raise"]["state"] == "failed"
    assert "InjectedFault" in by_kind["raise"]["reason"]
    assert by_kind["nan"]["state"] == "failed"
    assert "non-finite training loss" in by_kind["nan"]["reason"]
    assert "epoch 1" in by_kind["nan"]["reason"]
    # never ran to max_t: no epoch >= 1 was reported by a failing trial
    for e in events:
        if e["event"] == "result" and kind[e["trial_id"]] != "none":
            assert e["epoch"] < 1

    study = load_study(outcome.output_dir / STUDY_FILE, cfg.name)
    states = {t.user_attrs["ray_trial_id"]: t.state for t in study.trials}
    assert {kind[t]: s for t, s in states.items()} == {
        "none": TrialState.COMPLETE,
        "raise": TrialState.FAIL,
        "nan": TrialState.FAIL,
    }
    runs = children(outcome)
    assert {kind[t]: r.info.status for t, r in runs.items()} == {
        "none": "FINISHED",
        "raise": "FAILED",
        "nan": "FAILED",
    }
    with (outcome.report_dir / "trials.csv").open() as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    for t in kind:
        assert rows[t]["on_front"] == str(kind[t] == "none")


def test_one_off_crash_resumes_from_checkpoint(ray_local, tmp_path):
    marker = tmp_path / "crashed-once"
    _, outcome = search(
        tmp_path, ONE_OFF_SPACE.format(marker=marker), "search.num_samples=1", "train.max_epochs=4"
    )
    assert marker.exists(), "the fault never struck"
    events = read_record(outcome.output_dir / "record.jsonl")
    assert [e["state"] for e in events if e["event"] == "end"] == ["completed"]
    assert [e["epoch"] for e in events if e["event"] == "result"] == [0, 1, 2, 3]
    (run,) = children(outcome).values()
    assert run.info.status == "FINISHED"
    history = MlflowClient(outcome.tracking_uri).get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [0, 1, 2, 3]
