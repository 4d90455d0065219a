"""LDAM loss with deferred re-weighting (Cao et al. 2019, "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss", NeurIPS; LDAM-DRW): cross-entropy
after a margin is taken off the true class's logit, larger for rarer classes,

    ℓ_i = −log softmax(s·(f(x_i) − Δ_{y_i}·onehot(y_i)))_{y_i},   Δ_k = C / n_k^{1/4},

n_k the training count of class k and C such that the largest margin (the rarest class's) is
m = loss.ldam_margin (the paper's 0.5): Δ_k = m·(min_j n_j / n_k)^{1/4}. s = loss.ldam_scale.

What this computes, and why: the paper's f are the logits of normalised features and normalised
class weights, in [−1, 1], which its scale s = 30 stretches for the softmax (its code, too,
takes the margin off the logits and then multiplies by s). The models here return plain logits,
so s multiplies the plain logits: s·Δ is the margin in the softmax's units, and the last layer
of a plain-logit model can absorb part of s. The default s = 1 keeps the logits as they are;
s = 30 is the paper's value for normalised logits.

Deferred re-weighting (DRW): from epoch ⌊loss.drw_frac·train.max_epochs⌋ (epochs from 0) on,
each sample's loss is multiplied by its class's effective-number weight (Cui et al. 2019),
w_k ∝ (1 − β)/(1 − β^{n_k}) with β = 0.9999, normalised to Σ_k w_k = K: the weights of
`class_weights(counts, "effective", 0.9999)`, which cw.method=effective applies from the start.
The paper re-weights from epoch 160 of 200 (drw_frac = 0.8, the default); drw_frac = 1 never
does. (The paper's code hands the weights to a weighted mean, Σ w_{y_i}ℓ_i / Σ w_{y_i}; here they
multiply each sample's loss like every class weight of this harness, and the mean is over N.)
The epoch reaches the loss through `LossKind.at_epoch`.

Merges (`canonical`): m = 0, s = 1 and no re-weighting is cross-entropy, merged with ce (and
trained through ce's own path, bit for bit). m = 0 with s ≠ 1 is cross-entropy of s·f, which
trains differently: no merge. Fractions that start the re-weighting at the same epoch train
alike: they are written as one representative (1 when the re-weighting never starts).

A class without training rows (n_k = 0: Δ_k = ∞, and no effective number) is refused for m > 0
or a re-weighting that starts, with a UserInputError naming the class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.errors import UserInputError
from trainables.losses.functions import class_weights
from trainables.losses.kinds.ce import ce_when
from trainables.losses.kinds.registry import LossKind
from trainables.params import Param

DRW_BETA = 0.9999  # the effective number's β of the paper's DRW

MARGIN = Param(
    "loss.ldam_margin",
    0.5,
    "float",
    "LDAM's largest per-class margin m, the rarest class's; Δ_k = m·(min n / n_k)^(1/4) "
    "(ldam only).",
    low=0,
    high=5,
)
SCALE = Param(
    "loss.ldam_scale",
    1.0,
    "float",
    "LDAM's scale s of the margin-adjusted logits (ldam only; the paper's 30 is for "
    "normalised logits).",
    low=1,
    high=64,
)
DRW_FRAC = Param(
    "loss.drw_frac",
    0.8,
    "float",
    "LDAM's deferred re-weighting from epoch ⌊drw_frac·train.max_epochs⌋ on, by "
    "effective-number class weights (β = 0.9999); 1: never (ldam only).",
    low=0,
    high=1,
)


def drw_start(frac: float, epochs: int) -> int:
    """The first re-weighted epoch, ⌊frac·epochs⌋ (≥ epochs: never)."""
    return math.floor(frac * epochs)


def drw_representative(frac: float, epochs: int) -> float:
    """The one fraction written for every fraction that starts at the same epoch: 1 when the
    re-weighting never starts, the default (0.8) when it starts there too, otherwise
    start/epochs (moved up to the next float that starts there where the product rounds below)."""
    start = drw_start(frac, epochs)
    if start >= epochs:
        return 1.0
    if drw_start(DRW_FRAC.default, epochs) == start:
        return DRW_FRAC.default
    rep = start / epochs
    while drw_start(rep, epochs) < start:
        rep = math.nextafter(rep, math.inf)
    return rep


@dataclass(frozen=True)
class Context:
    """The per-trial constants of an LDAM loss, and whether this epoch re-weights."""

    margins: Tensor | None  # (K,) Δ; None for m = 0
    weights: Tensor | None  # (K,) DRW weights; None when the re-weighting never starts
    start: int  # the first re-weighted epoch
    reweight: bool = False  # this epoch's: set by at_epoch


def margins(m: float, counts: Tensor) -> Tensor:
    """Δ (K,) float32: m·(min n / n_k)^(1/4), so the rarest class's is m."""
    n = counts.to(torch.float64)
    return (m * (n.min() / n).pow(0.25)).float()


