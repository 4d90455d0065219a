"""Label-quality sample weights (the lq.* keys): ELF's competitor that reads only labels and
features.

    ω_i = q_i^κ / mean_j(q_j^κ)

q_i the cleanlab label-quality score of training row i under lq.method (out of fold,
`trainables.data.label_quality`), κ = lq.power ≥ 0, the mean over the training split: the weights
have mean 1 there, so they move weight from doubtful labels to trusted ones without changing the
loss scale. κ = 0 gives ω = 1 (plain training; `trainables.canonical` merges it into lq.method
none); larger κ trusts the scores more. Computed in float64 once per trial.

With ELF on too, the applied weight is the product: the ELF weight after all of its own steps
(clip once; per epoch batch normalisation and warm-up, `trainables.losses.weights`) times ω_i.
ELF's transforms never see ω, so each elf.* key means what it means without label quality, and
ω keeps its mean-1 rule.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.errors import UserInputError
from trainables.params import LQ_ON


def power_weights(q: Tensor, power: float) -> Tensor:
    """ω = q^κ / mean(q^κ) for scores q (n,) ≥ 0, in float64; all ones when every q^κ is 0."""
    raised = q.double().pow(power)
    mean = raised.mean()
    return raised / mean if bool(mean > 0) else torch.ones_like(raised)


def quality_weights(quality: Tensor | None, method: str, power: float) -> Tensor:
    """The training weights (n,) float64 of lq.method `method` (not none) at lq.power `power`,
    from the training split's `Split.quality` (n, M)."""
    if quality is None:
        raise UserInputError(
            f"lq.method={method}: the training split has no label-quality scores (the driver "
            "computes them when the space can set lq.method; see trainables.data.label_quality)"
        )
    return power_weights(quality[:, LQ_ON.index(method)], power)
