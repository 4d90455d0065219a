"""The one-batch preflight: the trainable and model run one epoch on a few real rows in the driver,
before Ray starts, so a plug-in that cannot train fails with one line instead of a search; a
`loss=` kind computes its loss and gradient on that batch first."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from trainables.data.dataset import Dataset
from trainables.errors import UserInputError
from trainables.losses.kinds.plugin import load_loss_kind
from trainables.objective import Objective
from trainables.params import TrialParams
from trainables.plugins import Plugins
from trainables.trial.checkpoints import CHECKPOINT_FILE, load_state
from trainables.trial.context import TrialContext
from trainables.trial.loop import run_local

ROWS = 64  # training and validation rows: one batch


class _Reported(BaseException):  # not an Exception: a trainable's `except Exception` lets it by
    """The first report arrived: the preflight has seen what it needs."""


def preflight(
    plugins: Plugins, data: Dataset, objective: Objective, metrics: Sequence[str] = ()
) -> None:
    """Run `plugins`' trainable for one epoch of the default config on the first ROWS training
    and validation rows (one batch); a UserInputError naming the plug-in when it fails, returns
    logits that are not (N, C) float, or never reports `objective.metric` and `metrics`."""
    rows = slice(0, ROWS)
    small = replace(data, train=data.train.take(rows), val=data.val.take(rows)).without_test()
    if plugins.loss:
        check_loss(plugins, small)
    what = f"model={plugins.model}" + (
        f" trainable={plugins.trainable}" if plugins.trainable else ""
    )
    first: dict[str, Any] = {}

    def stop(result: dict[str, Any], state: dict[str, Any] | None) -> None:
        first.update(result)
        if state is not None:
            _round_trip(state, what)
        raise _Reported

    try:
        config = {"train.max_epochs": 1, "train.batch_size": ROWS}
        run_local(config, small, plugins=plugins, objective=objective, sink=stop)
    except _Reported:
        missing = [m for m in metrics if m not in first]
        if missing:
            raise UserInputError(
                f"preflight of {what}: the trainable does not report {missing} "
                f"(report.objectives); it reports {sorted(first)}"
            ) from None
        return
    except UserInputError as e:
        raise UserInputError(f"preflight of {what} on one batch: {e}") from None
    except Exception as e:  # the plug-in's own bug, said in one line before any trial runs
        line = " ".join(str(e).split())[:300]
        raise UserInputError(
            f"preflight of {what} on one batch: {type(e).__name__}: {line}"
        ) from None
    raise UserInputError(f"preflight of {what}: the trainable returned without calling ctx.report")


def check_loss(plugins: Plugins, small: Dataset) -> None:
    """The `loss=` kind's loss of one batch, `small`'s training rows, under the default config
    (as written: no merging by its same_as), on the seed-0 model's logits, and its gradient; a
    UserInputError naming the plug-in when it raises, returns anything but (N,) floats
    (`trainables.losses.kinds.plugin.Checked`) or a loss or gradient that is not finite."""
    what = f"loss={plugins.loss}"
    kind = load_loss_kind(plugins.loss)
    try:
        params = TrialParams.from_flat({"loss.kind": kind.name})
        ctx = TrialContext(params, small, torch.device("cpu"), _ignore, plugins=plugins)
        torch.manual_seed(0)
        model = ctx.build_model()
        split = small.train
        value = ctx.loss().epoch(0, torch.arange(len(split)))(
            model(split.x, split.tokens), split.y, 0
        )
        value.backward()
    except UserInputError as e:
        text = str(e)
        raise UserInputError(text if what in text else f"{what}: preflight: {text}") from None
    except Exception as e:  # the plug-in's own bug, said in one line before any trial runs
        line = " ".join(str(e).split())[:300]
        raise UserInputError(
            f"{what}: preflight on one batch: {type(e).__name__}: {line}"
        ) from None
    grads = [q.grad for q in model.parameters() if q.grad is not None]
    finite = bool(torch.isfinite(value)) and all(bool(torch.isfinite(g).all()) for g in grads)
    if not finite:
        raise UserInputError(
            f"{what}: the loss ({float(value.detach()):g}) or its gradient is not finite on the preflight "
            f"batch ({len(split)} training rows, the default config with loss.kind={kind.name}); "
            "expected finite values"
        )


def _ignore(result: dict[str, Any], state: dict[str, Any] | None) -> None:
    """The sink of a context that never reports."""


def _round_trip(state: dict[str, Any], what: str) -> None:
    """The checkpoint saved and read back as a restore reads it (`trainables.trial.checkpoints`); a
    UserInputError when it holds anything but tensors and plain values."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            torch.save(state, Path(folder) / CHECKPOINT_FILE)
            load_state(folder)
        except Exception as e:
            line = " ".join(str(e).split())[:200]
            raise UserInputError(
                f"preflight of {what}: the checkpoint passed to ctx.report cannot be restored "
                f"(tensors and plain values only): {type(e).__name__}: {line}"
            ) from None
