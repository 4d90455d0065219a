"""Load a CSV or Parquet table into a Dataset: labels, standardised features, ownership, text ids.

Rules (all fitted on the training split only):
- split: stratified by label (the first, for several label columns) with a fixed seed; each class
  needs >= 3 rows (one per split).
- labels: sorted (numerically when the column is numeric) and numbered 0..K−1; meta["label_map"].
  Several label columns (multi-task): one task each, y (n, T), Dataset.tasks their classes.
- features: ±inf is treated as NaN; `log_features` get sign(x)·log1p(|x|) first; then
  x' = (x − mean) / std (population std); NaN becomes 0 (the training mean). Columns that are
  constant or all-NaN on the training split are dropped (meta["dropped_features"]).
  features="auto" takes every numeric column except the label, the text and the ownership columns.
- ownership norms: none (values must already be in [0, 1]); log_max = log1p(x)/log1p(max_train),
  clipped to [0, 1] (x must be >= 0); rank = mid-rank percentile among training values
  (#below + #equal/2) / n_train. NaN stays NaN (= missing ownership).
- a granularity without a mapped column copies the nearest mapped granularity of the same signal
  (ties go to the finer one); a signal with no mapped column is all NaN (meta["ownership_source"]).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from trainables.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.params import GRANULARITIES, closest
from trainables.text import encode_texts

log = logging.getLogger(__name__)
SIGNALS = ("aco", "rso")
MIN_CLASS_ROWS = 3  # one row each for train, validation and test
OWNERSHIP_KEYS = ("signal", "granularity", "norm")


@dataclass(frozen=True)
class TableSpec:
    """Where the table is and how to read it; every default is here."""

    path: str  # .csv/.tsv (UTF-8, header row) or .parquet/.pq; relative to the current directory
    label: str | tuple[str, ...]  # class column(s); their distinct values become the classes
    text: str | None = None  # optional free-text column, hashed into EmbeddingBag ids
    features: tuple[str, ...] | str = "auto"  # numeric feature columns, or "auto"
    ownership: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # column -> mapping
    log_features: tuple[str, ...] = ()  # heavy-tailed features compressed with signed log1p
    val_frac: float = 0.15  # validation share of every class
    test_frac: float = 0.15  # test share of every class
    seed: int = 0  # seed of the stratified split
    text_buckets: int = 1 << 17  # ids in [1, buckets): 131072·embed_dim floats, few collisions
    max_tokens: int = 64  # per row: distinct unigrams, bigrams, char n-grams (text.py), truncated
    char_ngrams: tuple[int, ...] = (3,)  # character n-gram sizes (empty: words only)
    fold_labels: bool = False  # labels equal up to case become one: their most frequent spelling
    min_class_rows: int = 0  # classes with fewer rows go the rare_classes way (0: none)
    rare_classes: Literal["merge", "drop"] = (
        "merge"  # merge: into one class "other"; drop: rows out
    )


@dataclass(frozen=True)
class OwnershipColumn:
    """One ownership column: which signal and granularity it feeds, and how it is normalised."""

    column: str
    signal: str
    granularity: str
    norm: str


def load_table(spec: TableSpec) -> Dataset:
    """Read, validate, split and encode the table described by `spec`."""
    _check_spec(spec)
    owners = _ownership_columns(spec)
    names = _header(spec.path)
    needed = _needed_columns(spec, names, owners)
    frame = _read(spec.path, names, needed, spec.text)
    if len(frame) == 0:
        raise UserInputError(f"{spec.path}: the table has no data rows")
    columns = label_columns(spec)
    cleaned = [clean_labels(spec, c, frame[c]) for c in columns]
    keep = np.logical_and.reduce([k for _, k, _ in cleaned])
    label_notes = [note for _, _, notes in cleaned for note in notes]
    values = [v[keep].reset_index(drop=True) for v, _, _ in cleaned]
    if not keep.all():
        frame = frame[keep].reset_index(drop=True)
    for note in label_notes:
        log.warning("%s: %s", spec.path, note)
    features = _feature_names(spec, frame, owners)
    coded = [_labels(spec, c, v) for c, v in zip(columns, values, strict=True)]
    train, val, test = stratified_split(coded[0][0], spec.val_frac, spec.test_frac, spec.seed)
    y = coded[0][0] if len(coded) == 1 else np.stack([ids for ids, _ in coded], axis=1)
    tasks = {c: tuple(names) for c, (_, names) in zip(columns, coded, strict=True)}
    classes = (
        coded[0][1] if len(coded) == 1 else [f"{t}:{k}" for t, ks in tasks.items() for k in ks]
    )
    x, kept, stats = _standardise(spec, frame, features, train)
    if not kept and spec.text is None:
        raise UserInputError(_nothing_to_learn(spec.path, features))
    aco, rso, source = _ownership(spec.path, frame, owners, train)
    texts = None
    if spec.text is not None:
        texts = pa.array(frame[spec.text].astype("str").array).cast(pa.large_string())
    parts = [_split(spec, x, y, aco, rso, texts, rows) for rows in (train, val, test)]
    if parts[0].tokens is not None and not parts[0].tokens.any():
        raise UserInputError(
            f"{spec.path}: text column {spec.text!r} has no words in any training row "
            "(empty or punctuation only); fix the column or leave data.text unset"
        )
    meta = {
        "preset": "table",
        "path": spec.path,
        "label": spec.label,
        "label_map": {name: i for i, name in enumerate(classes)},
        "label_maps": {t: {k: i for i, k in enumerate(ks)} for t, ks in tasks.items()},
        "text": spec.text,
        "features": kept,
        "dropped_features": [f for f in features if f not in kept],
        "feature_mean": stats[0],
        "feature_std": stats[1],
        "ownership": {o.column: {k: getattr(o, k) for k in OWNERSHIP_KEYS} for o in owners},
        "ownership_source": source,
        "seed": spec.seed,
        "rows": {"train": train, "val": val, "test": test},
        "label_notes": label_notes,
    }
    vocab = spec.text_buckets if spec.text is not None else 0
    multi = tasks if len(tasks) > 1 else {}
    return Dataset(*parts, classes=tuple(classes), vocab_size=vocab, meta=meta, tasks=multi)


def label_columns(spec: TableSpec) -> tuple[str, ...]:
    """The label column(s) of `spec`: one per task, distinct, without dots (loss.<task>.* keys)."""
    columns = (spec.label,) if isinstance(spec.label, str) else tuple(spec.label)
    if not columns or len(set(columns)) != len(columns):
        raise UserInputError(f"data.label: expected a column or distinct columns, got {columns}")
    dotted = [c for c in columns if len(columns) > 1 and "." in c]
    if dotted:
        raise UserInputError(
            f"data.label: task column {dotted[0]!r} has a dot, which loss.<task>.* keys cannot "
            "name; rename the column"
        )
    return columns


def _nothing_to_learn(path: str, features: list[str]) -> str:
    what = (
        f"every feature column ({', '.join(features[:5])}{', ...' if len(features) > 5 else ''}) "
        "is constant or all-NaN on the training rows"
        if features
        else "the table has no numeric feature columns"
    )
    return f"{path}: {what} and data.text is unset, so a model has nothing to learn from"


def _check_spec(spec: TableSpec) -> None:
    for name in ("val_frac", "test_frac"):
        value = getattr(spec, name)
        if not 0 < value < 1:
            raise UserInputError(f"data.{name} must be in (0, 1), got {value!r}")
    if spec.val_frac + spec.test_frac >= 1:
        raise UserInputError(
            f"data: val_frac + test_frac must be < 1, got {spec.val_frac} + {spec.test_frac}"
        )
    if spec.text_buckets < 2:
        raise UserInputError(f"data.text_buckets must be >= 2, got {spec.text_buckets!r}")
    if spec.max_tokens < 1:
        raise UserInputError(f"data.max_tokens must be >= 1, got {spec.max_tokens!r}")
    if spec.min_class_rows < 0:
        raise UserInputError(f"data.min_class_rows must be >= 0, got {spec.min_class_rows!r}")
    if any(n < 1 for n in spec.char_ngrams):
        raise UserInputError(f"data.char_ngrams must be sizes >= 1, got {spec.char_ngrams!r}")


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


def _header(path: str) -> list[str]:
    """Column names of the file, checked for existence, readability and duplicates."""
    file = Path(path)
    if file.is_dir():
        raise UserInputError(f"{path}: is a directory; expected a CSV, TSV or Parquet file")
    if not file.is_file():
        raise UserInputError(f"table file not found: {path} (relative to {Path.cwd()})")
    reader = HEADER_READERS.get(_suffix(file))
    if reader is None:
        raise UserInputError(
            f"{path}: unsupported file type; expected one of {sorted(HEADER_READERS)}"
        )
    names = reader(file)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserInputError(f"{path}: duplicated column names {dupes}; rename them to be unique")
    return names


def _suffix(file: Path) -> str:
    return file.suffix.lower()


def _csv_header(file: Path) -> list[str]:
    delimiter = "\t" if _suffix(file) == ".tsv" else ","
    with file.open("rb") as handle:
        first = handle.readline()
    try:
        names = next(csv.reader([first.decode("utf-8-sig")], delimiter=delimiter), [])
    except UnicodeDecodeError as err:
        raise _encoding_error(file, err) from None
    if not names:
        raise UserInputError(f"{file}: the file is empty; expected a header row")
    return names


def _parquet_header(file: Path) -> list[str]:
    try:
        return list(pq.read_schema(file).names)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise UserInputError(f"{file}: not a readable Parquet file ({_one_line(err)})") from None


def _one_line(err: Exception, limit: int = 300) -> str:
    """A library's error message on one line, shortened to `limit` characters."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _encoding_error(file: Path | str, err: UnicodeDecodeError) -> UserInputError:
    return UserInputError(
        f"{file}: not valid UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
        "re-save the file as UTF-8"
    )


