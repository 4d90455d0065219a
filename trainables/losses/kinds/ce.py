"""Cross-entropy, ℓ_i = −log p_{y_i}: the default kind and the search's plain-CE baseline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from trainables.losses.functions import combined_loss
from trainables.losses.kinds.registry import Fused, LossKind, PerSample, weighted_mean


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    return F.cross_entropy(logits, target, reduction="none")  # (N,)


def ce_when(is_ce: Callable[[Mapping[str, Any], Any], bool], per_sample: PerSample) -> Fused:
    """The fused weighted mean of a kind that is cross-entropy where `is_ce(params, context)`:
    there ce's own path (so the merge `canonical` makes is bit-exact for a direct caller too),
    elsewhere the kind's per-sample loss, weighted and averaged."""

    def fused(
        logits: Tensor,
        target: Tensor,
        sample_w: Tensor | None,
        class_w: Tensor | None,
        params: Mapping[str, Any],
        context: Any,
        batch_norm: bool,
    ) -> Tensor:
        if is_ce(params, context):
            return combined_loss(
                logits, target, sample_w, class_w, kind="ce", batch_norm=batch_norm
            )
        loss = per_sample(logits, target, params, context)
        return weighted_mean(loss, target, sample_w, class_w, batch_norm)

    return fused


def zero_is_ce(
    key: str, per_sample: PerSample
) -> tuple[Fused, Callable[[Mapping[str, Any]], str | None]]:
    """(fused, same_as) of a kind that is cross-entropy when its key `key` is 0 (`ce_when`); the
    rule merges 0 with ce."""

    def same_as(values: Mapping[str, Any]) -> str | None:
        return "ce" if values[key] == 0 else None

    return ce_when(lambda params, context: params[key] == 0, per_sample), same_as


CE = LossKind(
    "ce", "cross-entropy", per_sample, fused=ce_when(lambda params, context: True, per_sample)
)
