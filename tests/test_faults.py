"""Faults injected with trial parameters: a one-off crash is retried from its checkpoint (or, when
that checkpoint is corrupt, from the one before), a permanent crash ends the trial `failed` after its
retries, and a NaN or ±inf loss or metric ends it `failed` at once, everywhere, while the others
finish."""

from __future__ import annotations

import csv
import logging
import math

import pytest
from helpers import SMALL, assert_nothing_lost, read_record, sqlite_store
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.config import load_config
from search.searcher import load_study
from search.tuner import STUDY_FILE
from spaces import load_space
from trainables.trial.loop import load_trainable

pytestmark = pytest.mark.slow

FAULTS_SPACE = """\
# Run: python -m search.run space=<this file> (test: injected faults)
params:
  fault.kind: {choice: [none, raise, nan, inf, -inf]}
  fault.target: {choice: [loss, metric]}
  fault.epoch: 1
points_to_evaluate:
  - {fault.kind: none, fault.target: loss}
  - {fault.kind: raise, fault.target: loss}
  - {fault.kind: nan, fault.target: loss}
  - {fault.kind: inf, fault.target: metric}
  - {fault.kind: -inf, fault.target: metric}
"""
NON_FINITE = ("nan/loss", "inf/metric", "-inf/metric")

ONE_OFF_SPACE = """\
# Run: python -m search.run space=<this file> (test: a crash that happens once)
params:
  fault.kind: raise
  fault.epoch: 2
  fault.marker: {marker}
"""

