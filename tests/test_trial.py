"""The training loop: reports every metric each epoch, is deterministic, resumes, fails honestly."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from trainables.params import TrialParams
from trainables.trial import NonFiniteError, pick_device, train

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
    "loss.alpha": 0.25,
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
    train(
        TrialParams.from_flat(flat),
        data,
        lambda m, s: reports.append((m, copy.deepcopy(s))),
        torch.device("cpu"),
        state,
    )
    return reports


def test_reports_every_metric_each_epoch(small_data):
    reports = run(small_data, FULL)
    assert [m["epoch"] for m, _ in reports] == [0, 1, 2]
    for m, _ in reports:
        missing = EXPECTED - m.keys()
        assert not missing, missing
        assert {f"val_f1_c{k}" for k in range(small_data.num_classes)} <= m.keys()
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


def test_resume_from_checkpoint_matches_uninterrupted(small_data):
    flat = FULL | {"train.max_epochs": 4}
    full = run(small_data, flat)
    state = full[1][1]  # checkpoint after epoch 1
    resumed = run(small_data, flat, state)
    assert [m["epoch"] for m, _ in resumed] == [2, 3]
    assert resumed[-1][0]["val_macro_f1"] == full[-1][0]["val_macro_f1"]
    assert torch.equal(resumed[-1][1]["model"]["head.weight"], full[-1][1]["model"]["head.weight"])


def test_non_finite_loss_fails_with_epoch(small_data):
    bad = type(small_data)(**{**small_data.__dict__})
    x = small_data.train.x.clone()
    x[0, 0] = float("nan")
    bad.train = type(small_data.train)(
        x, small_data.train.y, small_data.train.aco, small_data.train.rso, small_data.train.tokens
    )
    with pytest.raises(NonFiniteError, match="epoch 0"):
        run(bad, {"train.max_epochs": 2})


def test_cpu_fallback_when_no_cuda():
    assert pick_device(gpu_assigned=True).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(gpu_assigned=False).type == "cpu"
