"""The training loop: reports every metric each epoch, is deterministic, resumes, fails honestly."""

from __future__ import annotations

import copy
import math
import pickle
from dataclasses import replace
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch
from fault_trainable import truncate
from helpers import train_with

from search.tune_trial import restore_metrics
from trainables.data.dataset import Split
from trainables.metrics.table import reported
from trainables.params import TrialParams
from trainables.plugins import Plugins
from trainables.trial.checkpoints import (
    CHECKPOINT_FILE,
    NoLoadableCheckpoint,
    candidates,
    restore,
)
from trainables.trial.loop import pick_device, run_local
from trainables.trial.nonfinite import (
    FAILED_EPOCH,
    REASON,
    NonFiniteError,
    failed_epoch,
    flagged_result,
)

EXPECTED = {
    "val_macro_f1",
    "val_accuracy",
    "val_worst_recall",
    "val_minority_f1",
    "val_ece",
    "val_loss",
    "train_loss",
    "epoch_time_s",
    "train_time_s",
    "epoch",
    "best_val_macro_f1",
    "best_epoch",
    "w_mean",
    "w_std",
    "w_min",
    "w_max",
    "w_p25",
    "w_p50",
    "w_p75",
    "w_skew",
    "w_kurtosis",
    "w_frac_clipped",
    "w_ess",
}
FULL = {
    "loss.kind": "focal",
    "loss.gamma": 2.0,
    "loss.alpha": "inverse_frequency",
    "elf.strategy": "rso",
    "elf.granularity": "package",
    "elf.missing": "impute",
    "elf.normalize": "mean",
    "elf.clip_min": 0.5,
    "elf.clip_max": 2.0,
    "elf.batch_norm": True,
    "elf.warmup_frac": 0.5,
    "cw.method": "effective",
    "train.max_epochs": 3,
}


def run(data, flat, state=None):
    reports = []
    train_with(
        TrialParams.from_flat(flat), data, lambda m, s: reports.append((m, copy.deepcopy(s))), state
    )
    return reports


def test_reports_every_metric_each_epoch(small_data):
    reports = run(small_data, FULL)
    assert [m["epoch"] for m, _ in reports] == [0, 1, 2]
    for m, _ in reports:
        missing = EXPECTED - m.keys()
        assert not missing, missing
        per_class = {f"val_f1_c{k}" for k in range(small_data.num_classes)}
        assert m.keys() == set(reported()) | per_class | {"best_val_macro_f1"}
        assert all(math.isfinite(v) for v in m.values())
    times = [m["train_time_s"] for m, _ in reports]
    assert times == sorted(times)
    assert reports[-1][0]["best_val_macro_f1"] == max(m["val_macro_f1"] for m, _ in reports)


def test_deterministic_bit_for_bit(small_data):
    a = [m for m, _ in run(small_data, FULL)]
    b = [m for m, _ in run(small_data, FULL)]
    drop = {"epoch_time_s", "train_time_s"}
    assert [{k: v for k, v in m.items() if k not in drop} for m in a] == [
        {k: v for k, v in m.items() if k not in drop} for m in b
    ]


def test_training_never_reads_the_test_split(small_data):
    """What the search's trials get (`without_test`) and a test split of garbage (NaN features,
    impossible labels) train exactly as the real one: only the confirmation stage reads it."""
    t = small_data.test
    garbage = Split(t.x * math.nan, t.y * 0 + 99, t.aco * math.nan, t.rso * math.nan, t.tokens)
    drop = {"epoch_time_s", "train_time_s"}
    runs = [
        [{k: v for k, v in m.items() if k not in drop} for m, _ in run(data, FULL)]
        for data in (small_data, small_data.without_test(), replace(small_data, test=garbage))
    ]
    assert runs[0] == runs[1] == runs[2]
    assert len(small_data.without_test().test) == 0 and len(small_data.test) > 0


def test_resume_from_checkpoint_matches_uninterrupted(small_data):
    flat = FULL | {"train.max_epochs": 4}
    full = run(small_data, flat)
    state = full[1][1]  # checkpoint after epoch 1
    resumed = run(small_data, flat, state)
    assert [m["epoch"] for m, _ in resumed] == [2, 3]
    assert resumed[-1][0]["val_macro_f1"] == full[-1][0]["val_macro_f1"]
    assert torch.equal(
        resumed[-1][1]["state"]["model"]["head.weight"],
        full[-1][1]["state"]["model"]["head.weight"],
    )


