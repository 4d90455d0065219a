"""MLflow tracking: name rules and batching by hand, then real Ray searches on a SQLite store."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import ray
from helpers import assert_nothing_lost, sqlite_store
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.validation import (
    MAX_BATCH_LOG_REQUEST_SIZE,
    _validate_batch_log_limits,
    _validate_metric_name,
    _validate_param,
    _validate_param_name,
    _validate_tag,
)
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from search.record import RecordCallback
from search.tracking import (
    STATE_FILE_NAME,
    SearchTracker,
    TrackerSettings,
    check_reachable,
    resolve_tracking_uri,
    sanitize_key,
    sanitize_keys,
    truncate,
    ui_command,
)
from search.tracking.batching import batches
from search.tracking.names import TRUNCATION_MARK
from search.tracking.record import Pending
from search.tracking.writer import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from trainables.errors import UserInputError

# Ray workers cannot import this test module: ship its trainable and callbacks by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
MAX_EPOCHS = 4
# Best first, so ASHA stops later trials at early rungs; BROKEN_GAMMA's trial fails at once.
BROKEN_GAMMA = 6.0
GAMMAS = [BROKEN_GAMMA, 5.0, 4.0, 1.0, 0.5]


def f1_at(gamma: float, epoch: int) -> float:
    """The toy trainable's val_macro_f1 (reference for the logged histories)."""
    return gamma * (epoch + 1) / 25


def toy_trainable(config: dict) -> None:
    """Reports MAX_EPOCHS epochs of deterministic metrics; BROKEN_GAMMA fails before reporting."""
    for epoch in range(MAX_EPOCHS):
        if config["loss.gamma"] == BROKEN_GAMMA:
            raise RuntimeError("boom: broken loss")
        f1 = f1_at(config["loss.gamma"], epoch)
        time.sleep(config.get("sleep_s", 0.02))
        tune.report(
            {"epoch": epoch, "val_macro_f1": f1, "val_loss": 1 - f1, "w_ess": 10.0, "device": "cpu"}
        )


class Recorder(tune.Callback):
    """Ray's own view of every trial (independent of the tracker): config, epochs, error."""

    def __init__(self):
        self.trials: dict[str, dict] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.trials.setdefault(trial.trial_id, {"config": dict(trial.config), "epochs": 0})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        entry = self.trials[trial.trial_id]
        entry["epochs"] = max(entry["epochs"], result["epoch"] + 1)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.trials[trial.trial_id]["failed"] = True


class Interrupter(tune.Callback):
    """Sends Ctrl+C to the driver once (marker file), when the 2nd trial reports its 2nd epoch."""

    def __init__(self, marker: Path):
        self.marker = marker
        self.started: list[str] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id not in self.started:
            self.started.append(trial.trial_id)
        ray_handles_ctrl_c = signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        second_trial_mid_run = len(self.started) == 2 and result["epoch"] == 1
        if second_trial_mid_run and ray_handles_ctrl_c and not self.marker.exists():
            self.marker.write_text(trial.trial_id)
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def store(tmp_path) -> str:
    return sqlite_store(tmp_path)


def settings_for(tmp_path: Path, **overrides) -> TrackerSettings:
    (tmp_path / "resolved.yaml").write_text("space: toy\n")
    values = dict(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment="toy-exp",
        search_name="toy-search",
        output_dir=tmp_path / "out",
        config={"search": {"max_epochs": MAX_EPOCHS, "space": "toy"}, "scheduler.kind": "asha"},
        tags={"space": "toy", "searcher": "grid", "scheduler": "asha"},
        artifacts=(tmp_path / "resolved.yaml",),
        max_epochs=MAX_EPOCHS,
        flush_interval_s=0.2,
        retry_backoff_s=0.05,
    )
    values.update(overrides)
    return TrackerSettings(**values)


def all_runs(client: MlflowClient, experiment: str) -> list:
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], max_results=1000)


def split_runs(runs: list) -> tuple[list, dict[str, object]]:
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["ray.trial_id"]: r for r in runs if r not in parents}
    return parents, children


