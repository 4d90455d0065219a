"""Reconciling against record.jsonl by hand, no Ray: what the record can repair is repaired (an
Optuna trial left RUNNING, MLflow values, runs and end states), a duplicate is reported, and
`assert_nothing_lost` tells the two cases apart."""

from __future__ import annotations

import json

import optuna
import pytest
from helpers import assert_nothing_lost, sqlite_store
from mlflow import MlflowClient
from mlflow.entities import Metric
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search.reconcile import REPORT_FILE, reconcile
from search.tracking.record import RunRecord
from search.tracking.state import STATE_FILE_NAME, TrackerState, save_state

F1 = {("t1", 0): 0.5, ("t1", 1): 0.75, ("t2", 0): 0.25}


def metrics(trial: str, epoch: int) -> dict[str, float]:
    best = max(F1[trial, e] for e in range(epoch + 1))
    return {"epoch": epoch, "val_macro_f1": F1[trial, epoch], "best_val_macro_f1": best}


def write_record(out) -> None:
    events = [
        {"event": "start", "trial_id": "t1", "params": {"loss.kind": "ce", "seed": 0}},
        {"event": "start", "trial_id": "t2", "params": {"loss.kind": "ce", "seed": 1}},
        *({"event": "result", "trial_id": t, "epoch": e, "metrics": metrics(t, e)} for t, e in F1),
        {"event": "end", "trial_id": "t1", "state": "completed", "epochs": 2, "reason": None},
        {"event": "end", "trial_id": "t2", "state": "failed", "epochs": 1, "reason": "boom"},
    ]
    out.mkdir()
    lines = (json.dumps(e | {"time": 1_700_000_000.0 + i}) for i, e in enumerate(events))
    (out / "record.jsonl").write_text("\n".join(lines) + "\n")
    (out / "config.yaml").write_text("search:\n  metric: val_macro_f1\n  mode: max\n")


def write_study(out) -> None:
    """t1 left RUNNING (a driver killed before its tell), t2 told FAIL."""
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    study = optuna.create_study(study_name="unit", storage=storage, direction="maximize")
    for trial_id, epochs in (("t1", 2), ("t2", 1)):
        trial = study.ask()
        trial.set_user_attr("ray_trial_id", trial_id)
        for epoch in range(epochs):
            trial.report(F1[trial_id, epoch], epoch + 1)
    study.tell(1, state=TrialState.FAIL)