HEADER_READERS: dict[str, Callable[[Path], list[str]]] = {
    ".csv": _csv_header,
    ".tsv": _csv_header,
    ".parquet": _parquet_header,
    ".pq": _parquet_header,
}


def _needed_columns(
    spec: TableSpec, names: list[str], owners: list[OwnershipColumn]
) -> list[str] | None:
    """Columns to read (None: all, for features="auto"); every named column must exist."""
    wanted = [("label", c) for c in label_columns(spec)]
    if spec.text is not None:
        wanted.append(("text", spec.text))
    if spec.features != "auto":
        if isinstance(spec.features, str):
            raise UserInputError(
                f"data.features must be a list of columns or 'auto', got {spec.features!r}"
            )
        wanted += [("feature", f) for f in spec.features]
    wanted += [("log feature", f) for f in spec.log_features]
    wanted += [("ownership", o.column) for o in owners]
    for role, column in wanted:
        if column not in names:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise UserInputError(
                f"{spec.path}: no {role} column {column!r}{closest(column, names)}; "
                f"expected one of the file's columns: {shown}"
            )
    if spec.features == "auto":
        return None
    return list(dict.fromkeys(column for _, column in wanted))


def _read(path: str, names: list[str], columns: list[str] | None, text: str | None) -> pd.DataFrame:
    """The table's `columns` (None: all) of the header `names`; the text column as strings."""
    file = Path(path)
    try:
        if _suffix(file) in (".parquet", ".pq"):
            table = pq.read_table(file, columns=columns)
        else:
            table = pacsv.read_csv(
                file,
                parse_options=pacsv.ParseOptions(
                    delimiter="\t" if _suffix(file) == ".tsv" else ",", newlines_in_values=True
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=columns,
                    column_types={text: pa.string()} if text is not None else None,
                    strings_can_be_null=True,
                ),
            )
    except pa.ArrowInvalid as err:
        at = re.search(r"column #(\d+)", str(err))
        if "UTF8" in str(err) and at and int(at.group(1)) < len(names):
            raise UserInputError(
                f"{path}: column {names[int(at.group(1))]!r} is not valid UTF-8 text; "
                "re-save the file as UTF-8"
            ) from None
        raise UserInputError(f"{path}: cannot be read as a table ({_one_line(err)})") from None
    except (pa.ArrowException, OSError) as err:
        raise UserInputError(f"{path}: cannot be read as a table ({_one_line(err)})") from None
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise UserInputError(
                f"{path}: column {name!r} is not valid UTF-8 text; re-save the file as UTF-8"
            )
    return table.to_pandas()


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