def expected_end(entry: dict) -> tuple[str, str]:
    if entry.get("failed"):
        return "failed", "FAILED"
    if entry["epochs"] < MAX_EPOCHS:
        return "stopped_early", "FINISHED"
    return "completed", "FINISHED"


def run_search(tmp_path: Path, callbacks: list, param_space: dict, **tune_config) -> None:
    tuner = tune.Tuner(
        toy_trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(reuse_actors=True, **tune_config),
        run_config=tune.RunConfig(
            name="toy", storage_path=str(tmp_path / "ray"), callbacks=callbacks, verbose=0
        ),
    )
    tuner.fit()


# ----- unit tests: no Ray ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("loss.kind", "loss.kind"),
        ("val_f1_c0", "val_f1_c0"),
        ("a:b", "a_b"),
        ("weights é/x", "weights _/x"),
        ("/lead//x/./y/", "lead/x/y"),
        ("a/../b", "a/__/b"),
        ("..hidden", "__hidden"),
        ("", "_"),
        ("...", "__."),
    ],
)
def test_sanitize_key_by_hand(name, expected):
    assert sanitize_key(name) == expected
    assert sanitize_key(expected) == expected
    _validate_param_name(expected)
    _validate_metric_name(expected)


def test_long_key_is_cut_with_digest_and_collisions_stay_distinct():
    import hashlib

    name = "k" * 300
    key = sanitize_key(name)
    assert len(key) == 250
    assert key == "k" * 241 + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    _validate_param_name(key)
    mapping = sanitize_keys(["a:b", "a_b", "a?b"])
    assert mapping["a:b"] == "a_b"
    assert len(set(mapping.values())) == 3
    assert all(len(v) <= 250 for v in mapping.values())


def test_truncate_to_mlflow_limits():
    value, cut = truncate("x" * 6001, 6000)
    assert cut and len(value) == 6000 and value.endswith(TRUNCATION_MARK)
    assert truncate("short", 6000) == ("short", False)
    _validate_param("p", value)
    _validate_tag("t", truncate("y" * 9000, 8000)[0])


