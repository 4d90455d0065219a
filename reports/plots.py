"""Static PNGs of the front: one scatter per pair of objectives (matplotlib, Agg canvas, no pyplot).

Layers: full-budget trials (grey), front trials (red, labelled), stopped-early trials (x),
the baseline (black star) and the knee (ring). With one objective, trials are spread on x.
"""

from __future__ import annotations

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


def write_front_plots(analysis: Analysis, folder: Path) -> list[Path]:
    """Write front_<a>_vs_<b>.png (or front_<a>.png for one objective); return the paths."""
    objs = analysis.objectives
    paths = []
    for x, y in objective_pairs(len(objs)):
        fig = Figure(figsize=(6.4, 4.8), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for name, rows in layers(analysis).items():
            if rows:
                ax.scatter(*coordinates(analysis, rows, x, y), label=name, **STYLE[name])
        front = layers(analysis)["front"]
        xs, ys = coordinates(analysis, front, x, y)
        for label, px, py in zip(
            point_labels(xs, ys, [r.trial_id for r in front]), xs, ys, strict=True
        ):
            if label:
                ax.annotate(label, (px, py), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("trial (id order)" if x is None else str(objs[x]))
        ax.set_ylabel(str(objs[y]))
        ax.set_title("Pareto front (full-budget trials)")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        stem = (
            f"front_{safe_name(objs[y].metric)}"
            if x is None
            else (f"front_{safe_name(objs[x].metric)}_vs_{safe_name(objs[y].metric)}")
        )
        path = folder / f"{stem}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
