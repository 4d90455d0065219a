"""Label hygiene and coding: whitespace, case variants (fold_labels), rare classes
(min_class_rows, rare_classes), then class ids 0..K−1 in sorted order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trainables.data.table.features import _numeric
from trainables.data.table.spec import TableSpec
from trainables.errors import UserInputError

MIN_CLASS_ROWS = 3  # one row each for train, validation and test


def clean_labels(
    spec: TableSpec, name: str, column: pd.Series
) -> tuple[pd.Series, np.ndarray, list[str]]:
    """The label column as it is factorised, the rows kept, and one sentence per change or
    suspicion: surrounding whitespace (always stripped), spellings that differ only in case
    (folded with fold_labels), classes under min_class_rows (merged into "other" or dropped)."""
    notes: list[str] = []
    values = column
    if not _numeric(column):
        values = column.where(column.isna(), column.astype("str").str.strip())
        raw, stripped = column.dropna().unique(), values.dropna().unique()
        if len(raw) != len(stripped):
            notes.append(
                f"label column {name!r}: {len(raw) - len(stripped)} label(s) differ from "
                "another only in surrounding whitespace; stripped"
            )
        values, folded = _fold_case(values, spec.fold_labels)
        if folded:
            done = (
                "folded into the most frequent spelling"
                if spec.fold_labels
                else ("kept apart (data.fold_labels=true folds them)")
            )
            notes.append(
                f"label column {name!r}: spellings that differ only in case, {done}: "
                + "; ".join(" / ".join(map(repr, g)) for g in folded)
            )
    keep = np.ones(len(values), dtype=bool)
    counts = {str(k): int(n) for k, n in values.value_counts().items()}
    sizes = {k: n for k, n in sorted(counts.items()) if n < spec.min_class_rows}
    if sizes:
        mask = values.astype("str").isin(list(sizes)).to_numpy() & values.notna().to_numpy()
        if spec.rare_classes == "drop":
            keep = ~mask
            what = f"{int(mask.sum())} row(s) dropped"
        else:
            values = values.astype("object").where(~mask, "other")
            what = "merged into class 'other'"
        notes.append(
            f"label column {name!r}: classes {sizes} have fewer than "
            f"data.min_class_rows={spec.min_class_rows} rows: {what}"
        )
    return values, keep, notes


def _fold_case(values: pd.Series, fold: bool) -> tuple[pd.Series, list[list[str]]]:
    """`values` with case variants mapped to their most frequent spelling when `fold`, and the
    groups of variants (each sorted by frequency, then spelling)."""
    counts = values.value_counts()
    groups: dict[str, list[str]] = {}
    for label in sorted(counts.index, key=lambda v: (-counts[v], v)):
        groups.setdefault(label.casefold(), []).append(label)
    variants = [g for g in groups.values() if len(g) > 1]
    if fold and variants:
        to = {v: g[0] for g in variants for v in g[1:]}
        values = values.replace(to)
    return values, variants


def _labels(spec: TableSpec, name: str, values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(n,) int64 class ids and the class names, sorted (numerically for numeric labels)."""
    missing = values.isna().to_numpy()
    if not _numeric(values):
        missing = missing | (values == "").fillna(True).to_numpy(dtype=bool)
    if missing.any():
        rows = np.flatnonzero(missing)[:5].tolist()
        raise UserInputError(
            f"{spec.path}: label column {name!r} has {int(missing.sum())} empty/NaN values "
            f"(first rows {rows}); every row needs a label"
        )
    codes, uniques = pd.factorize(values, sort=True)
    classes = [_label_name(v) for v in uniques]
    if len(classes) < 2:
        raise UserInputError(
            f"{spec.path}: label column {name!r} has a single class {classes!r}; "
            "expected at least two"
        )
    counts = np.bincount(codes, minlength=len(classes))
    if counts.min() < MIN_CLASS_ROWS:
        small = {classes[k]: int(c) for k, c in enumerate(counts) if c < MIN_CLASS_ROWS}
        raise UserInputError(
            f"{spec.path}: label column {name!r}: classes {small} have fewer than "
            f"{MIN_CLASS_ROWS} rows, too few for a stratified train/val/test split; "
            "data.min_class_rows=N with data.rare_classes=merge or drop handles them"
        )
    return codes.astype(np.int64), classes


def _label_name(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
