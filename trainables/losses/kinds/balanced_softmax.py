"""Balanced Softmax (Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition",
NeurIPS, eq. 4): cross-entropy of the softmax reweighted by the training counts,

    ℓ_i = −log( n_{y_i}·e^{f_{y_i}} / Σ_k n_k·e^{f_k} ) = −log softmax(f(x_i) + log π)_{y_i},

which is the logit-adjusted loss with τ = 1 (Menon et al. 2021): it computes exactly that
(`logit_adjustment` with loss.tau = 1, the same operations) and `canonical` merges it there. No
keys; a class without training rows is refused as by logit_adjustment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from trainables.losses.kinds import logit_adjustment as la
from trainables.losses.kinds.registry import LossKind

ONE = {"loss.tau": 1.0}


def prepare(params: Mapping[str, Any], counts: Tensor, classes: Sequence[str]) -> Tensor:
    return la.log_prior(1.0, counts, classes, "balanced_softmax")


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], log_pi: Any) -> Tensor:
    return la.adjusted(logits, target, 1.0, log_pi)


def same_as(values: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Always logit_adjustment at τ = 1."""
    return "logit_adjustment", ONE


BALANCED_SOFTMAX = LossKind(
    "balanced_softmax",
    "Balanced Softmax, logits + log π (Ren et al. 2020; logit_adjustment at τ = 1)",
    per_sample,
    (),
    prepare,
    same_as,
)