def stratified_split(
    y: np.ndarray, val_frac: float, test_frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row indices (train, val, test); each class gives round(n_k·frac) rows (>= 1 each)."""
    counts = np.bincount(y)
    n_val = np.clip(np.round(counts * val_frac), 1, counts - 2).astype(np.int64)
    n_test = np.clip(np.round(counts * test_frac), 1, counts - 1 - n_val).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(y.shape[0])
    order = perm[np.argsort(y[perm], kind="stable")]  # grouped by class, shuffled within
    cls = y[order]
    rank = np.arange(order.shape[0]) - (np.cumsum(counts) - counts)[cls]
    val = rank < n_val[cls]
    test = ~val & (rank < (n_val + n_test)[cls])
    train = ~val & ~test
    return tuple(np.sort(order[m]) for m in (train, val, test))


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


def _floats(column: pd.Series) -> np.ndarray:
    """(n,) float64 with ±inf and missing values as NaN."""
    x = column.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    x[np.isinf(x)] = np.nan
    return x


def _split(
    spec: TableSpec,
    x: np.ndarray,
    y: np.ndarray,
    aco: np.ndarray,
    rso: np.ndarray,
    texts: pa.Array | None,
    rows: np.ndarray,
) -> Split:
    """The Split of `rows`; text is encoded per split so the token matrix is never copied."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a[rows]))  # noqa: E731
    if texts is None:
        return Split(t(x), t(y), t(aco), t(rso))
    mine = texts.take(rows)
    ids = encode_texts(mine, spec.text_buckets, spec.max_tokens, spec.char_ngrams)
    return Split(t(x), t(y), t(aco), t(rso), torch.from_numpy(ids), mine)
