"""The tracker's resume file: parent run id and {trial id: child run} in the search's output folder.

Written atomically (temp file + rename) after every flush, so a killed driver leaves the last
flushed mapping behind and `Tuner.restore` finds the same runs again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.tracking.record import RunRecord

STATE_FILE_NAME = "mlflow_runs.json"
STATE_VERSION = 1
log = logging.getLogger(__name__)


@dataclass
class TrackerState:
    """What survives a restart: the experiment, the parent run and one record per trial."""

    tracking_uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    trials: dict[str, RunRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_run_id,
            "trials": {key: record.to_json() for key, record in self.trials.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrackerState:
        trials = {
            key: RunRecord.from_json(key, value) for key, value in data.get("trials", {}).items()
        }
        return cls(
            tracking_uri=str(data.get("tracking_uri", "")),
            experiment_id=data.get("experiment_id"),
            parent_run_id=data.get("parent_run_id"),
            trials=trials,
        )


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (TrackerState.to_json()) to `path` atomically; failures are only logged."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as error:
        log.warning(
            "MLflow tracking: cannot write %s (%s); a resume may duplicate runs", path, error
        )


def load_state(path: Path) -> TrackerState | None:
    """The saved state, or None when the file is missing or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        return TrackerState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        log.warning("MLflow tracking: ignoring unreadable %s (%s)", path, error)
        return None
