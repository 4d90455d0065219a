"""write_report: read an output folder, analyse it, write <output_dir>/report/."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from record.schema import REPORT_DIR
from reports.analysis import Analysis, analyse
from reports.confirmation import Confirmation, comparison_table, confirm, table, task_labels
from reports.confirmation import figures as confirmation_figures
from reports.defaults import EPOCH_RULE, HV_MARGIN
from reports.importance import param_importances
from reports.load import Run, load_run
from reports.markdown import render_markdown
from reports.objectives import Objective
from reports.plots import VERDICTS_PNG, forest_png, write_front_plots
from reports.render import render_html
from reports.rows import searched_keys
from reports.tables import summary, trials_frame
from trainables.objective import search_rank
from trainables.params import pair_of

CONFIRMATION_FILES = (VERDICTS_PNG, "confirmation.csv", "comparisons.csv")  # only with one


def _json_safe(value: Any) -> Any:
    """NaN/inf → None, recursively, so summary.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def confirmation(run: Run, analysis: Analysis) -> Confirmation | None:
    """The confirmation stage's verdict from the run's confirmation runs (None without any)."""
    if not run.confirmations:
        return None
    search = Objective(
        str(run.setting("search.metric") or analysis.primary.metric),
        str(run.setting("search.mode") or analysis.primary.direction),
    )
    per_task = [Objective(f"val_{t}_macro_f1", "max") for t in run.facts.get("tasks") or {}]
    shown = {o.metric for o in analysis.objectives}
    objectives = [*analysis.objectives, *(o for o in per_task if o.metric not in shown)]
    confirmed = confirm(
        run.confirmations,
        objectives,
        search,
        task_labels(run.facts),  # None: resample seeds only
        alpha=float(run.setting("confirm.alpha") or 0.05),
        resamples=int(run.setting("confirm.bootstrap") or 1000),
        delta=run.setting("confirm.delta") or {},
        budget=int(run.setting("confirm.max_seeds") or 0),
        versus=[pair_of(pair) for pair in run.setting("confirm.versus") or ()],
        rank=search_rank(run.trials, search),
    )
    if confirmed is not None and run.looks:
        confirmed.merged = list(run.looks[-1].get("merged") or [])
    return confirmed


def write_report(
    output_dir: str | Path,
    objectives: str | Sequence[str] | None = None,
    *,
    reference: Mapping[str, float] | None = None,
    margin: float = HV_MARGIN,
    epoch_rule: str = EPOCH_RULE,
) -> Path:
    """Write the Pareto report of the search in `output_dir`; return the report folder.

    `objectives` (e.g. "val_macro_f1:max,val_ece:min") overrides config.yaml's report.objectives.
    """
    run = load_run(output_dir)
    return write_run_report(
        run,
        run.output_dir / REPORT_DIR,
        objectives,
        reference=reference,
        margin=margin,
        epoch_rule=epoch_rule,
    )


def write_run_report(
    run: Run,
    folder: Path,
    objectives: str | Sequence[str] | None = None,
    *,
    reference: Mapping[str, float] | None = None,
    margin: float = HV_MARGIN,
    epoch_rule: str = EPOCH_RULE,
) -> Path:
    """Write the Pareto report of `run` (from a folder or from MLflow) into `folder`; return it."""
    analysis = analyse(run, objectives, reference=reference, margin=margin, epoch_rule=epoch_rule)
    keys = searched_keys(run)
    importances = param_importances(analysis, run.space, keys)
    folder.mkdir(parents=True, exist_ok=True)
    title = str(run.setting("space") or run.output_dir.name)
    confirmed = confirmation(run, analysis)
    verdicts = forest_png(confirmed) if confirmed is not None else None
    trials_frame(analysis, keys).to_csv(folder / "trials.csv", index=False)
    (folder / "pareto.md").write_text(
        render_markdown(analysis, keys, importances, title, confirmed, verdicts is not None)
    )
    log_keys = {p.key for p in run.space or () if p.log}
    page = render_html(analysis, keys, importances, title, confirmed, log_keys, verdicts)
    (folder / "pareto.html").write_text(page)
    for stale in [*folder.glob("front_*.png"), *(folder / n for n in CONFIRMATION_FILES)]:
        stale.unlink(missing_ok=True)  # from a report with other objectives or a confirmation
    plots = write_front_plots(analysis, folder)
    if verdicts is not None:
        (folder / VERDICTS_PNG).write_bytes(verdicts)
        plots.append(folder / VERDICTS_PNG)
    figures = summary(analysis, importances) | {"plots": [p.name for p in plots]}
    if confirmed is not None:
        figures["confirmation"] = confirmation_figures(confirmed)
        pd.DataFrame(table(confirmed)).to_csv(folder / "confirmation.csv", index=False)
    if confirmed is not None and confirmed.comparisons:
        pd.DataFrame(comparison_table(confirmed)).to_csv(folder / "comparisons.csv", index=False)
    (folder / "summary.json").write_text(json.dumps(_json_safe(figures), indent=2) + "\n")
    return folder
