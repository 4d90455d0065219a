"""Static PNGs (matplotlib, Agg canvas, no pyplot): the front, one scatter per pair of objectives,
and the confirmation's verdicts as a forest plot.

Front layers: full-budget trials (grey), front trials (red, numbered), stopped-early trials (x),
the baseline (black star) and the knee (ring). With one objective, trials are spread on x.
"""

from __future__ import annotations

import io
import math
import re
from itertools import combinations
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports.analysis import Analysis
from reports.confirmation import BETTER, EQUIVALENT, UNDECIDED, WORSE, Comparison, Confirmation
from reports.objectives import Objective
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


# ----- the confirmation's verdicts: a forest plot ------------------------------------------------

VERDICTS_PNG = "verdicts.png"
VERDICT_STYLE = {  # verdict -> (colour, marker) of its Δ point, its bars and its label
    BETTER: ("#2ca02c", "^"),
    EQUIVALENT: ("#1f77b4", "D"),
    WORSE: ("#d62728", "v"),
    UNDECIDED: ("#7f7f7f", "o"),
}
BAND_COLOUR = "#1f77b4"
FOREST_CAPTION = (
    "Δ = candidate − plain-CE baseline on the test split, one panel per objective: the point is Δ "
    "(marker and colour: the verdict, named on the right with the paired seeds), the thick bar "
    "the seeds' part of the interval (the anytime-valid confidence sequence), the thin bar the "
    "whole family-wise interval (seeds + test rows; the two coincide where the test rows were "
    "not resampled), the shaded band ±δ (the equivalence margin), the dashed line Δ = 0. A "
    "triangle at the panel's edge: that bound is infinite (too few paired seeds)."
)


def forest_rows(c: Confirmation, metric: str) -> list[tuple[str, Comparison]]:
    """(candidate label, its comparison on `metric`) in the confirmation's order."""
    return [(label, m[metric]) for label, m in c.comparisons.items() if metric in m]


def forest_limits(rows: list[Comparison], margin: float | None) -> tuple[float, float]:
    """x limits spanning 0, ±margin and every finite Δ, bound and seeds-part end, padded by PAD
    of the span on each side (a span of 0: ±(margin or 0.01))."""
    values = [0.0, *((-margin, margin) if margin else ())]
    for x in rows:
        d = x.delta
        values += [d.estimate, d.low, d.high, d.estimate - d.seeds_part, d.estimate + d.seeds_part]
    finite = [v for v in values if math.isfinite(v)]
    low, high = min(finite), max(finite)
    if high == low:
        half = margin or 0.01
        return low - half, high + half
    pad = PAD * (high - low)
    return low - pad, high + pad


def _clip(value: float, limits: tuple[float, float]) -> float:
    """`value` moved into `limits` (an infinite bound onto the edge it points to)."""
    return min(max(value, limits[0]), limits[1])


def _forest_row(ax: Axes, y: float, x: Comparison, limits: tuple[float, float]) -> None:
    """One candidate: thin bar (whole interval), thick bar (seeds part), Δ point, and a triangle
    at the edge for each infinite bound; nothing without a finite Δ."""
    d = x.delta
    colour, marker = VERDICT_STYLE.get(x.verdict, VERDICT_STYLE[UNDECIDED])
    if not math.isfinite(d.estimate):
        return
    whole = [_clip(d.low, limits), _clip(d.high, limits)]
    seeds = [_clip(d.estimate - d.seeds_part, limits), _clip(d.estimate + d.seeds_part, limits)]
    ax.hlines(y, *whole, colors=colour, linewidth=1.4, gid="interval")
    ax.hlines(y, *seeds, colors=colour, linewidth=6, alpha=0.45, gid="seeds")
    ax.scatter(
        [d.estimate], [y], c=colour, marker=marker, s=64, zorder=3, edgecolors="black", gid="delta"
    )
    for bound, edge, arrow in ((d.low, limits[0], "<"), (d.high, limits[1], ">")):
        if not math.isfinite(bound):
            ax.scatter(
                [edge], [y], c=colour, marker=arrow, s=90, zorder=4, clip_on=False, gid="unbounded"
            )


