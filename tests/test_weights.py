"""ELF sample weights against hand calculations, the formulas, numpy and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from trainables.data.dataset import Split
from trainables.errors import UserInputError
from trainables.losses.weights import (
    _batch_normalize_dense,
    _batch_normalize_masked,
    adaptive_scale,
    batch_normalize,
    batch_normalize_epoch,
    clip_weights,
    elf_weights,
    mean_weight,
    raw_weights,
    split_weights,
    train_weights,
    warmup_ramp,
    weight_stats,
)
from trainables.params import TrialParams

NAN = math.nan
e = math.exp


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def close(actual: torch.Tensor, expected: list[float]) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("none", 1.0), ("aco", e(1.35)), ("rso", e(1.45)), ("avg", e(1.40)), ("max", e(1.45))],
)
def test_elf_weights_by_hand(strategy: str, expected: float) -> None:
    w = elf_weights(t(0.35, 0.0), t(0.45, 1.0), strategy)
    second = {"none": 1.0, "aco": e(1.0), "rso": e(2.0), "avg": e(1.5), "max": e(2.0)}[strategy]
    close(w, [expected, second])


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="avg"):
        elf_weights(t(0.1), t(0.2), "mean")
    with pytest.raises(ValueError, match="impute"):
        raw_weights(t(0.1), t(0.2), "aco", "drop")


# aco, rso of four samples: both known, aco missing, rso missing, both missing
ACO, RSO = t(0.35, NAN, 0.2, NAN), t(0.45, 0.3, NAN, NAN)


def test_missing_default_fills_each_column() -> None:
    w = raw_weights(ACO, RSO, "avg", "default", default_aco=0.05, default_rso=0.10)
    close(w, [e(1.40), e(1 + (0.05 + 0.3) / 2), e(1 + (0.2 + 0.1) / 2), e(1 + 0.075)])


def test_missing_impute_uses_training_means() -> None:
    w = raw_weights(ACO, RSO, "avg", "impute")
    aco_mean, rso_mean = (0.35 + 0.2) / 2, (0.45 + 0.3) / 2
    close(w, [e(1.40), e(1 + (aco_mean + 0.3) / 2), e(1 + (0.2 + rso_mean) / 2),
              e(1 + (aco_mean + rso_mean) / 2)])  # fmt: skip
    # statistics come from the training columns, not from the split being weighted
    w = raw_weights(t(NAN), t(0.5), "aco", "impute", train_aco=t(0.6, 0.8), train_rso=t(0.1, 0.1))
    close(w, [e(1.7)])


def test_missing_min_takes_smallest_training_weight() -> None:
    w = raw_weights(ACO, RSO, "aco", "min")  # training aco known: 0.35, 0.2
    close(w, [e(1.35), e(1.2), e(1.2), e(1.2)])
    w = raw_weights(ACO, RSO, "max", "min")  # only sample 0 has both columns
    close(w, [e(1.45), e(1.45), e(1.45), e(1.45)])
    w = raw_weights(t(NAN, 0.9), t(0.1, 0.1), "aco", "min", train_aco=t(0.5, 0.7, NAN),
                    train_rso=t(0.0, 0.0, 0.0))  # fmt: skip
    close(w, [e(1.5), e(1.9)])


def test_missing_skip_gives_zero() -> None:
    close(raw_weights(ACO, RSO, "avg", "skip"), [e(1.40), 0.0, 0.0, 0.0])
    close(raw_weights(ACO, RSO, "rso", "skip"), [e(1.45), e(1.3), 0.0, 0.0])


@pytest.mark.parametrize("missing", ["default", "impute", "min"])
def test_all_nan_training_column_falls_back_to_defaults(missing: str) -> None:
    nan = t(NAN, NAN, NAN)
    w = raw_weights(nan, t(0.4, 0.5, 0.6), "avg", missing, default_aco=0.05, default_rso=0.1)
    assert torch.isfinite(w).all()
    if missing == "min":  # no training sample has ownership: the default weight
        close(w, [e(1.075)] * 3)
    else:
        close(w, [e(1 + (0.05 + r) / 2) for r in (0.4, 0.5, 0.6)])


def test_strategy_none_is_all_ones_even_with_nan() -> None:
    close(raw_weights(ACO, RSO, "none", "skip"), [1.0] * 4)


def test_mean_weight_leaves_zeros_out() -> None:
    assert mean_weight(t(2.0, 5.0, 0.0, 8.0)) == pytest.approx(5.0)
    assert mean_weight(t(0.0, 0.0)) == 1.0


def test_clip_weights() -> None:
    w, mask = clip_weights(t(0.2, 1.0, 5.0, 0.0), 0.5, 2.0)
    close(w, [0.5, 1.0, 2.0, 0.0])
    assert mask.tolist() == [True, False, True, False]
    w, mask = clip_weights(t(0.2, 5.0), None, 2.0)
    close(w, [0.2, 2.0])
    assert mask.tolist() == [False, True]
    w, mask = clip_weights(t(0.2, 5.0), None, None)
    close(w, [0.2, 5.0])
    assert not mask.any()
    with pytest.raises(UserInputError, match="clip_min"):
        clip_weights(t(1.0), 3.0, 2.0)


def test_batch_normalize_matches_formula() -> None:
    w = np.array([0.5, 1.0, 2.0, 4.0, 7.5])
    expected = 1.25 + 0.75 * np.tanh((w - w.mean()) / (w.std() + 1e-8))  # population std
    close(batch_normalize(torch.tensor(w)), expected.tolist())
    close(batch_normalize(t(3.0, 3.0, 3.0)), [1.25] * 3)
    close(batch_normalize(t(3.0)), [1.25])
    # zeros (skipped samples) stay 0 and are left out of mean and std
    kept = np.array([1.0, 2.0, 4.0])
    z = 1.25 + 0.75 * np.tanh((kept - kept.mean()) / (kept.std() + 1e-8))
    close(batch_normalize(t(1.0, 0.0, 2.0, 4.0)), [z[0], 0.0, z[1], z[2]])
    close(batch_normalize(t(0.0, 0.0)), [0.0, 0.0])


def test_batch_normalize_paths_agree_and_scale() -> None:
    w = torch.tensor([0.5, 1.0, 2.0, 4.0, 7.5], dtype=torch.float64)
    dense, masked = _batch_normalize_dense(w, -0.25), _batch_normalize_masked(w, -0.25)
    torch.testing.assert_close(dense, -0.25 * batch_normalize(w))
    torch.testing.assert_close(masked, dense)
    # a stack of batches is normalised row by row
    rows = torch.tensor([[1.0, 2.0, 4.0], [3.0, 0.0, 5.0]])
    expected = torch.stack([batch_normalize(rows[0]), batch_normalize(rows[1])])
    torch.testing.assert_close(batch_normalize(rows), expected)
    torch.testing.assert_close(_batch_normalize_masked(rows[:1], 1.0), expected[:1])


@pytest.mark.parametrize("n", [12, 14, 3])
def test_batch_normalize_epoch_matches_per_batch(n: int) -> None:
    w = torch.rand(n, generator=torch.Generator().manual_seed(n)) + 0.5
    w[5 % n] = 0.0
    expected = torch.cat([batch_normalize(w[i : i + 4]) for i in range(0, n, 4)])
    torch.testing.assert_close(batch_normalize_epoch(w, 4), expected)


def test_warmup_ramp_reaches_one_at_the_last_warmup_epoch() -> None:
    assert [warmup_ramp(i, 10, 0.5) for i in (0, 2, 4, 5, 9)] == [0, 2 / 4.5, 4 / 4.5, 1, 1]
    assert warmup_ramp(9, 10, 1.0) == 1  # the old ramp peaked at (E − 1)/E
    assert warmup_ramp(8, 10, 1.0) == pytest.approx(8 / 9)
    assert warmup_ramp(0, 10, 0.0) == warmup_ramp(0, 1, 0.5) == 1


def test_adaptive_scale_moves_from_the_mean_to_the_weights() -> None:
    w = t(0.5, 2.0, 0.0)
    m = 1.25  # mean of the positive entries; the skipped sample stays 0
    close(adaptive_scale(w, 0.0), [m, m, 0.0])
    close(adaptive_scale(w, 0.4), [m + (0.5 - m) * 0.4, m + (2 - m) * 0.4, 0.0])
    assert adaptive_scale(w, 1.0) is w
    # after a per-batch normalisation (mean 1) the ramp is not undone: its spread is ramp·spread
    z = batch_normalize(t(1.0, 2.0, 3.0, 6.0))
    for r in (0.25, 0.5):
        assert adaptive_scale(z, r).std().item() == pytest.approx(r * z.std().item(), rel=1e-5)


def _split(aco: list[list[float]], rso: list[list[float]]) -> Split:
    n = len(aco)
    return Split(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long), torch.tensor(aco),
                 torch.tensor(rso))  # fmt: skip


TRAIN = _split(
    [[0.9, 0.1, 0.35], [0.9, 0.1, NAN], [0.9, 0.1, 0.2]],
    [[0.0, 0.0, 0.45], [0.0, 0.0, 0.3], [0.0, 0.0, 0.6]],
)


def test_train_weights_pipeline() -> None:
    params = TrialParams.from_flat(
        {
            "elf.strategy": "aco",
            "elf.granularity": "package",
            "elf.missing": "impute",
            "elf.normalize": "mean",
            "elf.clip_max": 1.05,
        }  # fmt: skip
    )
    w, mask = train_weights(TRAIN, params)
    raw = np.exp(1 + np.array([0.35, 0.275, 0.2]))
    expected = np.minimum(raw, 1.05 * raw.mean())  # the bound is relative; the scale is kept
    close(w, expected.tolist())
    assert mask.tolist() == (raw > 1.05 * raw.mean()).tolist() == [True, False, False]


def test_split_weights_use_training_statistics() -> None:
    params = TrialParams.from_flat(
        {"elf.strategy": "aco", "elf.missing": "impute", "elf.normalize": "mean", "elf.clip_max": 1}
    )
    val = _split([[0.0, 0.0, NAN], [0.0, 0.0, 0.5]], [[0.0, 0.0, 0.1], [0.0, 0.0, 0.1]])
    w, mask = split_weights(val, TRAIN, params)
    train_mean = np.exp(1 + np.array([0.35, 0.275, 0.2])).mean()  # imputed 0.275: training mean
    close(w, [np.exp(1.275), train_mean])  # e^1.5 is clipped to 1 × the training mean
    assert mask.tolist() == [False, True]


def test_train_weights_warns_when_skip_drops_everything() -> None:
    params = TrialParams.from_flat({"elf.strategy": "aco", "elf.missing": "skip"})
    split = _split([[NAN] * 3] * 2, [[0.1] * 3] * 2)
    with pytest.warns(UserWarning, match="skip"):
        w, _ = train_weights(split, params)
    close(w, [0.0, 0.0])


def test_weight_stats_against_numpy_and_scipy() -> None:
    rng = np.random.default_rng(0)
    w = rng.lognormal(size=200)
    mask = rng.random(200) < 0.1
    stats = weight_stats(torch.tensor(w, dtype=torch.float32), torch.tensor(mask))
    w32 = w.astype(np.float32).astype(np.float64)
    expected = {
        "w_mean": w32.mean(),
        "w_std": w32.std(),
        "w_min": w32.min(),
        "w_max": w32.max(),
        "w_p25": np.percentile(w32, 25),
        "w_p50": np.percentile(w32, 50),
        "w_p75": np.percentile(w32, 75),
        "w_skew": scipy.stats.skew(w32),
        "w_kurtosis": scipy.stats.kurtosis(w32),
        "w_frac_clipped": mask.mean(),
        "w_ess": w32.sum() ** 2 / (w32**2).sum(),
    }
    assert stats.keys() == expected.keys()
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-9), key


def test_weight_stats_constant_weights_are_finite() -> None:
    stats = weight_stats(torch.full((50,), 0.1), torch.zeros(50, dtype=torch.bool))
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["w_skew"] == 0.0 and stats["w_kurtosis"] == 0.0
    assert stats["w_std"] == pytest.approx(0.0, abs=1e-12)
    assert stats["w_ess"] == pytest.approx(50.0)
