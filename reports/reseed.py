"""Seed robustness of finalists: mean ± std per objective per config, and the front of the means.

Rows are re-trainings of Pareto configs with new seeds (`<output_dir>/reseed.jsonl`, written by
search/reseed.py), one JSON object per (config, seed):
  {"config": label (the original trial id), "seed": int, <metric>: value, ...,
   "test_<name>": value, ...}  (test-split metrics of the re-trained model, optional)
or, for a re-training that failed, {"config", "seed", "error": reason} (counted, not averaged).
A row without `config` is identified by its `params` mapping. std is the sample standard deviation
(ddof=1; NaN for a single seed). Non-dominance is computed on the objective means only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import pareto
from reports.objectives import Objective, parse_objectives, to_minimisation
from trainables.errors import UserInputError
from trainables.reported import DEFAULT_OBJECTIVES

ERROR_KEY = "error"  # set on the row of a re-training that failed


def read_reseeds(path: Path, tolerant: bool = False) -> list[dict[str, Any]] | None:
    """Rows of reseed.jsonl (one JSON object per line), or None without the file.

    A line that is not a JSON object is a UserInputError naming it, except, when `tolerant`, an
    unreadable last line (a write cut by a kill), which is dropped.
    """
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError):
            if tolerant and number == len(lines):
                break
            raise UserInputError(f"{path}:{number}: expected one JSON object per line") from None
    return rows


def config_label(row: Mapping[str, Any]) -> str:
    """The config a row belongs to: its `config` value, else its params as canonical JSON."""
    if row.get("config") is not None:
        return str(row["config"])
    if isinstance(row.get("params"), Mapping):
        return json.dumps(row["params"], sort_keys=True, default=str)
    raise UserInputError(f"reseed row {dict(row)!r}: expected a 'config' label or 'params' mapping")


def test_metric(metric: str) -> str | None:
    """The test-split counterpart of a validation metric (val_x → test_x); None for others."""
    return f"test_{metric[4:]}" if metric.startswith("val_") else None


def reseed_summary(
    rows: Iterable[Mapping[str, Any]],
    objectives: str | Sequence[str] | Sequence[Objective] | None = None,
) -> pd.DataFrame:
    """One row per config: n_seeds, n_failed, <metric>_mean/_std per objective and per test
    counterpart present in the rows, nondominated (on the objective means).

    `objectives` defaults to the search's default objectives (trainables.reported.DEFAULT_OBJECTIVES).
    """
    objs = _objectives(objectives)
    rows = list(rows)
    done = [r for r in rows if not r.get(ERROR_KEY)]
    tests = [t for o in objs if (t := test_metric(o.metric)) and any(t in r for r in done)]
    metrics = [o.metric for o in objs] + tests
    columns = ["config", "n_seeds", "n_failed"]
    for m in metrics:
        columns += [f"{m}_mean", f"{m}_std"]
    configs = sorted({config_label(r) for r in rows})
    if not configs:
        return pd.DataFrame(columns=[*columns, "nondominated"])
    frame = pd.DataFrame(
        [{"config": config_label(r)} | {m: r.get(m, np.nan) for m in metrics} for r in done],
        columns=["config", *metrics],
    )
    frame[metrics] = frame[metrics].astype(float)
    grouped = frame.groupby("config", sort=True)
    table = pd.DataFrame(index=pd.Index(configs, name="config"))
    table["n_seeds"] = grouped.size().reindex(configs, fill_value=0)
    failed = pd.Series([config_label(r) for r in rows if r.get(ERROR_KEY)], dtype=object)
    table["n_failed"] = failed.value_counts().reindex(configs, fill_value=0)
    for m in metrics:
        table[f"{m}_mean"] = grouped[m].mean().reindex(configs)
        table[f"{m}_std"] = grouped[m].std(ddof=1).reindex(configs)
    table = table.reset_index()[columns]
    means = table[[f"{o.metric}_mean" for o in objs]].to_numpy(dtype=float)
    table["nondominated"] = pareto.nondominated(to_minimisation(means, objs))
    return table


def format_mean_std(table: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The summary with one "mean ± std" text column per objective (and per test metric)."""
    out = table[["config", "n_seeds"]].copy()
    if table["n_failed"].any():
        out["n_failed"] = table["n_failed"]
    metrics = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    for m in metrics:
        mean, std = table[f"{m}_mean"], table[f"{m}_std"]
        out[m] = [_mean_std(a, b) for a, b in zip(mean, std, strict=True)]
    out["nondominated"] = table["nondominated"]
    return out


RESEED_NOTE = (
    "Each front config re-trained with new seeds for the full budget, without early stopping: "
    "mean ± sample std over the seeds, values at the epoch with the best search metric "
    "(train_time_s: total). test_* columns: the test split, scored for these finalists only. "
    "nondominated: still on the front of the objective means."
)


def verdict(table: pd.DataFrame) -> str:
    """One sentence: which re-trained configs stay non-dominated on the means."""
    kept = [str(c) for c, on in zip(table["config"], table["nondominated"], strict=True) if on]
    return (
        f"Non-dominated on the means: {', '.join(kept) or 'none'} "
        f"({len(kept)} of {len(table)} re-trained configs)."
    )


def _mean_std(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return ""
    return f"{mean:.4g} ± {std:.2g}" if np.isfinite(std) else f"{mean:.4g}"


def _objectives(
    objectives: str | Sequence[str] | Sequence[Objective] | None,
) -> tuple[Objective, ...]:
    if objectives is None:
        objectives = DEFAULT_OBJECTIVES
    if not isinstance(objectives, str) and all(isinstance(o, Objective) for o in objectives):
        return tuple(objectives)
    return parse_objectives(objectives)  # type: ignore[arg-type]