def write_runs(out, uri: str) -> tuple[MlflowClient, str]:
    """A parent and t1's child, RUNNING with epoch 0 only; t2 has no run (never sent)."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("unit")
    parent = client.create_run(experiment, tags={"search.output_dir": str(out.resolve())})
    parent_id = parent.info.run_id
    child = client.create_run(
        experiment, tags={"mlflow.parentRunId": parent_id, "ray.trial_id": "t1"}
    )
    child_id = child.info.run_id
    values = [Metric(k, float(v), 0, 0) for k, v in metrics("t1", 0).items()]
    client.log_batch(child_id, metrics=values, synchronous=True)
    client.set_terminated(parent_id, "FINISHED")
    trials = {"t1": RunRecord("t1", "t1", run_id=child_id)}
    save_state(out / STATE_FILE_NAME, TrackerState(uri, experiment, parent_id, trials).to_json())
    return client, child_id


def test_reconcile_repairs_from_the_record_then_finds_nothing(tmp_path):
    out, uri = tmp_path / "out", sqlite_store(tmp_path)
    write_record(out)
    write_study(out)
    client, child_id = write_runs(out, uri)
    with pytest.raises(AssertionError):
        assert_nothing_lost(out, uri)

    found = reconcile(out, "unit", None, uri, "val_macro_f1", "max")
    assert found["optuna"].repaired == ["trial t1: RUNNING told COMPLETE from the record"]
    assert found["mlflow"].missing == [
        "trial t1: 3 values of epochs [1]",
        "trial t2: no child run",
        "trial t2: 3 values of epochs [0]",
    ]
    assert len(found["mlflow"].repaired) == 5  # t1: values, end; t2: run, values, end
    assert json.loads((out / REPORT_FILE).read_text())["mlflow"]["checked"] == 2
    study = optuna.load_study(
        study_name="unit", storage=JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    )
    assert (study.trials[0].state, study.trials[0].value) == (TrialState.COMPLETE, 0.75)
    assert client.get_run(child_id).info.status == "FINISHED"
    assert_nothing_lost(out, uri)

    again = reconcile(out, "unit", None, uri, "val_macro_f1", "max")
    assert all(
        not (f.missing or f.duplicated or f.repaired or f.mismatched) for f in again.values()
    )

    client.log_batch(child_id, metrics=[Metric("val_macro_f1", 0.75, 1, 1)], synchronous=True)
    found = reconcile(out, "unit", None, uri, "val_macro_f1", "max")
    assert found["mlflow"].duplicated == ["trial t1 epoch 1 val_macro_f1: 2x"]
    with pytest.raises(AssertionError):
        assert_nothing_lost(out, uri)


def test_reconcile_never_raises(tmp_path):
    out = tmp_path / "out"
    write_record(out)
    (out / "optuna.journal").write_text("not a journal\n")
    found = reconcile(out, "unit", None, "http://127.0.0.1:9", "val_macro_f1", "max")
    assert found["optuna"].error and found["mlflow"].error


def test_optuna_value_is_the_searchers_for_a_minimised_metric_without_best(tmp_path):
    """search.metric=val_ece, mode=min: trials report no best_val_ece, so the searcher told
    COMPLETE with the last epoch's val_ece (0.2 here, not the minimum 0.1); a study holding
    exactly what the searcher told reconciles without a finding."""
    out = tmp_path / "out"
    out.mkdir()
    ece = {"t1": [0.3, 0.1, 0.2], "t2": [0.4]}
    events = [{"event": "start", "trial_id": t, "params": {"seed": 0}} for t in ece]
    events += [
        {"event": "result", "trial_id": t, "epoch": e, "metrics": {"epoch": e, "val_ece": v}}
        for t, values in ece.items()
        for e, v in enumerate(values)
    ]
    events += [
        {"event": "end", "trial_id": "t1", "state": "completed", "epochs": 3, "reason": None},
        {"event": "end", "trial_id": "t2", "state": "stopped_early", "epochs": 1, "reason": None},
    ]
    (out / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    study = optuna.create_study(study_name="unit", storage=storage, direction="minimize")
    for trial_id, values in ece.items():
        trial = study.ask()
        trial.set_user_attr("ray_trial_id", trial_id)
        for epoch, value in enumerate(values):
            trial.report(value, epoch + 1)
    study.tell(0, 0.2)
    study.tell(1, state=TrialState.PRUNED)

    found = reconcile(out, "unit", None, None, "val_ece", "min")
    assert set(found) == {"optuna"}
    assert found["optuna"].checked == 2
    assert not (found["optuna"].mismatched or found["optuna"].repaired or found["optuna"].error)
    assert not (found["optuna"].missing or found["optuna"].duplicated)


def test_abandon_orphans_closes_only_what_ray_no_longer_knows(tmp_path):
    """After a resume: a recorded trial without an end that Ray replaced ends `abandoned` and FAIL
    with its recorded epochs;
    a suggestion never started (no record, unknown to Ray) is told FAIL and listed as such; a
    trial Ray still holds (a later resume runs it) is left open."""
    from search.reconcile import NEVER_STARTED, abandon_orphans
    from search.record import read_record

    out = tmp_path / "out"
    out.mkdir()
    events = [
        {"event": "start", "trial_id": "gone", "params": {}},
        {"event": "result", "trial_id": "gone", "epoch": 0, "metrics": {"val_macro_f1": 0.5}},
        {"event": "start", "trial_id": "held", "params": {}},
    ]
    (out / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    study = optuna.create_study(study_name="unit", storage=storage)
    for trial_id in ("gone", "held", "cut", "pending"):
        study.ask().set_user_attr("ray_trial_id", trial_id)
    study.ask()  # a suggestion the kill cut before it named its Ray trial

    abandon_orphans(out, "unit", {"held", "pending"}, "val_macro_f1")
    ends = [e for e in read_record(out / "record.jsonl") if e["event"] == "end"]
    assert [(e["trial_id"], e["state"], e["epochs"]) for e in ends] == [("gone", "abandoned", 1)]
    study = optuna.load_study(study_name="unit", storage=storage)
    states = [t.state for t in study.trials]
    assert states == [
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.FAIL,
    ]
    assert study.user_attrs[NEVER_STARTED] == [2, 4]
    assert study.trials[0].intermediate_values == {1: 0.5}  # the recorded epoch the kill cut


def test_a_clean_search_checks_the_primary_metric_only(tmp_path):
    """thorough=False (the tracker sent everything, nothing failed): each run's history of the
    searched metric is compared, not every metric's; a run it must create still gets them all."""
    out, uri = tmp_path / "out", sqlite_store(tmp_path)
    write_record(out)
    write_study(out)
    write_runs(out, uri)
    found = reconcile(out, "unit", None, uri, "val_macro_f1", "max", thorough=False)
    assert found["mlflow"].missing == [
        "trial t1: 1 values of epochs [1]",
        "trial t2: no child run",
        "trial t2: 3 values of epochs [0]",
    ]
