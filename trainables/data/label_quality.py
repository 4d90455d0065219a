"""Label-quality scores of the training labels, the input of the lq.* sample weights: cleanlab's
scores from out-of-fold predicted probabilities, computed once per search in the driver.

Model (`MODEL`): scikit-learn's `LogisticRegression(C=1.0, max_iter=1000)` (multinomial, L2,
lbfgs) on the training split's feature tensor x, the simplest honest classifier of the features
every trial sees: x is standardised on the training split; for model=text frozen it holds the
sentence embeddings, for other text data whatever numeric columns x holds (the hashed text ids
are not read). Out of fold: `cross_val_predict(model, x, y, cv=StratifiedKFold(folds,
shuffle=True, random_state=SEED), method="predict_proba")`, so row i's probabilities come from
the model fitted on the other folds and never from one that saw row i's label (in-sample
probabilities of a fitted model flatter its own labels). Only the training split is read: the
validation and test labels never reach the scores.

Scores: `cleanlab.rank.get_label_quality_scores(y, probs, method=m)` for each m of
`trainables.params.LQ_ON`, the columns of `Split.quality` in that order: self_confidence
P[y], normalized_margin from P[y] − max_{k≠y} P[k], confidence_weighted_entropy from
entropy(P)/P[y], each in [0, 1], low where the label is likely wrong (Northcutt, Jiang & Chuang
2021, confident learning; Kuan & Mueller 2022, label-quality scores).

The same data gives the same scores (the folds are seeded, lbfgs is deterministic), and they are
cached on disk under the SHA-256 of the training x and y, the folds, the model and the library
versions, so a resumed search reads the ones its first run computed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from trainables.data.dataset import Dataset
from trainables.errors import UserInputError
from trainables.params import LQ_ON

log = logging.getLogger(__name__)

MODEL_SETTINGS = {"C": 1.0, "max_iter": 1000}  # scikit-learn's LogisticRegression: multinomial, L2
MODEL = f"LogisticRegression(C={MODEL_SETTINGS['C']}, max_iter={MODEL_SETTINGS['max_iter']})"
SEED = 0  # StratifiedKFold's shuffle: the same data is always split the same way
DEFAULT_CACHE = Path.home() / ".cache" / "loss-search" / "label-quality"


def check_folds(y: torch.Tensor, classes: tuple[str, ...], folds: int) -> None:
    """Raise UserInputError when a class has fewer training rows than `folds` (each fold's model
    must see every class, and each class must fill every held-out fold)."""
    counts = torch.bincount(y, minlength=len(classes)).tolist()
    few = [(c, n) for c, n in zip(classes, counts, strict=True) if n < folds]
    if few:
        name, n = few[0]
        raise UserInputError(
            f"lq.folds={folds}: class {name!r} has {n} training row(s); the out-of-fold "
            f"label-quality scores need at least lq.folds rows of every class (lower lq.folds, "
            f"or leave lq.method out of the space)"
        )


def out_of_fold_probs(x: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    """(n, C) predicted probabilities of the training rows, each from the `MODEL` fitted on the
    other `folds` − 1 stratified folds (C: the classes present in y, in id order)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    model = LogisticRegression(**MODEL_SETTINGS)
    return cross_val_predict(model, x, y, cv=cv, method="predict_proba")


def quality_scores(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n, M) cleanlab label-quality scores of labels y (n,) under probs (n, C), one column per
    method of LQ_ON."""
    from cleanlab.rank import get_label_quality_scores

    return np.stack([get_label_quality_scores(y, probs, method=m) for m in LQ_ON], axis=1)


def label_quality(x: np.ndarray, y: np.ndarray, folds: int, cache: Path | None) -> np.ndarray:
    """`quality_scores` of the out-of-fold probabilities, read from or written to `cache`."""
    path = None if cache is None else cache / f"{_cache_key(x, y, folds)}.npy"
    if path is not None and path.is_file():
        try:
            found = np.load(path, allow_pickle=False)
            if found.shape == (len(y), len(LQ_ON)):
                return found
        except (OSError, ValueError) as e:  # a damaged entry is a cache miss
            log.warning("label-quality cache %s is unreadable (%s); computing again", path, e)
    scores = quality_scores(y, out_of_fold_probs(x, y, folds))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores, allow_pickle=False)
    return scores


def _cache_key(x: np.ndarray, y: np.ndarray, folds: int) -> str:
    import cleanlab
    import sklearn

    digest = hashlib.sha256()
    for part in (MODEL, SEED, folds, x.shape, sklearn.__version__, cleanlab.__version__):
        digest.update(repr(part).encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()


def with_label_quality(data: Dataset, folds: int, cache: Path | None = DEFAULT_CACHE) -> Dataset:
    """`data` with `Split.quality` (n, M) on its training split and `meta["label_quality"]` saying
    how it was computed; refuses what the model cannot fit (UserInputError naming the key)."""
    train = data.train
    if data.tasks:
        raise UserInputError("lq.method: label-quality weights read one label column")
    if train.x.shape[1] == 0:
        raise UserInputError(
            "lq.method: the training split has no numeric features for the out-of-fold model"
        )
    check_folds(train.y, data.classes, folds)
    start = time.perf_counter()
    x, y = train.x.double().numpy(), train.y.numpy()
    scores = torch.from_numpy(label_quality(x, y, folds, cache))
    log.info(
        "label quality: %s out of %d folds, cleanlab scores in %.1f s",
        MODEL,
        folds,
        time.perf_counter() - start,
    )
    facts = {"folds": folds, "model": MODEL, "seed": SEED, "methods": list(LQ_ON)}
    meta = data.meta | {"label_quality": facts}
    return replace(data, train=replace(train, quality=scores), meta=meta)
