"""The names of the metrics a trial reports each epoch (trainables.trial.train), without torch:
the config checks `report.objectives` against them before anything heavy is imported."""

from __future__ import annotations

import re

# Every metric each epoch reports, plus val_f1_c<k> per class k and best_<search.metric>.
REPORTED = (
    *("val_macro_f1", "val_accuracy", "val_worst_recall", "val_minority_f1", "val_ece", "val_loss"),
    *("val_entropy", "val_entropy_correct", "val_entropy_wrong", "val_temperature"),
    "val_ece_scaled",
    *("train_loss", "epoch_time_s", "train_time_s", "epoch", "best_epoch"),
    *("w_mean", "w_std", "w_min", "w_max", "w_p25", "w_p50", "w_p75", "w_skew", "w_kurtosis"),
    *("w_frac_clipped", "w_ess"),
)
PER_CLASS = re.compile(r"val_f1_c\d+")
# Multi-task data adds each task's (val_<task>_macro_f1, …; train_<task>_share, …): which tasks
# there are is known once the data is loaded, where the preflight checks the names.
PER_TASK = re.compile(
    r"val_.+_(macro_f1|accuracy|worst_recall|minority_f1|ece|loss|f1_c\d+|entropy"
    r"|entropy_correct|entropy_wrong|temperature|ece_scaled)"
    r"|train_.+_(loss|weight|share|accuracy|macro_f1)"
)
# The report's objectives unless report.objectives says otherwise (metric:max|min). No wall time:
# it depends on the machine's load, so scheduling noise would decide part of the front; every front
# trial trained the full budget, so epochs are equal there (train_time_s stays a reported column).
DEFAULT_OBJECTIVES = ("val_macro_f1:max", "val_worst_recall:max", "val_ece:min")


def is_reported(metric: str) -> bool:
    """True when trials can report `metric`: one of REPORTED, val_f1_c<k>, or a task's metric."""
    return metric in REPORTED or any(p.fullmatch(metric) for p in (PER_CLASS, PER_TASK))
