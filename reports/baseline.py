"""The plain cross-entropy baseline that every Pareto trial is compared with.

Plain CE = loss.kind "ce", no ELF weights (elf.strategy "none"), no class weights (cw.method
"none") and no balanced sampling; an absent key takes its trainables.params default. The earliest
such trial in record.jsonl is the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from reports.objectives import Objective
from reports.rows import TrialRow
from trainables.params import PARAMS

PLAIN_CE = {
    "loss.kind": "ce",
    "elf.strategy": "none",
    "cw.method": "none",
    "train.balanced_sampling": False,
}


def is_plain_ce(params: Mapping[str, Any]) -> bool:
    """True when `params` train with unweighted, unsampled cross-entropy."""
    return all(params.get(k, PARAMS[k].default) == v for k, v in PLAIN_CE.items())


def find_baseline(rows: Sequence[TrialRow]) -> TrialRow | None:
    """The earliest plain-CE trial (by first appearance in record.jsonl), or None."""
    plain = [r for r in rows if is_plain_ce(r.params)]
    return min(plain, key=lambda r: r.order) if plain else None


def deltas(row: TrialRow, baseline: TrialRow, objectives: Sequence[Objective]) -> dict[str, float]:
    """{metric: row − baseline} in each metric's own units (NaN when either is missing)."""
    return {
        o.metric: row.values.get(o.metric, math.nan) - baseline.values.get(o.metric, math.nan)
        for o in objectives
    }
