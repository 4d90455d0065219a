"""Classification losses: focal loss, class weights and the fused per-step training loss.

`combined_loss` is what a trial calls every step for the built-in kinds ce and focal (their
`fused` form in `trainables.losses.kinds`): mean over the batch of ω_i·cw[y_i]·ℓ_i with ℓ
cross-entropy or focal. On batches of a few hundred rows the cost is the number of tensor ops, not
the arithmetic, so it folds every constant into one per-sample factor and runs focal loss as one
autograd node with a hand-written backward (one log_softmax, one gather, no Python scalars).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from trainables.errors import UserInputError
from trainables.losses.weights import batch_normalize, constant
from trainables.params import ALPHA_RULES, PARAMS

DEFAULT_BETA: float = PARAMS["cw.beta"].default
FAST_LOG_SOFTMAX_MAX_CLASSES = 16  # below this, CPU log_softmax is faster over a transposed view
REDUCTIONS = ("none", "mean", "sum")

Alpha = float | Sequence[float] | Tensor | None


def _upcast(logits: Tensor) -> Tensor:
    """float16/bfloat16 logits (autocast) → float32; float32/float64 unchanged."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _one_minus_p(logp_t: Tensor) -> Tensor:
    """1 − p_t = −expm1(log p_t), exact as p_t → 1, clamped to the dtype's smallest normal.

    The clamp keeps (1 − p_t)^(γ−1) finite in the gradient for γ < 1; it changes the loss only
    where 1 − p_t < ~1e-38 (float32), where the loss itself is below 1e-38.
    """
    return (-torch.expm1(logp_t)).clamp_min(torch.finfo(logp_t.dtype).tiny)


def alpha_vector(alpha: Alpha, num_classes: int, like: Tensor) -> Tensor | None:
    """Per-class focal α (C,): a scalar is α for class 1 and 1 − α for class 0 and needs C = 2
    (RetinaNet's binary convention; a trial resolves `loss.alpha` with `focal_alpha` instead); a
    sequence or tensor is taken as given. A scalar with C > 2 is an error, never a common factor."""
    if alpha is None:
        return None
    if isinstance(alpha, int | float):
        if num_classes != 2:
            raise ValueError(
                f"a scalar focal alpha needs two classes, got {num_classes}: pass one value per class"
            )
        return torch.tensor([1 - alpha, alpha], dtype=like.dtype, device=like.device)
    vec = torch.as_tensor(alpha, dtype=like.dtype, device=like.device).flatten()
    if vec.numel() != num_classes:
        raise ValueError(
            f"focal alpha has {vec.numel()} values, expected one per class ({num_classes})"
        )
    return vec


def _shares(x: Tensor) -> Tensor:
    return x / x.sum()


# the named rules of params.ALPHA_RULES, in its order: α_k ∝ 1/n_k and ∝ 1/√n_k
RULE_SHARES: dict[str, Callable[[Tensor], Tensor]] = dict(
    zip(ALPHA_RULES, (lambda n: _shares(1 / n), lambda n: _shares(n.rsqrt())), strict=True)
)


