"""Static PNGs of the front: one scatter per pair of objectives (matplotlib, Agg canvas, no pyplot).

Layers: full-budget trials (grey), front trials (red, numbered), stopped-early trials (x),
the baseline (black star) and the knee (ring). With one objective, trials are spread on x.
"""

from __future__ import annotations

import math
import re
from itertools import combinations
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.analysis import Analysis
from reports.rows import TrialRow


def objective_pairs(k: int) -> list[tuple[int | None, int]]:
    """(x, y) objective indices for every pair; [(None, 0)] for a single objective."""
    return list(combinations(range(k), 2)) or [(None, 0)]


def primary_pairs(k: int, primary: int) -> list[tuple[int | None, int]]:
    """(primary, other) for every other objective (k - 1 PNGs, not k(k-1)/2); [(None, 0)] for one."""
    return [(primary, j) for j in range(k) if j != primary] or [(None, 0)]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def layers(analysis: Analysis) -> dict[str, list[TrialRow]]:
    """Point groups drawn in every view, in drawing order."""
    front = set(analysis.front)
    cands = analysis.candidates
    return {
        "full budget": [r for r in cands if r.trial_id not in front],
        "stopped early": analysis.stopped,
        "front": [r for r in cands if r.trial_id in front],
        "baseline": [analysis.baseline] if analysis.baseline else [],
        "knee": [analysis.row(analysis.knee)] if analysis.knee else [],
    }


STYLE = {  # layer -> matplotlib scatter keywords
    "full budget": {"c": "#9e9e9e", "marker": "o", "s": 28},
    "stopped early": {"c": "#bdbdbd", "marker": "x", "s": 28},
    "front": {"c": "#d62728", "marker": "o", "s": 46},
    "baseline": {"c": "black", "marker": "*", "s": 160},
    "knee": {
        "facecolors": "none",
        "edgecolors": "#ff7f0e",
        "marker": "o",
        "s": 260,
        "linewidths": 2,
    },
}


def coordinates(analysis: Analysis, rows: list[TrialRow], x: int | None, y: int):
    order = {r.trial_id: i for i, r in enumerate(analysis.rows)}
    objs = analysis.objectives
    xs = [order[r.trial_id] if x is None else r.values[objs[x].metric] for r in rows]
    return xs, [r.values[objs[y].metric] for r in rows]


def point_labels(xs: list[float], ys: list[float], ids: list[str]) -> list[str]:
    """Trial-id labels; trials at the same point share one label ("t2, t5") on the first of them."""
    first: dict[tuple[float, float], int] = {}
    out = ["" for _ in ids]
    for i, xy in enumerate(zip(xs, ys, strict=True)):
        j = first.setdefault(xy, i)
        out[j] = f"{out[j]}, {ids[i]}" if out[j] else ids[i]
    return out


OFFSETS = ((5, 5), (5, -11), (-13, 5), (-13, -11))  # label offsets (points), cycled
PAD = 0.08  # view margin, as a fraction of the full-budget points' range


def view_limits(values: list[float]) -> tuple[float, float] | None:
    """Axis limits around `values` (the full-budget points), padded; None without a spread."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite or max(finite) == min(finite):
        return None
    low, high = min(finite), max(finite)
    pad = PAD * (high - low)
    return low - pad, high + pad


def _inside(v: float, limits: tuple[float, float] | None) -> bool:
    return limits is None or limits[0] <= v <= limits[1]


def write_front_plots(analysis: Analysis, folder: Path) -> list[Path]:
    """Write front_<primary>_vs_<other>.png per other objective (front_<a>.png for one objective;
    pareto.html has every pair); return the paths.

    The view spans the full-budget trials (and the baseline); stopped-early trials outside it are
    counted in the title. Front trials are numbered, their ids listed beside the plot.
    """
    objs = analysis.objectives
    paths = []
    groups = layers(analysis)
    full = groups["full budget"] + groups["front"] + groups["baseline"]
    for x, y in primary_pairs(len(objs), objs.index(analysis.primary)):
        fig = Figure(figsize=(8.0, 4.8), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.1, 0.11, 0.62, 0.8))
        for name, rows in groups.items():
            if rows:
                ax.scatter(*coordinates(analysis, rows, x, y), label=name, **STYLE[name])
        fx, fy = coordinates(analysis, full, x, y)
        xlim, ylim = (None if x is None else view_limits(fx)), view_limits(fy)
        if xlim:
            ax.set_xlim(*xlim)
        if ylim:
            ax.set_ylim(*ylim)
        sx, sy = coordinates(analysis, groups["stopped early"], x, y)
        hidden = sum(
            not (_inside(a, xlim) and _inside(b, ylim)) for a, b in zip(sx, sy, strict=True)
        )
        front = groups["front"]
        xs, ys = coordinates(analysis, front, x, y)
        labels = point_labels(xs, ys, [r.trial_id for r in front])
        key = []
        for label, px, py in zip(labels, xs, ys, strict=True):
            if label:
                number = len(key) + 1
                offset = OFFSETS[len(key) % len(OFFSETS)]
                ax.annotate(
                    str(number), (px, py), fontsize=8, xytext=offset, textcoords="offset points"
                )
                key.append(f"{number}  {label}")
        if key:
            fig.text(
                0.75,
                0.91,
                "front trials\n" + "\n".join(key),
                fontsize=8,
                va="top",
                family="monospace",
            )
        ax.set_xlabel("trial (id order)" if x is None else str(objs[x]))
        ax.set_ylabel(str(objs[y]))
        title = "Pareto front (full-budget trials)"
        if hidden:
            title += f"; {hidden} stopped-early trial(s) outside the view"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
        stem = (
            f"front_{safe_name(objs[y].metric)}"
            if x is None
            else (f"front_{safe_name(objs[x].metric)}_vs_{safe_name(objs[y].metric)}")
        )
        path = folder / f"{stem}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
