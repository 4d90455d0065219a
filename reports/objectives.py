"""Objectives `metric:max|min`: parsed once, and the one place where directions become minimisation.

Every Pareto computation downstream works on minimisation values `y = sign · x` with
sign = -1 for `max` and +1 for `min` (the convention of moocore and of optuna's
`_normalize_value`). Converting back uses the same sign, since sign² = 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from trainables.errors import UserInputError
from trainables.metrics.table import direction
from trainables.objective import SIGNS, Objective
from trainables.params import closest


def parse_objective(text: str) -> Objective:
    """`"val_ece:min"` → Objective("val_ece", "min"); anything else is a UserInputError."""
    metric, sep, direction = str(text).strip().rpartition(":")
    if not sep or not metric or direction not in SIGNS:
        raise UserInputError(
            f"objective {text!r}: expected metric:max or metric:min, e.g. val_macro_f1:max"
        )
    return Objective(metric.strip(), direction)


def parse_objectives(spec: str | Sequence[str]) -> tuple[Objective, ...]:
    """A comma-separated string or a list of `metric:dir` → objectives (≥ 1, no repeats)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    objectives = tuple(parse_objective(item) for item in items if str(item).strip())
    if not objectives:
        raise UserInputError("objectives: expected at least one metric:max|min, got none")
    metrics = [o.metric for o in objectives]
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise UserInputError(f"objectives: each metric may appear once, repeated: {repeated}")
    return objectives


def check_available(objectives: Sequence[Objective], available: Iterable[str]) -> None:
    """Raise a UserInputError naming any objective metric that no trial reported."""
    names = sorted(set(available))
    for o in objectives:
        if o.metric not in names:
            raise UserInputError(
                f"objective {o.metric!r} is not a reported metric{closest(o.metric, names)}; "
                f"available metrics: {', '.join(names) or 'none'}"
            )


def signs(objectives: Sequence[Objective]) -> np.ndarray:
    """(k,) the factor per objective that turns its values into minimisation values."""
    return np.array([o.sign for o in objectives], dtype=float)


def to_minimisation(values: np.ndarray, objectives: Sequence[Objective]) -> np.ndarray:
    """(n, k) values in each objective's own direction → (n, k) values where lower is better."""
    return np.asarray(values, dtype=float) * signs(objectives)


def from_minimisation(points: np.ndarray, objectives: Sequence[Objective]) -> np.ndarray:
    """Inverse of `to_minimisation` (the same sign flip)."""
    return np.asarray(points, dtype=float) * signs(objectives)


FRONT_SCHEDULERS = ("moasha",)  # schedulers that rank trials on every search objective


def parse_searched(text: str) -> Objective:
    """A search objective: `metric:max|min`, or a bare reported metric whose direction the metric
    table gives (`val_ece` → val_ece:min); anything else is a UserInputError."""
    text = str(text).strip()
    if ":" in text:
        return parse_objective(text)
    found = direction(text)
    if found is None:
        raise UserInputError(
            f"objective {text!r}: the metric table gives it no direction; write {text}:max or "
            f"{text}:min"
        )
    return Objective(text, found)


def searched_objectives(
    given: Sequence[str], report: Sequence[str], primary: Objective, scheduler: str
) -> tuple[Objective, ...]:
    """What the search optimises: `given` (search.objectives) when set; else the report's
    objectives under a FRONT_SCHEDULERS `scheduler`, else `primary` (search.metric) alone.
    One objective must be `primary` itself, so that a single objective keeps the single-metric
    search. UserInputError on a bad entry, a repeat, or a lone objective other than `primary`."""
    if not given:
        return parse_objectives(report) if scheduler in FRONT_SCHEDULERS else (primary,)
    objectives = tuple(parse_searched(item) for item in given)
    metrics = [o.metric for o in objectives]
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise UserInputError(f"objectives: each metric may appear once, repeated: {repeated}")
    if len(objectives) == 1 and objectives[0] != primary:
        raise UserInputError(
            f"one objective ({objectives[0]}) is search.metric's single-metric search: set "
            f"search.metric={objectives[0].metric} search.mode={objectives[0].direction} instead"
        )
    return objectives
