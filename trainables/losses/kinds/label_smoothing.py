"""Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer
Vision", §7): cross-entropy against (1 − ε)·onehot(y) + ε/K·1,

    ℓ_i = (1 − ε)·(−log p_{y_i}) + ε·(1/K)·Σ_k (−log p_k),

PyTorch's `F.cross_entropy(..., label_smoothing=ε)`. ε = 0 is cross-entropy, which `canonical`
merges with ce (and which trains through ce's own path, bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from trainables.losses.kinds.ce import fused as ce_fused
from trainables.losses.kinds.registry import LossKind, weighted_mean
from trainables.params import Param

SMOOTHING = Param(
    "loss.smoothing",
    0.1,
    "float",
    "Label-smoothing ε, the mass spread evenly over the classes (label_smoothing only).",
    low=0,
    high=0.99,
)


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    # PyTorch's own form of the formula above (one fused op; tests/test_losses.py checks both)
    eps = params["loss.smoothing"]
    return F.cross_entropy(logits, target, label_smoothing=eps, reduction="none")  # (N,)


def fused(
    logits: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    params: Mapping[str, Any],
    context: Any,
    batch_norm: bool,
) -> Tensor:
    if params["loss.smoothing"] == 0:  # cross-entropy: ce's path, so the merge is exact
        return ce_fused(logits, target, sample_w, class_w, params, context, batch_norm)
    loss = per_sample(logits, target, params, context)
    return weighted_mean(loss, target, sample_w, class_w, batch_norm)


def same_as(values: Mapping[str, Any]) -> str | None:
    """ε = 0: the target is one-hot, i.e. cross-entropy."""
    return "ce" if values["loss.smoothing"] == 0 else None


LABEL_SMOOTHING = LossKind(
    "label_smoothing",
    "cross-entropy with label smoothing ε (Szegedy et al. 2016)",
    per_sample,
    (SMOOTHING,),
    same_as=same_as,
    fused=fused,
)
