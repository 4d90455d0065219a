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


def task_rows(run: Run, rows: list[TrialRow], shown: list[str]) -> list[dict[str, Any]]:
    """One row per task of each trial in `shown` (trial ids) at its counted epoch: the task's
    weight, share of the weighted training loss, training loss and validation macro-F1."""
    tasks = list(run.facts.get("tasks") or ())
    by_id = {t.trial_id: t for t in run.trials}
    out = []
    for row in rows:
        if row.trial_id not in shown or row.epoch is None:
            continue
        metrics = by_id[row.trial_id].results.get(row.epoch, {})
        for task in tasks:
            values = [metrics.get(m) for m in balance_metrics(task)]
            out.append(
                {"trial_id": row.trial_id, "task": task} | dict(zip(COLUMNS, values, strict=True))
            )
    return out


def dominance_notes(run: Run, rows: list[TrialRow]) -> list[str]:
    """One sentence per task that carries ≥ DOMINANT of the weighted training loss at the counted
    epoch of some trial (how many trials, the largest share)."""
    by_id = {t.trial_id: t for t in run.trials}
    notes = []
    for task in run.facts.get("tasks") or ():
        shares = [
            by_id[r.trial_id].results.get(r.epoch, {}).get(f"train_{task}_share", 0.0)
            for r in rows
            if r.epoch is not None
        ]
        heavy = [s for s in shares if s >= DOMINANT]
        if heavy:
            notes.append(
                f"task {task} carries ≥ {DOMINANT:.0%} of the weighted training loss in "
                f"{len(heavy)} trial(s) (up to {max(heavy):.1%}): the other tasks barely train there"
            )
    return notes