def prepare(params: Mapping[str, Any], counts: Tensor, classes: Sequence[str]) -> Context:
    """The margins and DRW weights of these training counts; a UserInputError for a class
    without training rows where either needs it."""
    m, epochs = params["loss.ldam_margin"], params["train.max_epochs"]
    start = drw_start(params["loss.drw_frac"], epochs)
    if m > 0 or start < epochs:
        empty = [c for c, n in zip(classes, counts.tolist(), strict=True) if n == 0]
        if empty:
            raise UserInputError(
                f"loss.kind=ldam: class {empty[0]!r} has no training rows, so its margin "
                "C/n^(1/4) and its effective-number weight are undefined; drop the class or use "
                "loss.ldam_margin=0 with loss.drw_frac=1"
            )
    return Context(
        margins(m, counts) if m > 0 else None,
        class_weights(counts, "effective", DRW_BETA, None, classes) if start < epochs else None,
        start,
    )


def at_epoch(context: Context, epoch: int, params: Mapping[str, Any]) -> Context:
    """Re-weight from the DRW start on."""
    return replace(context, reweight=context.weights is not None and epoch >= context.start)


def per_sample(logits: Tensor, target: Tensor, params: Mapping[str, Any], context: Any) -> Tensor:
    z, index = logits, target.unsqueeze(1)  # (N, C), (N, 1)
    if context.margins is not None:
        delta = context.margins.to(z.device, z.dtype)[index]  # (N, 1) Δ_y
        z = z.scatter_add(1, index, -delta)  # f − Δ_y·onehot(y)
    scale = params["loss.ldam_scale"]
    loss = F.cross_entropy(z if scale == 1 else scale * z, target, reduction="none")  # (N,)
    if context.reweight:
        loss = loss * context.weights.to(loss.device, loss.dtype)[target]
    return loss


def is_ce(params: Mapping[str, Any], context: Context) -> bool:
    """No margin, no scale and no re-weighting this epoch."""
    return context.margins is None and params["loss.ldam_scale"] == 1 and not context.reweight


fused = ce_when(is_ce, per_sample)  # ce's own path where canonical merges it with ce


def same_as(values: Mapping[str, Any]) -> str | tuple[str, Mapping[str, Any]] | None:
    """ce for m = 0, s = 1 and no re-weighting; otherwise ldam with the representative
    drw_frac of its start epoch (None when it is the one given)."""
    epochs, frac = values["train.max_epochs"], values["loss.drw_frac"]
    rep = drw_representative(frac, epochs)
    if values["loss.ldam_margin"] == 0 and values["loss.ldam_scale"] == 1 and rep == 1:
        return "ce"
    return None if rep == frac else ("ldam", {"loss.drw_frac": rep})


LDAM = LossKind(
    "ldam",
    "LDAM: cross-entropy of s·(f − Δ_y), Δ_k ∝ n_k^(−1/4), with deferred re-weighting "
    "(Cao et al. 2019)",
    per_sample,
    (MARGIN, SCALE, DRW_FRAC),
    prepare,
    same_as,
    fused,
    at_epoch,
)
