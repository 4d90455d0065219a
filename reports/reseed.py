"""Seed robustness of finalists: mean ± std per objective per config, and the front of the means.

Rows are re-trainings of Pareto configs with new seeds, each a mapping with a `config` label (e.g.
the original trial id; else its `params` mapping identifies the config) and the objective metrics.
std is the sample standard deviation (ddof=1; NaN for a single seed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from reports import pareto
from reports.objectives import Objective, parse_objectives, to_minimisation
from trainables.errors import UserInputError


def config_label(row: Mapping[str, Any]) -> str:
    """The config a row belongs to: its `config` value, else its params as canonical JSON."""
    if row.get("config") is not None:
        return str(row["config"])
    if isinstance(row.get("params"), Mapping):
        return json.dumps(row["params"], sort_keys=True, default=str)
    raise UserInputError(f"reseed row {dict(row)!r}: expected a 'config' label or 'params' mapping")


def reseed_summary(
    rows: Iterable[Mapping[str, Any]],
    objectives: str | Sequence[str] | Sequence[Objective] | None = None,
) -> pd.DataFrame:
    """One row per config: n_seeds, <metric>_mean, <metric>_std, nondominated (on the means).

    `objectives` defaults to the search's default objectives (search.config.DEFAULT_OBJECTIVES).
    """
    objs = _objectives(objectives)
    frame = pd.DataFrame(
        [
            {"config": config_label(r)} | {o.metric: r.get(o.metric, np.nan) for o in objs}
            for r in rows
        ]
    )
    columns = ["config", "n_seeds"]
    for o in objs:
        columns += [f"{o.metric}_mean", f"{o.metric}_std"]
    if frame.empty:
        return pd.DataFrame(columns=[*columns, "nondominated"])
    frame[[o.metric for o in objs]] = frame[[o.metric for o in objs]].astype(float)
    grouped = frame.groupby("config", sort=True)
    table = pd.DataFrame({"n_seeds": grouped.size()})
    for o in objs:
        values = grouped[o.metric]
        table[f"{o.metric}_mean"] = values.mean()
        table[f"{o.metric}_std"] = values.std(ddof=1)
    table = table.reset_index()[columns]
    means = table[[f"{o.metric}_mean" for o in objs]].to_numpy(dtype=float)
    table["nondominated"] = pareto.nondominated(to_minimisation(means, objs))
    return table


def format_mean_std(table: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The summary with one "mean ± std" text column per objective, for Markdown or HTML."""
    out = table[["config", "n_seeds"]].copy()
    for o in objectives:
        mean, std = table[f"{o.metric}_mean"], table[f"{o.metric}_std"]
        out[o.metric] = [
            f"{m:.4g} ± {s:.2g}" if np.isfinite(s) else f"{m:.4g}"
            for m, s in zip(mean, std, strict=True)
        ]
    out["nondominated"] = table["nondominated"]
    return out


def _objectives(
    objectives: str | Sequence[str] | Sequence[Objective] | None,
) -> tuple[Objective, ...]:
    if objectives is None:
        from search.config import DEFAULT_OBJECTIVES  # the one place defaults live; light import

        objectives = DEFAULT_OBJECTIVES
    if not isinstance(objectives, str) and all(isinstance(o, Objective) for o in objectives):
        return tuple(objectives)
    return parse_objectives(objectives)  # type: ignore[arg-type]
