"""The one table of evaluation metrics: each metric's name, direction, range, its form on confusion
matrices, and how it is named per split, class and task. Everything that lists metrics reads it:
the per-epoch scores (trainables.metrics.scores, trainables.trial.context), the names a trial reports (the
config's checks of search.metric and report.objectives), the report's default objectives and
margins, and the confirmation's row bootstrap (reports.confirmation).

Without torch or numpy, so the config checks names before anything heavy is imported. A metric
with a confusion-matrix form is computed from it everywhere: per epoch on the validation split
(torch) and on every bootstrap resample of the test rows (numpy); the others need the predicted
probabilities or the logits (ECE, entropy, the plain CE `loss`) and are computed per epoch by
trainables.metrics.scores alone, so the confirmation cannot recompute them from predicted classes.

Names: a trial reports `val_<name>` (the confirmation `test_<name>`); a per-class metric
`val_f1_c<k>` for each class k; multi-task data `val_<task>_<name>` per task and, for the
`combined` metrics, `val_<name>` the mean over tasks.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Array = Any  # a numpy array or a torch tensor; a function on confusion matrices takes either
FromConfusion = Callable[[Array, int], Array]  # (confusion (..., k, k), minority class) -> (...)


def namespace(a: Array) -> Any:
    """numpy or torch, whichever `a` belongs to (already imported by whoever made `a`): the
    functions below run unchanged on both, in `a`'s dtype and on its device."""
    return sys.modules[type(a).__module__.partition(".")[0]]


def f1_per_class(confusion: Array, minority: int = 0) -> Array:
    """(..., k) F1_k = 2·TP/(2·TP + FP + FN) of (..., k, k) true × predicted counts, 0 when class
    k is absent from both prediction and target (scikit-learn's zero_division=0). (`minority`:
    unused, the signature every from_confusion function has.)"""
    tp = confusion.diagonal(0, -2, -1)
    denom = confusion.sum(-1) + confusion.sum(-2)
    return namespace(confusion).where(denom > 0, 2 * tp / denom.clip(min=1), 0.0)


def recall_per_class(confusion: Array) -> Array:
    """(..., k) recall TP/support of each class, inf for a class absent from the target."""
    tp, support = confusion.diagonal(0, -2, -1), confusion.sum(-1)
    return namespace(confusion).where(support > 0, tp / support.clip(min=1), math.inf)


def macro_f1(confusion: Array, minority: int) -> Array:
    """F1 averaged over all k classes."""
    return f1_per_class(confusion).mean(-1)


def accuracy(confusion: Array, minority: int) -> Array:
    """The share of rows predicted right."""
    return confusion.diagonal(0, -2, -1).sum(-1) / confusion.sum(-1).sum(-1)


def worst_recall(confusion: Array, minority: int) -> Array:
    """The smallest recall over the classes present in the target."""
    return namespace(confusion).amin(recall_per_class(confusion), -1)


def minority_f1(confusion: Array, minority: int) -> Array:
    """F1 of the class with the fewest training rows."""
    return f1_per_class(confusion)[..., minority]


@dataclass(frozen=True)
class Metric:
    """One evaluation metric (see the module docstring for how it is named)."""

    name: str  # a per-class metric's name ends in `_c`: the class id k follows (f1_c3)
    direction: str | None  # "max" | "min": which is better; None: descriptive only
    bounded: bool  # values lie in [0, 1]: the confirmation gives it a default margin
    # numpy/torch (..., k, k) counts, minority class -> (...) values, or (..., k) for a per-class
    # metric; None: not computable from predicted classes (needs probabilities or logits)
    from_confusion: FromConfusion | None = None
    per_class: bool = False  # one value per class: <name><k>
    combined: bool = True  # multi-task: also reported as the mean over tasks under the plain name
    objective: bool = False  # one of the report's default objectives

    @property
    def pattern(self) -> str:
        """A regex of the bare names it is reported under (f1_c\\d+ for a per-class one)."""
        return re.escape(self.name) + (r"\d+" if self.per_class else "")

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min", None):
            raise ValueError(f"direction: expected 'max', 'min' or None, got {self.direction!r}")


# The report's default objectives (objective=True) leave out wall time: it depends on the
# machine's load, so scheduling noise would decide part of the front; every front trial trained
# the full budget, so epochs are equal there (train_time_s stays a reported column).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("macro_f1", "max", True, macro_f1, objective=True),
        Metric("accuracy", "max", True, accuracy),
        Metric("worst_recall", "max", True, worst_recall, objective=True),
        Metric("minority_f1", "max", True, minority_f1),
        Metric("f1_c", "max", True, f1_per_class, per_class=True, combined=False),
        Metric("ece", "min", True, objective=True),  # expected calibration error (15 bins)
        Metric("loss", "min", False),  # plain unweighted cross-entropy
        Metric("entropy", None, False),  # mean predictive entropy (nats)
        Metric("entropy_correct", None, False),  # ... over the rows predicted right
        Metric("entropy_wrong", None, False),  # ... over the rows predicted wrong
        Metric("temperature", None, False, combined=False),  # fitted on validation
        Metric("ece_scaled", "min", True),  # ECE after temperature scaling
    )
}

