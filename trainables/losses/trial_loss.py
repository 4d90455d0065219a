"""The public loss API: everything a trial config says about the loss, for any PyTorch loop.

    loss = TrialLoss(params, data.train, data.classes)
    for epoch in range(params["train.max_epochs"]):
        order = loss.order(gen)                      # permutation, or class-balanced draws
        step = loss.epoch(epoch, order)              # this epoch's weights, in batch order
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            step(model(x[idx]), y[idx], lo).backward()
        stats = step.stats()                         # w_* of the weights applied this epoch

Per sample i at batch position p: ℓ_i·ω_p·λ_i·cw[y_i], ℓ the loss.kind's (trainables.losses.kinds:
cross-entropy, focal with γ and α, …, or a registered kind; its context for the epoch from
`LossKind.at_epoch`); ω the ELF
weight e^(1+o) after the missing policy and clipping (once), then per epoch batch-normalised over
runs of train.batch_size (elf.batch_norm) and warmed up (elf.warmup_frac); λ the label-quality
weight q^κ/mean(q^κ) (lq.method, lq.power; trainables.losses.quality_weights), fixed per row and
never batch-normalised or warmed up; the mean over the batch.
With distill.kind kl or jsd: (1 − λ)·that + λ·T²·mean D(teacher_T ‖ student_T) (trainables.losses.distill).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from trainables.data.dataset import Split
from trainables.errors import UserInputError
from trainables.losses.distill import distill_term, ensemble_log_p
from trainables.losses.functions import class_weights, warn_double_correction
from trainables.losses.kinds import loss_kind, weighted_loss
from trainables.losses.quality_weights import quality_weights
from trainables.losses.weights import (
    adaptive_scale,
    batch_normalize_epoch,
    train_weights,
    warmup_ramp,
    weight_stats,
)
from trainables.params import TrialParams


def epoch_order(y: Tensor, balanced: bool, gen: torch.Generator) -> Tensor:
    """Sample indices for one epoch: a permutation, or class-balanced draws with replacement."""
    n = y.shape[0]
    if not balanced:
        return torch.randperm(n, generator=gen, device="cpu").to(y.device)
    counts = torch.bincount(y).float()
    probs = (1.0 / counts)[y]  # (n,) each class gets equal total mass
    return torch.multinomial(probs.cpu(), n, replacement=True, generator=gen).to(y.device)


def applied_weights(w: Tensor, order: Tensor, bn_batch: int, ramp: float) -> Tensor:
    """The ELF weights the loss applies in one epoch, in batch order: w[order], batch-normalised
    per run of `bn_batch` (0 = off), then warmed up (`adaptive_scale` at `ramp`)."""
    out = w[order]
    if bn_batch:
        out = batch_normalize_epoch(out, bn_batch)
    return adaptive_scale(out, ramp)


class TrialLoss:
    """The loss of one trial config over one training split (on the split's device)."""

    def __init__(
        self,
        params: TrialParams | Mapping[str, Any],
        train: Split,
        classes: Sequence[str],
    ) -> None:
        p = params if isinstance(params, TrialParams) else TrialParams.from_flat(dict(params))
        self.params, self.y, self.num_classes = p, train.y, len(classes)
        device, counts = train.y.device, torch.bincount(train.y, minlength=len(classes)).cpu()
        self.elf = p["elf.strategy"] != "none"  # no ELF: no weight transforms either (exact CE)
        self.base_w = self.clipped = None
        if self.elf:
            self.base_w, self.clipped = (t.to(device) for t in train_weights(train, p))
        self.quality_w = None  # (n,) the label-quality weights; None without them, and for κ = 0
        if p["lq.method"] != "none" and p["lq.power"] != 0:  # (ω = 1: the exact unweighted path)
            w = quality_weights(train.quality, p["lq.method"], p["lq.power"])
            self.quality_w = w.to(device, torch.float32)
        warn_double_correction(p["train.balanced_sampling"], p["cw.method"])
        self.cw = None  # None takes the loss's exact, cheapest unweighted path
        if p["cw.method"] != "none":
            cw = class_weights(counts, p["cw.method"], p["cw.beta"], p["cw.cap"], classes)
            self.cw = None if bool((cw == 1).all()) else cw.to(device)
        self.kind = loss_kind(p["loss.kind"])
        self.context = self.kind.prepare(p, counts, classes)  # e.g. focal's α vector
        self.bn_batch = p["train.batch_size"] if self.elf and p["elf.batch_norm"] else 0
        self.looked = False  # the first batch's logits were checked for probabilities
        self.teacher = (
            None  # (n, C) the teachers' tempered log-probabilities (trainables.losses.distill)
        )
        if p["distill.kind"] != "none":
            if train.teacher is None:
                raise UserInputError(
                    f"distill.kind={p['distill.kind']}: the data has no teacher; set "
                    "distill.teacher=<a finished search's output_dir>"
                )
            self.teacher = ensemble_log_p(train.teacher.transpose(0, 1), p["distill.temperature"])

    def order(self, gen: torch.Generator) -> Tensor:
        """One epoch's sample indices (train.balanced_sampling: class-balanced draws)."""
        return epoch_order(self.y, self.params["train.balanced_sampling"], gen)

    def parameters(self) -> list[Tensor]:
        """The loss's own trainable tensors: none (multi-task uncertainty weighting has some)."""
        return []

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the loss: nothing (see `MultiTaskLoss.state`)."""
        return {}

    def load(self, state: Mapping[str, Any]) -> None:
        """Resume from `state()`: nothing to restore."""

    def epoch(self, epoch: int, order: Tensor) -> EpochLoss:
        """The loss for epoch `epoch` (from 0) drawing samples in `order`."""
        elf_w = None
        if self.elf:
            p = self.params
            ramp = warmup_ramp(epoch, p["train.max_epochs"], p["elf.warmup_frac"])
            elf_w = applied_weights(self.base_w, order, self.bn_batch, ramp)
        sample_w = elf_w  # ELF × label quality: the sample weights the stats describe
        if self.quality_w is not None:
            lq = self.quality_w[order]
            sample_w = lq if elf_w is None else elf_w * lq
        batch_w = sample_w
        if self.cw is not None:
            cwy = self.cw[self.y[order]]
            batch_w = cwy if sample_w is None else sample_w * cwy
        clipped = None if self.clipped is None else self.clipped[order]
        context = self.kind.at_epoch(self.context, epoch, self.params)  # e.g. LDAM's DRW
        return EpochLoss(self, order, sample_w, batch_w, clipped, context)


def warn_probabilities(logits: Tensor) -> None:
    """Warn when `logits` look like probabilities (every row in [0, 1] summing to 1): the loss
    takes unnormalised logits and would apply softmax a second time."""
    with torch.no_grad():
        rows = logits.detach().float()
        if bool((rows >= 0).all() & ((rows.sum(-1) - 1).abs() < 1e-3).all()):
            warnings.warn(
                "the model returned probabilities (rows in [0, 1] summing to 1) where logits are "
                "expected: the loss applies log_softmax itself; return the scores before softmax",
                UserWarning,
                stacklevel=3,
            )


class EpochLoss:
    """One epoch of a TrialLoss: `step(logits, y, lo)` is the loss of the batch that starts at
    position `lo` of the epoch's order; `stats()` the w_* of the sample weights it applies (ELF
    × label quality, class weights aside); `context` the loss kind's for this epoch
    (`LossKind.at_epoch` of what its `prepare` returned)."""

    def __init__(
        self,
        loss: TrialLoss,
        order: Tensor,
        sample_w: Tensor | None,
        batch_w: Tensor | None,
        clipped: Tensor | None,
        context: Any = None,
    ) -> None:
        self.loss, self.order, self.context = loss, order, context
        self.sample_w, self.batch_w, self.clipped = sample_w, batch_w, clipped

    def __call__(self, logits: Tensor, y: Tensor, lo: int) -> Tensor:
        """Scalar loss of logits (B, C) for labels y (B,), the samples order[lo : lo + B]."""
        p = self.loss.params
        classes = self.loss.num_classes
        if not (logits.is_floating_point() and logits.shape == (y.shape[0], classes)):
            raise UserInputError(
                f"the model returned {logits.dtype} logits of shape {tuple(logits.shape)} for a "
                f"batch of {y.shape[0]}; expected float logits (N, C) = ({y.shape[0]}, {classes})"
            )
        if not self.loss.looked:  # once per loss: a model that ends in softmax
            self.loss.looked = True
            warn_probabilities(logits)
        w = None if self.batch_w is None else self.batch_w[lo : lo + y.shape[0]]
        task = weighted_loss(
            logits.float(), y, w, None, kind=p["loss.kind"], params=p, context=self.context
        )
        teacher = self.loss.teacher
        if teacher is None:
            return task
        soft = teacher[self.order[lo : lo + y.shape[0]]]
        term = distill_term(p["distill.kind"], soft, logits, p["distill.temperature"])
        return (1 - p["distill.weight"]) * task + p["distill.weight"] * term

    def stats(self) -> dict[str, float]:
        """w_mean … w_ess of the sample weights (ELF × label quality) applied this epoch (all 1
        without either); w_frac_clipped counts ELF's clip."""
        n = self.order.shape[0]
        clipped = torch.zeros(n, dtype=torch.bool) if self.clipped is None else self.clipped
        if self.sample_w is None:
            return weight_stats(torch.ones(n), clipped)
        return weight_stats(self.sample_w, clipped)
