"""The report's tables as DataFrames (for trials.csv, pareto.md, pareto.html) and summary.json.

The Pareto table lists front trials best-first on the primary objective (ties: trial id), after
the baseline row; each front trial carries Δ<metric> = its value − the baseline's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from record.reader import natural_key
from reports.analysis import Analysis
from reports.importance import ALL_TRIALS, Importance
from reports.rows import CANDIDATE, TrialRow


def trials_frame(analysis: Analysis, keys: Sequence[str]) -> pd.DataFrame:
    """trials.csv: one row per trial (trial-id order): params, objectives, rank, front flag."""
    base = analysis.baseline.trial_id if analysis.baseline else None
    records = []
    for r in analysis.rows:
        rank = analysis.ranks.get(r.trial_id)
        records.append(
            {"trial_id": r.trial_id, "state": r.state or "unfinished", "epochs": r.epochs}
            | {k: r.params.get(k) for k in keys}
            | {o.metric: r.values[o.metric] for o in analysis.objectives}
            | {
                "pareto_rank": pd.NA if rank is None else rank,
                "on_front": r.trial_id in analysis.front,
                "counted_epoch": pd.NA if r.epoch is None else r.epoch,
                "status": r.status,
                "baseline": r.trial_id == base,
                "note": r.note,
            }
        )
    frame = pd.DataFrame(records)
    for col in ("pareto_rank", "counted_epoch"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


def marks(analysis: Analysis, trial_id: str) -> str:
    """Short labels of a trial's role: knee, best <metric>, baseline."""
    out = ["knee"] if trial_id == analysis.knee else []
    out += [f"best {m}" for m, t in analysis.best.items() if t == trial_id]
    if analysis.baseline and analysis.baseline.trial_id == trial_id:
        out.append("baseline")
    return ", ".join(out)


def front_rows(analysis: Analysis) -> list[TrialRow]:
    """Front trials, best-first on the primary objective, then by trial id."""
    p = analysis.primary
    rows = [analysis.row(t) for t in analysis.front]
    return sorted(rows, key=lambda r: (p.sign * r.values[p.metric], natural_key(r.trial_id)))


def pareto_frame(analysis: Analysis, keys: Sequence[str]) -> pd.DataFrame:
    """The Pareto table: the baseline row first, then every front trial with its deltas."""
    rows = ([analysis.baseline] if analysis.baseline else []) + front_rows(analysis)
    records = []
    for i, r in enumerate(rows):
        is_base = analysis.baseline is not None and i == 0
        record: dict[str, Any] = {
            "row": "baseline" if is_base else "front",
            "trial_id": r.trial_id,
            "marks": marks(analysis, r.trial_id),
        }
        record |= {o.metric: r.values[o.metric] for o in analysis.objectives}
        if analysis.baseline:
            record |= {
                f"Δ{o.metric}": math.nan if is_base else analysis.deltas[r.trial_id][o.metric]
                for o in analysis.objectives
            }
        if is_base and r.status != CANDIDATE:
            record["marks"] = ", ".join(filter(None, [record["marks"], r.note]))
        records.append(record | {k: r.params.get(k) for k in keys})
    return pd.DataFrame(records)


def excluded_frame(analysis: Analysis) -> pd.DataFrame:
    """Trials kept off the front (stopped early, failed, non-finite, …) and why."""
    rows = [r for r in analysis.rows if r.status != CANDIDATE]
    return pd.DataFrame(
        [
            {
                "trial_id": r.trial_id,
                "state": r.state or "unfinished",
                "epochs": r.epochs,
                "status": r.status,
                "why": r.note,
            }
            for r in rows
        ],
        columns=["trial_id", "state", "epochs", "status", "why"],
    )


def importance_frame(importances: Sequence[Importance]) -> pd.DataFrame:
    """Wide table: branch, n_trials, parameter, then one importance column per objective.

    Rows keep the branch order; within a branch, parameters go by importance for the first
    objective. Skipped groups have no rows (see importance_notes).
    """
    metrics = list(dict.fromkeys(imp.metric for imp in importances))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for imp in importances:
        for key, value in imp.values.items():
            row = cells.setdefault(
                (imp.branch, key),
                {"branch": imp.branch or "all", "n_trials": imp.n_trials, "parameter": key},
            )
            row[imp.metric] = value
    frame = pd.DataFrame(
        list(cells.values()), columns=["branch", "n_trials", "parameter", *metrics]
    )
    if frame.empty:
        return frame
    order = {b: i for i, b in enumerate(dict.fromkeys(frame["branch"]))}
    frame = frame.assign(_b=frame["branch"].map(order), _v=-frame[metrics[0]].fillna(-1.0))
    return frame.sort_values(["_b", "_v"], kind="stable").drop(columns=["_b", "_v"])


def importance_notes(importances: Sequence[Importance]) -> list[str]:
    """One note per skipped group (deduplicated across objectives)."""
    return list(dict.fromkeys(imp.note for imp in importances if imp.note))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def summary(analysis: Analysis, importances: Sequence[Importance]) -> dict[str, Any]:
    """summary.json: the key figures of the report (non-finite numbers become null)."""
    base = analysis.baseline
    return {
        "objectives": [str(o) for o in analysis.objectives],
        "primary": str(analysis.primary),
        "epoch_rule": analysis.epoch_rule,
        "max_epochs": analysis.max_epochs,
        "n_trials": len(analysis.rows),
        "n_candidates": len(analysis.candidates),
        "front": list(analysis.front),
        "searched_by": analysis.searched_by,  # which search produced the front
        "ranks": analysis.ranks,
        "reference_point": {m: _finite(v) for m, v in analysis.reference.items()},
        "reference_rule": analysis.reference_rule,
        "hypervolume": analysis.hypervolume,
        "hypervolume_share": analysis.hypervolume_share,
        "knee": analysis.knee,
        "best": analysis.best,
        "constant_objectives": analysis.constant,
        "baseline": None
        if base is None
        else {
            "trial_id": base.trial_id,
            "status": base.status,
            "values": {m: _finite(v) for m, v in base.values.items()},
        },
        "deltas": {
            t: {m: _finite(v) for m, v in analysis.deltas[t].items()}
            for t in analysis.front
            if t in analysis.deltas
        },
        "stopped_early": [r.trial_id for r in analysis.stopped],
        "excluded": {r.trial_id: r.note for r in analysis.excluded},
        "importance": [
            {
                "objective": i.metric,
                "branch": i.branch or ALL_TRIALS,
                "n_trials": i.n_trials,
                "values": i.values,
                "note": i.note,
            }
            for i in importances
        ],
        "task_balance": analysis.tasks,
        "notes": analysis.notes,
    }
