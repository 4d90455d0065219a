"""pareto.html: one self-contained page (plotly.js inlined once, no CDN) that works offline.

Sections: the confirmation's answer, forest plot (the PNG inlined as a data URI) and tables (when
the search confirmed), key figures, pairwise objective scatter (front highlighted, points labelled
by trial id), parallel coordinates of parameters → objectives, the Pareto table with baseline
deltas, importances, stopped-early and excluded trials. Every table fits the page's width (1400 px
and up): numbers stay on one line, text cells and headers wrap.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from record.reader import natural_key
from reports.analysis import Analysis
from reports.confirmation import (
    COMPARISONS_TITLE,
    FAMILIES_TITLE,
    Confirmation,
    comparison_table,
    family_table,
    note,
    table,
)
from reports.importance import Importance
from reports.markdown import IMPORTANCE_METHOD, TASK_BALANCE, key_figures, merge_note, search_best
from reports.plots import FOREST_CAPTION, coordinates, layers, objective_pairs, point_labels
from reports.rows import TrialRow
from reports.tables import excluded_frame, importance_frame, importance_notes, pareto_frame

MARKERS = {  # layer -> plotly marker
    "full budget": {"color": "#9e9e9e", "symbol": "circle", "size": 7},
    "stopped early": {"color": "#bdbdbd", "symbol": "x", "size": 7},
    "front": {"color": "#d62728", "symbol": "circle", "size": 10},
    "baseline": {"color": "black", "symbol": "star", "size": 14},
    "knee": {
        "color": "#ff7f0e",
        "symbol": "circle-open",
        "size": 20,
        "line": {"color": "#ff7f0e", "width": 2},
    },
}
SHORT_TEXT = 32  # characters: a text cell up to this long stays on one line (an id, a Δ [interval])
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 0 auto; padding: 1.5rem;
       color: #222; }
p, li, figcaption { overflow-wrap: break-word; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; vertical-align: top; }
th { background: #f3f3f3; text-align: left; overflow-wrap: break-word; }
th.num { text-align: right; }
td.num { text-align: right; white-space: nowrap; }
td.word { text-align: left; white-space: nowrap; }
td.text { text-align: left; overflow-wrap: anywhere; min-width: 8rem; }
figure { margin: 0.5rem 0 1rem; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; max-width: 60rem; }
"""


def scatter_figure(analysis: Analysis) -> go.Figure:
    """A grid of scatter plots, one per pair of objectives."""
    objs = analysis.objectives
    pairs = objective_pairs(len(objs))
    cols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    titles = [f"{objs[y].metric} vs {'trial' if x is None else objs[x].metric}" for x, y in pairs]
    fig = make_subplots(
        rows=nrows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08, vertical_spacing=0.12
    )
    for n, (x, y) in enumerate(pairs):
        row, col = n // cols + 1, n % cols + 1
        for name, rows in layers(analysis).items():
            if not rows:
                continue
            xs, ys = coordinates(analysis, rows, x, y)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    name=name,
                    legendgroup=name,
                    showlegend=n == 0,
                    mode="markers+text" if name == "front" else "markers",
                    text=point_labels(xs, ys, [r.trial_id for r in rows]),
                    customdata=[r.trial_id for r in rows],
                    textposition="top center",
                    textfont={"size": 9},
                    marker=MARKERS[name],
                    hovertemplate="%{customdata}<br>%{x:.4g}, %{y:.4g}<extra>" + name + "</extra>",
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(title_text="trial" if x is None else str(objs[x]), row=row, col=col)
        fig.update_yaxes(title_text=str(objs[y]), row=row, col=col)
    fig.update_layout(height=380 * nrows, margin={"t": 60, "b": 40}, template="plotly_white")
    return fig


def _numeric_dimension(label: str, values: list, log: bool) -> dict:
    """A numeric parcoords axis (log10 when `log`); missing values sit on an "n/a" tick below."""
    nums = [None if v is None else (math.log10(v) if log else float(v)) for v in values]
    known = [v for v in nums if v is not None]
    lo, hi = min(known), max(known)
    ticks = list(np.linspace(lo, hi, 5)) if hi > lo else [lo]
    text = [f"{10**t:.3g}" if log else f"{t:.3g}" for t in ticks]
    if len(known) < len(nums):
        missing = lo - 0.15 * ((hi - lo) or 1.0)
        nums = [missing if v is None else v for v in nums]
        ticks, text = [missing, *ticks], ["n/a", *text]
    return {"label": label, "values": nums, "tickvals": ticks, "ticktext": text}


