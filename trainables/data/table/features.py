"""Feature columns: which ones (named or "auto"), numeric detection, and the standardisation fitted
on the training rows (signed log1p for log features, ±inf as NaN, constant columns dropped)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainables.data.table.spec import OwnershipColumn, TableSpec, label_columns
from trainables.errors import UserInputError
from trainables.params import closest


def _feature_names(
    spec: TableSpec, frame: pd.DataFrame, owners: list[OwnershipColumn]
) -> list[str]:
    if spec.features == "auto":
        skip = {*label_columns(spec), spec.text, *(o.column for o in owners)}
        names = [c for c in frame.columns if c not in skip and _numeric(frame[c])]
    else:
        names = list(spec.features)
        for label in label_columns(spec):
            if label in names:
                raise UserInputError(
                    f"data.features: the label column {label!r} cannot also be a feature"
                )
    named = [] if spec.features == "auto" else [("feature", n) for n in names]
    for role, name in [*named, *(("ownership", o.column) for o in owners)]:
        if frame[name].isna().all():
            raise UserInputError(
                f"{spec.path}: {role} column {name!r} has no values (every row is empty or NaN)"
            )
    for name in [*names, *(o.column for o in owners)]:
        if not _numeric(frame[name]):
            raise UserInputError(
                f"{spec.path}: column {name!r} must be numeric, got dtype {frame[name].dtype}"
            )
    for name in spec.log_features:
        if name not in names:
            raise UserInputError(
                f"data.log_features: log feature {name!r} is not a feature{closest(name, names)}"
            )
    return names


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _floats(column: pd.Series) -> np.ndarray:
    """(n,) float64 with ±inf and missing values as NaN."""
    x = column.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    x[np.isinf(x)] = np.nan
    return x


def _standardise(
    spec: TableSpec, frame: pd.DataFrame, names: list[str], train: np.ndarray
) -> tuple[np.ndarray, list[str], tuple[list[float], list[float]]]:
    """(n, F') float32 standardised features, kept names, (means, stds) of kept columns."""
    if not names:
        return np.zeros((len(frame), 0), np.float32), [], ([], [])
    x = np.stack([_floats(frame[n]) for n in names], axis=1)  # (n, F)
    logged = [names.index(n) for n in spec.log_features]
    x[:, logged] = np.sign(x[:, logged]) * np.log1p(np.abs(x[:, logged]))
    fit = x[train]
    seen = ~np.isnan(fit).all(axis=0)
    mean = np.zeros(len(names))
    std = np.zeros(len(names))
    mean[seen] = np.nanmean(fit[:, seen], axis=0)
    std[seen] = np.nanstd(fit[:, seen], axis=0)
    keep = std > 0
    out = (x[:, keep] - mean[keep]) / std[keep]
    out[np.isnan(out)] = 0.0
    kept = [n for n, k in zip(names, keep, strict=True) if k]
    return out.astype(np.float32), kept, (mean[keep].tolist(), std[keep].tolist())


def _nothing_to_learn(path: str, features: list[str]) -> str:
    what = (
        f"every feature column ({', '.join(features[:5])}{', ...' if len(features) > 5 else ''}) "
        "is constant or all-NaN on the training rows"
        if features
        else "the table has no numeric feature columns"
    )
    return f"{path}: {what} and data.text is unset, so a model has nothing to learn from"
