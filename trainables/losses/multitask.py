"""The loss of multi-task data: one TrialLoss per task over the shared model's logit blocks, weighed
by `task.weighting`.

total = Σ_t w_t·L_t, L_t task t's loss (its own loss.<task>.kind/gamma/alpha and class weights;
the ELF sample weights are shared: they depend on the row's ownership, not its labels), with w_t
normalised to Σ_t w_t = T and computed at the start of each epoch from the previous epoch's
training-batch predictions (the training split as the epoch drew it, never the validation split):
- uniform: w_t = 1;
- inverse_accuracy, inverse_f1: w_t ∝ 1 / max(m_t, EPS), m_t the task's accuracy or macro-F1;
- difficulty: w_t ∝ ln(C_t)·max(1 − F1_t, EPS), C_t its class count and F1_t its macro-F1 (a task
  with more classes and a lower score weighs more);
- uncertainty (Kendall et al. 2018): total = Σ_t exp(−s_t)·L_t + s_t with a learnable s_t = log σ_t²
  per task (from 0; its weight is exp(−s_t)), trained with the model (`parameters()`).
The first epoch has no previous predictions: weights 1, difficulty ∝ ln(C_t).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from trainables.data.dataset import Split
from trainables.errors import UserInputError
from trainables.losses.trial_loss import EpochLoss, TrialLoss, epoch_order
from trainables.metrics.table import f1_per_class
from trainables.params import TrialParams, task_params

EPS = 1e-3  # floor of a metric (inverse_*) or of 1 − F1 (difficulty)


def task_weights(
    weighting: str,
    accuracy: Sequence[float] | None,
    f1: Sequence[float] | None,
    sizes: Sequence[int],
) -> Tensor:
    """(T,) float64 task weights summing to T, from the previous epoch's per-task accuracy and
    macro-F1 (None before the first epoch); the module docstring gives each rule."""
    t = len(sizes)
    if weighting in ("uniform", "uncertainty"):
        return torch.ones(t, dtype=torch.float64)
    if weighting == "difficulty":
        score = torch.zeros(t, dtype=torch.float64) if f1 is None else torch.tensor(f1).double()
        raw = torch.tensor([math.log(c) for c in sizes]).double() * (1 - score).clamp_min(EPS)
    else:
        metric = accuracy if weighting == "inverse_accuracy" else f1
        if metric is None:
            return torch.ones(t, dtype=torch.float64)
        raw = 1 / torch.tensor(metric).double().clamp_min(EPS)
    return raw * t / raw.sum()


def uncertainty_total(losses: Tensor, log_var: Tensor) -> Tensor:
    """Kendall et al. 2018: Σ_t exp(−s_t)·L_t + s_t."""
    return (torch.exp(-log_var) * losses + log_var).sum()


class MultiTaskLoss:
    """The loss of one trial config over multi-task training data (labels y (n, T)); logits are
    the tasks' blocks side by side, (N, Σ_t C_t) in `tasks` order."""

    def __init__(
        self,
        params: TrialParams | Mapping[str, Any],
        train: Split,
        tasks: Mapping[str, Sequence[str]],
    ) -> None:
        p = params if isinstance(params, TrialParams) else TrialParams.from_flat(dict(params))
        if p["distill.kind"] != "none":
            raise UserInputError("distill.kind: distillation of multi-task data is not supported")
        self.params, self.names = p, tuple(tasks)
        self.sizes = [len(c) for c in tasks.values()]
        self.parts = [
            TrialLoss(task_params(p, name), train.task(t), classes)
            for t, (name, classes) in enumerate(tasks.items())
        ]
        self.y, self.weighting = train.y, p["task.weighting"]
        strides = torch.tensor([math.prod(self.sizes[t + 1 :]) for t in range(len(self.sizes))])
        self.joint = (train.y * strides.to(train.y.device)).sum(1)  # one id per label combination
        self.log_var = None
        if self.weighting == "uncertainty":
            self.log_var = torch.zeros(len(self.sizes), device=train.y.device, requires_grad=True)
        self.previous: dict[str, list[float]] | None = None  # the last epoch's training metrics

    def order(self, gen: torch.Generator) -> Tensor:
        """One epoch's sample indices; balanced sampling: balanced over label combinations."""
        return epoch_order(self.joint, self.params["train.balanced_sampling"], gen)

    def epoch(self, epoch: int, order: Tensor) -> MultiTaskEpoch:
        """The loss for epoch `epoch` drawing samples in `order`, weighed from the last epoch."""
        prev = self.previous or {}
        weights = task_weights(self.weighting, prev.get("accuracy"), prev.get("f1"), self.sizes)
        steps = [part.epoch(epoch, order) for part in self.parts]
        return MultiTaskEpoch(self, steps, weights.float().to(self.y.device))

    def parameters(self) -> list[Tensor]:
        """The loss's own trainable tensors (uncertainty: the log-variances s_t) for the optimizer."""
        return [] if self.log_var is None else [self.log_var]

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to resume the weighting: s_t and the last epoch's metrics."""
        log_var = None if self.log_var is None else self.log_var.detach().cpu()
        return {"log_var": log_var, "previous": self.previous}

    def load(self, state: Mapping[str, Any]) -> None:
        """Resume from `state()`."""
        if self.log_var is not None and state.get("log_var") is not None:
            with torch.no_grad():
                self.log_var.copy_(state["log_var"])
        self.previous = state.get("previous")


