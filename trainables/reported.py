"""The names of the metrics a trial reports each epoch (trainables.trial.train), without torch:
the config checks `report.objectives` against them before anything heavy is imported."""

from __future__ import annotations

import re

# Every metric each epoch reports, plus val_f1_c<k> per class k and best_<search.metric>.
REPORTED = (
    *("val_macro_f1", "val_accuracy", "val_worst_recall", "val_minority_f1", "val_ece", "val_loss"),
    *("train_loss", "epoch_time_s", "train_time_s", "epoch", "best_epoch"),
    *("w_mean", "w_std", "w_min", "w_max", "w_p25", "w_p50", "w_p75", "w_skew", "w_kurtosis"),
    *("w_frac_clipped", "w_ess"),
)
PER_CLASS = re.compile(r"val_f1_c\d+")
# The report's objectives unless report.objectives says otherwise (metric:max|min). No wall time:
# it depends on the machine's load, so scheduling noise would decide part of the front; every front
# trial trained the full budget, so epochs are equal there (train_time_s stays a reported column).
DEFAULT_OBJECTIVES = ("val_macro_f1:max", "val_worst_recall:max", "val_ece:min")


def is_reported(metric: str) -> bool:
    """True when every trial reports `metric` (one of REPORTED, or val_f1_c<k>)."""
    return metric in REPORTED or PER_CLASS.fullmatch(metric) is not None
