"""Logit-adjusted loss (Menon et al. 2021, "Long-tail learning via logit adjustment", ICLR,
eq. 10): cross-entropy on the logits shifted by τ times the log training prior,

    ℓ_i = −log softmax(f(x_i) + τ·log π)_{y_i},   π_k = n_k / Σ_j n_j,

n_k the training count of class k (`prepare` computes log π once per trial); predictions use the
unshifted logits. τ = 0 is cross-entropy, which `canonical` merges with ce (and which trains
through ce's own path, bit for bit). τ = 1 is Balanced Softmax (`balanced_softmax`).

A class without training rows has π_k = 0 and log π_k = −∞: such data is refused (a
UserInputError naming the class) for τ > 0 rather than clamped, since any clamp would be an
arbitrary margin for a class the loss never sees a label of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.errors import UserInputError
from trainables.losses.kinds.ce import zero_is_ce
from trainables.losses.kinds.registry import LossKind
from trainables.params import Param

TAU = Param(
    "loss.tau",
    1.0,
    "float",
    "Logit-adjustment τ: τ·log π (training class prior) added to the logits in training "
    "(logit_adjustment only).",
    low=0,
)


def log_prior(tau: float, counts: Tensor, classes: Sequence[str], kind: str) -> Tensor | None:
    """log π (K,) of the training counts (None for τ = 0); a UserInputError for an empty class."""
    if tau == 0:
        return None
    empty = [c for c, n in zip(classes, counts.tolist(), strict=True) if n == 0]
    if empty:
        raise UserInputError(
            f"loss.kind={kind}: class {empty[0]!r} has no training rows, so its prior π is 0 and "
            "log π = −∞; drop the class or use another loss.kind"
        )
    counts = counts.to(torch.float64)
    return (counts / counts.sum()).log().to(torch.float32)


def prepare(params: Mapping[str, Any], counts: Tensor, classes: Sequence[str]) -> Tensor | None:
    return log_prior(params["loss.tau"], counts, classes, "logit_adjustment")


def adjusted(logits: Tensor, target: Tensor, tau: float, log_pi: Tensor) -> Tensor:
    """ℓ (N,) = cross-entropy of logits + τ·log π."""
    shift = tau * log_pi.to(logits.device, logits.dtype)  # (C,)
    return F.cross_entropy(logits + shift, target, reduction="none")  # (N,)


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], log_pi: Any) -> Tensor:
    if log_pi is None:  # τ = 0
        return F.cross_entropy(logits, target, reduction="none")
    return adjusted(logits, target, params["loss.tau"], log_pi)


fused, same_as = zero_is_ce("loss.tau", per_sample)  # τ = 0: no shift


LOGIT_ADJUSTMENT = LossKind(
    "logit_adjustment",
    "logit-adjusted cross-entropy, logits + τ·log π (Menon et al. 2021)",
    per_sample,
    (TAU,),
    prepare,
    same_as,
    fused,
)
