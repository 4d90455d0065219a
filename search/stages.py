"""The stages after the search: an ordered list the driver runs once a search has finished.

A `Stage` is a name and `run(context) -> None`; `STAGES` holds them in order (the confirmation's
paired seeds on the test split, then the Pareto report and its answer). `run_stages(context)`
runs them after a search that was not interrupted (an interrupted one, or Ctrl-C, runs none, or
stops at the stage it reached); a stage that must not fail the search catches its own errors, as
the report does. Adding a stage is one entry in `STAGES` (docs/development.md, "Add a stage").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from search.config import SearchConfig
from search.confirm import run_confirmation
from search.outputs import Outcome
from trainables.canonical import DataFacts
from trainables.data.dataset import Dataset
from trainables.plugins import Plugins

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a stage gets: the search's config and output folder, the data with its test split, the
    plug-ins and the data's facts the trials trained with, and the outcome (a stage may fill in
    its fields, as the report stage fills `report_dir` and `answer`)."""

    cfg: SearchConfig
    output_dir: Path
    data: Dataset
    plugins: Plugins
    facts: DataFacts
    outcome: Outcome


@dataclass(frozen=True)
class Stage:
    """One step after the search: `run(context)` does it; `name` says which in logs and errors."""

    name: str
    run: Callable[[StageContext], None]


def confirm(context: StageContext) -> None:
    """Re-train the top-k, front and plain-CE baseline with paired seeds, scored on the test split."""
    run_confirmation(context.cfg, context.output_dir, context.data, context.plugins, context.facts)


def write_pareto_report(context: StageContext) -> None:
    """The Pareto report (a failure only warns) and the confirmation's one-sentence answer."""
    context.outcome.report_dir = report(context.output_dir)
    context.outcome.answer = read_answer(context.outcome.report_dir)


STAGES: tuple[Stage, ...] = (
    Stage("confirmation", confirm),
    Stage("report", write_pareto_report),
)


def run_stages(context: StageContext, stages: Sequence[Stage] | None = None) -> None:
    """Run `stages` (default: `STAGES`, read when called) in order on `context`."""
    for stage in STAGES if stages is None else stages:
        log.debug("stage %s", stage.name)
        stage.run(context)


def report(output_dir: Path) -> Path | None:
    """Write the Pareto report; a failure only warns."""
    from reports import write_report

    try:
        return write_report(output_dir)
    except Exception as e:  # the search's results stand without a report
        log.warning("no Pareto report: %s (rerun: python -m reports %s)", e, output_dir)
        return None


def read_answer(report_dir: Path | None) -> str | None:
    """The confirmation's one-sentence answer from the report's summary.json, if it has one."""
    path = None if report_dir is None else report_dir / "summary.json"
    if path is None or not path.is_file():
        return None
    return (json.loads(path.read_text()).get("confirmation") or {}).get("answer")