def test_non_finite_loss_fails_with_epoch(small_data):
    bad = type(small_data)(**{**small_data.__dict__})
    x = small_data.train.x.clone()
    x[0, 0] = float("nan")
    bad.train = type(small_data.train)(
        x, small_data.train.y, small_data.train.aco, small_data.train.rso, small_data.train.tokens
    )
    with pytest.raises(NonFiniteError, match="epoch 0") as caught:
        run(bad, {"train.max_epochs": 2})
    error = caught.value
    assert error.epoch == 0 and set(error.keys) >= {"val_macro_f1", "val_ece", "train_loss"}
    again = pickle.loads(pickle.dumps(error))  # crosses Ray's process boundary intact
    assert (str(again), again.epoch, again.keys) == (str(error), error.epoch, error.keys)


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("nan", "loss", "non-finite training loss (nan) at epoch 1"),
        ("inf", "loss", "non-finite training loss"),
        ("-inf", "loss", "non-finite training loss"),
        ("nan", "metric", "non-finite validation metric val_ece at epoch 1"),
        ("inf", "metric", "non-finite validation metric val_ece at epoch 1"),
        ("-inf", "metric", "non-finite validation metric val_ece at epoch 1"),
    ],
)
def test_nan_and_inf_faults_fail_at_their_epoch(small_data, kind, target, message):
    """NaN, +inf and -inf in the loss or in a validation metric are all one failure, at the epoch."""
    reports = []
    flat = {"train.max_epochs": 3, "fault.kind": kind, "fault.target": target, "fault.epoch": 1}
    faulty = Plugins(trainable="tests.fault_trainable:train")
    with pytest.raises(NonFiniteError) as caught:
        run_local(flat, small_data, plugins=faulty, sink=lambda m, s: reports.append(m))
    assert message in str(caught.value) and caught.value.epoch == 1
    assert [m["epoch"] for m in reports] == [0]  # the bad epoch is never reported as a result


def test_flagged_result_reports_nan_metrics_and_the_epoch():
    error = NonFiniteError("non-finite training loss (nan) at epoch 3", 3, EXPECTED)
    result = flagged_result(error)
    assert failed_epoch(result) == 3 and result[FAILED_EPOCH] == 3
    assert result[REASON] == "NonFiniteError: non-finite training loss (nan) at epoch 3"
    metrics = {k: v for k, v in result.items() if k not in (FAILED_EPOCH, REASON)}
    assert "val_macro_f1" in metrics and all(math.isnan(v) for v in metrics.values())
    assert not {"epoch", "best_epoch", "best_val_macro_f1"} & metrics.keys()  # no score posing
    assert failed_epoch({"epoch": 3, "val_macro_f1": 0.5}) is None
    assert failed_epoch(None) is None


# Checkpoint fallback (trainables/trial/checkpoints.py): real checkpoints of a real 3-epoch run, laid out
# as Ray keeps them (checkpoint_000000 ... in the trial's folder), then damaged in each way.


@pytest.fixture(scope="module")
def three_epochs(small_data):
    """The reports of an uninterrupted 3-epoch run (metrics, checkpoint state) per epoch."""
    return run(small_data, FULL | {"train.max_epochs": 3})


def write_checkpoints(root: Path, states: list[dict], fs: pafs.FileSystem | None = None) -> str:
    """Save each state as Ray lays checkpoints out; returns the newest folder's path."""
    import io

    fs = fs or pafs.LocalFileSystem()
    for i, state in enumerate(states):
        folder = f"{root}/checkpoint_{i:06d}"
        fs.create_dir(folder)
        buf = io.BytesIO()
        torch.save(state, buf)
        with fs.open_output_stream(f"{folder}/{CHECKPOINT_FILE}") as f:
            f.write(buf.getvalue())
    return f"{root}/checkpoint_{len(states) - 1:06d}"


