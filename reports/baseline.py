"""The plain cross-entropy baseline that every Pareto trial is compared with.

Plain CE = `trainables.params.is_plain_ce`: loss.kind "ce", no ELF weights, no class weights and no
balanced sampling. The baseline is the completed such trial with the best primary value: its
train.* values were searched like every candidate's, so a Δ measures the loss configuration, not
learning-rate tuning (the confirmation stage re-trains the same trial). Without a completed one, the
earliest plain-CE trial of any state (a stopped or failed baseline is shown with its note).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from record import COMPLETED
from reports.objectives import Objective
from reports.rows import TrialRow
from trainables.params import is_plain_ce


def find_baseline(rows: Sequence[TrialRow], primary: Objective) -> TrialRow | None:
    """The completed plain-CE trial with the best `primary` value (ties: the earliest in the
    record), else the earliest plain-CE trial; None without one."""
    plain = [r for r in rows if is_plain_ce(r.params)]
    if not plain:
        return None

    def rank(r: TrialRow) -> tuple:
        value = r.values.get(primary.metric, math.nan)
        score = primary.sign * value if math.isfinite(value) else math.inf
        return (r.state != COMPLETED, score, r.order)

    return min(plain, key=rank)


def deltas(row: TrialRow, baseline: TrialRow, objectives: Sequence[Objective]) -> dict[str, float]:
    """{metric: row − baseline} in each metric's own units (NaN when either is missing)."""
    return {
        o.metric: row.values.get(o.metric, math.nan) - baseline.values.get(o.metric, math.nan)
        for o in objectives
    }
