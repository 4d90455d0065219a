"""A search's output folder: creating it (marker, config, space), and what a search left in it.

`check_output_dir` refuses, before anything starts, a folder that cannot be made or written;
`prepare_output` writes the marker that `resume=` checks, `config.yaml` and `space.yaml` (the space
the search runs: a copy of its file, or with pinned trial keys the file with them folded in);
`Outcome` is what a finished or interrupted search hands back; `best_trials` ranks the recorded trials.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from record import TrialRecord
from search.cluster import plan_storage, pull
from search.config import SearchConfig, to_yaml
from spaces import Space
from spaces.schema import to_text
from trainables.errors import UserInputError
from trainables.objective import Objective, ranked

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


def check_output_dir(output_dir: str) -> None:
    """Raise UserInputError (one line) when the driver's folder of `output_dir` (a URI's staging
    copy) is a file, lies under a file, or cannot be written by this process; leaves nothing
    behind (the write test removes its folder)."""
    folder = plan_storage(output_dir).local.absolute()
    if folder.exists() and not folder.is_dir():
        raise UserInputError(
            f"output_dir={output_dir}: {folder} is a file; expected a folder (a new one, or a "
            "search's output folder with resume=)"
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise UserInputError(
            f"output_dir={output_dir}: cannot create {folder}: {existing} is a file, not a folder"
        )
    try:  # a folder made and removed again: what permissions, mounts and ACLs really allow
        os.rmdir(tempfile.mkdtemp(prefix=".loss-search-probe-", dir=existing))
    except OSError as e:
        raise UserInputError(
            f"output_dir={output_dir}: cannot write in {existing} ({e.strerror}); choose "
            "another output_dir"
        ) from None


def prepare_output(cfg: SearchConfig, space: Space) -> Path:
    """Create output_dir with the marker, the resolved config and the space `space.yaml`: a copy of
    the space file, or the space with the config's pinned trial keys folded in, which the report
    and a resumed search read as the space searched."""
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
    if cfg.params:
        pinned = f"{space.path} with the pins of config.yaml (params) folded in"
        (out / "space.yaml").write_text(to_text(space, pinned))
    else:
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
    searched = set(space.searched)
    return [
        {
            "trial_id": t,
            "metric": metric,
            "value": value,
            "params": {k: v for k, v in trials[t].params.items() if k in searched},
        }
        for t, value in top
    ]
