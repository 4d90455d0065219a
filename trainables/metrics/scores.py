"""Validation metrics from logits and targets: F1 (macro, per class, minority), accuracy,
worst-class recall, expected calibration error, predictive entropy and plain cross-entropy; torch
on any device. Temperature scaling (one fitted temperature) for calibration apart from accuracy."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.metrics import table as metric_table

ECE_BINS = 15  # equal-width confidence bins (Guo et al. 2017)
T_LOW, T_HIGH = 0.05, 20.0  # the range a fitted temperature is searched in


def _check(logits: Tensor, target: Tensor, num_classes: int) -> None:
    if logits.dim() != 2 or logits.shape[1] != num_classes or target.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits (N, {num_classes}) and target (N,), "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if target.numel() == 0:
        raise ValueError("metrics need at least one sample")
    if bool((target < 0).any() | (target >= num_classes).any()):
        raise ValueError(f"target holds class ids outside [0, {num_classes})")


def expected_calibration_error(prob: Tensor, target: Tensor, bins: int = ECE_BINS) -> Tensor:
    """ECE = Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|, B_b the samples whose top-1 confidence lies in
    (b/bins, (b+1)/bins]."""
    conf, pred = prob.max(1)  # (N,)
    conf = conf.double()
    edges = torch.arange(1, bins, dtype=torch.float64, device=conf.device) / bins
    index = torch.bucketize(conf, edges, right=False)  # bin i holds edges[i-1] < conf <= edges[i]
    correct = (pred == target).double()
    gap = torch.bincount(index, weights=correct, minlength=bins) - torch.bincount(
        index, weights=conf, minlength=bins
    )
    return gap.abs().sum() / conf.numel()


def classification_metrics(
    logits: Tensor, target: Tensor, num_classes: int, minority_class: int
) -> dict[str, float]:
    """Each metric of the table (trainables.metrics.table) that has a confusion-matrix form
    (macro_f1, accuracy, worst_recall, minority_f1, f1_c{k} for each class k), from the true ×
    predicted counts; ece and the entropy metrics, from the probabilities."""
    _check(logits, target, num_classes)
    if not 0 <= minority_class < num_classes:
        raise ValueError(f"minority_class must be in [0, {num_classes}), got {minority_class}")
    with torch.no_grad():
        prob = logits.detach().float().softmax(1)  # (N, C)
        pred = prob.argmax(1)
        k = num_classes
        confusion = torch.bincount(target * k + pred, minlength=k * k).reshape(k, k).double()
        table = metric_table.from_confusion()
        whole = [m for m in table if not m.per_class]
        each = [m for m in table if m.per_class]
        summary = [m.from_confusion(confusion, minority_class) for m in whole]  # () each
        summary.append(expected_calibration_error(prob, target))
        values = torch.cat([torch.stack(summary), *(m.from_confusion(confusion, 0) for m in each)])
        values = values.tolist()
    names = [m.name for m in whole] + ["ece"]
    names += [f"{m.name}{c}" for m in each for c in range(k)]  # (K,) each
    return dict(zip(names, values, strict=True)) | entropy_metrics(logits, target)


def entropy(logits: Tensor) -> Tensor:
    """Predictive entropy H = −Σ_c p_c ln p_c (nats) over the last dim, from log_softmax."""
    logp = logits.detach().float().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def entropy_metrics(logits: Tensor, target: Tensor) -> dict[str, float]:
    """entropy (mean H), entropy_correct and entropy_wrong (mean H over the rows predicted right
    or wrong; 0 when there are none)."""
    with torch.no_grad():
        h = entropy(logits)
        right = logits.argmax(-1) == target
        part = lambda m: (h * m).sum() / m.sum().clamp_min(1)  # noqa: E731
        values = torch.stack([h.mean(), part(right), part(~right)]).tolist()
    return dict(zip(("entropy", "entropy_correct", "entropy_wrong"), values, strict=True))


def sequence_entropy(logits: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Token-level entropy of sequence logits (N, L, C) aggregated per sequence over its real
    tokens (mask (N, L) True): (mean, max), each (N,); 0 for a sequence without tokens."""
    h = entropy(logits) * mask
    count = mask.sum(1)
    return h.sum(1) / count.clamp_min(1), h.amax(1)


def fit_temperature(logits: Tensor, target: Tensor) -> float:
    """The temperature T in [T_LOW, T_HIGH] minimising the mean NLL of softmax(logits/T)
    (Guo et al. 2017), by scipy's bounded scalar minimisation over ln T."""
    from scipy.optimize import minimize_scalar  # first use only: trial workers start faster

    z = logits.detach().double().cpu()
    y = target.cpu()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    found = minimize_scalar(nll, bounds=(math.log(T_LOW), math.log(T_HIGH)), method="bounded")
    return math.exp(found.x)


def calibration(logits: Tensor, target: Tensor, temperature: float | None) -> dict[str, float]:
    """temperature (fitted on these logits when None) and ece_scaled, the ECE of
    softmax(logits/temperature)."""
    t = fit_temperature(logits, target) if temperature is None else temperature
    with torch.no_grad():
        prob = (logits.detach().float() / t).softmax(1)
        return {"temperature": t, "ece_scaled": float(expected_calibration_error(prob, target))}


def cross_entropy_value(logits: Tensor, target: Tensor) -> float:
    """Unweighted mean cross-entropy, comparable across loss configurations."""
    with torch.no_grad():
        return float(F.cross_entropy(logits.detach().float(), target))
