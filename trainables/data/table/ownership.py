"""Ownership columns: the mapping {column: {signal, granularity, norm}}, the `NORMS` registry of
normalisations (fitted on the training rows), and filling every signal/granularity slot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from trainables.data.table.features import _floats
from trainables.data.table.spec import OwnershipColumn, TableSpec
from trainables.errors import UserInputError
from trainables.params import GRANULARITIES, closest

SIGNALS = ("aco", "rso")
OWNERSHIP_KEYS = ("signal", "granularity", "norm")


def _ownership_columns(spec: TableSpec) -> list[OwnershipColumn]:
    """Validate the ownership mapping {column: {signal, granularity, norm}}."""
    out, seen = [], {}
    for column, mapping in spec.ownership.items():
        if not isinstance(mapping, Mapping):
            raise UserInputError(
                f"ownership.{column}: expected a mapping with keys {list(OWNERSHIP_KEYS)}, "
                f"got {mapping!r}"
            )
        for key in mapping:
            if key not in OWNERSHIP_KEYS:
                raise UserInputError(
                    f"ownership.{column}: unknown key {key!r}{closest(key, OWNERSHIP_KEYS)}; "
                    f"expected {list(OWNERSHIP_KEYS)}"
                )
        item = OwnershipColumn(
            column,
            _choice(column, "signal", mapping.get("signal"), SIGNALS),
            _choice(column, "granularity", mapping.get("granularity"), GRANULARITIES),
            _choice(column, "norm", mapping.get("norm", "none"), tuple(NORMS)),
        )
        slot = (item.signal, item.granularity)
        if slot in seen:
            raise UserInputError(
                f"ownership: columns {seen[slot]!r} and {column!r} both map to "
                f"{item.signal}/{item.granularity}; map at most one column to each"
            )
        seen[slot] = column
        out.append(item)
    return out


def _choice(column: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        hint = closest(str(value), choices) if isinstance(value, str) else ""
        raise UserInputError(
            f"ownership.{column}.{key}: expected one of {list(choices)}, got {value!r}{hint}"
        )
    return value


def _norm_none(column: str, x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Values already are proportions in [0, 1]."""
    bad = ~np.isnan(x) & ((x < 0) | (x > 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        seen = x[~np.isnan(x)]
        counts = bool((seen == np.round(seen)).all() and (seen >= 0).all())
        hint = "the values look like counts: set" if counts else "fix the value or set"
        raise UserInputError(
            f"ownership column {column!r} has value {x[row]:g} at row {row} outside [0, 1], "
            f"but norm none expects proportions; {hint} its norm to log_max or rank"
        )
    return x


def _norm_log_max(column: str, x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """log1p(x) / log1p(max over training rows), clipped to [0, 1]."""
    negative = np.flatnonzero(~np.isnan(x) & (x < 0))
    if negative.size:
        row = int(negative[0])
        raise UserInputError(
            f"ownership column {column!r} has negative values (first {x[row]:g} at row {row}); "
            "log_max expects counts >= 0"
        )
    fit = x[train]
    top = np.nanmax(fit) if (~np.isnan(fit)).any() else np.nan
    if not top > 0:
        return np.where(np.isnan(x), np.nan, np.where(x > 0, 1.0, 0.0))
    return np.clip(np.log1p(x) / np.log1p(top), 0.0, 1.0)


def _norm_rank(column: str, x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Mid-rank percentile among training values: (#below + #equal/2) / n_train."""
    ref = np.sort(x[train][~np.isnan(x[train])])
    if ref.shape[0] == 0:
        return np.full_like(x, np.nan)
    below = np.searchsorted(ref, x, side="left")
    upto = np.searchsorted(ref, x, side="right")
    return np.where(np.isnan(x), np.nan, (below + upto) / (2.0 * ref.shape[0]))


NORMS: dict[str, Callable[[str, np.ndarray, np.ndarray], np.ndarray]] = {
    "none": _norm_none,
    "log_max": _norm_log_max,
    "rank": _norm_rank,
}


def _ownership(
    path: str, frame: pd.DataFrame, owners: list[OwnershipColumn], train: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, str | None]]]:
    """(n, 3) aco and rso in GRANULARITIES order, and which column fills each slot."""
    try:
        normed = {
            o.column: NORMS[o.norm](o.column, _floats(frame[o.column]), train) for o in owners
        }
    except UserInputError as err:
        raise UserInputError(f"{path}: {err}") from None
    out, source = {}, {}
    for signal in SIGNALS:
        mapped = {
            GRANULARITIES.index(o.granularity): o.column for o in owners if o.signal == signal
        }
        values = np.full((len(frame), len(GRANULARITIES)), np.nan, dtype=np.float32)  # (n, 3)
        source[signal] = {}
        for g, name in enumerate(GRANULARITIES):
            nearest = min(mapped, key=lambda j, g=g: (abs(j - g), -j)) if mapped else None
            source[signal][name] = None if nearest is None else mapped[nearest]
            if nearest is not None:
                values[:, g] = normed[mapped[nearest]]
        out[signal] = values
    return out["aco"], out["rso"], source
