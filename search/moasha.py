"""MOASHA: asynchronous successive halving whose rungs rank trials on several objectives.

Ray's schedulers (ASHA included) take one metric. `MOASHA` is a Ray Tune `FIFOScheduler` with
ASHA's rung logic (Ray's `AsyncHyperBandScheduler`, one bracket): milestones
grace_period · η^k for k = 0, 1, … up to max_t (as Ray's ASHA counts them); a trial reaching a milestone it has not been
recorded at is ranked against the results recorded there so far, then recorded. The ranking:

1. non-dominated sorting (`moocore.pareto_rank` on minimisation points, `reports.pareto`), front 0
   first; a point with a non-finite objective ranks after every finite one;
2. within a front, the larger hypervolume contribution first (`moocore.hv_contributions` over the
   front's distinct points, reference point = the rung's nadir nudged by `HV_MARGIN` of the spread,
   `reports.pareto.nadir_reference`); duplicates share their point's contribution.

A trial continues when fewer than n/η of the n points at the rung (itself included; for a finite
point, the finite ones only) rank strictly ahead of it, i.e. it is in the top ⌈n/η⌉ with ties given the benefit of the doubt, as Ray's ASHA
continues a trial whose value equals the cutoff. With one objective the order is the value's
(front k holds the k-th best value), so MOASHA behaves as ASHA on that objective, up to ASHA's
interpolated percentile. Every trial stops at max_t.

An objective whose values are all equal at a rung ranks nothing there; that is said once per
objective (a log warning), not an error.

Syne Tune's MOASHA ranks the same way (its `NonDominatedPriority`), but does not run on Ray, and
taking its priorities as a library would bring its whole tuning framework for a few lines that
`moocore` (already a dependency) covers: the sorting and the contributions.

Resume: Ray Tune rebuilds the scheduler and re-adds the restored trials, as for its own ASHA; the
rungs fill again from the results that arrive. `save`/`restore` (TrialScheduler's hooks) write and
read the rungs as JSON for a caller that keeps them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import moocore
import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from reports.objectives import to_minimisation
from reports.pareto import nadir_reference, pareto_ranks
from trainables.objective import Objective

logger = logging.getLogger(__name__)

HV_MARGIN = 0.1  # the reference point lies this share of the rung's spread beyond its worst point


def milestones(grace_period: int, max_t: int, reduction_factor: float) -> list[int]:
    """grace_period · η^k for k = 0, 1, … up to the count Ray's ASHA uses:
    ⌊log(max_t / grace_period) / log η⌋ + 1 rungs."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [int(grace_period * reduction_factor**k) for k in range(count)]


def rung_order(points: np.ndarray) -> np.ndarray:
    """(n,) how many of the n minimisation points (n, k) rank strictly ahead of each: by Pareto
    rank, then by larger hypervolume contribution within the rank (see the module docstring)."""
    points = np.asarray(points, dtype=float)
    ranks = pareto_ranks(points).astype(float)
    ranks[ranks < 0] = math.inf  # non-finite rows: behind every front
    gain = np.zeros(len(points))
    finite = np.isfinite(ranks)
    if finite.any():
        ref = nadir_reference(points[finite], HV_MARGIN)
        for rank in np.unique(ranks[finite]):
            members = np.flatnonzero(ranks == rank)
            gain[members] = _contributions(points[members], ref)
    keys = list(zip(ranks, -gain, strict=True))
    return np.array([sum(other < key for other in keys) for key in keys], dtype=int)


