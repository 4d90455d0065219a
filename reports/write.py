"""write_report: read an output folder, analyse it, write <output_dir>/report/."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from record import RESEED_FILE
from record.schema import REPORT_DIR
from reports.analysis import analyse
from reports.defaults import EPOCH_RULE, HV_MARGIN
from reports.importance import param_importances
from reports.load import Run, load_run
from reports.markdown import render_markdown
from reports.plots import write_front_plots
from reports.render import render_html
from reports.reseed import format_mean_std, read_reseeds, reseed_summary
from reports.rows import searched_keys
from reports.tables import summary, trials_frame


def _json_safe(value: Any) -> Any:
    """NaN/inf → None, recursively, so summary.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_report(
    output_dir: str | Path,
    objectives: str | Sequence[str] | None = None,
    *,
    reference: Mapping[str, float] | None = None,
    margin: float = HV_MARGIN,
    epoch_rule: str = EPOCH_RULE,
    reseeds: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write the Pareto report of the search in `output_dir`; return the report folder.

    `objectives` (e.g. "val_macro_f1:max,train_time_s:min") overrides config.yaml's
    report.objectives; `reseeds` are re-trainings of finalists for the seed-robustness table
    (default: the rows of <output_dir>/reseed.jsonl when it exists; see reseed.py).
    """
    run = load_run(output_dir)
    if reseeds is None:
        reseeds = read_reseeds(run.output_dir / RESEED_FILE)
    return write_run_report(
        run,
        run.output_dir / REPORT_DIR,
        objectives,
        reference=reference,
        margin=margin,
        epoch_rule=epoch_rule,
        reseeds=reseeds,
    )


def write_run_report(
    run: Run,
    folder: Path,
    objectives: str | Sequence[str] | None = None,
    *,
    reference: Mapping[str, float] | None = None,
    margin: float = HV_MARGIN,
    epoch_rule: str = EPOCH_RULE,
    reseeds: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write the Pareto report of `run` (from a folder or from MLflow) into `folder`; return it.

    The reseed rows, when given, are also copied to `folder`/reseed.jsonl, so the report folder
    (an MLflow artifact of the parent run) carries them.
    """
    analysis = analyse(run, objectives, reference=reference, margin=margin, epoch_rule=epoch_rule)
    keys = searched_keys(run)
    importances = param_importances(analysis, run.space, keys)
    folder.mkdir(parents=True, exist_ok=True)
    title = str(run.setting("space") or run.output_dir.name)
    reseed = table = None
    if reseeds is not None:
        reseeds = [dict(r) for r in reseeds]
        (folder / RESEED_FILE).write_text("".join(json.dumps(r) + "\n" for r in reseeds))
        table = reseed_summary(reseeds, analysis.objectives)
        table.to_csv(folder / "reseed.csv", index=False)
        reseed = format_mean_std(table, analysis.objectives)
    trials_frame(analysis, keys).to_csv(folder / "trials.csv", index=False)
    (folder / "pareto.md").write_text(render_markdown(analysis, keys, importances, title, reseed))
    log_keys = {p.key for p in run.space or () if p.log}
    page = render_html(analysis, keys, importances, title, reseed, log_keys)
    (folder / "pareto.html").write_text(page)
    for stale in folder.glob("front_*.png"):  # from a report with other objectives
        stale.unlink()
    plots = write_front_plots(analysis, folder)
    figures = summary(analysis, importances) | {"plots": [p.name for p in plots]}
    if table is not None:
        figures["reseed"] = json.loads(table.to_json(orient="records"))
    (folder / "summary.json").write_text(json.dumps(_json_safe(figures), indent=2) + "\n")
    return folder
