"""A user loss for `loss=examples.user_loss:taylor_ce`: the Taylor cross-entropy (Feng et al.
2020), a bounded loss for noisy labels.

    python -m search.run space=examples/user_loss.yaml loss=examples.user_loss:taylor_ce

Cross-entropy is −log p_y = Σ_{k≥1} (1 − p_y)^k / k; the Taylor cross-entropy keeps the first t
terms, ℓ = Σ_{k=1}^{t} (1 − p_y)^k / k, bounded by Σ_{k=1}^{t} 1/k (t = 1 is the mean absolute
error, (1 − p_y), halved; a larger t is closer to cross-entropy). The order t is its own key,
`loss.taylor_order`, declared in `taylor_ce.params`; the kind is `loss.kind=taylor_ce`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from trainables.params import Param


def taylor_ce(logits: Tensor, target: Tensor, params: Mapping[str, Any]) -> Tensor:
    """Taylor cross-entropy Σ_{k=1}^{t} (1 − p_y)^k / k, t = loss.taylor_order."""
    q = 1 - logits.softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (N,) 1 − p_y
    return sum(q**k / k for k in range(1, params["loss.taylor_order"] + 1))  # (N,)


taylor_ce.name = "taylor_ce"  # the value of loss.kind (here its __name__ too)
taylor_ce.params = [
    Param(
        "loss.taylor_order",
        2,
        "int",
        "Terms t of the Taylor cross-entropy (taylor_ce only): Σ_{k≤t} (1 − p_y)^k / k.",
        low=1,
        high=12,
    )
]
