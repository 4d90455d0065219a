"""Poly-1 loss (Leng et al. 2022, "PolyLoss: A Polynomial Expansion Perspective of Classification
Loss Functions", ICLR, eq. 3): cross-entropy plus ε times the first polynomial term,

    ℓ_i = −log p_{y_i} + ε·(1 − p_{y_i}).

ε = 0 is cross-entropy, which `canonical` merges with ce (and which trains through ce's own path,
bit for bit); ε = −1 removes the first term of cross-entropy's Taylor series in (1 − p_y).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from trainables.losses.kinds.ce import zero_is_ce
from trainables.losses.kinds.registry import LossKind
from trainables.params import Param

EPSILON = Param(
    "loss.epsilon", 1.0, "float", "Poly-1 weight ε of (1 − p_y) (poly1 only).", low=-1, high=10
)


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    logp_t = logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,)
    return -logp_t + params["loss.epsilon"] * (1 - logp_t.exp())  # (N,)


fused, same_as = zero_is_ce("loss.epsilon", per_sample)  # ε = 0: no polynomial term


POLY1 = LossKind(
    "poly1",
    "Poly-1: cross-entropy + ε·(1 − p_y) (Leng et al. 2022)",
    per_sample,
    (EPSILON,),
    same_as=same_as,
    fused=fused,
)