def test_batches_respect_every_mlflow_limit():
    metrics = [Metric(f"m{i % 30}", float(i), 0, i // 30) for i in range(2500)]
    params = [Param(f"p{i}", "v" * 6000) for i in range(250)]
    tags = [RunTag(f"t{i}", "w" * 8000) for i in range(130)]
    out = list(batches(metrics, params, tags))
    for batch in out:
        _validate_batch_log_limits(batch.metrics, batch.params, batch.tags)
        body = json.dumps(
            {
                "metrics": [vars(m) for m in batch.metrics],
                "params": [{"key": p.key, "value": p.value} for p in batch.params],
                "tags": [{"key": t.key, "value": t.value} for t in batch.tags],
            }
        )
        assert len(body) < MAX_BATCH_LOG_REQUEST_SIZE
    assert [m for b in out for m in b.metrics] == metrics
    assert [p.key for b in out for p in b.params] == [p.key for p in params]
    assert [t.key for b in out for t in b.tags] == [t.key for t in tags]
    # 250 params of 6 kB fit 149 per 0.9 MB request; 130 tags of 8 kB fit 112: at least 5 calls.
    assert len(out) >= 5


def test_batches_small_input_is_one_call():
    out = list(batches([Metric("a", 1.0, 0, 0)] * 1000, [Param("p", "1")] * 0, []))
    assert [len(b.metrics) for b in out] == [1000]
    out = list(batches([Metric("a", 1.0, 0, 0)] * 1001))
    assert [len(b.metrics) for b in out] == [1000, 1]


def test_pending_reopen_cancels_older_status():
    older = Pending(status="KILLED", metrics=[Metric("a", 1.0, 0, 0)])
    merged = older.then(Pending(reopen=True, params={"p": "1"}))
    assert merged.reopen and merged.status is None and len(merged.metrics) == 1
    assert Pending(reopen=True).then(Pending(status="FINISHED")).status == "FINISHED"


def test_run_record_survives_the_state_file():
    """A resumed tracker knows all it knew: a trial reporting best_<metric> gets no extra value."""
    from search.tracking.record import RunRecord

    record = RunRecord("t1", "trial_t1", run_id="r1", epochs=3, best_epoch=1, best_value=0.5)
    record.end_state, record.retries, record.reports_best = "completed", 1, True
    again = RunRecord.from_json("t1", json.loads(json.dumps(record.to_json())))
    assert again == record


def test_resolve_tracking_uri(tmp_path):
    assert resolve_tracking_uri("http://h:5000", "sqlite:///x.db", tmp_path) == "http://h:5000"
    assert resolve_tracking_uri(None, "http://e:1", tmp_path) == "http://e:1"
    assert resolve_tracking_uri(None, None, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri("", " ", tmp_path).endswith("/mlflow.db")
    assert (
        resolve_tracking_uri("sqlite:///rel/m.db", None, tmp_path)
        == f"sqlite:///{tmp_path}/rel/m.db"
    )


def test_check_reachable_names_the_uri(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(UserInputError, match=uri):
        check_reachable(uri, timeout_s=1)
    with pytest.raises(UserInputError, match="missing"):
        check_reachable(f"sqlite:///{tmp_path}/missing/mlflow.db")
    check_reachable(f"sqlite:///{tmp_path}/mlflow.db")
    assert ui_command(uri) == uri
    assert (
        ui_command("sqlite:////a/b.db")
        == "mlflow ui --backend-store-uri sqlite:////a/b.db --host 127.0.0.1"
    )


def test_store_failure_keeps_data_and_retries(tmp_path):
    """A store that cannot be opened never raises into the search; data is sent once it can."""
    folder = tmp_path / "later"
    folder.write_text("a file where the store's folder should be")
    settings = settings_for(
        tmp_path, tracking_uri=f"sqlite:///{folder}/mlflow.db", close_retries=0, wait_s=20
    )
    tracker = SearchTracker(settings)
    tracker.start()
    tracker.trial_started(
        "t1", "trial_t1", {"loss.kind": "ce", "loss.gamma": 1.0, "long": "z" * 7000}
    )
    for epoch in range(3):
        tracker.trial_result("t1", {"epoch": epoch, "val_macro_f1": f1_at(1.0, epoch)})
    tracker.trial_completed("t1")
    assert tracker.flush() is False
    assert tracker.parent_run_id is None
    folder.unlink()
    sqlite_store(folder)
    assert tracker.flush() is True
    tracker.close()
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(tracker.run_ids()["t1"])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_macro_f1")] == [
        f1_at(1.0, e) for e in range(3)
    ]
    assert run.data.params["long"].endswith(TRUNCATION_MARK)
    full = client.download_artifacts(run.info.run_id, "params/long.txt", str(tmp_path))
    assert Path(full).read_text() == "z" * 7000
    assert run.data.tags["end_state"] == "stopped_early" and run.data.tags["stopped_rung"] == "3"


def test_resume_finds_children_by_tag_without_state_file(tmp_path, store):
    settings = settings_for(tmp_path)
    first = SearchTracker(settings)
    first.start()
    for trial in ("a", "b"):
        first.trial_started(trial, f"trial_{trial}", {"loss.gamma": 1.0})
        first.trial_result(trial, {"epoch": 0, "val_macro_f1": 0.1})
    first.trial_completed("a")
    first.close()  # b is interrupted -> KILLED
    (settings.output_dir / STATE_FILE_NAME).unlink()

    second = SearchTracker(settings_for(tmp_path, resume=True))
    second.start()
    assert second.parent_run_id == first.parent_run_id
    assert second.run_ids() == first.run_ids()
    second.trial_started("b", "trial_b", {"loss.gamma": 1.0})
    for epoch in range(MAX_EPOCHS):  # restarted from scratch: epoch 0 is a replay
        second.trial_result("b", {"epoch": epoch, "val_macro_f1": f1_at(1.0, epoch)})
    second.trial_completed("b")
    second.close()

    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    assert len(parents) == 1 and sorted(children) == ["a", "b"]
    b = children["b"]
    assert b.info.run_id == first.run_ids()["b"]
    assert (b.info.status, b.data.tags["end_state"]) == ("FINISHED", "completed")
    steps = [m.step for m in client.get_metric_history(b.info.run_id, "val_macro_f1")]
    assert steps == list(range(MAX_EPOCHS))
    assert parents[0].info.status == "FINISHED"


def test_a_trial_saved_before_its_run_existed_gets_a_linked_run(tmp_path, store):
    """The state file knows trial b but not its run (the driver died first): on resume, b's run
    is created with its trial-id and search tags and its params."""
    settings = settings_for(tmp_path)
    first = SearchTracker(settings)
    first.start()
    first.trial_started("a", "trial_a", {"loss.gamma": 1.0})
    first.close("KILLED")
    state = json.loads((settings.output_dir / STATE_FILE_NAME).read_text())
    state["trials"]["b"] = {"run_id": None, "name": "trial_b", "epochs": 0}
    (settings.output_dir / STATE_FILE_NAME).write_text(json.dumps(state))

    second = SearchTracker(settings_for(tmp_path, resume=True))
    second.start()
    second.trial_started("b", "trial_b", {"loss.gamma": 2.0})
    second.trial_result("b", {"epoch": 0, "val_macro_f1": 0.1})
    second.trial_completed("b")
    second.close()
    _, children = split_runs(all_runs(MlflowClient(settings.tracking_uri), settings.experiment))
    assert sorted(children) == ["a", "b"]
    b = children["b"]
    assert b.data.tags["search.name"] == settings.search_name
    assert b.data.params == {"loss.gamma": "2.0"}


def test_a_running_trial_is_sent_when_due_and_a_short_one_in_one_call(tmp_path, store, monkeypatch):
    """An unforced flush holds a running trial's queue until it waited `flush_interval_s` or the
    trial ended: an ended short trial reaches MLflow in one log_batch, with all its epochs."""
    calls: dict[str, int] = {}
    log_batch = MlflowClient.log_batch

    def counted(self, run_id, *args, **kwargs):
        calls[run_id] = calls.get(run_id, 0) + 1
        return log_batch(self, run_id, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counted)
    tracker = SearchTracker(settings_for(tmp_path, flush_interval_s=0.5))
    tracker.start()
    syncer = tracker._syncer
    tracker.trial_started("short", "trial_short", {"loss.gamma": 1.0})
    tracker.trial_started("long", "trial_long", {"loss.gamma": 2.0})
    for epoch in range(4):
        tracker.trial_result("short", {"epoch": epoch, "val_macro_f1": f1_at(1.0, epoch)})
        tracker.trial_result("long", {"epoch": epoch, "val_macro_f1": f1_at(2.0, epoch)})
    assert syncer.flush(force=False) and tracker.run_ids() == {"short": None, "long": None}
    tracker.trial_completed("short")
    assert syncer.flush(force=False)
    short = tracker.run_ids()["short"]
    assert short is not None and calls[short] == 1 and tracker.run_ids()["long"] is None
    time.sleep(0.6)  # the long trial's queue has now waited flush_interval_s since a flush held it
    assert syncer.flush(force=False) and tracker.run_ids()["long"] is not None
    tracker.close()
    client = MlflowClient(tracker.settings.tracking_uri)
    history = client.get_metric_history(short, "val_macro_f1")
    assert [(m.step, m.value) for m in history] == [(e, f1_at(1.0, e)) for e in range(4)]
    assert client.get_run(short).info.status == "FINISHED" and calls[short] == 1


def test_recovery_is_announced_only_after_the_store_took_a_call(
    tmp_path, store, monkeypatch, caplog
):
    """While the store fails, a flush that had nothing due asked it nothing: no "answers again"
    until a call went through."""
    down = True
    log_batch = MlflowClient.log_batch

    def failing(self, *args, **kwargs):
        if down:
            raise ConnectionError("store down")
        return log_batch(self, *args, **kwargs)

    tracker = SearchTracker(settings_for(tmp_path, flush_interval_s=60))
    tracker.start()
    syncer = tracker._syncer
    monkeypatch.setattr(MlflowClient, "log_batch", failing)
    tracker.trial_started("t", "trial_t", {"loss.gamma": 1.0})
    tracker.trial_result("t", {"epoch": 0, "val_macro_f1": 0.1})
    assert syncer.flush(force=True) is False
    assert syncer.flush(force=False) is True  # the running trial's queue is held: nothing asked
    assert "answers again" not in caplog.text
    down = False
    assert syncer.flush(force=True) is True
    assert "answers again" in caplog.text
    tracker.close()


def test_resume_after_a_reopened_run_was_killed_logs_no_step_twice(tmp_path, store):
    """Ctrl-C (run KILLED with epochs_trained=1), resume to epoch 2 (flushed), then a kill before
    the state file caught up: the next resume skips what MLflow already has, not the stale tag."""
    settings = settings_for(tmp_path)
    first = SearchTracker(settings)
    first.start()
    first.trial_started("a", "trial_a", {"loss.gamma": 1.0})
    first.trial_result("a", {"epoch": 0, "val_macro_f1": 0.1})
    first.close("KILLED")
    again = SearchTracker(settings_for(tmp_path, resume=True))
    again.start()
    again.trial_started("a", "trial_a", {"loss.gamma": 1.0})
    for epoch in (1, 2):
        again.trial_result("a", {"epoch": epoch, "val_macro_f1": 0.1 * (epoch + 1)})
    assert again.flush()
    (settings.output_dir / STATE_FILE_NAME).unlink()  # as if killed before the state was saved
    atexit.unregister(again._at_exit)  # a SIGKILL closes nothing

    last = SearchTracker(settings_for(tmp_path, resume=True))
    last.start()
    last.trial_started("a", "trial_a", {"loss.gamma": 1.0})
    for epoch in (2, 3):  # restored from epoch 1's checkpoint: epoch 2 is a replay
        last.trial_result("a", {"epoch": epoch, "val_macro_f1": 0.1 * (epoch + 1)})
    last.trial_completed("a")
    last.close()
    client = MlflowClient(settings.tracking_uri)
    history = client.get_metric_history(first.run_ids()["a"], "val_macro_f1")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]


# ----- Ray searches ------------------------------------------------------------------------------


@pytest.mark.slow
def test_asha_search_logs_parent_and_children(ray_local, tmp_path, store):
    settings = settings_for(tmp_path)
    recorder = Recorder()
    with SearchTracker(settings) as tracker:
        run_search(
            tmp_path,
            [tracker.callback(), recorder, RecordCallback(settings.output_dir, MAX_EPOCHS)],
            param_space={"loss.kind": "focal", "loss.gamma": tune.grid_search(GAMMAS)},
            scheduler=ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1, reduction_factor=2),
            metric="val_macro_f1",
            mode="max",
        )
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    parents, children = split_runs(all_runs(client, settings.experiment))
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["end_state"] == "completed"
    assert parent.data.params["search.max_epochs"] == str(MAX_EPOCHS)
    assert parent.data.tags["space"] == "toy" and parent.data.tags["host"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["resolved.yaml"]
    assert sorted(children) == sorted(recorder.trials)
    ends = set()
    for trial_id, entry in recorder.trials.items():
        run = children[trial_id]
        config = entry["config"]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params == {k: str(v) for k, v in config.items()}
        end_state, status = expected_end(entry)
        ends.add(end_state)
        assert (run.data.tags["end_state"], run.info.status) == (end_state, status)
        history = client.get_metric_history(run.info.run_id, "val_macro_f1")
        assert [m.step for m in history] == list(range(entry["epochs"]))
        assert [m.value for m in history] == [
            f1_at(config["loss.gamma"], e) for e in range(entry["epochs"])
        ]
        assert run.data.tags.get("device") == ("cpu" if entry["epochs"] else None)
        if end_state == "stopped_early":
            assert run.data.tags["stopped_rung"] == str(entry["epochs"])
        if end_state == "failed":
            assert "boom: broken loss" in run.data.tags["failure_reason"]
            error_file = client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))
            text = Path(error_file).read_text()
            assert "RuntimeError: boom: broken loss" in text and "\x1b[" not in text
        else:
            best = max(range(entry["epochs"]), key=lambda e: f1_at(config["loss.gamma"], e))
            assert run.data.tags["best_epoch"] == str(best)
            assert run.data.metrics["best_val_macro_f1"] == f1_at(config["loss.gamma"], best)
    assert ends == {"completed", "stopped_early", "failed"}
    state = json.loads((settings.output_dir / STATE_FILE_NAME).read_text())
    assert state["parent_run_id"] == parent.info.run_id
    assert {k: v["run_id"] for k, v in state["trials"].items()} == {
        k: r.info.run_id for k, r in children.items()
    }
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


