"""A test trainable: the built-in loop with a fault injected at one epoch (`trainable=
tests.fault_trainable:train`), for the harness's retries, fallbacks and non-finite handling.

fault.kind raise: raise InjectedFault; corrupt: truncate the trial's newest checkpoint, then raise;
nan/inf/-inf: the fault.target (train_loss, or val_ece as a metric) becomes that value. With
fault.marker the fault strikes once (it creates the file); without, every time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainables.params import Param
from trainables.trial.context import TrialContext
from trainables.trial.loop import train as built_in

VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
KINDS = ("none", "raise", "corrupt", *VALUES)


class InjectedFault(RuntimeError):
    """Raised by fault.kind=raise or corrupt."""


class Faulty:
    """A TrialContext whose report strikes at fault.epoch."""

    def __init__(self, ctx: TrialContext) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, metrics: dict[str, Any], **kw: Any) -> None:
        p, epoch = self._ctx.params, self._ctx.epoch
        if p["fault.kind"] != "none" and epoch == p["fault.epoch"] and _strikes(p["fault.marker"]):
            kind = p["fault.kind"]
            if kind == "corrupt":
                _truncate_newest()
            if kind in ("raise", "corrupt"):
                raise InjectedFault(f"injected fault ({kind}) at epoch {epoch}")
            key = "train_loss" if p["fault.target"] == "loss" else "val_ece"
            metrics = metrics | {key: VALUES[kind]}
        self._ctx.report(metrics, **kw)


def _strikes(marker: str) -> bool:
    if not marker:
        return True
    if Path(marker).exists():
        return False
    Path(marker).touch()
    return True


def _truncate_newest() -> None:
    from ray import tune

    from trainables.trial.checkpoints import CHECKPOINT_FILE

    newest = tune.get_checkpoint()
    if newest is not None:
        truncate(newest.filesystem, newest.path, CHECKPOINT_FILE)


def truncate(fs: Any, folder: str, name: str) -> None:
    """Cut `folder`/`name` on pyarrow filesystem `fs` to half its size."""
    path = f"{folder.rstrip('/')}/{name}"
    with fs.open_input_stream(path) as f:
        data = f.read()
    with fs.open_output_stream(path) as f:
        f.write(data[: len(data) // 2])


def train(ctx: TrialContext) -> None:
    """The built-in loop, faulted."""
    built_in(Faulty(ctx))


train.params = [
    Param("fault.kind", "none", "str", "The fault.", choices=KINDS),
    Param("fault.target", "loss", "str", "Where nan/inf lands.", choices=("loss", "metric")),
    Param("fault.epoch", 0, "int", "Epoch at which the fault strikes.", low=0),
    Param("fault.marker", "", "text", "Strike once: only while this file does not exist."),
]
