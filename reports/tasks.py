"""Multi-task loss balance: per trial, each task's weight, share of the weighted loss and scores
at the counted epoch, and the trials where one task carries nearly all of the loss."""

from __future__ import annotations

from typing import Any

from reports.load import Run
from reports.rows import TrialRow

COLUMNS = ("weight", "share", "train_loss", "val_macro_f1")
DOMINANT = 0.9  # a task whose share of the weighted training loss reaches this dominates


def balance_metrics(task: str) -> list[str]:
    """The per-epoch metrics of `task` the Task balance table shows."""
    return [f"train_{task}_{m}" for m in ("weight", "share", "loss")] + [f"val_{task}_macro_f1"]


def counted(run: Run, rows: list[TrialRow]) -> list[tuple[str, dict[str, float]]]:
    """(trial id, its metrics at the counted epoch) of each row that has one."""
    by_id = {t.trial_id: t for t in run.trials}
    return [
        (r.trial_id, by_id[r.trial_id].results.get(r.epoch, {}))
        for r in rows
        if r.epoch is not None
    ]


def task_rows(run: Run, rows: list[TrialRow], shown: list[str]) -> list[dict[str, Any]]:
    """One row per task of each trial in `shown` (trial ids) at its counted epoch: the task's
    weight, share of the weighted training loss, training loss and validation macro-F1."""
    return [
        {"trial_id": trial, "task": task}
        | dict(zip(COLUMNS, [metrics.get(m) for m in balance_metrics(task)], strict=True))
        for trial, metrics in counted(run, rows)
        if trial in shown
        for task in run.facts.get("tasks") or ()
    ]


def dominance_notes(run: Run, rows: list[TrialRow]) -> list[str]:
    """One sentence per task that carries ≥ DOMINANT of the weighted training loss at the counted
    epoch of some trial (how many trials, the largest share)."""
    at = counted(run, rows)
    notes = []
    for task in run.facts.get("tasks") or ():
        heavy = [s for _, m in at if (s := m.get(f"train_{task}_share", 0.0)) >= DOMINANT]
        if heavy:
            notes.append(
                f"task {task} carries ≥ {DOMINANT:.0%} of the weighted training loss in "
                f"{len(heavy)} trial(s) (up to {max(heavy):.1%}): the other tasks barely train there"
            )
    return notes
