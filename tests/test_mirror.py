"""The MLflow mirror (mirrors/): names and batches within MLflow's limits, the record sent once
whatever happens to the driver or the store, and real Ray searches mirrored run for run."""

from __future__ import annotations

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

from mirrors import (
    STATE_FILE,
    MirrorSettings,
    MlflowMirror,
    check_reachable,
    resolve_tracking_uri,
    ui_command,
)
from mirrors.batching import batches
from mirrors.names import TRUNCATION_MARK, sanitize_key, sanitize_keys, truncate
from mirrors.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from record import RECORD_FILE, RecordWriter
from search.recording import RecordCallback
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


def settings_for(tmp_path: Path, **overrides) -> MirrorSettings:
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
        interval_s=0.2,
        retry_backoff_s=0.05,
        close_retries=0,
        close_retry_s=0,
    )
    values.update(overrides)
    (tmp_path / "out").mkdir(exist_ok=True)
    return MirrorSettings(**values)


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


def run_search(tmp_path: Path, callbacks: list, param_space: dict, **options) -> list:
    """The toy trainable under `tune.run`, as `search.tuner.run_search` runs a search; returns
    Ray's trials."""
    analysis = tune.run(
        toy_trainable,
        config=param_space,
        name="toy",
        storage_path=str(tmp_path / "ray"),
        callbacks=callbacks,
        verbose=0,
        reuse_actors=True,
        raise_on_failed_trial=False,
        **options,
    )
    return analysis.trials


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


# ----- the mirror against hand-written records: no Ray ------------------------------------------


class Record:
    """Writes record.jsonl events as the driver's RecordCallback would."""

    def __init__(self, folder: Path):
        self.writer = RecordWriter(folder / RECORD_FILE)

    def start(self, trial: str, **params) -> None:
        self.writer.write({"event": "start", "trial_id": trial, "params": params})

    def results(self, trial: str, gamma: float, epochs) -> None:
        for epoch in epochs:
            metrics = {"epoch": epoch, "val_macro_f1": f1_at(gamma, epoch), "val_loss": 0.5}
            event = {"event": "result", "trial_id": trial, "epoch": epoch, "device": "cpu"}
            self.writer.write(event | {"node": "n1", "metrics": metrics})

    def end(self, trial: str, state: str, epochs: int, reason=None, error=None) -> None:
        event = {"event": "end", "trial_id": trial, "state": state, "epochs": epochs}
        self.writer.write(event | {"reason": reason} | ({"error": error} if error else {}))

    def look(self, ended: int, figures: dict) -> None:
        """A look of the confirmation stage as search/confirm.py writes it (record.schema)."""
        event = {"event": "look", "trial_id": "look", "epoch": ended, "metric": "test_macro_f1"}
        self.writer.write(event | {"figures": figures, "merged": []})


def figure(seeds: int, delta: float, low: float | None, high: float | None, verdict: str) -> dict:
    return {"seeds": seeds, "delta": delta, "low": low, "high": high, "verdict": verdict}


# Three rounds of looks at candidates "a" and "b:2" (a key MLflow needs sanitised): unbounded at 2
# paired seeds (null bounds), then narrowing; "b:2" decided after the second round.
LOOKS = [
    (4, {"a": figure(2, 0.03, None, None, "undecided"), "b:2": figure(2, -0.01, None, None, "u")}),
    (
        6,
        {
            "a": figure(3, 0.02, -0.05, 0.09, "undecided"),
            "b:2": figure(3, -0.04, -0.07, -0.01, "w"),
        },
    ),
    (7, {"a": figure(4, 0.025, 0.004, 0.046, "better")}),
]
LOOK_KEYS = {"confirm.a.delta", "confirm.a.low", "confirm.a.high", "confirm.b_2.delta"}
LOOK_KEYS |= {"confirm.b_2.low", "confirm.b_2.high"}


