"""Experience-aware (ELF) sample weights ω = e^(1+o), o the reviewer's ownership, and transforms.

Training split (`train_weights`): raw weights → clip (bounds relative to the mean training weight
with elf.normalize=mean), once. Then per epoch, in batch order: batch normalisation
(`batch_normalize_epoch`), then the curriculum warm-up (`adaptive_scale`), so the warm-up is never
cancelled by the per-batch z-score. No step rescales the weights by a constant: AdamW would
ignore it (up to its ε). A weight of exactly 0 marks a sample dropped by `elf.missing=skip`:
every transform keeps it at 0, so a skipped sample never comes back into the loss.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.data.dataset import Split, granularity_index
from trainables.errors import UserInputError
from trainables.params import PARAMS, STRATEGIES, TrialParams

DEFAULT_ACO: float = PARAMS["elf.default_aco"].default
DEFAULT_RSO: float = PARAMS["elf.default_rso"].default
BATCH_NORM_EPS = 1e-8  # keeps (w − mean)/(std + eps) finite for a constant batch

# Ownership o of a sample for each strategy; NaN in a column the strategy uses gives NaN.
OWNERSHIP: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "aco": lambda aco, rso: aco,
    "rso": lambda aco, rso: rso,
    "avg": lambda aco, rso: (aco + rso) / 2,
    "max": torch.maximum,  # propagates NaN
}


def _ownership(aco: Tensor, rso: Tensor, strategy: str) -> Tensor:
    _check_strategy(strategy)
    return OWNERSHIP[strategy](aco, rso)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown elf strategy {strategy!r}: expected one of {list(STRATEGIES)}")


def elf_weights(aco: Tensor, rso: Tensor, strategy: str) -> Tensor:
    """ω = e^(1+o) with o = aco, rso, (aco+rso)/2 or max(aco, rso); strategy none gives ω = 1.

    aco, rso: (n,) ownership in [0, 1]. Returns (n,).
    """
    if strategy == "none":
        return torch.ones_like(aco)
    return torch.exp(1 + _ownership(aco, rso, strategy))


def _column_mean(column: Tensor, fallback: float) -> Tensor:
    """Mean of the non-NaN values of `column`, or `fallback` when every value is NaN (0-dim)."""
    known = ~torch.isnan(column)
    count = known.sum()
    total = torch.where(known, column, 0).sum()
    return torch.where(count > 0, total / count.clamp_min(1), fallback).to(column.dtype)


Pair = tuple[float, float]  # (default_aco, default_rso)


def _fill_default(
    aco: Tensor, rso: Tensor, strategy: str, defaults: Pair, train: tuple[Tensor, Tensor]
) -> Tensor:
    """Each missing column takes its default value."""
    return elf_weights(aco.nan_to_num(defaults[0]), rso.nan_to_num(defaults[1]), strategy)


def _fill_impute(
    aco: Tensor, rso: Tensor, strategy: str, defaults: Pair, train: tuple[Tensor, Tensor]
) -> Tensor:
    """Each missing column takes the mean of its known training values (else its default)."""
    means = [_column_mean(col, d) for col, d in zip(train, defaults, strict=True)]
    aco, rso = (torch.where(torch.isnan(c), m, c) for c, m in zip((aco, rso), means, strict=True))
    return elf_weights(aco, rso, strategy)


def _fill_min(
    aco: Tensor, rso: Tensor, strategy: str, defaults: Pair, train: tuple[Tensor, Tensor]
) -> Tensor:
    """A missing sample takes the smallest weight of a training sample with ownership."""
    train_w = torch.exp(1 + _ownership(*train, strategy))  # NaN where ownership is missing
    known = torch.cat([train_w[~torch.isnan(train_w)], train_w.new_full((1,), torch.inf)])
    fallback = elf_weights(torch.tensor(defaults[0]), torch.tensor(defaults[1]), strategy)
    smallest = known.min()
    smallest = torch.where(torch.isinf(smallest), fallback.to(smallest), smallest)
    own = _ownership(aco, rso, strategy)
    return torch.where(torch.isnan(own), smallest, torch.exp(1 + own))


def _fill_skip(
    aco: Tensor, rso: Tensor, strategy: str, defaults: Pair, train: tuple[Tensor, Tensor]
) -> Tensor:
    """A missing sample gets weight 0."""
    return elf_weights(aco, rso, strategy).nan_to_num(nan=0.0)


MISSING: dict[str, Callable[..., Tensor]] = {
    "default": _fill_default,
    "impute": _fill_impute,
    "min": _fill_min,
    "skip": _fill_skip,
}


def raw_weights(
    aco: Tensor,
    rso: Tensor,
    strategy: str,
    missing: str,
    *,
    default_aco: float = DEFAULT_ACO,
    default_rso: float = DEFAULT_RSO,
    train_aco: Tensor | None = None,
    train_rso: Tensor | None = None,
) -> Tensor:
    """ELF weights (n,) from ownership (n,) at one granularity, NaN = missing, never NaN out.

    A sample is missing when a column its strategy uses is NaN (avg/max use both). Policies:
    `default` fills NaN aco/rso with default_aco/default_rso; `impute` fills each column with the
    mean of the known TRAINING values; `min` gives missing samples the smallest weight among
    training samples with ownership; `skip` gives them weight 0. Training statistics come from
    train_aco/train_rso ((n_train,), default: aco/rso themselves). When the training column has no
    known value, `impute` and `min` fall back to the defaults. strategy none → all ones.
    """
    if missing not in MISSING:
        raise ValueError(f"unknown elf missing policy {missing!r}: expected one of {list(MISSING)}")
    if strategy == "none":
        return torch.ones_like(aco)
    _check_strategy(strategy)
    train = (aco if train_aco is None else train_aco, rso if train_rso is None else train_rso)
    return MISSING[missing](aco, rso, strategy, (default_aco, default_rso), train)


def mean_weight(reference: Tensor) -> float:
    """Mean of the positive entries of `reference` (skipped samples left out); 1 when none is."""
    positive = reference > 0
    count = int(positive.sum())
    return float(torch.where(positive, reference, 0).sum()) / count if count else 1.0


def clip_bounds(params: TrialParams, reference: Tensor) -> tuple[float | None, float | None]:
    """(elf.clip_min, elf.clip_max) in weight units: as given for elf.normalize none, times the
    mean training weight for mean (the bounds are then relative; the weights keep their scale)."""
    lo, hi = params["elf.clip_min"], params["elf.clip_max"]
    check_clip_bounds(lo, hi)
    if params["elf.normalize"] == "none" or (lo is None and hi is None):
        return lo, hi
    m = mean_weight(reference)
    return (None if lo is None else lo * m), (None if hi is None else hi * m)


def check_clip_bounds(lo: float | None, hi: float | None) -> None:
    """Raise UserInputError when both bounds are set and lo > hi."""
    if lo is not None and hi is not None and lo > hi:
        raise UserInputError(f"elf.clip_min ({lo:g}) must not exceed elf.clip_max ({hi:g})")


def clip_weights(w: Tensor, lo: float | None, hi: float | None) -> tuple[Tensor, Tensor]:
    """(clamp(w, lo, hi), mask of the weights moved); None leaves that side open.

    Zeros (skipped samples) stay 0 and are never counted as clipped.
    """
    check_clip_bounds(lo, hi)
    clipped = w.clamp(lo, hi) if lo is not None or hi is not None else w
    keep = w == 0
    return torch.where(keep, w, clipped), (clipped != w) & ~keep


_CONSTANTS: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}
CONSTANTS_MAX = 1024  # the cache is cleared when full: values vary with α and the batch size


def constant(value: float, like: Tensor) -> Tensor:
    """A cached 0-dim tensor of `like`'s dtype and device holding `value`.

    Hot per-step code multiplies by these instead of Python floats: torch wraps and casts a Python
    scalar on every op, which costs more than the arithmetic on a batch of a few hundred values.
    """
    key = (value, like.dtype, like.device)
    found = _CONSTANTS.get(key)
    if found is None:
        if len(_CONSTANTS) >= CONSTANTS_MAX:
            _CONSTANTS.clear()
        with torch.inference_mode(False):
            found = _CONSTANTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return found


def batch_normalize(w: Tensor, scale: float = 1.0) -> Tensor:
    """scale·(1.25 + 0.75·tanh((w − mean)/(std + 1e-8))) over the positive entries of each row.

    w is one batch (B,) or a stack of batches (k, B) normalised row by row (e.g. all the batches
    of an epoch at once). std is the population std (correction 0), so one sample gives 1.25. The
    division is by sqrt(var + 1e-16) (one fused layer_norm), which differs from std + 1e-8 by a
    relative 1e-8/std at most. Zeros (skipped samples) are left out of mean and std and stay 0;
    w must be >= 0, as every ELF weight is. `scale` folds the loss's constant factor in for free.
    """
    if w.device.type == "cpu" and w.numel() and w.min().item() > 0:  # no sync on CPU
        return _batch_normalize_dense(w, scale)
    return _batch_normalize_masked(w, scale)


def _batch_normalize_dense(w: Tensor, scale: float) -> Tensor:
    """batch_normalize for w > 0: few ops, for the per-step CPU path."""
    z = F.layer_norm(w, w.shape[-1:], eps=BATCH_NORM_EPS**2).tanh_()
    return torch.add(constant(1.25 * scale, w), z, alpha=0.75 * scale)


def _batch_normalize_masked(w: Tensor, scale: float) -> Tensor:
    """batch_normalize for w >= 0 without a host sync: statistics over the positive entries."""
    keep = w.sign()  # 1 where kept, 0 where skipped
    count = keep.sum(-1, keepdim=True).clamp_min_(1)
    centred = torch.sub(w, w.sum(-1, keepdim=True) / count).mul_(keep)  # 0 where skipped
    var = centred.square().sum(-1, keepdim=True).div_(count)
    z = centred.div_(var.add_(constant(BATCH_NORM_EPS**2, w)).sqrt_()).tanh_()  # 0 where skipped
    return torch.add(keep, z, alpha=0.6).mul_(constant(1.25 * scale, w))


def batch_normalize_epoch(w: Tensor, batch_size: int) -> Tensor:
    """batch_normalize of every run of `batch_size` consecutive entries of w (n,) at once.

    Pass the epoch's weights in the order batches will be drawn (w[order]); the last batch may be
    short. Slicing the result per step gives what batch_norm=True computes inside the loss, at a
    fraction of the per-step cost (then call the loss with batch_norm=False).
    """
    full = w.shape[0] - w.shape[0] % batch_size
    out = torch.empty_like(w)
    if full:
        out[:full] = batch_normalize(w[:full].view(-1, batch_size)).view(-1)
    if full < w.shape[0]:
        out[full:] = batch_normalize(w[full:])
    return out


def warmup_ramp(epoch: int, max_epochs: int, warmup_frac: float) -> float:
    """r = min(1, epoch/(warmup_frac·(max_epochs − 1))), epoch from 0: 0 at the first epoch, 1 from
    epoch warmup_frac·(max_epochs − 1) on, so even warmup_frac 1 reaches the full weights at the
    last epoch; warmup_frac 0 (or a one-epoch budget) → 1 throughout."""
    span = warmup_frac * (max_epochs - 1)
    return 1.0 if span <= 0 else min(1.0, epoch / span)


def adaptive_scale(w: Tensor, ramp: float) -> Tensor:
    """m + (w − m)·ramp with m the mean of the positive entries: from uniform weights (at w's own
    mean, so the loss scale does not drift) to w. Zeros (skipped samples) stay 0; ramp 1 → w."""
    if ramp >= 1:
        return w
    keep = w > 0
    mean = torch.where(keep, w, 0).sum() / keep.sum().clamp_min(1)
    return torch.where(keep, torch.lerp(mean.expand_as(w), w, ramp), w)


def split_weights(split: Split, train: Split, params: TrialParams) -> tuple[Tensor, Tensor]:
    """Weights (n,) and clipped mask of any split; imputation, min and the normalising scale come
    from the training split `train` (pass the training split itself for training weights)."""
    col = granularity_index(params["elf.granularity"])
    strategy, missing = params["elf.strategy"], params["elf.missing"]
    kw = {
        "default_aco": params["elf.default_aco"],
        "default_rso": params["elf.default_rso"],
        "train_aco": train.aco[:, col],
        "train_rso": train.rso[:, col],
    }
    reference = raw_weights(train.aco[:, col], train.rso[:, col], strategy, missing, **kw)
    if split is not train:
        w = raw_weights(split.aco[:, col], split.rso[:, col], strategy, missing, **kw)
    else:
        w = reference
        if not bool((w > 0).any()):
            warnings.warn(
                f"elf.missing=skip drops every training sample (no ownership at granularity "
                f"{params['elf.granularity']!r}): the weighted loss is 0",
                stacklevel=3,
            )
    return clip_weights(w, *clip_bounds(params, reference))


def train_weights(split: Split, params: TrialParams) -> tuple[Tensor, Tensor]:
    """Training weights (n,) and clipped mask: raw → clip, statistics from `split`."""
    return split_weights(split, split, params)


def weight_stats(w: Tensor, clipped_mask: Tensor) -> dict[str, float]:
    """Summary of weights: mean, std (population), min, max, quartiles, skew, excess kurtosis
    (biased, as scipy.stats defaults), fraction clipped and ESS = (Σw)²/Σw²; constant w → skew 0."""
    if w.numel() == 0:
        raise ValueError("weight_stats needs at least one weight")
    x = w.detach().to("cpu", torch.float64).flatten()
    mean = x.mean()
    dev = x - mean
    m2, m3, m4 = (dev**2).mean(), (dev**3).mean(), (dev**4).mean()
    flat = bool(m2 <= (torch.finfo(torch.float64).resolution * mean) ** 2)  # constant weights
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    sq = (x**2).sum()
    return {
        "w_mean": float(mean),
        "w_std": float(m2.sqrt()),
        "w_min": float(x.min()),
        "w_max": float(x.max()),
        "w_p25": float(q[0]),
        "w_p50": float(q[1]),
        "w_p75": float(q[2]),
        "w_skew": 0.0 if flat else float(m3 / m2**1.5),
        "w_kurtosis": 0.0 if flat else float(m4 / m2**2 - 3),
        "w_frac_clipped": float(clipped_mask.detach().to("cpu", torch.float64).mean()),
        "w_ess": float(x.sum() ** 2 / sq) if sq > 0 else 0.0,
    }
