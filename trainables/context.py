"""What a trainable gets and how it reports: the plug-in contract of `trainable=pkg.mod:function`.

A trainable is `function(ctx: TrialContext) -> None`. It reads `ctx.params` (the validated flat
trial config), `ctx.data` (train and validation splits; never the test split), `ctx.device` and,
after a restore, `ctx.checkpoint` and `ctx.start_epoch`; it may build the `model=` choice with
`ctx.build_model()` and the config's loss with `ctx.loss()` (`trainables.trial_loss`). After each
epoch it calls `ctx.report(metrics, model=..., checkpoint=...)`. The built-in loop
(`trainables.trial.train`) is one such function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainables.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.metrics import classification_metrics, plain_ce
from trainables.models import ModelInputs, model_factory
from trainables.nonfinite import NonFiniteError
from trainables.objective import DEFAULT_OBJECTIVE, Objective
from trainables.params import TrialParams
from trainables.plugins import BUILT_IN, Plugins
from trainables.trial_loss import TrialLoss

EVAL_CHUNK = 8192
Sink = Callable[[dict[str, Any], dict[str, Any] | None], None]  # (result, checkpoint | None)


def predict(model: nn.Module, split: Split) -> torch.Tensor:
    """(N, C) float logits of `split`, in chunks, without grad; the model's mode is kept."""
    training = model.training
    model.eval()
    with torch.no_grad():
        chunks = [
            model(split.x[i : i + EVAL_CHUNK], _rows(split.tokens, i, i + EVAL_CHUNK)).float()
            for i in range(0, len(split), EVAL_CHUNK)
        ]
    model.train(training)
    return torch.cat(chunks)


def _rows(t: torch.Tensor | None, lo: int, hi: int) -> torch.Tensor | None:
    return None if t is None else t[lo:hi]


def scores(
    logits: torch.Tensor, split: Split, num_classes: int, minority: int, prefix: str
) -> dict[str, float]:
    """`split`'s classification metrics and plain unweighted CE of `logits`, names prefixed."""
    _check_logits(logits, len(split), num_classes)
    metrics = classification_metrics(logits, split.y, num_classes, minority)
    out = {f"{prefix}{k}": float(v) for k, v in metrics.items()}
    out[f"{prefix}loss"] = float(plain_ce(logits, split.y))
    return out


def _check_logits(logits: torch.Tensor, rows: int, num_classes: int) -> None:
    if logits.shape != (rows, num_classes) or not logits.is_floating_point():
        raise UserInputError(
            f"the model returned {logits.dtype} logits of shape {tuple(logits.shape)}; expected "
            f"float logits (N, C) = ({rows}, {num_classes})"
        )


class TrialContext:
    """One trial's inputs and its reporting API; `report` adds the harness's bookkeeping."""

    def __init__(
        self,
        params: TrialParams,
        data: Dataset,
        device: torch.device,
        sink: Sink,
        *,
        plugins: Plugins = BUILT_IN,
        objective: Objective = DEFAULT_OBJECTIVE,
        restored: dict[str, Any] | None = None,
        test: Split | None = None,
    ) -> None:
        self.params, self.data, self.device, self.objective = params, data, device, objective
        self.plugins, self._sink, self._test = plugins, sink, test
        self._val: Split | None = None
        self._minority = int(torch.argmin(data.train_counts()))
        self.checkpoint: Any = None
        self.start_epoch, self._best, self._best_epoch, self._train_time = 0, None, -1, 0.0
        if restored is not None:
            self.checkpoint, self.start_epoch = restored["state"], restored["epoch"] + 1
            self._best, self._best_epoch = restored["best"], restored["best_epoch"]
            self._train_time = restored["train_time_s"]
        self._epoch = self.start_epoch
        self.best_test_logits: torch.Tensor | None = None
        self._clock = time.perf_counter()

    @property
    def epoch(self) -> int:
        """The epoch the next `report` ends (from 0; after a restore, `start_epoch` first)."""
        return self._epoch

    def build_model(self) -> nn.Module:
        """The `model=` choice, sized from the data and the params, on the trial's device."""
        inputs = ModelInputs(
            self.data.num_features,
            self.data.num_classes,
            self.data.vocab_size,
            self.plugins.encoder,
        )
        return model_factory(self.plugins.model)(inputs, self.params).to(self.device)

    def loss(self, train: Split | None = None) -> TrialLoss:
        """The config's loss over `train` (default: the training split on the trial's device)."""
        split = self.data.train.to(self.device) if train is None else train
        return TrialLoss(self.params, split, self.data.classes)

    def report(
        self,
        metrics: dict[str, Any] | None = None,
        *,
        model: nn.Module | None = None,
        checkpoint: Any = None,
    ) -> None:
        """End an epoch: with `model`, its validation metrics (val_*) are computed here; then
        `metrics` (which win over computed ones), epoch, timing and the best value so far.
        `checkpoint` (any torch.save-able state) comes back as `ctx.checkpoint` after a restore.
        Raises NonFiniteError when train_loss or a val_ metric is NaN or ±inf."""
        out: dict[str, Any] = {}
        if model is not None:
            out = scores(
                predict(model, self._val_split()),
                self._val_split(),
                self.data.num_classes,
                self._minority,
                "val_",
            )
        out |= metrics or {}
        epoch, now = self._epoch, time.perf_counter()
        out |= {"epoch": epoch, "epoch_time_s": now - self._clock}
        _check_finite(out, epoch)
        if self.objective.metric not in out:
            raise MissingMetric(
                f"the trainable reported {sorted(out)} without search.metric "
                f"{self.objective.metric!r}: report it, or pass model= to ctx.report"
            )
        value = out[self.objective.metric]
        if self.objective.better(value, self._best):
            self._best, self._best_epoch = value, epoch
            if self._test is not None and model is not None:
                self.best_test_logits = predict(model, self._test.to(self.device))
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

    def _val_split(self) -> Split:
        if self._val is None:
            self._val = self.data.val.to(self.device)
        return self._val


class MissingMetric(UserInputError):
    """A report without the search metric (and no model to compute it from)."""


def _check_finite(metrics: dict[str, Any], epoch: int) -> None:
    """Raise NonFiniteError when train_loss or a validation metric is NaN or ±inf."""
    loss = metrics.get("train_loss", 0.0)
    reason = None
    if not math.isfinite(loss):
        reason = f"non-finite training loss ({loss}) at epoch {epoch}"
    else:
        bad = [k for k, v in metrics.items() if k.startswith("val_") and not math.isfinite(v)]
        if bad:
            reason = f"non-finite validation metric {bad[0]} at epoch {epoch}"
    if reason is not None:
        raise NonFiniteError(reason, epoch, metrics)
