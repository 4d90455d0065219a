"""What a trainable gets and how it reports: the plug-in contract of `trainable=pkg.mod:function`.

A trainable is `function(ctx: TrialContext) -> None`. It reads `ctx.params` (the validated flat
trial config), `ctx.data` (train and validation splits; never the test split), `ctx.device` and,
after a restore, `ctx.checkpoint` and `ctx.start_epoch`; it may build the `model=` choice with
`ctx.build_model()` and the config's loss with `ctx.loss()` (`trainables.losses.trial_loss`). After each
epoch it calls `ctx.report(metrics, model=..., checkpoint=...)`. The built-in loop
(`trainables.trial.loop.train`) is one such function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainables.data.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.losses.multitask import MultiTaskLoss
from trainables.losses.trial_loss import TrialLoss
from trainables.metrics.scores import calibration, classification_metrics, cross_entropy_value
from trainables.metrics.table import combined
from trainables.models.registry import ModelInputs, model_factory
from trainables.objective import DEFAULT_OBJECTIVE, Objective
from trainables.params import TrialParams
from trainables.plugins import BUILT_IN, Plugins
from trainables.trial.nonfinite import NonFiniteError

EVAL_CHUNK = 8192
ResultSink = Callable[[dict[str, Any], dict[str, Any] | None], None]  # (result, checkpoint | None)


def predict(model: nn.Module, split: Split) -> torch.Tensor:
    """(N, C) float logits of `split`, in chunks of the model's `eval_batch_size` (default
    EVAL_CHUNK rows), without grad; the model's train/eval mode is kept."""
    training, chunk = model.training, getattr(model, "eval_batch_size", EVAL_CHUNK)
    model.eval()
    with torch.no_grad():
        parts = [
            model(split.x[i : i + chunk], _rows(split.tokens, i, i + chunk)).float()
            for i in range(0, len(split), chunk)
        ]
    model.train(training)
    return torch.cat(parts)


def _rows(t: torch.Tensor | None, lo: int, hi: int) -> torch.Tensor | None:
    return None if t is None else t[lo:hi]


def scores(
    logits: torch.Tensor,
    split: Split,
    num_classes: int,
    minority: int,
    prefix: str,
    temperature: float | None = None,
) -> dict[str, float]:
    """`split`'s classification metrics, plain unweighted CE of `logits`, and the calibration
    after temperature scaling (`temperature`, else one fitted on these logits), names prefixed."""
    if logits.shape != (len(split), num_classes) or not logits.is_floating_point():
        raise UserInputError(
            f"the model returned {logits.dtype} logits of shape {tuple(logits.shape)}; expected "
            f"float logits (N, C) = ({len(split)}, {num_classes})"
        )
    metrics = classification_metrics(logits, split.y, num_classes, minority)
    metrics |= calibration(logits, split.y, temperature)
    out = {f"{prefix}{k}": float(v) for k, v in metrics.items()}
    out[f"{prefix}loss"] = float(cross_entropy_value(logits, split.y))
    return out


def evaluate(
    logits: torch.Tensor,
    split: Split,
    data: Dataset,
    prefix: str,
    fitted: dict[str, float] | None = None,
) -> dict[str, float]:
    """`scores` of `split`; multi-task data: each task's as <prefix><task>_<metric> and their mean
    over tasks as <prefix><metric> for the table's combined ones (trainables.metrics.table).
    `fitted` (validation metrics) gives the temperatures to scale by (val_temperature, per task
    val_<task>_temperature); without it each is fitted on `logits`."""
    minority = lambda d: int(torch.argmin(d.train_counts()))  # noqa: E731
    given = lambda name: None if fitted is None else fitted[f"val_{name}temperature"]  # noqa: E731
    if not data.tasks:
        return scores(logits, split, data.num_classes, minority(data), prefix, given(""))
    if logits.shape != (len(split), data.num_classes) or not logits.is_floating_point():
        raise UserInputError(
            f"the model returned {logits.dtype} logits of shape {tuple(logits.shape)}; expected "
            f"float logits (N, C) = ({len(split)}, {data.num_classes}): the tasks' side by side"
        )
    blocks = logits.split(data.task_sizes, dim=1)
    out: dict[str, float] = {}
    for t, ((name, view), block) in enumerate(zip(data.views(), blocks, strict=True)):
        each = scores(block, split.task(t), view.num_classes, minority(view), "", given(f"{name}_"))
        out |= {f"{prefix}{name}_{k}": v for k, v in each.items()}
    for metric in combined():
        out[f"{prefix}{metric}"] = sum(out[f"{prefix}{n}_{metric}"] for n in data.tasks) / len(
            data.tasks
        )
    return out


class MissingMetric(UserInputError):
    """A report without the search metric (and no model to compute it from)."""


