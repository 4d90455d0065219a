"""Parameter importance per objective: optuna's default evaluator (PED-ANOVA) on an in-memory study.

The study holds the finished trials (full-budget and stopped-early, finite values) with
distributions from the space file. Parameters without a condition are assessed over all of
them; a conditional parameter (e.g. loss.gamma when loss.kind=focal) is assessed within its branch,
together with the unconditional parameters, over the branch's trials only. Values are minimisation
values (objectives.py), so lower is better for the evaluator. Groups with fewer than
IMPORTANCE_MIN_TRIALS trials are skipped with a note.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from record.reader import natural_key
from reports.analysis import Analysis, points
from reports.defaults import IMPORTANCE_MIN_TRIALS
from reports.rows import CANDIDATE, STOPPED, TrialRow
from reports.searched import SpaceParam, categorical_value

ALL_TRIALS = ""  # branch label of the unconditional group


@dataclass(frozen=True)
class Importance:
    """Importances of one objective within one group of trials (normalised to sum 1)."""

    metric: str
    branch: str  # ALL_TRIALS, or e.g. "loss.kind=focal"
    n_trials: int
    values: dict[str, float]  # parameter -> importance, most important first
    note: str = ""  # why the group was skipped ("" when computed)


@dataclass(frozen=True)
class Group:
    """Trials that share a branch, and the parameters assessed over them."""

    branch: str
    keys: tuple[str, ...]
    trials: tuple[TrialRow, ...]


def param_importances(
    analysis: Analysis,
    space: Sequence[SpaceParam] | None,
    keys: Sequence[str],
    min_trials: int = IMPORTANCE_MIN_TRIALS,
) -> list[Importance]:
    """Importances per branch (outer) and objective (inner) over the finished trials."""
    finished = [r for r in analysis.rows if r.status in (CANDIDATE, STOPPED)]
    dists = distributions(space, keys, finished)
    out = []
    for group in groups(space, list(dists), finished):
        for j, objective in enumerate(analysis.objectives):
            label = group.branch or "all finished trials"
            if len(group.trials) < min_trials:
                note = f"{label}: {len(group.trials)} trial(s), need {min_trials}: skipped"
                out.append(Importance(objective.metric, group.branch, len(group.trials), {}, note))
                continue
            values = points(group.trials, analysis.objectives)[:, j]
            imp = _evaluate(group, dists, values)
            out.append(Importance(objective.metric, group.branch, len(group.trials), imp))
    return out


def groups(
    space: Sequence[SpaceParam] | None, keys: Sequence[str], rows: Sequence[TrialRow]
) -> list[Group]:
    """The group of all rows, then one group per branch (declared, or observed from absent keys).

    A group assesses every parameter active in all of its trials, except the keys that define the
    branch (constant within it); a nested branch also assesses its parent branch's parameters.
    """
    declared = {p.key: p for p in space or () if p.condition}

    def applies(key: str, members: Sequence[TrialRow]) -> bool:
        if key in declared:
            return all(declared[key].active(r.params) for r in members)
        return all(key in r.params for r in members)

    out = [Group(ALL_TRIALS, tuple(k for k in keys if applies(k, rows)), tuple(rows))]
    branches: dict[str, tuple[set[str], tuple[TrialRow, ...]]] = {}
    for key in keys:
        if key in declared and declared[key].branch not in branches:
            param = declared[key]
            inside = tuple(r for r in rows if param.active(r.params))
            branches[param.branch] = ({c for c, _ in param.condition}, inside)
        elif key not in declared and not applies(key, rows):  # sampled in some trials only
            branches[f"{key} sampled"] = (set(), tuple(r for r in rows if key in r.params))
    for branch, (fixed, inside) in branches.items():
        if len(inside) < len(rows):
            members = tuple(k for k in keys if k not in fixed and applies(k, inside))
            out.append(Group(branch, members, inside))
    return out


def distributions(
    space: Sequence[SpaceParam] | None, keys: Sequence[str], rows: Sequence[TrialRow]
) -> dict[str, BaseDistribution]:
    """Optuna distribution per searched key: from the space file, else inferred from the values."""
    declared = {p.key: p.distribution() for p in space or ()}
    out: dict[str, BaseDistribution] = {}
    for key in keys:
        if key in declared:
            out[key] = declared[key]
            continue
        seen = [r.params[key] for r in rows if key in r.params]
        numeric = [v for v in seen if isinstance(v, int | float) and not isinstance(v, bool)]
        if seen and len(numeric) == len(seen) and min(numeric) < max(numeric):
            out[key] = FloatDistribution(float(min(numeric)), float(max(numeric)))
        elif len({repr(v) for v in seen}) > 1:
            choices = sorted(
                {categorical_value(v) for v in seen}, key=lambda v: natural_key(repr(v))
            )
            out[key] = CategoricalDistribution(choices)
    return out


def _in_distribution(dist: BaseDistribution, value: Any) -> tuple[bool, Any]:
    if isinstance(dist, CategoricalDistribution):
        value = categorical_value(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return False, value
    elif not isinstance(dist, FloatDistribution):
        if int(value) != value:
            return False, value
        value = int(value)
    try:  # Optuna's own check of a value against its distribution
        optuna.trial.create_trial(params={"x": value}, distributions={"x": dist}, value=0.0)
    except ValueError:
        return False, value
    return True, value


def _evaluate(
    group: Group, dists: dict[str, BaseDistribution], values: Sequence[float]
) -> dict[str, float]:
    keys = [k for k in group.keys if k in dists]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="minimize")
            for row, value in zip(group.trials, values, strict=True):
                params, used = {}, {}
                for k in keys:
                    ok, v = _in_distribution(dists[k], row.params.get(k, math.nan))
                    if k in row.params and ok:
                        params[k], used[k] = v, dists[k]
                study.add_trial(
                    optuna.trial.create_trial(params=params, distributions=used, value=value)
                )
            present = sorted({k for t in study.trials for k in t.params}, key=keys.index)
            if not present:
                return {}
            return optuna.importance.get_param_importances(study, params=present)
    finally:
        optuna.logging.set_verbosity(verbosity)