def focal_alpha(
    alpha: float | str | Sequence[float] | None,
    counts: Tensor | Sequence[int],
    class_names: Sequence[str] | None = None,
) -> Tensor | None:
    """Per-class α (K,) float32 of a `loss.alpha` value, from the training counts (K,).

    null → None; a number α needs K = 2: α for the minority class (fewer training rows; a tie
    goes to class 1) and 1 − α for the other; `inverse_frequency` α_k ∝ 1/n_k,
    `sqrt_inverse_frequency` α_k ∝ 1/√n_k, `effective:β` α_k ∝ (1 − β)/(1 − β^n_k) (Cui et al.
    2019), each normalised to sum to 1; a list gives one value per class. Rules need every class
    in the training split.
    """
    if alpha is None:
        return None
    n = torch.as_tensor(counts, dtype=torch.float64).flatten()
    k = n.numel()
    if isinstance(alpha, int | float):
        if k != 2:
            raise UserInputError(
                f"loss.alpha={alpha:g} is a two-class α, but the data has {k} classes: use "
                f"inverse_frequency, sqrt_inverse_frequency, effective:<beta> or a list of {k} values"
            )
        minority = 1 if n[1] <= n[0] else 0
        vec = torch.full((2,), 1 - alpha, dtype=torch.float64)
        vec[minority] = alpha
        return vec.float()
    if isinstance(alpha, str):
        if bool((n <= 0).any()):
            i = int(torch.nonzero(n <= 0)[0])
            name = repr(class_names[i]) if class_names is not None else str(i)
            raise UserInputError(
                f"class {name} has no training examples: loss.alpha={alpha} needs at least one "
                f"per class (use a list of {k} values)"
            )
        if alpha.startswith("effective:"):
            return _shares(_effective(n, float(alpha.removeprefix("effective:")))).float()
        return RULE_SHARES[alpha](n).float()
    if len(alpha) != k:
        raise UserInputError(
            f"loss.alpha lists {len(alpha)} values, but the data has {k} classes: give one per class"
        )
    return torch.tensor(alpha, dtype=torch.float32)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: Alpha = None,
    reduction: str = "none",
    ignore_index: int = -100,
) -> Tensor:
    """FL = −α_t (1 − p_t)^γ log p_t (Lin et al. 2017); γ = 0 and α = None is cross-entropy.

    logits (N, C) with target (N,), or (N, T, C) with target (N, T) where a sample's loss is the
    mean over its tokens that are not `ignore_index`. reduction none gives (N,) (0 for a sample
    with no target); mean averages over the samples that have a target; sum adds them. For (N, C)
    with γ = 0 and α = None this is F.cross_entropy itself (bit-identical).
    """
    if gamma < 0:
        raise ValueError(f"focal gamma must be >= 0, got {gamma}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}: expected one of {list(REDUCTIONS)}")
    if logits.dim() not in (2, 3) or target.shape != logits.shape[:-1]:
        raise ValueError(
            f"focal_loss expects logits (N, C) with target (N,) or (N, T, C) with (N, T), "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    logits = _upcast(logits)
    if gamma == 0 and alpha is None and logits.dim() == 2:
        return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)
    valid = target != ignore_index  # (N,) or (N, T)
    safe = torch.where(valid, target, 0)
    logp_t = logits.log_softmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (N,) or (N, T)
    loss = -logp_t if gamma == 0 else -_one_minus_p(logp_t).pow(gamma) * logp_t
    alpha_c = alpha_vector(alpha, logits.shape[-1], logits)
    if alpha_c is not None:
        loss = loss * alpha_c[safe]
    loss = torch.where(valid, loss, 0.0)
    if logits.dim() == 3:
        count = valid.sum(1)  # (N,)
        loss = loss.sum(1) / count.clamp_min(1)
        valid = count > 0
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp_min(1)


def _balanced(counts: Tensor, beta: float) -> Tensor:
    return counts.sum() / (counts.numel() * counts)


def _effective(counts: Tensor, beta: float) -> Tensor:
    if beta == 0:
        return torch.ones_like(counts)
    return (1 - beta) / -torch.expm1(counts * math.log(beta))  # 1 − β^n, exact for β → 1


CLASS_WEIGHTS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "none": lambda counts, beta: torch.ones_like(counts),
    "balanced": _balanced,
    "effective": _effective,
}


def class_weights(
    counts: Tensor | Sequence[int],
    method: str,
    beta: float = DEFAULT_BETA,
    cap: float | None = None,
    class_names: Sequence[str] | None = None,
) -> Tensor:
    """Class weights (K,) float32 from training counts (K,).

    none → 1; balanced → n/(K·n_k) (scikit-learn); effective → (1−β)/(1−β^n_k) rescaled to sum to K
    (Cui et al. 2019). cap bounds max/min: weights above cap·min are lowered to cap·min (the
    smallest weight is kept), before the effective rescaling. A class with no training example
    raises UserInputError for balanced and effective.
    """
    if method not in CLASS_WEIGHTS:
        raise ValueError(
            f"unknown class-weight method {method!r}: expected one of {list(CLASS_WEIGHTS)}"
        )
    if cap is not None and cap < 1:
        raise ValueError(f"cw.cap bounds max/min class weight and must be >= 1, got {cap}")
    n = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if method != "none" and bool((n <= 0).any()):
        k = int(torch.nonzero(n <= 0)[0])
        name = repr(class_names[k]) if class_names is not None else str(k)
        raise UserInputError(
            f"class {name} has no training examples: cw.method={method} needs at least one per "
            f"class (use cw.method=none or drop the class)"
        )
    w = CLASS_WEIGHTS[method](n, beta)
    if cap is not None:
        w = w.clamp_max(w.min() * cap)
    if method == "effective":
        w = w * (w.numel() / w.sum())
    return w.float()


def warn_double_correction(balanced_sampling: bool, method: str) -> None:
    """Warn when class-balanced sampling and class weights both correct the imbalance."""
    if balanced_sampling and method != "none":
        warnings.warn(
            f"train.balanced_sampling=true with cw.method={method} corrects class imbalance twice; "
            f"use one of them",
            UserWarning,
            stacklevel=2,
        )