class TrialContext:
    """One trial's inputs and its reporting API; `report` adds the harness's bookkeeping."""

    def __init__(
        self,
        params: TrialParams,
        data: Dataset,
        device: torch.device,
        sink: ResultSink,
        *,
        plugins: Plugins = BUILT_IN,
        objective: Objective = DEFAULT_OBJECTIVE,
        restored: dict[str, Any] | None = None,
        test: Split | None = None,
    ) -> None:
        self.params, self.data, self.device = params, data, device
        self.plugins, self.objective, self._sink = plugins, objective, sink
        self._on_device: dict[str, Split] = {}
        self._test = test
        restored = restored or {"state": None, "epoch": -1, "best": None, "best_epoch": -1}
        self.checkpoint: Any = restored["state"]
        self.start_epoch = self._epoch = restored["epoch"] + 1
        self._best, self._best_epoch = restored["best"], restored["best_epoch"]
        self._train_time = restored.get("train_time_s", 0.0)
        self.best_test_logits: torch.Tensor | None = None  # with `test`: at the best epoch
        self._clock = time.perf_counter()

    @property
    def epoch(self) -> int:
        """The epoch the next `report` ends (from 0; after a restore, `start_epoch` first)."""
        return self._epoch

    def build_model(self) -> nn.Module:
        """The `model=` choice, sized from the data and the params, on the trial's device."""
        data = self.data
        inputs = ModelInputs(
            data.num_features,
            data.num_classes,
            data.vocab_size,
            self.plugins.encoder,
            data.task_sizes,
        )
        return model_factory(self.plugins.model)(inputs, self.params).to(self.device)

    def loss(self, train: Split | None = None) -> TrialLoss | MultiTaskLoss:
        """The config's loss over `train` (default: the training split on the trial's device); a
        MultiTaskLoss for multi-task data (its `parameters()` belong in the optimizer)."""
        split = self._split("train") if train is None else train
        if self.data.tasks:
            return MultiTaskLoss(self.params, split, self.data.tasks)
        return TrialLoss(self.params, split, self.data.classes)

    def report(
        self,
        metrics: dict[str, Any] | None = None,
        *,
        model: nn.Module | None = None,
        checkpoint: Any = None,
    ) -> None:
        """End an epoch: with `model`, its validation metrics (val_*) are computed here; then
        `metrics` (which win over computed ones), epoch, timing (epoch_time_s: since the last
        report; the first includes the trainable's set-up) and the best value so far.
        `checkpoint` (tensors and plain values) comes back as `ctx.checkpoint` after a restore.
        Raises NonFiniteError when train_loss, the search metric or a val_ metric is not finite."""
        out = {} if model is None else self._validation(model)
        out |= metrics or {}
        epoch, now = self._epoch, time.perf_counter()
        out |= {"epoch": epoch, "epoch_time_s": now - self._clock}
        self._check(out)
        self._track_best(out[self.objective.metric], model)
        self._train_time += out["epoch_time_s"]
        out |= {self.objective.best_key: self._best, "best_epoch": self._best_epoch}
        out["train_time_s"] = self._train_time
        state = None
        if checkpoint is not None:
            state = {"state": checkpoint, "epoch": epoch, "best": self._best}
            state |= {"best_epoch": self._best_epoch, "train_time_s": self._train_time}
        self._sink(out, state)
        self._epoch += 1
        self._clock = time.perf_counter()

    def _validation(self, model: nn.Module) -> dict[str, float]:
        val = self._split("val")
        return evaluate(predict(model, val), val, self.data, "val_")

    def _check(self, out: dict[str, Any]) -> None:
        metric = self.objective.metric
        if metric not in out:
            raise MissingMetric(
                f"the trainable reported {sorted(out)} without search.metric {metric!r}: "
                "report it, or pass model= to ctx.report"
            )
        loss = out.get("train_loss", 0.0)
        watched = [k for k in out if k == metric or k.startswith("val_")]
        bad = [k for k in watched if not math.isfinite(out[k])]
        reason = None
        if not math.isfinite(loss):
            reason = f"non-finite training loss ({loss}) at epoch {out['epoch']}"
        elif bad:
            reason = f"non-finite validation metric {bad[0]} at epoch {out['epoch']}"
        if reason is not None:
            raise NonFiniteError(reason, out["epoch"], out)

    def _track_best(self, value: float, model: nn.Module | None) -> None:
        """A new best epoch; in the confirmation stage, the test logits of its model (None when
        the trainable reported that epoch without one)."""
        if not self.objective.better(value, self._best):
            return
        self._best, self._best_epoch = value, self._epoch
        if self._test is not None:
            test = self._split("test", self._test)
            self.best_test_logits = None if model is None else predict(model, test)

    def _split(self, name: str, split: Split | None = None) -> Split:
        """`name`'s split on the trial's device, moved once."""
        if name not in self._on_device:
            source = getattr(self.data, name) if split is None else split
            self._on_device[name] = source.to(self.device)
        return self._on_device[name]
