"""A search's output folder: creating it (marker, config, space), and what a search left in it.

`prepare_output` writes the marker that `resume=` checks, `config.yaml` and `space.yaml`;
`Outcome` is what a finished or interrupted search hands back; `best_trials` ranks the recorded trials.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from record import COMPLETED, TrialRecord
from search.cluster import plan_storage, pull
from search.config import SearchConfig, to_yaml
from spaces import Space
from spaces.distributions import Constant
from trainables.errors import UserInputError
from trainables.objective import Objective

MARKER = ".loss-search.json"  # written into every output folder; resume= only accepts such folders


@dataclass
class Outcome:
    """What a finished search left behind."""

    output_dir: Path
    counts: dict[str, int]
    best: list[dict[str, Any]]
    tracking_uri: str | None = None
    experiment_id: str | None = None
    report_dir: Path | None = None
    cluster: str = ""
    interrupted: bool = False
    answer: str | None = None  # the confirmation stage's verdict in one sentence


def local_copy(output_dir: str) -> Path:
    """The driver's folder of `output_dir`: the path itself, or a URI's staging copy, refreshed."""
    storage = plan_storage(output_dir)
    pull(storage)
    return storage.local


def prepare_output(cfg: SearchConfig, space: Space) -> Path:
    """Create output_dir with the marker, the resolved config and a copy of the space file."""
    out = local_copy(cfg.output_dir)
    if cfg.resume:  # the config as resumed (only resume's RESUMABLE keys can differ)
        (out / "config.yaml").write_text(to_yaml(cfg))
        return out
    if (out / MARKER).exists():
        raise UserInputError(
            f"output_dir={out} already holds a search: continue it with resume={out} "
            "or choose another output_dir"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    shutil.copyfile(space.path, out / "space.yaml")
    (out / MARKER).write_text(json.dumps({"tool": "loss-search", "name": cfg.name}))
    return out


def best_trials(
    recorded: list[TrialRecord], space: Space, metric: str, mode: str, n: int = 3
) -> list[dict[str, Any]]:
    """The top `n` trials by their best `metric` (`mode` max or min) among those that trained the
    full budget; ties go to the smaller trial id."""
    trials = {t.trial_id: t for t in recorded}
    top = ranked(recorded, Objective(metric, mode))[:n]
    searched = {k for k, p in space.params.items() if not isinstance(p.dist, Constant)}
    return [
        {
            "trial_id": t,
            "metric": metric,
            "value": value,
            "params": {k: v for k, v in trials[t].params.items() if k in searched},
        }
        for t, value in top
    ]


def ranked(recorded: list[TrialRecord], objective: Objective) -> list[tuple[str, float]]:
    """(trial id, best finite value) of every completed trial, best first; ties: smaller id."""
    best: dict[str, float] = {}
    for trial in (t for t in recorded if t.state == COMPLETED):
        for v in (r[objective.metric] for r in trial.results.values() if objective.metric in r):
            if math.isfinite(v) and objective.better(v, best.get(trial.trial_id)):
                best[trial.trial_id] = v
    return sorted(best.items(), key=lambda item: (objective.sign * item[1], item[0]))
