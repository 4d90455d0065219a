"""Symmetric cross-entropy (Wang et al. 2019, "Symmetric Cross Entropy for Robust Learning with
Noisy Labels", ICCV): cross-entropy plus the reverse cross-entropy of the prediction p
against the one-hot label q,

    ℓ_i = α·(−log p_{y_i}) + β·RCE_i,   RCE_i = −Σ_k p_k log q_k = −A·(1 − p_{y_i}) = 4·(1 − p_{y_i}),

with log 0 clamped to A = −4, the paper's choice. α = loss.sce_alpha, β = loss.sce_beta; the
defaults α = 0.1, β = 1 are the paper's CIFAR-10 setting (its CIFAR-100 one is α = 6, β = 0.1).
α = β = 0 is a zero loss, which trains nothing: refused.

Merges (`canonical`), exact in the formula and trained through the other kind's own code:
- α = 1 is −log p_y + 4β·(1 − p_y), Poly-1 with ε = 4β (`poly1`), merged there for 4β within
  poly1's range, and so with β = 0 it is cross-entropy (poly1's ε = 0);
- α = 0 with β = 1/4 is 1 − p_y, the generalized cross-entropy with q = 1 (`gce`), merged there.
Other α = 0 values are β·4·(1 − p_y), a multiple of that loss, which trains differently under
the optimizers (no merge).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from trainables.errors import UserInputError
from trainables.losses.kinds.poly1 import EPSILON
from trainables.losses.kinds.registry import LossKind, weighted_loss, weighted_mean
from trainables.params import Param

RCE_A = -4.0  # log 0 in the reverse cross-entropy (the paper's A)

ALPHA = Param(
    "loss.sce_alpha",
    0.1,
    "float",
    "Symmetric cross-entropy's weight α of cross-entropy (sce only).",
    low=0,
    high=10,
)
BETA = Param(
    "loss.sce_beta",
    1.0,
    "float",
    "Symmetric cross-entropy's weight β of the reverse cross-entropy 4·(1 − p_y) (sce only).",
    low=0,
    high=10,
)


def prepare(params: Mapping[str, Any], counts: Tensor, classes: Sequence[str]) -> None:
    """Nothing to compute; a UserInputError for α = β = 0."""
    if params["loss.sce_alpha"] == 0 and params["loss.sce_beta"] == 0:
        raise UserInputError(
            "loss.kind=sce: loss.sce_alpha and loss.sce_beta are both 0, so the loss is 0 and "
            "nothing trains; set one of them above 0"
        )


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    logp_t = logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,)
    rce = -RCE_A * -torch.expm1(logp_t)  # (N,) −A·(1 − p_y)
    return params["loss.sce_alpha"] * -logp_t + params["loss.sce_beta"] * rce  # (N,)


def same_as(values: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """poly1 with ε = 4β for α = 1 (ε in poly1's range); gce with q = 1 for α = 0, β = 1/4."""
    alpha, beta = values["loss.sce_alpha"], values["loss.sce_beta"]
    epsilon = -RCE_A * beta
    if alpha == 1 and epsilon <= EPSILON.high:
        return "poly1", {"loss.epsilon": epsilon}
    if alpha == 0 and epsilon == 1:
        return "gce", {"loss.q": 1.0}
    return None


def fused(
    logits: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    params: Mapping[str, Any],
    context: Any,
    batch_norm: bool,
) -> Tensor:
    """The merged kind's own weighted mean where `same_as` names one (so that the merge is bit
    for bit), the generic one elsewhere."""
    other = same_as(params)
    if other is not None:
        name, keys = other
        own = ChainMap(dict(keys), params)
        return weighted_loss(
            logits, target, sample_w, class_w, kind=name, params=own, batch_norm=batch_norm
        )
    loss = per_sample(logits, target, params, context)
    return weighted_mean(loss, target, sample_w, class_w, batch_norm)


SCE = LossKind(
    "sce",
    "symmetric cross-entropy α·CE + β·4(1 − p_y) (Wang et al. 2019)",
    per_sample,
    (ALPHA, BETA),
    prepare,
    same_as,
    fused,
)