class MultiTaskEpoch:
    """One epoch of a MultiTaskLoss: `step(logits, y, lo)` the weighted total of a batch;
    `stats()` per task its loss, weight, share of the total and training metrics, and the w_*."""

    def __init__(self, loss: MultiTaskLoss, steps: list[EpochLoss], weights: Tensor) -> None:
        self.loss, self.steps, self.weights = loss, steps, weights
        device = weights.device
        self.sums = torch.zeros(len(steps), device=device)
        self.rows = 0
        self.confusion = [torch.zeros(k * k, device=device, dtype=torch.long) for k in loss.sizes]

    def __call__(self, logits: Tensor, y: Tensor, lo: int) -> Tensor:
        """Total loss of logits (B, Σ C_t) for labels y (B, T) at epoch position `lo`."""
        sizes = self.loss.sizes
        if logits.dim() != 2 or logits.shape[1] != sum(sizes) or y.shape[1:] != (len(sizes),):
            raise UserInputError(
                f"the model returned logits of shape {tuple(logits.shape)} for labels "
                f"{tuple(y.shape)}; expected (N, {sum(sizes)}): the {len(sizes)} tasks' "
                f"{sizes} class logits side by side"
            )
        blocks = logits.split(sizes, dim=1)
        losses = torch.stack(
            [s(b, y[:, t], lo) for t, (s, b) in enumerate(zip(self.steps, blocks, strict=True))]
        )
        with torch.no_grad():
            self.sums += losses.detach() * y.shape[0]
            self.rows += y.shape[0]
            for t, (b, k) in enumerate(zip(blocks, sizes, strict=True)):
                cells = y[:, t] * k + b.argmax(1)
                self.confusion[t].index_add_(0, cells, torch.ones_like(cells))
        log_var = self.loss.log_var
        if log_var is not None:
            return uncertainty_total(losses, log_var)
        return (self.weights * losses).sum()

    def applied(self) -> Tensor:
        """(T,) the weights this epoch applied (uncertainty: exp(−s_t) now)."""
        log_var = self.loss.log_var
        return self.weights if log_var is None else torch.exp(-log_var.detach())

    def stats(self) -> dict[str, float]:
        """train_<task>_loss (epoch mean of L_t), _weight, _share (w_t·L_t / Σ w·L), _accuracy and
        _macro_f1 (of the epoch's training batches, which drive the next epoch's weights); the
        w_* of the shared ELF weights. Also sets the metrics the next epoch weighs by."""
        mean = self.sums / max(self.rows, 1)
        weights = self.applied()
        weighted = weights * mean
        share = weighted / weighted.sum().clamp_min(1e-12)
        accuracy, f1 = [], []
        for confusion, k in zip(self.confusion, self.loss.sizes, strict=True):
            c = confusion.reshape(k, k).double()
            accuracy.append(float(c.diag().sum() / c.sum().clamp_min(1)))
            f1.append(float(f1_per_class(c).mean()))
        self.loss.previous = {"accuracy": accuracy, "f1": f1}
        out = self.steps[0].stats()
        for t, name in enumerate(self.loss.names):
            out |= {
                f"train_{name}_loss": float(mean[t]),
                f"train_{name}_weight": float(weights[t]),
                f"train_{name}_share": float(share[t]),
                f"train_{name}_accuracy": accuracy[t],
                f"train_{name}_macro_f1": f1[t],
            }
        return out
