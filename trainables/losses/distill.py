"""Distillation terms: a student's tempered distribution against a teacher's.

With p = softmax(teacher/T) and q = softmax(student/T) (T = distill.temperature), per row:
- kl:  KL(p ‖ q) = Σ_c p_c (log p_c − log q_c);
- jsd: ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2 the midpoint (natural log; symmetric, ≤ ln 2).
The trial's loss is (1 − λ)·task + λ·T²·mean over rows of D (λ = distill.weight): the T² keeps
the term's gradient on the same scale as the task loss's as T grows (Hinton et al. 2015). Every
log-probability comes from log_softmax in float32, so logits up to ±1e4 (float32 or bf16) give a
finite value and gradient. Sequence logits (N, L, C) average over the non-padding positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainables.params import DISTILL_KINDS


def _kl_from_logs(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Σ_c p_c (log p_c − log q_c) over the last dim; 0·log 0 counts as 0."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def divergence(
    kind: str, teacher_log_p: Tensor, student_logits: Tensor, temperature: float
) -> Tensor:
    """Per-row D(teacher ‖ student) at `temperature` ((N,) or (N, L)); `teacher_log_p` is the
    teacher's tempered log-probabilities, the same shape as the logits."""
    log_q = torch.log_softmax(student_logits.float() / temperature, -1)
    log_p = teacher_log_p.float()
    if kind == "kl":
        return _kl_from_logs(log_p, log_q)
    if kind == "jsd":
        log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
        return 0.5 * _kl_from_logs(log_p, log_m) + 0.5 * _kl_from_logs(log_q, log_m)
    raise ValueError(f"unknown distill kind {kind!r}: expected one of {list(DISTILL_KINDS[1:])}")


def distill_term(
    kind: str,
    teacher_log_p: Tensor,
    student_logits: Tensor,
    temperature: float,
    mask: Tensor | None = None,
) -> Tensor:
    """T²·mean D over rows (and over the `mask`ed positions of sequence logits (N, L, C): mask
    (N, L) True where a token is real)."""
    d = divergence(kind, teacher_log_p, student_logits, temperature)
    if mask is not None:
        d = d[mask]
    return temperature**2 * d.mean()


def ensemble_log_p(teacher_logits: Tensor, temperature: float) -> Tensor:
    """log of the mean over the S teachers (dim 0) of softmax(logits/T): (S, N, C) → (N, C)."""
    logs = torch.log_softmax(teacher_logits.float() / temperature, -1)
    return torch.logsumexp(logs, 0) - math.log(teacher_logits.shape[0])
