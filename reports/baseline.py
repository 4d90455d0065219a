"""The plain cross-entropy baseline that every Pareto trial is compared with.

Plain CE = `trainables.params.is_plain_ce`: loss.kind "ce", no ELF weights, no class weights and no
balanced sampling. The baseline is the earliest such trial that completed, else the earliest such
trial of any state (a stopped or failed baseline is shown with its note).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from record import COMPLETED
from reports.objectives import Objective
from reports.rows import TrialRow
from trainables.params import is_plain_ce


def find_baseline(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The earliest completed plain-CE trial, else the earliest plain-CE trial; None without one.

    "Earliest" is the first appearance in record.jsonl.
    """
    plain = [r for r in rows if is_plain_ce(r.params)]
    if not plain:
        return None
    return min(plain, key=lambda r: (r.state != COMPLETED, r.order))


def deltas(row: TrialRow, baseline: TrialRow, objectives: Sequence[Objective]) -> dict[str, float]:
    """{metric: row − baseline} in each metric's own units (NaN when either is missing)."""
    return {
        o.metric: row.values.get(o.metric, math.nan) - baseline.values.get(o.metric, math.nan)
        for o in objectives
    }