@pytest.mark.slow
def test_restore_after_ctrl_c_reopens_runs_without_duplicates(ray_local, tmp_path, store):
    """Ctrl+C mid-search, then a new driver resumes with Tuner.restore: same parent, same children."""
    settings = settings_for(tmp_path)
    marker = tmp_path / "interrupted"
    space = {"loss.kind": "focal", "loss.gamma": tune.grid_search([3.0, 2.0, 1.0]), "sleep_s": 0.1}
    first = SearchTracker(settings)
    first.start()
    run_search(
        tmp_path,
        [first.callback(), Interrupter(marker)],
        param_space=space,
        max_concurrent_trials=1,
    )
    assert first.interrupted
    first.close()  # the driver's normal exit: FINISHED becomes KILLED since trials were cut
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    cut = marker.read_text()
    assert parents[0].info.status == "KILLED"
    assert (children[cut].info.status, children[cut].data.tags["end_state"]) == (
        "KILLED",
        "interrupted",
    )
    assert "RUNNING" not in {r.info.status for r in children.values()}
    before = {trial: run.info.run_id for trial, run in children.items()}

    second = SearchTracker(settings_for(tmp_path, resume=True))  # as a new driver process would
    second.start()
    restored = tune.Tuner.restore(
        str(tmp_path / "ray" / "toy"), trainable=toy_trainable, resume_unfinished=True
    )
    grid = restored.fit()
    second.close()

    parents, children = split_runs(all_runs(client, settings.experiment))
    assert len(parents) == 1 and parents[0].info.run_id == first.parent_run_id
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 3
    assert all(children[t].info.run_id == run_id for t, run_id in before.items())
    for run in children.values():
        assert (run.info.status, run.data.tags["end_state"]) == ("FINISHED", "completed")
        history = client.get_metric_history(run.info.run_id, "val_macro_f1")
        assert [m.step for m in history] == list(range(MAX_EPOCHS))
        gamma = float(run.data.params["loss.gamma"])
        assert [m.value for m in history] == [f1_at(gamma, e) for e in range(MAX_EPOCHS)]
    assert grid.num_errors == 0
    assert {r.metrics["trial_id"] for r in grid} == set(children)


def test_callback_pickles_as_settings_and_reattaches(tmp_path, store):
    """Tuner pickles callbacks; unpickled, ours joins the open tracker of the same output folder."""
    tracker = SearchTracker(settings_for(tmp_path))
    callback = tracker.callback()
    assert ray.cloudpickle.loads(ray.cloudpickle.dumps(callback)) is callback
    tracker.close()
    restored = ray.cloudpickle.loads(ray.cloudpickle.dumps(callback))
    assert restored is not callback and restored.owns and restored.tracker.settings.resume
    assert restored.tracker.parent_run_id == tracker.parent_run_id  # from the state file
    restored.tracker.close()