def expected_looks(looks) -> dict[str, list[tuple[int, float]]]:
    """{parent metric key: [(paired seeds, value)]} the looks should leave, by hand: each finite
    figure once, at its candidate's paired seeds."""
    out: dict[str, list[tuple[int, float]]] = {}
    for _, figures in looks:
        for label, f in figures.items():
            for name in ("delta", "low", "high"):
                if f[name] is not None:
                    key = f"confirm.{label.replace(':', '_')}.{name}"
                    out.setdefault(key, []).append((f["seeds"], f[name]))
    return {k: sorted(v) for k, v in out.items()}


def parent_looks(client: MlflowClient, parent_run_id: str) -> dict[str, list[tuple[int, float]]]:
    """The parent's confirm.* metric histories, every logged point (repeats would show)."""
    out = {}
    for key in LOOK_KEYS:
        points = client.get_metric_history(parent_run_id, key)
        if points:
            out[key] = sorted((m.step, m.value) for m in points)
    return out


def history(client: MlflowClient, run, key: str = "val_macro_f1") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def test_a_record_is_mirrored_run_for_run(tmp_path, store):
    """Each recorded trial becomes one child run: params, per-epoch metrics (step = epoch), the
    end state as tags and status, the best epoch and value, the failure's reason and text."""
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    record.start("a", **{"loss.gamma": 1.0, "long": "z" * 7000})
    record.results("a", 1.0, range(MAX_EPOCHS))
    record.end("a", "completed", MAX_EPOCHS)
    record.start("b", **{"loss.gamma": 5.0})
    record.results("b", 5.0, range(2))
    record.writer.write({"event": "retry", "trial_id": "b", "attempt": 1})
    record.end("b", "stopped_early", 2)
    record.start("c", **{"loss.gamma": 6.0})
    record.end("c", "failed", 0, "RuntimeError: boom", "Traceback\nRuntimeError: boom\n")
    mirror = MlflowMirror(settings)
    mirror.start()
    assert mirror.close() is True
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    (parent,) = parents
    assert parent.info.status == "FINISHED" and parent.data.tags["end_state"] == "completed"
    assert parent.data.params["search.max_epochs"] == str(MAX_EPOCHS)
    assert (
        parent.data.tags["space"] == "toy" and parent.data.tags["search.metric"] == "val_macro_f1"
    )
    assert (
        client.get_experiment(parent.info.experiment_id).tags[EXPERIMENT_KIND_TAG]
        == EXPERIMENT_KIND
    )
    assert [f.path for f in client.list_artifacts(parent.info.run_id)] == ["resolved.yaml"]
    a, b, c = children["a"], children["b"], children["c"]
    assert history(client, a) == [(e, f1_at(1.0, e)) for e in range(MAX_EPOCHS)]
    assert a.data.params["loss.gamma"] == "1.0" and a.data.params["long"].endswith(TRUNCATION_MARK)
    full = client.download_artifacts(a.info.run_id, "params/long.txt", str(tmp_path))
    assert Path(full).read_text() == "z" * 7000
    assert (a.info.status, a.data.tags["end_state"], a.data.tags["device"]) == (
        "FINISHED",
        "completed",
        "cpu",
    )
    assert a.data.tags["best_epoch"] == str(MAX_EPOCHS - 1)
    assert history(client, a, "best_val_macro_f1") == [(MAX_EPOCHS - 1, f1_at(1.0, MAX_EPOCHS - 1))]
    assert (b.data.tags["end_state"], b.data.tags["stopped_rung"], b.data.tags["retries"]) == (
        "stopped_early",
        "2",
        "1",
    )
    assert (c.info.status, c.data.tags["failure_reason"]) == ("FAILED", "RuntimeError: boom")
    text = Path(client.download_artifacts(c.info.run_id, "error.txt", str(tmp_path))).read_text()
    assert text == "Traceback\nRuntimeError: boom\n"
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


