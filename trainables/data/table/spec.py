"""What to read and how: `TableSpec` (every default), `OwnershipColumn`, and the checks on a spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from trainables.errors import UserInputError


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