def _dimension(label: str, values: list, log: bool = False) -> dict:
    """A parcoords axis: numbers on a numeric axis; anything else as labelled integer codes."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if present and numeric and not (log and min(present) <= 0):
        return _numeric_dimension(label, values, log)
    names = sorted({str(v) for v in values}, key=natural_key)
    codes = {name: i for i, name in enumerate(names)}
    return {
        "label": label,
        "values": [codes[str(v)] for v in values],
        "tickvals": list(range(len(names))),
        "ticktext": names,
    }


def parallel_figure(
    analysis: Analysis, keys: Sequence[str], log_keys: Collection[str] = ()
) -> go.Figure:
    """Parallel coordinates: searched parameters, then objectives; front trials in red."""
    rows: list[TrialRow] = analysis.candidates + analysis.stopped
    front = set(analysis.front)
    dims = [_dimension(k, [r.params.get(k) for r in rows], k in log_keys) for k in keys]
    dims += [
        {"label": str(o), "values": [r.values[o.metric] for r in rows]} for o in analysis.objectives
    ]
    color = [1.0 if r.trial_id in front else 0.0 for r in rows]
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": color,
                "colorscale": [[0, "#b0b0b0"], [1, "#d62728"]],
                "cmin": 0,
                "cmax": 1,
            },
            labelangle=-20,
        )
    )
    fig.update_layout(
        height=500,
        margin={"l": 80, "r": 80, "t": 130, "b": 30},
        title={
            "text": "Parameters → objectives (red: Pareto front; log axes for log-scale "
            "parameters)",
            "y": 0.97,
        },
    )
    return fig


def cell_text(value: Any) -> str:
    """One cell's text: non-integer numbers to 4 significant digits, missing values empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _td(value: Any) -> str:
    """A number (class num) or a short text (class word: ids, names, verdicts) on one line; a
    longer text (class text: settings, reasons) may wrap anywhere."""
    text = cell_text(value)
    kind = "num" if _is_number(value) else "word" if len(text) <= SHORT_TEXT else "text"
    return f'<td class="{kind}">{html.escape(text)}</td>'


def _th(name: object, numeric: bool) -> str:
    """A header, right-aligned over numbers, that may break after `_` and `.` (metric and
    parameter names)."""
    text = html.escape(str(name)).replace("_", "_<wbr>").replace(".", ".<wbr>")
    return f'<th class="{"num" if numeric else "text"}">{text}</th>'


def table_html(frame: pd.DataFrame) -> str:
    """`frame` as an HTML table that fits the page: headers break after `_` and `.`, text cells
    anywhere, numbers never; '(none)' when it has no rows."""
    if frame.empty:
        return "<p>(none)</p>"
    numeric = [
        all(_is_number(v) or not cell_text(v) for v in frame.iloc[:, i])
        for i in range(frame.shape[1])
    ]
    head = "".join(_th(c, n) for c, n in zip(frame.columns, numeric, strict=True))
    rows = ("".join(_td(v) for v in row) for row in frame.itertuples(index=False, name=None))
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def confirmation_html(c: Confirmation, verdicts: bytes | None) -> list[str]:
    """The Confirmation section: how it was computed, the merges, the forest plot (the PNG
    `verdicts` inlined), the configurations and the comparisons."""
    merged = merge_note(c)
    parts = [f"<h2>Confirmation</h2><p>{html.escape(note(c))}</p>"]
    parts += [f"<p>{html.escape(merged)}</p>"] if merged else []
    if verdicts is not None:
        uri = "data:image/png;base64," + base64.b64encode(verdicts).decode("ascii")
        parts.append(
            f'<figure><img class="verdicts" alt="verdicts" src="{uri}">'
            f"<figcaption>{html.escape(FOREST_CAPTION)}</figcaption></figure>"
        )
    best = family_table(c)
    return parts + [
        "<h3>Configurations</h3>",
        table_html(pd.DataFrame(table(c))),
        f"<h3>{COMPARISONS_TITLE}</h3>",
        table_html(pd.DataFrame(comparison_table(c))),
        *([f"<h3>{FAMILIES_TITLE}</h3>", table_html(pd.DataFrame(best))] if best else []),
    ]


def render_html(
    analysis: Analysis,
    keys: Sequence[str],
    importances: Sequence[Importance],
    title: str,
    confirmed: Confirmation | None = None,
    log_keys: Collection[str] = (),
    verdicts: bytes | None = None,
) -> str:
    """The whole pareto.html text; the first figure inlines plotly.js, the others reuse it, and
    `verdicts` (the forest plot's PNG) goes into the Confirmation section."""
    figures = [scatter_figure(analysis)]
    if analysis.candidates or analysis.stopped:
        figures.append(parallel_figure(analysis, keys, log_keys))
    divs = [
        fig.to_html(
            full_html=False, include_plotlyjs=(i == 0), config=PLOT_CONFIG, div_id=f"plot-{i}"
        )
        for i, fig in enumerate(figures)
    ]
    figures_html = "".join(f'<div class="plot">{d}</div>' for d in divs)
    notes = importance_notes(importances) + analysis.notes
    bullets = "".join(f"<li>{html.escape(line[2:])}</li>" for line in key_figures(analysis))
    parts = [f"<h1>Pareto report: {html.escape(title)}</h1>"]
    if confirmed is not None:
        parts += [
            f'<p class="answer"><b>Answer (test split, confirmed):</b> '
            f"{html.escape(confirmed.answer)}</p>",
            f"<p>{html.escape(search_best(analysis))}</p>",
            *confirmation_html(confirmed, verdicts),
        ]
    parts += [
        f"<ul>{bullets}</ul>",
        figures_html,
        "<h2>Pareto table</h2><p>Δ columns: trial value − baseline value.</p>",
        table_html(pareto_frame(analysis, keys)),
        f"<h2>Parameter importance</h2><p>{html.escape(IMPORTANCE_METHOD)}</p>",
        table_html(importance_frame(importances)),
    ]
    if analysis.tasks:
        parts += [
            f"<h2>Task balance</h2><p>{html.escape(TASK_BALANCE)}</p>",
            table_html(pd.DataFrame(analysis.tasks)),
        ]
    parts += ["<h2>Stopped early and excluded trials</h2>", table_html(excluded_frame(analysis))]
    if notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"
        )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