CORRUPT_SPACE = """\
# Run: python -m search.run space=<this file> (test: the newest checkpoint is corrupt at the crash)
params:
  fault.kind: corrupt
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
            f"mlflow.tracking_uri={sqlite_store(tmp_path)}",
            "mlflow.experiment=faults",
            "confirm.max_seeds=0",  # the search's failures are under test
            "trainable=tests.fault_trainable:train",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
            *extra,
        ]
    )
    load_trainable(cfg.plugins)  # registers the fault trainable's keys before the space names them
    return cfg, run(cfg, load_space(cfg.space))


def children(outcome) -> dict[str, object]:
    client = MlflowClient(outcome.tracking_uri)
    exp = client.get_experiment_by_name("faults")
    runs = client.search_runs([exp.experiment_id])
    return {r.data.tags["ray.trial_id"]: r for r in runs if "ray.trial_id" in r.data.tags}


def test_failures_end_failed_everywhere_while_others_finish(ray_local, tmp_path):
    """Under ASHA: a crash is retried then fails; a NaN loss and a ±inf metric fail at once at their
    epoch (never run on towards max_t), FAIL in Optuna, FAILED in MLflow, off the Pareto front."""
    cfg, outcome = search(
        tmp_path,
        FAULTS_SPACE,
        "search.num_samples=5",
        "train.max_epochs=3",
        "train.checkpoint_every_s=0",
        "scheduler=asha",
        "scheduler.grace_period=1",
    )
    events = read_record(outcome.output_dir / "record.jsonl")
    kind = {
        e["trial_id"]: f"{e['params']['fault.kind']}/{e['params']['fault.target']}"
        for e in events
        if e["event"] == "start"
    }
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    by_kind = {kind[t]: ends[t] for t in ends}
    assert by_kind["none/loss"]["state"] == "completed"  # the plain-CE anchor trains the budget
    assert by_kind["raise/loss"]["state"] == "failed"
    assert "InjectedFault" in by_kind["raise/loss"]["reason"]
    assert "NonFiniteError: non-finite training loss" in by_kind["nan/loss"]["reason"]
    for label in ("inf/metric", "-inf/metric"):
        assert "NonFiniteError: non-finite validation metric val_ece" in by_kind[label]["reason"]
    for label in NON_FINITE:
        assert by_kind[label]["state"] == "failed" and "epoch 1" in by_kind[label]["reason"]
        assert by_kind[label]["epochs"] == 1  # epoch 0 trained; epoch 1 was the non-finite one
    # a crash gets its retry (max_failures=1: two failures); a deterministic non-finite value none
    failures = {k: _failures(outcome.output_dir, t) for t, k in kind.items() if k != "none/loss"}
    assert failures == {"raise/loss": 2} | dict.fromkeys(NON_FINITE, 1)
    # never ran on towards max_t: no epoch >= 1 was reported by a failing trial
    for e in events:
        if e["event"] == "result" and kind[e["trial_id"]] != "none/loss":
            assert e["epoch"] < 1

    study = load_study(outcome.output_dir / STUDY_FILE, cfg.name)
    states = {kind[t.user_attrs["ray_trial_id"]]: t.state for t in study.trials}
    assert states == {"none/loss": TrialState.COMPLETE} | {
        k: TrialState.FAIL for k in kind.values() if k != "none/loss"
    }
    runs = children(outcome)
    statuses = {kind[t]: r.info.status for t, r in runs.items()}
    assert statuses == {k: "FINISHED" if k == "none/loss" else "FAILED" for k in kind.values()}
    retries = {kind[t]: r.data.tags.get("retries") for t, r in runs.items()}
    assert retries == {k: "1" if k == "raise/loss" else None for k in kind.values()}
    for t, r in runs.items():
        if kind[t] in NON_FINITE:
            assert "epoch 1" in r.data.tags["failure_reason"]
            assert not any(math.isinf(v) for v in r.data.metrics.values()), kind[t]
    with (outcome.report_dir / "trials.csv").open() as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    for t in kind:
        assert rows[t]["on_front"] == str(kind[t] == "none/loss")
    assert_nothing_lost(outcome.output_dir, outcome.tracking_uri)


def test_one_off_crash_resumes_from_checkpoint(ray_local, tmp_path):
    marker = tmp_path / "crashed-once"
    _, outcome = search(
        tmp_path,
        ONE_OFF_SPACE.format(marker=marker),
        "search.num_samples=1",
        "train.max_epochs=4",
        "train.checkpoint_every_s=0",
    )
    assert marker.exists(), "the fault never struck"
    events = read_record(outcome.output_dir / "record.jsonl")
    assert [e["state"] for e in events if e["event"] == "end"] == ["completed"]
    assert [e["epoch"] for e in events if e["event"] == "result"] == [0, 1, 2, 3]
    (run,) = children(outcome).values()
    assert run.info.status == "FINISHED"
    history = MlflowClient(outcome.tracking_uri).get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert_nothing_lost(outcome.output_dir, outcome.tracking_uri)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(ray_local, tmp_path, caplog):
    marker = tmp_path / "corrupted-once"
    with caplog.at_level(logging.WARNING, logger="search.trial_guard"):
        _, outcome = search(
            tmp_path,
            CORRUPT_SPACE.format(marker=marker),
            "search.num_samples=1",
            "train.max_epochs=4",
            "train.checkpoint_every_s=0",
        )
    assert marker.exists(), "the fault never struck"
    events = read_record(outcome.output_dir / "record.jsonl")
    assert [e["state"] for e in events if e["event"] == "end"] == ["completed"]
    results = [e for e in events if e["event"] == "result"]
    assert [e["epoch"] for e in results] == [0, 1, 2, 3]  # epoch 1 re-trained, recorded once
    restored = [
        (e["metrics"].get("restored_from_epoch"), e["metrics"].get("checkpoints_skipped"))
        for e in results
    ]
    assert restored == [(None, None), (None, None), (0, 1), (0, 1)]  # epoch 0's checkpoint used
    assert "checkpoint_000001" in caplog.text and "epoch 0" in caplog.text  # the driver's warning
    (run,) = children(outcome).values()
    assert run.info.status == "FINISHED"
    assert "checkpoint_000001" in run.data.tags["checkpoint_fallback"]
    history = MlflowClient(outcome.tracking_uri).get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert_nothing_lost(outcome.output_dir, outcome.tracking_uri)


def _failures(output_dir, trial_id: str) -> int:
    """How often Ray saw the trial fail: its error file has one 'Failure # n' line per failure."""
    (error_file,) = (output_dir / "tune").glob(f"{trial_id}*/error.txt")
    return error_file.read_text().count("Failure # ")