def _log_softmax_rows(logits: Tensor) -> Tensor:
    """log_softmax over dim 1 of (N, C); on CPU with few classes via the transposed view, which
    vectorises over N instead of C (same values, several times faster for C < 16; the result is
    then column-major, which matmul backward takes as it is)."""
    if logits.device.type == "cpu" and logits.shape[1] < FAST_LOG_SOFTMAX_MAX_CLASSES:
        return logits.t().log_softmax(0).t()
    return logits.log_softmax(1)


class _FocalDot(torch.autograd.Function):
    """Σ_i f_i·(1 − p_t)^γ log p_t for constant factors f (N,) and γ > 0.

    combined_loss folds −α·ω_i·cw[y_i]/N into f. With u = 1 − p_t and l = log p_t the summand's
    derivative is d(u^γ l)/dl = u^γ (1 − γ p l / u), and dl/dz = onehot(y) − softmax(z).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: Tensor, target: Tensor, factor: Tensor, gamma: float
    ) -> Tensor:
        logp = _log_softmax_rows(logits)  # (N, C)
        index = target.unsqueeze(1)  # (N, 1)
        logp_t = logp.gather(1, index).squeeze(1)  # (N,)
        base = _one_minus_p(logp_t)  # u
        weight = base.pow(gamma).mul_(factor)  # f·u^γ
        p_l = torch.addcmul(logp_t, base, logp_t, value=-1.0)  # (1 − u)·l = p·l
        neg_slope = torch.addcdiv(constant(-1.0, logits), p_l, base, value=gamma).mul_(weight)
        ctx.save_for_backward(logp, index, neg_slope)  # neg_slope = −f·u^γ(1 − γ p l / u)
        return torch.dot(logp_t, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        logp, index, neg_slope = ctx.saved_tensors
        grad_logits = logp.exp()  # (N, C) softmax
        grad_logits.scatter_add_(1, index, constant(-1.0, logp).expand(index.shape))
        grad_logits.mul_((neg_slope * grad).unsqueeze(1))  # (softmax − onehot)·(−slope)
        return grad_logits, None, None, None


FUSED_KINDS = ("ce", "focal")  # the built-in kinds of trainables.losses.kinds, fused here


def combined_loss(
    logits: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    *,
    kind: str = "ce",
    gamma: float = 2.0,
    alpha: Alpha = None,
    batch_norm: bool = False,
) -> Tensor:
    """Scalar mean over the batch of ω_i·cw[y_i]·ℓ_i, ℓ = cross-entropy (kind ce: γ, α unused) or
    focal; ω is batch_normalize'd within the batch first when batch_norm. Weights get no gradient.

    logits (N, C) with target (N,) of valid class ids, or (N, T, C) with (N, T) padded at -100
    (via focal_loss). sample_w (N,) and class_w (C,) may be None (= 1); with both None and kind
    ce this is F.cross_entropy itself. Focal with γ > 0 runs as one autograd node.
    """
    if kind not in FUSED_KINDS:
        raise ValueError(f"unknown loss kind {kind!r}: expected one of {list(FUSED_KINDS)}")
    if kind == "ce":
        gamma, alpha = 0.0, None
    elif gamma < 0:
        raise ValueError(f"focal gamma must be >= 0, got {gamma}")
    logits = _upcast(logits)
    per_class = alpha_vector(alpha, logits.shape[-1], logits)
    if class_w is not None:
        class_w = class_w.to(logits.device, logits.dtype)
        per_class = class_w if per_class is None else per_class * class_w  # (C,)
    omega = None if sample_w is None else sample_w.detach().to(logits.device, logits.dtype)
    if logits.dim() == 3:  # class factors apply per token, before the mean over tokens
        loss = focal_loss(logits, target, gamma, per_class, reduction="none")  # (N,)
        if omega is not None:
            loss = loss * (batch_normalize(omega) if batch_norm else omega)
        return loss.mean()
    # fold the mean and (for focal, written as u^γ·log p_t) the sign of ℓ into one factor
    scale = 1.0 / target.shape[0] * (-1.0 if gamma else 1.0)
    if omega is not None:
        omega = batch_normalize(omega, scale) if batch_norm else omega * constant(scale, logits)
    if per_class is None:
        factor = omega
    else:
        factor = per_class.gather(0, target)  # (N,)
        factor.mul_(constant(scale, logits) if omega is None else omega)
    if gamma:
        factor = constant(scale, logits).expand(target.shape) if factor is None else factor
        return _FocalDot.apply(logits, target, factor, float(gamma))
    if factor is None:  # plain cross-entropy
        return F.cross_entropy(logits, target)
    return torch.dot(F.cross_entropy(logits, target, reduction="none"), factor)