def test_a_store_that_fails_loses_nothing_and_never_raises(tmp_path):
    """While the store cannot be opened every pass fails quietly; once it can, one pass sends the
    whole record, and the announcement of recovery follows the first answered call."""
    folder = tmp_path / "later"
    folder.write_text("a file where the store's folder should be")
    settings = settings_for(tmp_path, tracking_uri=f"sqlite:///{folder}/mlflow.db")
    record = Record(settings.output_dir)
    record.start("a", **{"loss.gamma": 1.0})
    record.results("a", 1.0, range(3))
    mirror = MlflowMirror(settings)
    assert mirror.sync() is False and mirror.parent_run_id is None
    record.end("a", "stopped_early", 3)
    folder.unlink()
    sqlite_store(folder)
    assert mirror.sync() is True and mirror.close() is True
    client = MlflowClient(settings.tracking_uri)
    _, children = split_runs(all_runs(client, settings.experiment))
    assert history(client, children["a"]) == [(e, f1_at(1.0, e)) for e in range(3)]
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


def test_a_pass_sends_one_call_per_run(tmp_path, store, monkeypatch):
    """All the new epochs of a trial go out in one log_batch call (the parent's params: one more)."""
    calls: list[str] = []
    log_batch = MlflowClient.log_batch
    monkeypatch.setattr(
        MlflowClient,
        "log_batch",
        lambda self, run_id, **kw: calls.append(run_id) or log_batch(self, run_id, **kw),
    )
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    mirror = MlflowMirror(settings)
    assert mirror.sync()
    calls.clear()
    for trial in ("a", "b"):
        record.start(trial, **{"loss.gamma": 1.0})
        record.results(trial, 1.0, range(MAX_EPOCHS))
    assert mirror.sync()
    assert sorted(calls) == sorted(mirror.state.runs[t].run_id for t in ("a", "b"))
    mirror.close()


def test_interrupted_then_resumed_reopens_the_same_runs(tmp_path, store):
    """A search stopped with trial b unfinished ends b KILLED (`interrupted`) and the parent
    KILLED; the resumed search's mirror reopens both and sends the rest once."""
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    for trial in ("a", "b"):
        record.start(trial, **{"loss.gamma": 1.0})
        record.results(trial, 1.0, range(2))
    record.end("a", "stopped_early", 2)
    first = MlflowMirror(settings)
    first.start()
    first.close("FINISHED")
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    assert parents[0].info.status == "KILLED"
    assert (children["b"].info.status, children["b"].data.tags["end_state"]) == (
        "KILLED",
        "interrupted",
    )

    record = Record(settings.output_dir)  # the resumed driver's record writer
    record.results("b", 1.0, range(1, MAX_EPOCHS))  # epoch 1 again: a replay the record drops
    record.end("b", "completed", MAX_EPOCHS)
    second = MlflowMirror(settings_for(tmp_path, resume=True))
    second.start()
    second.close("FINISHED")
    parents, again = split_runs(all_runs(client, settings.experiment))
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {t: r.info.run_id for t, r in again.items()} == {
        t: r.info.run_id for t, r in children.items()
    }
    assert (again["b"].info.status, again["b"].data.tags["end_state"]) == ("FINISHED", "completed")
    assert history(client, again["b"]) == [(e, f1_at(1.0, e)) for e in range(MAX_EPOCHS)]
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


def sync_keeping_inflight(mirror: MlflowMirror) -> list[str]:
    """One sync of `mirror`; the state file's text the first time it named a call in flight (what a
    kill during that call would leave)."""
    saved: list[str] = []
    save = type(mirror.state).save

    def keep_inflight(state, path):
        save(state, path)
        if state.inflight is not None and not saved:
            saved.append(path.read_text())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(mirror.state), "save", keep_inflight)
        assert mirror.sync()
    return saved


