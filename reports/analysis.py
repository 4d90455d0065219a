"""The Pareto analysis of a run: candidates → ranks, front, hypervolume, knee, best, baselines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reports import pareto
from reports.baseline import deltas, find_baseline
from reports.defaults import EPOCH_RULE, HV_MARGIN
from reports.load import Run
from reports.objectives import (
    Objective,
    check_available,
    from_minimisation,
    parse_objectives,
    to_minimisation,
)
from reports.rows import CANDIDATE, EXCLUDED, STOPPED, TrialRow, trial_rows
from reports.search_kind import front_search
from reports.tasks import dominance_notes, task_rows
from trainables.errors import UserInputError


@dataclass(frozen=True)
class Analysis:
    """Everything the report shows; values are in each metric's own units and direction."""

    objectives: tuple[Objective, ...]
    primary: Objective
    epoch_rule: str
    max_epochs: int | None
    rows: list[TrialRow]  # every trial, trial-id order
    ranks: dict[str, int]  # candidate trial id -> non-dominated sorting rank (0 = front)
    front: list[str]  # trial ids with rank 0, trial-id order
    reference: dict[str, float]  # hypervolume reference point per metric
    reference_rule: str  # how the reference point was chosen
    hypervolume: float | None  # None without candidates
    hypervolume_share: float | None  # of the box between ideal and reference point, in [0, 1]
    knee: str | None
    best: dict[str, str]  # metric -> trial id of the best front trial (ties: trial id)
    baseline: TrialRow | None
    deltas: dict[str, dict[str, float]]  # trial id -> metric -> value − baseline value
    notes: list[str] = field(default_factory=list)
    constant: dict[str, float] = field(default_factory=dict)  # objective -> its only value
    tasks: list[dict[str, Any]] = field(default_factory=list)  # multi-task balance (reports.tasks)
    searched_by: str = ""  # which search produced the front (reports.search_kind)

    def row(self, trial_id: str) -> TrialRow:
        return next(r for r in self.rows if r.trial_id == trial_id)

    def with_status(self, status: str) -> list[TrialRow]:
        return [r for r in self.rows if r.status == status]

    @property
    def candidates(self) -> list[TrialRow]:
        return self.with_status(CANDIDATE)

    @property
    def stopped(self) -> list[TrialRow]:
        return self.with_status(STOPPED)

    @property
    def excluded(self) -> list[TrialRow]:
        return self.with_status(EXCLUDED)


def resolve_objectives(run: Run, objectives: str | Sequence[str] | None) -> tuple[Objective, ...]:
    """Explicit objectives, else config.yaml's report.objectives; checked against the metrics."""
    spec = objectives if objectives is not None else run.setting("report.objectives")
    if spec is None:
        raise UserInputError(
            "no objectives: pass --objectives metric:max,... "
            "or set report.objectives in config.yaml"
        )
    parsed = parse_objectives(spec)
    check_available(parsed, run.metrics())
    return parsed


def primary_objective(run: Run, objectives: Sequence[Objective]) -> Objective:
    """The objective named by search.metric when it is one, else the first objective."""
    metric = run.setting("search.metric")
    return next((o for o in objectives if o.metric == metric), objectives[0])


def points(rows: Sequence[TrialRow], objectives: Sequence[Objective]) -> np.ndarray:
    """(n, k) minimisation points of `rows`."""
    values = np.array([[r.values[o.metric] for o in objectives] for r in rows], dtype=float)
    return to_minimisation(values.reshape(len(rows), len(objectives)), objectives)


