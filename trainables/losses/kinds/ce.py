"""Cross-entropy, ℓ_i = −log p_{y_i}: the default kind and the search's plain-CE baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from trainables.losses.functions import combined_loss
from trainables.losses.kinds.registry import LossKind


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    return F.cross_entropy(logits, target, reduction="none")  # (N,)


def fused(
    logits: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    params: Mapping[str, Any],
    context: Any,
    batch_norm: bool,
) -> Tensor:
    return combined_loss(logits, target, sample_w, class_w, kind="ce", batch_norm=batch_norm)


CE = LossKind("ce", "cross-entropy", per_sample, fused=fused)
