"""What "best" means in a search: one reported metric and its direction.

The one definition used by the trial's `best_<metric>`, Optuna, the progress line, the summary,
the re-seeding, the MLflow tags and the report. A value y becomes "lower is better" as
sign·y with sign −1 for max and +1 for min (moocore's and Optuna's convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from record import COMPLETED, STOPPED_EARLY, TrialRecord

SIGNS = {"max": -1.0, "min": 1.0}  # direction -> factor that turns a value into "lower is better"


@dataclass(frozen=True)
class Objective:
    """A reported metric and whether larger (`max`) or smaller (`min`) is better."""

    metric: str = "val_macro_f1"
    direction: str = "max"

    def __post_init__(self) -> None:
        if self.direction not in SIGNS:
            raise ValueError(f"direction: expected one of {list(SIGNS)}, got {self.direction!r}")

    @property
    def sign(self) -> float:
        return SIGNS[self.direction]

    @property
    def best_key(self) -> str:
        """The name under which a trial reports its best value so far."""
        return f"best_{self.metric}"

    def better(self, a: float, b: float | None) -> bool:
        """True when `a` is strictly better than `b` (anything is better than None)."""
        return b is None or self.sign * a < self.sign * b

    def best_index(self, values: Sequence[float]) -> int:
        """Index of the best of `values` (ties: the earliest)."""
        return min(range(len(values)), key=lambda i: (self.sign * float(values[i]), i))

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


DEFAULT_OBJECTIVE = Objective()  # val_macro_f1, max: search.metric and search.mode's defaults


def ranked(
    recorded: list[TrialRecord], objective: Objective, states: tuple[str, ...] = (COMPLETED,)
) -> list[tuple[str, float]]:
    """(trial id, best finite value) of every trial in `states` (completed: trained the full
    budget), best first; ties: smaller id."""
    best: dict[str, float] = {}
    for trial in (t for t in recorded if t.state in states):
        for v in (r[objective.metric] for r in trial.results.values() if objective.metric in r):
            if math.isfinite(v) and objective.better(v, best.get(trial.trial_id)):
                best[trial.trial_id] = v
    return sorted(best.items(), key=lambda item: (objective.sign * item[1], item[0]))


def search_rank(recorded: list[TrialRecord], objective: Objective) -> dict[str, int]:
    """{trial id: position}: the completed trials by `ranked`, then those stopped early by their
    best value (so a family none of whose trials trained the full budget still has a best)."""
    order = [
        tid
        for done in (COMPLETED, STOPPED_EARLY)
        for tid, _ in ranked(recorded, objective, (done,))
    ]
    return {tid: i for i, tid in enumerate(order)}
