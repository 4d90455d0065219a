"""Focal loss, ℓ_i = −α_{y_i}(1 − p_{y_i})^γ log p_{y_i} (Lin et al. 2017): γ = 0 with no α is
cross-entropy, which `canonical` merges with ce."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from trainables.losses.functions import combined_loss, focal_alpha, focal_loss
from trainables.losses.kinds.registry import LossKind
from trainables.params import Param

GAMMA = Param("loss.gamma", 2.0, "float", "Focal focusing parameter γ (focal only).", low=0, high=5)
ALPHA = Param(
    "loss.alpha",
    None,
    "alpha",
    "Focal per-class α (focal only): null; a number α (two classes: α for the minority "
    "class, 1 − α for the other); inverse_frequency (α_k ∝ 1/n_k), sqrt_inverse_frequency "
    "(∝ 1/√n_k) or effective:β (∝ (1 − β)/(1 − β^n_k)), each summing to 1; or a list of "
    "one value per class.",
)


def prepare(params: Mapping[str, Any], counts: Tensor, classes: Sequence[str]) -> Tensor | None:
    """The per-class α (K,) of loss.alpha on these training counts (None: no α)."""
    return focal_alpha(params["loss.alpha"], counts, classes)


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], alpha: Any) -> Tensor:
    return focal_loss(logits, target, params["loss.gamma"], alpha)  # (N,)


def fused(
    logits: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    params: Mapping[str, Any],
    alpha: Any,
    batch_norm: bool,
) -> Tensor:
    gamma = params["loss.gamma"]
    return combined_loss(
        logits,
        target,
        sample_w,
        class_w,
        kind="focal",
        gamma=gamma,
        alpha=alpha,
        batch_norm=batch_norm,
    )


def same_as(values: Mapping[str, Any]) -> str | None:
    """(1 − p)^0 = 1: γ = 0 without α trains as cross-entropy."""
    return "ce" if values["loss.gamma"] == 0 and values["loss.alpha"] is None else None


FOCAL = LossKind("focal", "focal loss", per_sample, (GAMMA, ALPHA), prepare, same_as, fused)
