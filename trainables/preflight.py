"""The one-batch preflight: the trainable and model run one epoch on a few real rows in the driver,
before Ray starts, so a plug-in that cannot train fails with one line instead of a search."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from trainables.context import TrialContext
from trainables.dataset import Dataset
from trainables.errors import UserInputError
from trainables.objective import Objective
from trainables.plugins import Plugins
from trainables.trial import prepare_params

ROWS = 64  # training and validation rows: one batch


class _Reported(Exception):
    """The first report arrived: the preflight has seen what it needs."""


def preflight(plugins: Plugins, data: Dataset, objective: Objective) -> None:
    """Run `plugins`' trainable for one epoch of the default config on the first ROWS training
    and validation rows (one batch); a UserInputError naming the plug-in when it fails, returns
    logits that are not (N, C) float, or never reports `objective.metric`."""
    function = plugins.load()
    rows = slice(0, ROWS)
    small = replace(data, train=data.train.take(rows), val=data.val.take(rows))
    small = small.without_test()
    config = {"train.max_epochs": 1, "train.batch_size": ROWS}
    ctx = TrialContext(
        prepare_params(config, small),
        small,
        torch.device("cpu"),
        _stop,
        plugins=plugins,
        objective=objective,
    )
    what = f"model={plugins.model}" + (
        f" trainable={plugins.trainable}" if plugins.trainable else ""
    )
    try:
        function(ctx)
    except _Reported:
        return
    except UserInputError as e:
        raise UserInputError(f"preflight of {what} on one batch: {e}") from None
    except Exception as e:  # the plug-in's own bug, said in one line before any trial runs
        first = " ".join(str(e).split())[:300]
        raise UserInputError(
            f"preflight of {what} on one batch: {type(e).__name__}: {first}"
        ) from None
    raise UserInputError(f"preflight of {what}: the trainable returned without calling ctx.report")


def _stop(result: dict[str, Any], state: dict[str, Any] | None) -> None:
    raise _Reported