@pytest.mark.parametrize("lost", ["state file", "last save"])
def test_a_kill_between_a_call_and_its_state_sends_nothing_twice(tmp_path, store, lost):
    """A SIGKILL right after a log_batch call, before the state recorded it: the state of before
    the call (in flight), or no state at all. The resumed mirror sends each epoch exactly once."""
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    record.start("a", **{"loss.gamma": 1.0})
    record.results("a", 1.0, range(2))
    mirror = MlflowMirror(settings)
    assert mirror.sync()
    record.results("a", 1.0, range(2, MAX_EPOCHS))
    state_path = settings.output_dir / STATE_FILE
    saved = sync_keeping_inflight(mirror)
    if lost == "state file":
        state_path.unlink()
    else:
        state_path.write_text(saved[0])  # as the kill left it: the call named in flight
        assert json.loads(saved[0])["inflight"]["trial_id"] == "a"
    record.end("a", "completed", MAX_EPOCHS)
    sent: list[str] = []  # SQL stores drop an identical metric row: count what is sent instead
    log_batch = MlflowClient.log_batch

    def counted(self, run_id, metrics=(), **kwargs):
        sent.extend(m.key for m in metrics)
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    resumed = MlflowMirror(settings_for(tmp_path, resume=True))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MlflowClient, "log_batch", counted)
        assert resumed.sync() and resumed.close()
    assert sent == ["best_val_macro_f1"]  # the end's; no epoch again
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    assert len(parents) == 1 and list(children) == ["a"]
    assert history(client, children["a"]) == [(e, f1_at(1.0, e)) for e in range(MAX_EPOCHS)]
    assert children["a"].data.tags["end_state"] == "completed"
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


def test_the_report_goes_through_the_mirror_once(tmp_path, store):
    """The report folder becomes the parent's artifacts and its Pareto ranks tags of the runs;
    a second pass with the same report sends nothing again."""
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    for trial in ("a", "b"):
        record.start(trial, **{"loss.gamma": 1.0})
        record.results(trial, 1.0, range(1))
        record.end(trial, "stopped_early", 1)
    report = settings.output_dir / "report"
    report.mkdir()
    (report / "summary.json").write_text(json.dumps({"ranks": {"a": 0, "b": 1}, "front": ["a"]}))
    mirror = MlflowMirror(settings)
    mirror.start()
    digest = mirror.state.report
    assert digest is not None and mirror.sync() and mirror.state.report == digest
    mirror.close()
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    tags = {
        t: (r.data.tags["pareto_rank"], r.data.tags["pareto_front"]) for t, r in children.items()
    }
    assert tags == {"a": ("0", "true"), "b": ("1", "false")}
    listed = [f.path for f in client.list_artifacts(parents[0].info.run_id, "report")]
    assert listed == ["report/summary.json"]


def counting_log_batch(sent: list[tuple[str, int]]):
    """MlflowClient.log_batch that also lists each (key, step) it sends (SQL stores drop an
    identical metric row, so what is sent is counted, not only what is stored)."""
    log_batch = MlflowClient.log_batch

    def counted(self, run_id, metrics=(), **kwargs):
        sent.extend((m.key, m.step) for m in metrics)
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    return counted


def test_looks_become_parent_metrics_stepped_by_seeds_once(tmp_path, store):
    """Each look's finite Δ and bounds are the parent's confirm.<candidate>.* metrics at step =
    paired seeds (null bounds left out); no run is made for the looks, the parent ends FINISHED,
    and further passes send nothing again."""
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    record.start("a", **{"loss.gamma": 1.0})
    record.results("a", 1.0, range(2))
    record.end("a", "completed", 2)
    for ended, figures in LOOKS:
        record.look(ended, figures)
    mirror = MlflowMirror(settings)
    sent: list[tuple[str, int]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MlflowClient, "log_batch", counting_log_batch(sent))
        mirror.start()
        first = len(sent)
        assert mirror.sync() and len(sent) == first  # nothing new: nothing sent
        assert mirror.close() is True
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    (parent,) = parents
    assert set(children) == {"a"}
    assert parent.info.status == "FINISHED" and parent.data.tags["end_state"] == "completed"
    assert parent_looks(client, parent.info.run_id) == expected_looks(LOOKS)
    looked = [k for k in sent if k[0].startswith("confirm.")]
    assert sorted(looked) == sorted(
        (k, step) for k, points in expected_looks(LOOKS).items() for step, _ in points
    )
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