def analyse(
    run: Run,
    objectives: str | Sequence[str] | None = None,
    *,
    reference: Mapping[str, float] | None = None,
    margin: float = HV_MARGIN,
    epoch_rule: str = EPOCH_RULE,
) -> Analysis:
    """Compute the front of `run`'s full-budget trials and everything the report shows about it.

    `reference` (metric -> value) overrides the default reference point per metric; else
    config.yaml's report.reference is used, else the worst candidate value nudged by `margin`.
    """
    objs = resolve_objectives(run, objectives)
    primary = primary_objective(run, objs)
    rows = trial_rows(run, objs, primary, epoch_rule)
    cands = [r for r in rows if r.status == CANDIDATE]
    pts = points(cands, objs)
    ranks = pareto.pareto_ranks(pts)
    front_mask = pareto.nondominated(pts)
    front = [r for r, on in zip(cands, front_mask, strict=True) if on]
    given = reference if reference is not None else run.setting("report.reference")
    ref, rule = choose_reference_point(pts, objs, given, margin)
    notes = list(run.notes)
    hv = share = knee = None
    if front:
        front_pts, ref_min = pts[front_mask], to_minimisation(ref[None, :], objs)[0]
        hv = pareto.hypervolume(front_pts, ref_min)
        share = pareto.hypervolume_share(front_pts, ref_min)
        knee = front[pareto.knee(front_pts)].trial_id
        outside = int((~(front_pts < ref_min).all(axis=1)).sum())
        if outside:
            notes.append(f"{outside} front trial(s) do not dominate the reference point: 0 volume")
    best = {  # among front trials: a tie on one objective goes to a non-dominated trial
        o.metric: front[pareto.best_index(pts[front_mask][:, j])].trial_id
        for j, o in enumerate(objs)
        if front
    }
    constant = constant_objectives(rows, objs)
    for metric, value in constant.items():
        notes.append(
            f"{metric} is {value:g} for every trial: it carries no information about which "
            "configuration is better (a class too small to recall, say); consider dropping it "
            "from report.objectives"
        )
    notes += dominance_notes(run, rows)
    base = find_baseline(rows, primary)
    if base is None:
        notes.append(
            "no plain-CE baseline trial (loss.kind=ce, no ELF, no class weights, "
            "no balanced sampling): deltas omitted"
        )
    return Analysis(
        objectives=objs,
        primary=primary,
        epoch_rule=epoch_rule,
        max_epochs=run.max_epochs,
        rows=rows,
        ranks={r.trial_id: int(k) for r, k in zip(cands, ranks, strict=True)},
        front=[r.trial_id for r in front],
        reference=dict(zip([o.metric for o in objs], map(float, ref), strict=True)),
        reference_rule=rule,
        hypervolume=hv,
        hypervolume_share=share,
        knee=knee,
        best=best,
        baseline=base,
        deltas={r.trial_id: deltas(r, base, objs) for r in rows} if base else {},
        notes=notes,
        constant=constant,
        tasks=task_rows(run, rows, [r.trial_id for r in front] + ([base.trial_id] if base else [])),
        searched_by=front_search(run),
    )


def constant_objectives(
    rows: Sequence[TrialRow], objectives: Sequence[Objective]
) -> dict[str, float]:
    """Objectives whose finite value is the same for every trial with one (at least two trials)."""
    out = {}
    for o in objectives:
        values = {
            r.values[o.metric] for r in rows if math.isfinite(r.values.get(o.metric, math.nan))
        }
        counted = sum(math.isfinite(r.values.get(o.metric, math.nan)) for r in rows)
        if len(values) == 1 and counted >= 2:
            out[o.metric] = values.pop()
    return out


def choose_reference_point(
    pts: np.ndarray,
    objectives: Sequence[Objective],
    given: Mapping[str, float] | None,
    margin: float,
) -> tuple[np.ndarray, str]:
    """(k,) reference point in metric units, and the rule that chose it."""
    if not (math.isfinite(margin) and margin >= 0):
        raise UserInputError(f"reference-point margin: expected a number >= 0, got {margin!r}")
    if given is not None and not isinstance(given, Mapping):
        raise UserInputError(f"report.reference: expected a mapping metric: value, got {given!r}")
    given = dict(given or {})
    unknown = sorted(set(given) - {o.metric for o in objectives})
    if unknown:
        names = [o.metric for o in objectives]
        raise UserInputError(f"reference point: {unknown} are not objectives; objectives: {names}")
    if len(pts):
        default = from_minimisation(pareto.nadir_reference(pts, margin)[None, :], objectives)[0]
    else:
        default = np.full(len(objectives), np.nan)
    ref = np.array(
        [
            _number(given.get(o.metric, d), o.metric)
            for o, d in zip(objectives, default, strict=True)
        ]
    )
    rule = f"worst front-candidate value per objective, moved out by {margin:g} x its range"
    if given:
        rule = f"given for {sorted(given)}; otherwise {rule}"
    return ref, rule


def _number(value: object, metric: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        message = f"reference point {metric}: expected a number, got {value!r}"
        raise UserInputError(message) from None