# What each epoch reports besides the evaluation metrics (trainables.trial.loop.train; w_* the applied
# weights' summary, trainables.losses.weights.weight_stats), plus best_<search.metric>.
TRAINING = ("train_loss", "epoch_time_s", "train_time_s", "epoch", "best_epoch")
TRAINING += ("w_mean", "w_std", "w_min", "w_max", "w_p25", "w_p50", "w_p75", "w_skew")
TRAINING += ("w_kurtosis", "w_frac_clipped", "w_ess")
# Multi-task data's per-task training diagnostics, train_<task>_<name> (MultiTaskLoss.stats).
TASK_TRAINING = ("loss", "weight", "share", "accuracy", "macro_f1")


def register(metric: Metric) -> Metric:
    """Add `metric` to the table (a new name only); `unregister` takes it out again."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is already in the table")
    METRICS[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    del METRICS[name]


def lookup(name: str) -> tuple[Metric, int | None] | None:
    """The metric a bare name (no val_/test_ prefix, no task) is, with its class for a per-class
    one (f1_c3 → (f1_c, 3)); None when it is none of the table's."""
    for metric in METRICS.values():
        if re.fullmatch(metric.pattern, name):
            return metric, int(name[len(metric.name) :]) if metric.per_class else None
    return None


def score(name: str, confusion: Array, minority: int) -> Array:
    """The metric `name` (bare, e.g. macro_f1 or f1_c2) of (..., k, k) true × predicted counts,
    numpy or torch, as the per-epoch scores define it. Raises KeyError for a metric without a
    confusion-matrix form."""
    found = lookup(name)
    if found is None or found[0].from_confusion is None:
        raise KeyError(f"{name!r} has no confusion-matrix form")
    metric, cls = found
    value = metric.from_confusion(confusion, minority)
    return value if cls is None else value[..., cls]


def from_confusion() -> tuple[Metric, ...]:
    """The metrics computable from predicted classes, in table order."""
    return tuple(m for m in METRICS.values() if m.from_confusion is not None)


def combined() -> tuple[str, ...]:
    """The metrics multi-task data reports as the mean over tasks (val_macro_f1, …)."""
    return tuple(m.name for m in METRICS.values() if m.combined)


def reported() -> tuple[str, ...]:
    """Every name each epoch reports on single-task data, besides val_f1_c<k> per class k and
    best_<search.metric>."""
    evaluation = tuple(f"val_{m.name}" for m in METRICS.values() if not m.per_class)
    return evaluation + TRAINING


def _any(metrics: Iterable[Metric]) -> str:
    """One regex alternation of the metrics' bare names."""
    return "|".join(m.pattern for m in metrics)


def is_reported(metric: str) -> bool:
    """True when trials can report `metric`: one of `reported()`, a per-class metric, or a task's
    (val_<task>_<name>, train_<task>_<name>): which tasks there are is known once the data is
    loaded, where the preflight checks the names."""
    per_class = _any(m for m in METRICS.values() if m.per_class)
    per_task = rf"val_.+_({_any(METRICS.values())})|train_.+_({'|'.join(TASK_TRAINING)})"
    return metric in reported() or any(
        re.fullmatch(p, metric) for p in (rf"val_({per_class})", per_task)
    )


def default_objectives() -> tuple[str, ...]:
    """The report's objectives unless report.objectives says otherwise, as metric:max|min."""
    return tuple(f"val_{m.name}:{m.direction}" for m in METRICS.values() if m.objective)


def bounded(metric: str) -> bool:
    """True when `metric` (val_/test_, a task's or not) lies in [0, 1] by the table."""
    name = re.sub(r"^(val|test)_", "", metric)  # test_<task>_<name> ends as test_<name> does
    return bool(re.search(rf"(^|_)({_any(m for m in METRICS.values() if m.bounded)})$", name))


def direction(metric: str) -> str | None:
    """ "max" or "min" for a reported evaluation metric (val_/test_, a task's or not) by the table;
    None for a metric the table gives no direction or does not hold (train_loss, w_mean, …)."""
    name = re.sub(r"^(val|test)_", "", metric)
    if name == metric:
        return None
    for m in METRICS.values():
        if re.search(rf"(^|_)({m.pattern})$", name):
            return m.direction
    return None