@pytest.mark.parametrize("lost", ["nothing", "state file", "last save"])
def test_looks_of_an_interrupted_search_reach_the_parent_once_after_resume(tmp_path, store, lost):
    """The first two looks sent, the search stopped (the state kept, lost, or as a kill left it
    with the looks' call in flight); the resumed mirror sends the third look only, to the same
    parent, which ends FINISHED with each look's figures once."""
    settings = settings_for(tmp_path)
    record = Record(settings.output_dir)
    record.start("a", **{"loss.gamma": 1.0})
    record.results("a", 1.0, range(2))
    record.end("a", "completed", 2)
    record.look(*LOOKS[0])
    first = MlflowMirror(settings)
    assert first.sync()
    record.look(*LOOKS[1])
    state_path = settings.output_dir / STATE_FILE
    saved = sync_keeping_inflight(first)
    first.close("FINISHED")
    if lost == "state file":
        state_path.unlink()
    elif lost == "last save":
        state_path.write_text(saved[0])
        assert json.loads(saved[0])["inflight"]["trial_id"] == "look"

    record = Record(settings.output_dir)  # the resumed driver's writer
    record.look(*LOOKS[2])
    sent: list[tuple[str, int]] = []
    resumed = MlflowMirror(settings_for(tmp_path, resume=True))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MlflowClient, "log_batch", counting_log_batch(sent))
        assert resumed.sync() and resumed.close()
    assert sorted(k for k in sent if k[0].startswith("confirm.")) == [
        ("confirm.a.delta", 4),
        ("confirm.a.high", 4),
        ("confirm.a.low", 4),
    ]
    client = MlflowClient(settings.tracking_uri)
    parents, children = split_runs(all_runs(client, settings.experiment))
    (parent,) = parents
    assert parent.info.run_id == first.parent_run_id and set(children) == {"a"}
    assert parent.info.status == "FINISHED"
    assert parent_looks(client, parent.info.run_id) == expected_looks(LOOKS)
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


# ----- Ray searches ------------------------------------------------------------------------------


@pytest.mark.slow
def test_asha_search_logs_parent_and_children(ray_local, tmp_path, store):
    settings = settings_for(tmp_path)
    recorder = Recorder()
    mirror = MlflowMirror(settings)
    mirror.start()
    run_search(
        tmp_path,
        [RecordCallback(settings.output_dir, MAX_EPOCHS), recorder],
        param_space={"loss.kind": "focal", "loss.gamma": tune.grid_search(GAMMAS)},
        scheduler=ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1, reduction_factor=2),
        metric="val_macro_f1",
        mode="max",
    )
    assert mirror.close()
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
    state = json.loads((settings.output_dir / STATE_FILE).read_text())
    assert state["parent_run_id"] == parent.info.run_id
    assert {k: v["run_id"] for k, v in state["runs"].items()} == {
        k: r.info.run_id for k, r in children.items()
    }
    assert_nothing_lost(settings.output_dir, settings.tracking_uri)


@pytest.mark.slow
def test_restore_after_ctrl_c_reopens_runs_without_duplicates(ray_local, tmp_path, store):
    """Ctrl+C mid-search, then a new driver resumes (its own fresh callbacks): same parent, same
    children."""
    settings = settings_for(tmp_path)
    marker = tmp_path / "interrupted"
    space = {"loss.kind": "focal", "loss.gamma": tune.grid_search([3.0, 2.0, 1.0]), "sleep_s": 0.1}
    first = MlflowMirror(settings)
    first.start()
    run_search(
        tmp_path,
        [RecordCallback(settings.output_dir, MAX_EPOCHS), Interrupter(marker)],
        param_space=space,
        max_concurrent_trials=1,
    )
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

    second = MlflowMirror(settings_for(tmp_path, resume=True))  # as a new driver process would
    second.start()
    trials = run_search(
        tmp_path,
        [RecordCallback(settings.output_dir, MAX_EPOCHS)],
        param_space=space,
        max_concurrent_trials=1,
        resume=True,
    )
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
    assert {t.status for t in trials} == {"TERMINATED"}
    assert {t.trial_id for t in trials} == set(children)
