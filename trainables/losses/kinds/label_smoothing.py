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

from trainables.losses.kinds.ce import zero_is_ce
from trainables.losses.kinds.registry import LossKind
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


fused, same_as = zero_is_ce("loss.smoothing", per_sample)  # ε = 0: a one-hot target


LABEL_SMOOTHING = LossKind(
    "label_smoothing",
    "cross-entropy with label smoothing ε (Szegedy et al. 2016)",
    per_sample,
    (SMOOTHING,),
    same_as=same_as,
    fused=fused,
)