def test_good_newest_checkpoint_loads_without_fallback(three_epochs, tmp_path):
    newest = write_checkpoints(tmp_path, [s for _, s in three_epochs])
    restored = restore(pafs.LocalFileSystem(), newest)
    assert restored.epoch == 2 and restored.path == newest and restored.skipped == ()
    assert torch.equal(
        restored.state["state"]["model"]["head.weight"],
        three_epochs[2][1]["state"]["model"]["head.weight"],
    )
    assert restore_metrics(restored) == {"restored_from_epoch": 2, "checkpoints_skipped": 0}
    assert restore_metrics(None) == {}


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda fs, d: truncate(fs, d, CHECKPOINT_FILE), "zip archive"),
        (lambda fs, d: fs.open_output_stream(f"{d}/{CHECKPOINT_FILE}").close(), "Error"),
        (lambda fs, d: _write(fs, f"{d}/{CHECKPOINT_FILE}", b"garbage" * 100), "Error"),
        (lambda fs, d: fs.delete_file(f"{d}/{CHECKPOINT_FILE}"), "no state.pt"),
        (lambda fs, d: _write(fs, f"{d}/{CHECKPOINT_FILE}", _saved({"x": 1})), "not a trial"),
    ],
    ids=["truncated", "empty", "garbage", "missing", "not-a-checkpoint"],
)
def test_damaged_newest_falls_back_to_the_previous_with_a_warning(
    three_epochs, tmp_path, caplog, damage, reason
):
    fs = pafs.LocalFileSystem()
    newest = write_checkpoints(tmp_path, [s for _, s in three_epochs])
    damage(fs, newest)
    with caplog.at_level("WARNING", logger="trainables.trial.checkpoints"):
        restored = restore(fs, newest)
    assert restored.epoch == 1 and restored.path.endswith("checkpoint_000001")
    ((path, why),) = restored.skipped
    assert path == newest and reason in why
    assert "checkpoint_000002" in caplog.text and "checkpoint_000001" in caplog.text
    note = restore_metrics(restored)
    assert note["restored_from_epoch"] == 1 and note["checkpoints_skipped"] == 1
    assert "checkpoint_000002" in note["checkpoint_fallback"]


def test_fallback_goes_back_to_the_oldest_and_resumes_exactly(three_epochs, small_data, tmp_path):
    fs = pafs.LocalFileSystem()
    newest = write_checkpoints(tmp_path, [s for _, s in three_epochs])
    truncate(fs, newest, CHECKPOINT_FILE)
    _write(fs, f"{tmp_path}/checkpoint_000001/{CHECKPOINT_FILE}", b"\x00" * 10)
    (tmp_path / "checkpoint_000009").mkdir()  # newer than Ray's newest: not a candidate
    (tmp_path / "events.out").write_text("not a checkpoint folder")
    restored = restore(fs, newest)
    assert restored.epoch == 0 and len(restored.skipped) == 2
    assert [Path(p).name for p, _ in restored.skipped] == ["checkpoint_000002", "checkpoint_000001"]
    resumed = run(small_data, FULL | {"train.max_epochs": 3}, restored.state)
    assert [m["epoch"] for m, _ in resumed] == [1, 2]  # epochs 1 and 2 re-trained, once each
    for (got, _), (want, _) in zip(resumed, three_epochs[1:], strict=True):
        assert (
            got["val_macro_f1"] == want["val_macro_f1"] and got["train_loss"] == want["train_loss"]
        )


def test_no_loadable_checkpoint_is_an_error_naming_each(three_epochs, tmp_path):
    fs = pafs.LocalFileSystem()
    newest = write_checkpoints(tmp_path, [s for _, s in three_epochs])
    for i in range(3):
        truncate(fs, f"{tmp_path}/checkpoint_{i:06d}", CHECKPOINT_FILE)
    with pytest.raises(NoLoadableCheckpoint, match="3 tried") as caught:
        restore(fs, newest)
    for i in range(3):
        assert f"checkpoint_{i:06d}" in str(caught.value)
    assert "not restarting from scratch" in str(caught.value)


def test_fallback_works_on_a_non_local_filesystem(three_epochs):
    fs = pafs._MockFileSystem()  # an in-memory pyarrow filesystem, as a URI's would be
    newest = write_checkpoints("bucket/search/tune/t1", [s for _, s in three_epochs], fs)
    assert candidates(fs, newest) == [
        f"bucket/search/tune/t1/checkpoint_{i:06d}" for i in (2, 1, 0)
    ]
    truncate(fs, newest, CHECKPOINT_FILE)
    assert restore(fs, newest).epoch == 1


def _saved(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as f:
        f.write(data)


def test_cpu_fallback_when_no_cuda():
    assert pick_device(gpu_assigned=True).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(gpu_assigned=False).type == "cpu"
