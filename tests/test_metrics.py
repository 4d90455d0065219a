"""Validation metrics against scikit-learn and an independent numpy ECE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, recall_score

from trainables.metrics.scores import classification_metrics, cross_entropy_value


def _ece_numpy(prob: np.ndarray, target: np.ndarray, bins: int = 15) -> float:
    """Guo et al. 2017: bins (lo, hi] of top-1 confidence, weighted |accuracy − confidence|."""
    conf, pred = prob.max(1), prob.argmax(1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(
                (pred[inside] == target[inside]).mean() - conf[inside].mean()
            )
    return ece


def _check_against_sklearn(logits: torch.Tensor, target: torch.Tensor, k: int, minority: int):
    m = classification_metrics(logits, target, k, minority)
    y, p = target.numpy(), logits.argmax(1).numpy()
    labels = list(range(k))
    per_class = f1_score(y, p, average=None, labels=labels, zero_division=0)
    assert m["macro_f1"] == pytest.approx(
        f1_score(y, p, average="macro", labels=labels, zero_division=0), abs=1e-12
    )
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    present = np.unique(y)
    recalls = recall_score(y, p, average=None, labels=present, zero_division=0)
    assert m["worst_recall"] == pytest.approx(recalls.min(), abs=1e-12)
    assert m["minority_f1"] == pytest.approx(per_class[minority], abs=1e-12)
    for c in labels:
        assert m[f"f1_c{c}"] == pytest.approx(per_class[c], abs=1e-12)
    return m


def test_metrics_match_sklearn_on_random_data() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.multinomial(torch.tensor([0.6, 0.25, 0.1, 0.05]), 500, True, generator=gen)
    logits = torch.randn(500, 4, generator=gen) + 1.5 * F.one_hot(target, 4)
    m = _check_against_sklearn(logits, target, 4, minority=3)
    entropies = {"entropy", "entropy_correct", "entropy_wrong"}
    assert set(m) == {"macro_f1", "accuracy", "worst_recall", "minority_f1", "ece"} | entropies | {
        f"f1_c{c}" for c in range(4)
    }


def test_class_absent_from_prediction_and_target_scores_zero() -> None:
    # class 3 never occurs and is never predicted; class 2 occurs but is never predicted
    target = torch.tensor([0, 0, 1, 1, 2, 0])
    pred = torch.tensor([0, 1, 1, 1, 0, 0])
    logits = F.one_hot(pred, 4).float() * 3
    m = _check_against_sklearn(logits, target, 4, minority=2)
    assert m["f1_c3"] == 0.0 and m["f1_c2"] == 0.0 and m["worst_recall"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 * 2 / (3 + 3) + 2 * 2 / (2 + 3)) / 4)


def test_ece_against_numpy_on_hand_made_probabilities() -> None:
    prob = np.array(
        [
            [0.95, 0.03, 0.02],  # confident, right
            [0.90, 0.05, 0.05],  # confident, wrong
            [0.50, 0.30, 0.20],  # unsure, right
            [0.42, 0.33, 0.25],  # unsure, wrong
            [0.10, 0.85, 0.05],  # right
            [0.19, 0.19, 0.62],  # wrong
            [0.34, 0.33, 0.33],  # near uniform, right
        ]
    )
    target = np.array([0, 1, 0, 2, 1, 0, 0])
    logits = torch.tensor(np.log(prob), dtype=torch.float32)
    m = classification_metrics(logits, torch.tensor(target), 3, 2)
    assert m["ece"] == pytest.approx(_ece_numpy(prob, target), abs=1e-6)
    # by hand: no two confidences share a bin, so ECE = mean |correct − confidence|
    by_hand = np.mean(np.abs((prob.argmax(1) == target) - prob.max(1)))
    assert m["ece"] == pytest.approx(by_hand, abs=1e-6)


def test_ece_against_numpy_on_random_data() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1000, 5, generator=gen) * 2
    target = torch.randint(0, 5, (1000,), generator=gen)
    prob = logits.double().softmax(1).numpy()
    m = classification_metrics(logits, target, 5, 0)
    assert m["ece"] == pytest.approx(_ece_numpy(prob, target.numpy()), abs=1e-5)


def test_plain_ce_and_input_checks() -> None:
    logits, target = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0))])
    assert cross_entropy_value(logits, target) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="outside"):
        classification_metrics(logits, torch.tensor([0, 2]), 2, 1)
    with pytest.raises(ValueError, match="minority_class"):
        classification_metrics(logits, target, 2, 5)


def test_entropy_against_scipy_split_by_correctness() -> None:
    from scipy.stats import entropy as scipy_entropy

    gen = torch.Generator().manual_seed(3)
    target = torch.randint(0, 5, (300,), generator=gen)
    logits = torch.randn(300, 5, generator=gen) * 2 + F.one_hot(target, 5)
    m = classification_metrics(logits, target, 5, 0)
    h = scipy_entropy(logits.softmax(1).double().numpy(), axis=1)  # natural log
    right = (logits.argmax(1) == target).numpy()
    assert m["entropy"] == pytest.approx(h.mean(), rel=1e-5)
    assert m["entropy_correct"] == pytest.approx(h[right].mean(), rel=1e-5)
    assert m["entropy_wrong"] == pytest.approx(h[~right].mean(), rel=1e-5)
    sure = F.one_hot(target, 5).float() * 50  # every row right and certain
    assert classification_metrics(sure, target, 5, 0)["entropy_wrong"] == 0.0


def test_sequence_entropy_per_sequence_mean_and_max() -> None:
    from scipy.stats import entropy as scipy_entropy

    from trainables.metrics.scores import sequence_entropy

    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 4, 6, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    mean, top = sequence_entropy(logits, mask)
    h = scipy_entropy(logits.softmax(-1).double().numpy(), axis=-1)
    for i in range(3):
        real = h[i][mask[i].numpy()]
        assert float(mean[i]) == pytest.approx(real.mean(), rel=1e-5)
        assert float(top[i]) == pytest.approx(real.max(), rel=1e-5)


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model() -> None:
    from scipy.optimize import minimize_scalar

    from trainables.metrics.scores import calibration, fit_temperature

    gen = torch.Generator().manual_seed(5)
    target = torch.randint(0, 4, (2000,), generator=gen)
    calibrated = torch.randn(2000, 4, generator=gen) + 1.2 * F.one_hot(target, 4)
    logits = calibrated * 4  # the same ranking, four times too confident
    t = fit_temperature(logits, target)
    z = logits.double().numpy()

    def nll(temp: float) -> float:  # an independent NLL in numpy
        a = z / temp
        a = a - a.max(1, keepdims=True)
        return float(-(a[np.arange(2000), target.numpy()] - np.log(np.exp(a).sum(1))).mean())

    best = minimize_scalar(nll, bounds=(0.05, 20), method="bounded").x
    assert t == pytest.approx(best, rel=1e-3) and 2.5 < t < 6
    m = calibration(logits, target, None)
    before = classification_metrics(logits, target, 4, 0)["ece"]
    assert m["temperature"] == t and m["ece_scaled"] < before / 3
    assert calibration(logits, target, 1.0)["ece_scaled"] == pytest.approx(before)
