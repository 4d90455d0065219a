"""Generalized cross-entropy (Zhang & Sabuncu 2018, "Generalized Cross Entropy Loss for Training
Deep Neural Networks with Noisy Labels", NeurIPS, the L_q loss):

    ℓ_i = (1 − p_{y_i}^q) / q,   q = loss.q ∈ [0, 1],

the negative Box-Cox transform of p_y: q = 1 is 1 − p_y (the mean absolute error over the one-hot
target up to a factor 2), and q → 0 is cross-entropy, −log p_y. Computed as −expm1(q·log p_y)/q,
which stays exact where 1 − p^q would cancel (small q·log p_y). q = 0 is allowed and means that
limit: cross-entropy, which `canonical` merges with ce (and which trains through ce's own path,
bit for bit). Default q = 0.7, the paper's. The paper's truncated L_q loss is not implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.losses.kinds.ce import zero_is_ce
from trainables.losses.kinds.registry import LossKind
from trainables.params import Param

Q = Param(
    "loss.q",
    0.7,
    "float",
    "GCE exponent q of (1 − p_y^q)/q; 0 is its limit, cross-entropy (gce only).",
    low=0,
    high=1,
)


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    q = params["loss.q"]
    if q == 0:  # the limit (the fused form takes ce's own path there)
        return F.cross_entropy(logits, target, reduction="none")
    logp_t = logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,)
    return -torch.expm1(q * logp_t) / q  # (N,) (1 − p^q)/q


fused, same_as = zero_is_ce("loss.q", per_sample)  # q = 0: the limit, cross-entropy


GCE = LossKind(
    "gce",
    "generalized cross-entropy (1 − p_y^q)/q (Zhang & Sabuncu 2018)",
    per_sample,
    (Q,),
    same_as=same_as,
    fused=fused,
)
