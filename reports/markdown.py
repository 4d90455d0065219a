"""pareto.md: the Pareto table and key figures in Markdown (no extra dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

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
from reports.plots import FOREST_CAPTION, VERDICTS_PNG
from reports.tables import excluded_frame, importance_frame, importance_notes, pareto_frame

KNEE_RULE = "front point closest to the ideal point after min-max scaling of the front"
IMPORTANCE_METHOD = (
    "optuna's default evaluator (PED-ANOVA: how a parameter's distribution among the top 10% "
    "of trials differs from all trials; with under ~50 trials the top set is small and the "
    "figures are rough), over every finished trial at its counted epoch: stopped-early trials "
    "count too, since ASHA stopped them for low early values. Conditional parameters are "
    "assessed within their branch."
)

TASK_BALANCE = (
    "Per task of the front and baseline trials at the counted epoch: its weight (task.weighting), "
    "its share of the weighted training loss, its training loss and validation macro-F1.\n"
)


def cell(value: Any) -> str:
    """One table cell: floats to 4 significant digits, missing as empty, pipes escaped."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `frame` ('(none)' when it has no rows)."""
    if frame.empty:
        return "(none)\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def values_text(values: dict[str, float]) -> str:
    return ", ".join(f"{m} = {cell(v)}" for m, v in values.items())


def key_figures(analysis: Analysis) -> list[str]:
    """Bullet lines: reference point, hypervolume, knee, best per objective, baseline."""
    a = analysis
    if a.hypervolume is None:
        reference = "- Reference point: n/a (no full-budget trials)"
        hv = "- Hypervolume: n/a"
    else:
        reference = f"- Reference point: {values_text(a.reference)} ({a.reference_rule})"
        hv = f"- Hypervolume: {a.hypervolume:.6g} (objectives in their own units)"
        if a.hypervolume_share is not None:
            hv += f"; {a.hypervolume_share:.3f} of the box between the ideal and reference points"
    lines = [
        reference,
        hv,
        f"- Knee: {a.knee or 'n/a'} ({KNEE_RULE})",
        "- Best per objective: " + (", ".join(f"{m} → {t}" for m, t in a.best.items()) or "n/a"),
    ]
    base = a.baseline
    lines.append(
        f"- Baseline (plain CE): {base.trial_id}: {values_text(base.values)}"
        + (f" [{base.note}]" if base.note else "")
        if base
        else "- Baseline (plain CE): none found"
    )
    return lines


def merge_note(c: Confirmation) -> str:
    """The candidates confirmed once for trials that train identically, as one sentence ("" when
    none were merged)."""
    if not c.merged:
        return ""
    return f"Merged before confirming (identical training): {'; '.join(c.merged)}."


def confirmation_markdown(c: Confirmation, verdicts: bool) -> list[str]:
    """The Confirmation section: how it was computed, the merges, the forest plot (when
    `verdicts`: verdicts.png beside pareto.md), the configurations and the comparisons."""
    merged = merge_note(c)
    parts = ["## Confirmation\n", f"{note(c)}\n", *([f"{merged}\n"] if merged else [])]
    if verdicts:
        parts += [f"![verdicts]({VERDICTS_PNG})\n", f"*{FOREST_CAPTION}*\n"]
    parts += [
        "### Configurations\n",
        markdown_table(pd.DataFrame(table(c))),
        f"### {COMPARISONS_TITLE}\n",
        markdown_table(pd.DataFrame(comparison_table(c))),
    ]
    best = family_table(c)
    if best:
        parts += [f"### {FAMILIES_TITLE}\n", markdown_table(pd.DataFrame(best))]
    return parts


def search_best(a: Analysis) -> str:
    """The search's own best, labelled for what it is."""
    metric = a.primary.metric
    best = a.best.get(metric)
    if best is None:
        return "The search's own best: none (no full-budget trial)."
    value = next(r.values[metric] for r in a.rows if r.trial_id == best)
    return (
        f"The search's own best: trial {best}, {metric} {value:.4f} (validation, one seed, "
        "optimistic: the maximum over the searched trials)."
    )


def render_markdown(
    analysis: Analysis,
    keys: Sequence[str],
    importances: Sequence[Importance],
    title: str,
    confirmed: Confirmation | None = None,
    verdicts: bool = False,
) -> str:
    """The whole pareto.md text; `verdicts`: the forest plot verdicts.png is written beside it."""
    a = analysis
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in a.objectives)
    counted = (
        f"epoch with the best {a.primary.metric}"
        if a.epoch_rule == "best"
        else "last reported epoch"
    )
    parts = [f"# Pareto report: {title}\n"]
    if confirmed is not None:
        parts += [
            f"**Answer (test split, confirmed):** {confirmed.answer}\n",
            f"{search_best(a)}\n",
            *confirmation_markdown(confirmed, verdicts),
        ]
    parts += [
        f"Objectives: {objectives}. Values count at the {counted}; train_time_s is the trial's "
        f"total. The front is computed over trials that completed all {a.max_epochs or '?'} "
        "epochs; duplicates of a front point are all on the front.\n",
        *([f"Searched by: {a.searched_by}.\n"] if a.searched_by else []),
        f"Trials: {len(a.rows)} ({len(a.candidates)} full-budget, {len(a.stopped)} stopped early, "
        f"{len(a.excluded)} excluded); front: {len(a.front)}.\n",
        "## Key figures\n",
        "\n".join(key_figures(a)) + "\n",
        "## Pareto table\n",
        "Δ columns: trial value − baseline value, in the metric's units.\n",
        markdown_table(pareto_frame(a, keys)),
        "## Parameter importance\n",
        f"{IMPORTANCE_METHOD}\n",
        markdown_table(importance_frame(importances)),
    ]
    parts += [f"- {note}" for note in importance_notes(importances)]
    if a.tasks:
        parts += ["\n## Task balance\n", TASK_BALANCE, markdown_table(pd.DataFrame(a.tasks))]
    parts += ["\n## Stopped early and excluded trials\n", markdown_table(excluded_frame(a))]
    if a.notes:
        parts += ["## Notes\n", "\n".join(f"- {n}" for n in a.notes) + "\n"]
    return "\n".join(parts)