def _contributions(front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Each point's exclusive hypervolume contribution among the front's distinct points (a
    duplicate gets its point's, where moocore gives duplicates 0). With one objective a front
    holds one value: nothing to break, all 0."""
    if front.shape[1] < 2:
        return np.zeros(len(front))
    distinct, inverse = np.unique(front, axis=0, return_inverse=True)
    return moocore.hv_contributions(distinct, ref=ref)[inverse.reshape(-1)]


def keeps(points: np.ndarray, index: int, reduction_factor: float) -> bool:
    """Whether point `index` of the rung's points is in the top 1/η: fewer than n/η ahead of it,
    n the finite points for a finite one (non-finite points, behind every front, do not loosen
    the cut, as Ray's ASHA ignores NaN in its cutoff), every point for a non-finite one."""
    points = np.asarray(points, dtype=float)
    finite = np.isfinite(points).all(axis=1)
    n = int(finite.sum()) if finite[index] else len(points)
    return bool(rung_order(points)[index] < n / reduction_factor)


def constant_objectives(points: np.ndarray, objectives: Sequence[Objective]) -> list[str]:
    """The objectives whose finite values at the rung (two or more points) are all equal."""
    points = np.asarray(points, dtype=float)
    ok = points[np.isfinite(points).all(axis=1)]
    if len(ok) < 2:
        return []
    return [o.metric for o, column in zip(objectives, ok.T, strict=True) if np.ptp(column) == 0]


class MOASHA(FIFOScheduler):
    """Multi-objective ASHA over `objectives` (their directions from `Objective`), by `time_attr`
    (epochs) up to `max_t`; Ray's `metric`/`mode` are not used (`set_search_properties`)."""

    def __init__(
        self,
        objectives: Sequence[Objective],
        *,
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
        time_attr: str = "training_iteration",
    ) -> None:
        super().__init__()
        if not objectives:
            raise ValueError("MOASHA needs at least one objective")
        self._objectives = tuple(objectives)
        self._max_t, self._time_attr, self._rf = max_t, time_attr, reduction_factor
        # milestone -> trial id -> its minimisation point there, in arrival order
        self._rungs: dict[int, dict[str, list[float]]] = {
            m: {} for m in milestones(grace_period, max_t, reduction_factor)
        }
        self._said: set[str] = set()  # objectives already reported constant
        self.num_stopped = 0

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self._objectives

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune's metric and mode are the searcher's; the objectives are MOASHA's own."""
        return True

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t:
            action = TrialScheduler.STOP
        else:
            action = self.decide(trial.trial_id, result)
        self.num_stopped += action == TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        """A trial that ends below max_t is recorded at its rung, as ASHA does (no decision)."""
        if result and self._time_attr in result:
            self.decide(trial.trial_id, result)

    def decide(self, trial_id: str, result: dict) -> str:
        """CONTINUE or STOP for a result at `result[time_attr]`: ranked at the highest milestone it
        reached and has not been recorded at (then recorded there); CONTINUE between milestones."""
        now = result[self._time_attr]
        for milestone in sorted(self._rungs, reverse=True):
            recorded = self._rungs[milestone]
            if now < milestone or trial_id in recorded:
                continue
            point = self.point(result)
            recorded[trial_id] = point
            rung = np.array(list(recorded.values()))
            self._say_constant(rung, milestone)
            index = list(recorded).index(trial_id)
            return TrialScheduler.CONTINUE if keeps(rung, index, self._rf) else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def point(self, result: dict) -> list[float]:
        """The result's objective values as a minimisation point (a missing one: NaN)."""
        values = [_number(result.get(o.metric)) for o in self._objectives]
        return to_minimisation(np.array([values]), self._objectives)[0].tolist()

    def _say_constant(self, rung: np.ndarray, milestone: int) -> None:
        for metric in constant_objectives(rung, self._objectives):
            if metric not in self._said:
                self._said.add(metric)
                logger.warning(
                    "MOASHA: objective %s has one value across rung %s; it ranks nothing there",
                    metric,
                    milestone,
                )

    def rungs(self) -> dict[int, dict[str, list[float]]]:
        """milestone -> {trial id: minimisation point}, as recorded so far (a copy)."""
        return {m: dict(r) for m, r in self._rungs.items()}

    def save(self, checkpoint_path: str) -> None:
        """The rungs and the stop count as JSON (TrialScheduler's save hook)."""
        state = {
            "rungs": {str(m): r for m, r in self._rungs.items()},
            "said": sorted(self._said),
            "num_stopped": self.num_stopped,
        }
        Path(checkpoint_path).write_text(json.dumps(state), encoding="utf-8")

    def restore(self, checkpoint_path: str) -> None:
        """What `save` wrote; the milestones stay this instance's."""
        state = json.loads(Path(checkpoint_path).read_text(encoding="utf-8"))
        for milestone, recorded in state["rungs"].items():
            if int(milestone) in self._rungs:
                self._rungs[int(milestone)] = dict(recorded)
        self._said = set(state["said"])
        self.num_stopped = state["num_stopped"]

    def debug_string(self) -> str:
        sizes = ", ".join(f"{m}: {len(r)}" for m, r in sorted(self._rungs.items()))
        return f"MOASHA: {self.num_stopped} stopped; trials per rung {{{sizes}}}"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
