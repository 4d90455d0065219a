"""`tune_trial(config, data)`: a trainable (the built-in or `trainable=`) as a Ray Tune function
trainable: device choice, per-epoch reports with Ray's iteration, checkpoints and restores."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from trainables.data.dataset import Dataset
from trainables.objective import DEFAULT_OBJECTIVE, Objective
from trainables.plugins import BUILT_IN, Plugins
from trainables.trial.checkpoints import CHECKPOINT_FILE, FALLBACK, Restored, restore
from trainables.trial.context import TrialContext
from trainables.trial.loop import load_trainable, pick_device, prepare_params
from trainables.trial.nonfinite import NonFiniteError, flagged_result

log = logging.getLogger(__name__)


def _restore(checkpoint: Any) -> Restored | None:
    """The newest loadable state at or before Ray's checkpoint (None: a fresh trial)."""
    if checkpoint is None:
        return None
    return restore(checkpoint.filesystem, checkpoint.path)


class CheckpointClock:
    """Call once per epoch: True when `every_s` seconds have passed since the last True (or since
    the trial started); `every_s` = 0 makes every epoch due. A crash re-trains at most that long."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return False
        self.last = now
        return True


def restore_metrics(restored: Restored | None) -> dict[str, Any]:
    """Reported with every epoch after a restore: from which epoch, how many newer checkpoints
    were unusable, and (after a fallback) the one-line note naming them and why."""
    if restored is None:
        return {}
    out: dict[str, Any] = {
        "restored_from_epoch": restored.epoch,
        "checkpoints_skipped": len(restored.skipped),
    }
    if restored.skipped:
        out[FALLBACK] = restored.note()
    return out


def _iteration(epoch: int) -> dict[str, int]:
    """Ray's `training_iteration` set to epochs trained, so ASHA's rungs and Optuna's steps stay
    epochs also after a fallback re-trains some (Ray would keep counting reports)."""
    return {"training_iteration": epoch + 1}


def tune_trial(
    config: dict[str, Any],
    data: Dataset,
    objective: Objective = DEFAULT_OBJECTIVE,
    plugins: Plugins = BUILT_IN,
) -> None:
    """Ray Tune function trainable: validate the flat config, run the trainable, report each epoch
    and checkpoint at most every `train.checkpoint_every_s` seconds.

    Resumes from the newest loadable checkpoint (`trainables.trial.checkpoints.restore`); a non-finite
    loss or metric reports a flagged last result and raises (`trainables.trial.nonfinite`).
    """
    function = load_trainable(plugins)  # before validation: registers the plug-ins' keys here too
    params = prepare_params(config, data)
    gpu = bool(tune.get_context().get_trial_resources().required_resources.get("GPU", 0))
    device = pick_device(gpu)  # Ray narrows CUDA_VISIBLE_DEVICES to its GPU, so "cuda" is that one
    node = ray.get_runtime_context().get_node_id()  # a retry may run on another node
    trial_id = tune.get_context().get_trial_id()
    log.info("trial %s runs on %s of node %s", trial_id, device, node)
    restored = _restore(tune.get_checkpoint())
    extra = restore_metrics(restored) | {"device": device.type, "node": node}
    due = CheckpointClock(params["train.checkpoint_every_s"])

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        result = metrics | extra | _iteration(metrics["epoch"])
        if state is None or not due():
            tune.report(result)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))

    ctx = TrialContext(
        params,
        data,
        device,
        report,
        plugins=plugins,
        objective=objective,
        restored=None if restored is None else restored.state,
    )
    try:
        function(ctx)
    except NonFiniteError as error:
        log.warning("trial %s: %s; the trial fails without a retry", trial_id, error)
        tune.report(flagged_result(error) | _iteration(error.epoch))
        raise
