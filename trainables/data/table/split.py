"""The stratified train/val/test split and the `Split` of a set of rows (text encoded per split)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from trainables.data.dataset import Split
from trainables.data.table.spec import TableSpec
from trainables.data.text import encode_texts


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
