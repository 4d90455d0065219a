"""Validation metrics from logits and targets: F1 (macro, per class, minority), accuracy,
worst-class recall, expected calibration error and plain cross-entropy; torch on any device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ECE_BINS = 15  # equal-width confidence bins (Guo et al. 2017)


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
    """macro_f1, accuracy, worst_recall, minority_f1, ece and f1_c{k} for each class k.

    F1_k = 2·TP/(2·TP + FP + FN), 0 when the class is absent from both prediction and target
    (scikit-learn's zero_division=0); macro_f1 averages over all num_classes classes.
    worst_recall is the smallest recall over the classes present in the target.
    """
    _check(logits, target, num_classes)
    if not 0 <= minority_class < num_classes:
        raise ValueError(f"minority_class must be in [0, {num_classes}), got {minority_class}")
    with torch.no_grad():
        prob = logits.detach().float().softmax(1)  # (N, C)
        pred = prob.argmax(1)
        k = num_classes
        confusion = torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)  # true × pred
        tp = confusion.diag().double()
        support = confusion.sum(1).double()
        denom = support + confusion.sum(0).double()
        f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), 0.0)  # (K,)
        recall = torch.where(support > 0, tp / support.clamp_min(1), torch.inf)
        summary = torch.stack(
            [
                f1.mean(),
                tp.sum() / target.numel(),
                recall.min(),
                f1[minority_class],
                expected_calibration_error(prob, target),
            ]
        )
        values = torch.cat([summary, f1]).tolist()
    names = ["macro_f1", "accuracy", "worst_recall", "minority_f1", "ece"]
    names += [f"f1_c{c}" for c in range(k)]
    return dict(zip(names, values, strict=True))


def plain_ce(logits: Tensor, target: Tensor) -> float:
    """Unweighted mean cross-entropy, comparable across loss configurations."""
    with torch.no_grad():
        return float(F.cross_entropy(logits.detach().float(), target))
