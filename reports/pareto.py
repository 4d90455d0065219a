"""Pareto core on minimisation points (n, k): front, ranks, hypervolume, reference point, knee.

Conventions (see objectives.py for how values become minimisation points):
- rows with any NaN/±inf are never on the front and get rank -1; they are excluded, not guessed;
- duplicates are all on the front when one of them is (weak non-dominance, moocore's
  `keep_weakly=True`), and they share a rank (moocore's `pareto_rank` behaviour);
- ties (knee, best per objective) resolve to the lowest row index, so callers sort rows by trial id
  first to make every choice deterministic.
"""

from __future__ import annotations

import moocore
import numpy as np


def finite_rows(points: np.ndarray) -> np.ndarray:
    """(n,) True where every objective of the row is finite."""
    points = np.asarray(points, dtype=float)
    return np.isfinite(points).all(axis=1) if points.size else np.zeros(len(points), dtype=bool)


def nondominated(points: np.ndarray) -> np.ndarray:
    """(n,) True for rows no other finite row dominates (y ≤ x everywhere, < somewhere)."""
    points = np.asarray(points, dtype=float)
    mask = np.zeros(len(points), dtype=bool)
    ok = finite_rows(points)
    if ok.any():
        mask[ok] = moocore.is_nondominated(points[ok], keep_weakly=True)
    return mask


def pareto_ranks(points: np.ndarray) -> np.ndarray:
    """(n,) non-dominated sorting rank: 0 = front, 1 = front once rank 0 is removed, …

    -1 marks rows that are not finite.
    """
    points = np.asarray(points, dtype=float)
    ranks = np.full(len(points), -1, dtype=int)
    ok = finite_rows(points)
    if ok.any():
        ranks[ok] = moocore.pareto_rank(points[ok])
    return ranks


def nadir_reference(points: np.ndarray, margin: float) -> np.ndarray:
    """(k,) ref_j = worst_j + margin · (worst_j − best_j) over the finite points.

    Without spread (worst_j == best_j) the nudge is margin · max(|worst_j|, 1).
    """
    points = np.asarray(points, dtype=float)
    points = points[finite_rows(points)]
    if not len(points):
        raise ValueError("nadir_reference needs at least one finite point")
    worst, best = points.max(axis=0), points.min(axis=0)
    spread = worst - best
    nudge = np.where(spread > 0, spread, np.maximum(np.abs(worst), 1.0))
    return worst + margin * nudge


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by the finite points and bounded by `ref` (points not below ref add 0)."""
    points = np.asarray(points, dtype=float)
    points = points[finite_rows(points)]
    ref = np.asarray(ref, dtype=float)
    inside = (points < ref).all(axis=1) if len(points) else np.zeros(0, dtype=bool)
    if not inside.any():
        return 0.0
    return float(moocore.hypervolume(points[inside], ref=ref))


def hypervolume_share(points: np.ndarray, ref: np.ndarray) -> float | None:
    """hypervolume / Π_j (ref_j − ideal_j), ideal = the best finite value per objective: the
    share of the box between the ideal and the reference point that the points dominate, in
    [0, 1] and unit-free; None when that box is empty."""
    points = np.asarray(points, dtype=float)
    points = points[finite_rows(points)]
    if not len(points):
        return None
    box = float(np.prod(np.asarray(ref, dtype=float) - points.min(axis=0)))
    return hypervolume(points, ref) / box if box > 0 else None


def normalise(points: np.ndarray) -> np.ndarray:
    """(n, k) min-max scaled per column to [0, 1]; a column without spread becomes 0."""
    points = np.asarray(points, dtype=float)
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return (points - low) / span


def knee(points: np.ndarray) -> int:
    """Index of the point closest (Euclidean) to the ideal point after min-max normalisation.

    The ideal point is the per-objective best of `points` (the origin after scaling); pass the
    front only. Ties go to the lowest index.
    """
    points = np.asarray(points, dtype=float)
    if not len(points):
        raise ValueError("knee needs at least one point")
    distance = np.linalg.norm(normalise(points), axis=1)
    return int(np.flatnonzero(distance == distance.min())[0])


def best_index(values: np.ndarray) -> int:
    """Index of the smallest finite value of one minimisation column (ties: lowest index)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("best_index needs at least one finite value")
    best = values[finite].min()
    return int(np.flatnonzero(values == best)[0])
