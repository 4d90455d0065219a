"""One trial: the trainable contract (`context.TrialContext`), the built-in loop (`loop.train`,
`run_local`, `predict_best`), checkpoints, the non-finite flag and the plug-ins' one-batch
preflight."""

from trainables.trial.context import TrialContext
from trainables.trial.loop import load_trainable, predict_best, run_local, train

__all__ = ["TrialContext", "load_trainable", "predict_best", "run_local", "train"]
