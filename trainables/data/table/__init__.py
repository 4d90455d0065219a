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

One step per module: `spec` (TableSpec and its checks), `read` (header, needed columns, the file),
`labels` (label hygiene, class ids), `features` (which columns, standardisation), `ownership` (the
mapping, the `NORMS` registry, the slots) and `split` (the stratified split, the per-split
encoding); `load_table` runs them in order.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from trainables.data.dataset import Dataset
from trainables.data.table.features import _feature_names, _nothing_to_learn, _standardise
from trainables.data.table.labels import MIN_CLASS_ROWS, _labels, clean_labels
from trainables.data.table.ownership import (
    NORMS,
    OWNERSHIP_KEYS,
    SIGNALS,
    _ownership,
    _ownership_columns,
)
from trainables.data.table.read import HEADER_READERS, _header, _needed_columns, _read
from trainables.data.table.spec import OwnershipColumn, TableSpec, _check_spec, label_columns
from trainables.data.table.split import _split, stratified_split
from trainables.errors import UserInputError

__all__ = [
    "HEADER_READERS",
    "MIN_CLASS_ROWS",
    "NORMS",
    "OWNERSHIP_KEYS",
    "SIGNALS",
    "OwnershipColumn",
    "TableSpec",
    "clean_labels",
    "label_columns",
    "load_table",
    "stratified_split",
]

log = logging.getLogger(__name__)


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
