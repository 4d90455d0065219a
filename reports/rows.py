"""One row per trial: the objective values that count, and whether the trial may join the front.

A trial's values come from one epoch (the best epoch of the primary metric by default), except the
TOTAL_METRICS (train_time_s), read at its last reported epoch. Only trials that trained the full
budget (state completed, epochs == train.max_epochs) with finite values are front candidates;
stopped-early trials are listed and marked; failed, unfinished and non-finite rows are excluded
with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from record import COMPLETED, FAILED, STOPPED_EARLY, TrialRecord
from reports.defaults import TOTAL_METRICS
from reports.load import Run
from reports.objectives import Objective
from trainables.errors import UserInputError

# Row status -> whether it may be on the front; anything but "candidate" is reported with a note.
CANDIDATE, STOPPED, EXCLUDED = "candidate", "stopped_early", "excluded"

Results = dict[int, dict[str, float]]


@dataclass(frozen=True)
class TrialRow:
    """The values of one trial that the report uses."""

    trial_id: str
    order: int  # first appearance in record.jsonl
    state: str | None
    epochs: int
    epoch: int | None  # the counted epoch (None: nothing usable)
    params: dict[str, Any]
    values: dict[str, float]  # objective metric -> value in its own direction
    status: str  # CANDIDATE, STOPPED or EXCLUDED
    note: str  # why the row is not a candidate ("" for candidates)


def best_epoch(results: Results, primary: Objective) -> int | None:
    """The epoch with the best finite primary value (ties: the earliest)."""
    finite = [
        (e, r[primary.metric])
        for e, r in sorted(results.items())
        if math.isfinite(r.get(primary.metric, math.nan))
    ]
    if not finite:
        return None
    best = min(finite, key=lambda item: primary.sign * item[1])
    return best[0]


def last_epoch(results: Results, primary: Objective) -> int | None:
    """The last reported epoch."""
    return max(results) if results else None


EPOCH_RULES: dict[str, Callable[[Results, Objective], int | None]] = {
    "best": best_epoch,
    "last": last_epoch,
}


def counted_values(
    results: Results, objectives: Sequence[Objective], primary: Objective, rule: str
) -> tuple[int | None, dict[str, float]]:
    """(counted epoch, {metric: value}); NaN where a metric is missing."""
    if rule not in EPOCH_RULES:
        raise UserInputError(f"epoch rule {rule!r}: expected one of {list(EPOCH_RULES)}")
    epoch = EPOCH_RULES[rule](results, primary)
    values = {}
    for o in objectives:
        if o.metric in TOTAL_METRICS:
            reported = [r[o.metric] for _, r in sorted(results.items()) if o.metric in r]
            values[o.metric] = reported[-1] if reported else math.nan
        else:
            row = results.get(epoch, {}) if epoch is not None else {}
            values[o.metric] = row.get(o.metric, math.nan)
    return epoch, values


def classify(
    trial: TrialRecord, values: dict[str, float], max_epochs: int | None
) -> tuple[str, str]:
    """(status, note) of a trial, given its counted values and the epoch budget."""
    if trial.state == FAILED:
        return EXCLUDED, f"failed: {trial.reason}" if trial.reason else "failed"
    if trial.state is None:
        return EXCLUDED, "unfinished (no end event)"
    bad = [m for m, v in values.items() if not math.isfinite(v)]
    if bad:
        return EXCLUDED, f"non-finite or missing {', '.join(bad)}"
    if trial.state == STOPPED_EARLY:
        return STOPPED, f"stopped early after {trial.epochs_trained} epoch(s)"
    if trial.state != COMPLETED:
        return EXCLUDED, f"unknown end state {trial.state!r}"
    if max_epochs is not None and trial.epochs_trained < max_epochs:
        return EXCLUDED, f"completed {trial.epochs_trained} of {max_epochs} epochs"
    return CANDIDATE, ""


def trial_rows(
    run: Run, objectives: Sequence[Objective], primary: Objective, rule: str
) -> list[TrialRow]:
    """One TrialRow per trial of `run`, in trial-id order."""
    rows = []
    for t in run.trials:
        epoch, values = counted_values(t.results, objectives, primary, rule)
        status, note = classify(t, values, run.max_epochs)
        rows.append(
            TrialRow(
                t.trial_id,
                t.order,
                t.state,
                t.epochs_trained,
                epoch,
                t.params,
                values,
                status,
                note,
            )
        )
    return rows


def searched_keys(run: Run) -> list[str]:
    """Searched parameter keys: from the space file, else the params that vary across trials."""
    if run.space is not None:
        return [p.key for p in run.space]
    keys = sorted({k for t in run.trials for k in t.params})
    return [k for k in keys if len({repr(t.params.get(k)) for t in run.trials}) > 1]
