"""Read a search's output folder: record.jsonl (tolerantly), config.yaml, space.yaml, data.json.

record.jsonl is append-only and may be interrupted: a line that is not valid JSON (typically a
truncated last line) is skipped and noted. search/record.py writes each start, (trial, epoch) result
and end once, so a repeated event is a duplicate: the first one written wins, for every event kind.
This is the one reader of the record for reports and for search/reconcile.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reports.defaults import CONFIG_FILE, RECORD_FILE, SPACE_FILE
from reports.space import SpaceParam, narrowed, read_space
from spaces.fit import DATA_FILE
from trainables.errors import UserInputError


@dataclass
class TrialRecord:
    """Everything record.jsonl says about one trial."""

    trial_id: str
    order: int  # position of the trial's first line in record.jsonl (earliest = 0)
    params: dict[str, Any] = field(default_factory=dict)
    results: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch -> metrics
    times: dict[int, float] = field(default_factory=dict)  # epoch -> wall time of its result (s)
    state: str | None = None  # None: no end event (still running or interrupted)
    epochs: int | None = None
    reason: str | None = None

    @property
    def epochs_trained(self) -> int:
        """Epochs from the end event, else the number of reported epochs."""
        return self.epochs if self.epochs is not None else len(self.results)


@dataclass
class Run:
    """One search output folder, as read from disk."""

    output_dir: Path
    trials: list[TrialRecord]  # sorted by trial id (natural order: t2 before t10)
    config: dict[str, Any]
    space: list[SpaceParam] | None  # None when space.yaml is absent
    notes: list[str]  # what was skipped while reading, one sentence each

    @property
    def max_epochs(self) -> int | None:
        value = (self.config.get("train") or {}).get("max_epochs")
        return int(value) if isinstance(value, int | float) else None

    def setting(self, dotted: str) -> Any:
        """A config value by dotted key (None when absent)."""
        node: Any = self.config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def metrics(self) -> set[str]:
        """Every metric name any trial reported."""
        return {m for t in self.trials for row in t.results.values() for m in row}


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically ("t2" < "t10")."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def load_run(output_dir: str | Path) -> Run:
    """Read `output_dir`; a missing folder or record.jsonl is a UserInputError."""
    root = Path(output_dir)
    record = root / RECORD_FILE
    if not record.is_file():
        raise UserInputError(f"{record}: not found (expected a search output folder)")
    trials, notes = read_record(record)
    config = read_yaml(root / CONFIG_FILE)
    space_path = root / SPACE_FILE
    space = read_space(space_path) if space_path.is_file() else None
    if space is None:
        notes.append(f"{SPACE_FILE} not found: searched parameters inferred from varying params")
    data_path = root / DATA_FILE
    if data_path.is_file():
        fitted = json.loads(data_path.read_text())
        notes += [f"Collapsed by the data, not searched: {n}" for n in fitted.get("collapsed", [])]
        if space is not None:
            space = narrowed(space, fitted.get("values_left", {}))
    return Run(root, trials, config, space, notes)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserInputError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return doc if isinstance(doc, dict) else {}


def read_record(path: Path) -> tuple[list[TrialRecord], list[str]]:
    """Parse record.jsonl into trials sorted by trial id, plus notes on skipped lines."""
    trials: dict[str, TrialRecord] = {}
    bad: list[int] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            _apply(event, trials)
        except (json.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
            bad.append(number)
    notes = [f"{path.name}: skipped unreadable line(s) {bad}"] if bad else []
    return sorted(trials.values(), key=lambda t: natural_key(t.trial_id)), notes


def _apply(event: dict[str, Any], trials: dict[str, TrialRecord]) -> None:
    trial_id = str(event["trial_id"])
    trial = trials.setdefault(trial_id, TrialRecord(trial_id, order=len(trials)))
    kind = event["event"]
    if kind == "start":
        trial.params = trial.params or dict(event.get("params") or {})
    elif kind == "result":
        epoch = int(event["epoch"])
        if epoch not in trial.results:
            trial.results[epoch] = _numbers(event["metrics"])
            trial.times[epoch] = float(event.get("time") or 0.0)
    elif kind == "end":
        if trial.state is not None:
            return
        trial.state = event.get("state")
        epochs = event.get("epochs")
        trial.epochs = int(epochs) if epochs is not None else None
        trial.reason = event.get("reason")
    else:
        raise ValueError(f"unknown event {kind!r}")


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric metrics as floats (None becomes NaN; other non-numbers are dropped)."""
    out = {}
    for name, value in metrics.items():
        if value is None:
            out[name] = math.nan
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