def _forest_panel(ax: Axes, objective: Objective, rows: list[tuple[str, Comparison]]) -> None:
    """One objective's panel: candidates top to bottom, verdict and seeds on the right."""
    margin = next((x.margin for _, x in rows if x.margin), None)
    limits = forest_limits([x for _, x in rows], margin)
    ys = list(range(len(rows)))[::-1]
    if margin:
        ax.axvspan(-margin, margin, color=BAND_COLOUR, alpha=0.12, linewidth=0, gid="margin")
    ax.axvline(0.0, color="black", linewidth=0.9, linestyle="--")
    for y, (_, x) in zip(ys, rows, strict=True):
        _forest_row(ax, y, x, limits)
    ax.set_xlim(*limits)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(ys, [label for label, _ in rows], fontsize=8)
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys, [_verdict_label(x) for _, x in rows], fontsize=8)
    for tick, (_, x) in zip(right.get_yticklabels(), rows, strict=True):
        tick.set_color(VERDICT_STYLE.get(x.verdict, VERDICT_STYLE[UNDECIDED])[0])
    right.tick_params(length=0, pad=10)  # clear of a triangle on the edge
    better = "higher is better" if objective.direction == "max" else "lower is better"
    band = f"δ = ±{margin:g}" if margin else "no margin: no equivalence verdict"
    ax.set_title(f"{objective.metric} ({better}; {band})", fontsize=9, loc="left")
    ax.set_xlabel(f"Δ {objective.metric} (candidate − baseline)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)


def _verdict_label(x: Comparison) -> str:
    """e.g. "undecided, 12 paired seeds" ("(unbounded)" added where a bound is infinite)."""
    if not math.isfinite(x.delta.estimate):
        return f"{x.verdict}, no paired seeds"
    unbounded = "" if math.isfinite(x.delta.low + x.delta.high) else " (unbounded)"
    seeds = "1 paired seed" if x.seeds == 1 else f"{x.seeds} paired seeds"
    return f"{x.verdict}, {seeds}{unbounded}"


def _forest_legend(fig: Figure, unbounded: bool) -> None:
    handles = [
        Line2D([], [], color=colour, marker=marker, markeredgecolor="black", linestyle="")
        for colour, marker in VERDICT_STYLE.values()
    ]
    labels = [f"Δ, {verdict}" for verdict in VERDICT_STYLE]
    handles += [
        Line2D([], [], color="#555555", linewidth=6, alpha=0.45),
        Line2D([], [], color="#555555", linewidth=1.4),
        Patch(color=BAND_COLOUR, alpha=0.12),
    ]
    labels += ["seeds part", "whole interval (seeds + test rows)", "±δ margin"]
    if unbounded:
        handles.append(Line2D([], [], color="#555555", marker=">", linestyle=""))
        labels.append("infinite bound (too few seeds)")
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8, frameon=False)


def forest_figure(c: Confirmation) -> Figure | None:
    """The forest plot of the confirmation's comparisons (FOREST_CAPTION says how to read it):
    one panel per test objective that has any, stacked; None without comparisons."""
    panels = [(o, forest_rows(c, o.metric)) for o in c.objectives]
    panels = [(o, rows) for o, rows in panels if rows]
    if not panels:
        return None
    height = sum(0.38 * len(rows) + 1.25 for _, rows in panels) + 1.1
    fig = Figure(figsize=(9.0, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (objective, rows) in zip(axes, panels, strict=True):
        _forest_panel(ax, objective, rows)
    base = c.baseline.label if c.baseline is not None else "none"
    fig.suptitle(
        f"Candidates vs the plain-CE baseline {base}: Δ with {1 - c.alpha:.0%} family-wise "
        f"intervals (Bonferroni over {len(c.comparisons)})",
        fontsize=10,
    )
    unbounded = any(
        not math.isfinite(x.delta.low + x.delta.high)
        for _, rows in panels
        for _, x in rows
        if math.isfinite(x.delta.estimate)
    )
    _forest_legend(fig, unbounded)
    return fig


def forest_png(c: Confirmation) -> bytes | None:
    """forest_figure as PNG bytes (None without comparisons)."""
    fig = forest_figure(c)
    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
