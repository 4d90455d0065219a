"""The one reader of `record.jsonl`: events from an offset, and trials as the record says them.

The record is append-only and may be cut mid-line by a kill: only complete lines are read, a line
that is not valid JSON is skipped (and noted), and of repeated events the first one wins.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from record.schema import EVENTS, LOOK, SEARCH


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """(events of the complete lines from byte `offset`, the offset after the last of them);
    each event carries its line's start and end offsets as `_offset` and `_end`. No file is no
    events; a line that is not JSON is an event without `event`."""
    p = Path(path)
    if not p.is_file():
        return [], offset
    with p.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events, position = [], offset
    for line in data[:end].splitlines(keepends=True):
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            event = None
        if not isinstance(event, dict):
            event = {"event": None}
        events.append(event | {"_offset": position, "_end": position + len(line)})
        position += len(line)
    return events, offset + end


@dataclass
class TrialRecord:
    """Everything the record says about one trial."""

    trial_id: str
    order: int  # position of the trial's first event in the record (earliest = 0)
    params: dict[str, Any] = field(default_factory=dict)
    results: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch -> metrics
    times: dict[int, float] = field(default_factory=dict)  # epoch -> wall time of its result (s)
    retries: int = 0
    state: str | None = None  # None: no end event (still running or interrupted)
    epochs: int | None = None
    reason: str | None = None
    stage: str = SEARCH
    source: str | None = None  # a confirmation run's search trial
    role: str | None = None  # a confirmation run's: baseline or candidate
    predictions: list[Any] | None = None  # a confirmation run's test-split class ids (per task)

    @property
    def epochs_trained(self) -> int:
        """Epochs from the end event, else the number of reported epochs."""
        return self.epochs if self.epochs is not None else len(self.results)


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically ("t2" < "t10")."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def read_trials(
    path: str | Path, stage: str | None = SEARCH
) -> tuple[list[TrialRecord], list[str]]:
    """The record's trials of `stage` (None: all) sorted by trial id, and notes on the lines it
    skipped."""
    trials: dict[str, TrialRecord] = {}
    bad: list[int] = []
    events, end = read_events(path)
    for number, event in enumerate(events, start=1):
        try:
            apply(event, trials)
        except (TypeError, ValueError, KeyError, AttributeError):
            bad.append(number)
    if Path(path).is_file() and Path(path).stat().st_size > end:
        bad.append(len(events) + 1)  # a last line cut by a kill
    notes = [f"{Path(path).name}: skipped unreadable line(s) {bad}"] if bad else []
    kept = [t for t in trials.values() if stage is None or t.stage == stage]
    return sorted(kept, key=lambda t: natural_key(t.trial_id)), notes


def apply(event: Mapping[str, Any], trials: dict[str, TrialRecord]) -> None:
    """Add one event to `trials` (the first of repeated events wins); raises on a malformed one."""
    kind = event["event"]
    if kind not in EVENTS:
        raise ValueError(f"unknown event {kind!r}")
    if kind == LOOK:  # the confirmation stage's, no trial's (read_looks)
        return
    trial_id = str(event["trial_id"])
    trial = trials.setdefault(trial_id, TrialRecord(trial_id, order=len(trials)))
    if kind == "start":
        if not trial.params:
            trial.params = dict(event.get("params") or {})
            trial.stage, trial.source = str(event.get("stage") or SEARCH), event.get("source")
            trial.role = event.get("role")
    elif kind == "result":
        epoch = int(event["epoch"])
        if epoch not in trial.results:
            trial.results[epoch] = numbers(event["metrics"])
            trial.times[epoch] = float(event.get("time") or 0.0)
            if event.get("predictions") is not None:
                trial.predictions = [
                    [int(x) for x in p] if isinstance(p, list) else int(p)
                    for p in event["predictions"]
                ]
    elif kind == "retry":
        trial.retries = max(trial.retries, int(event["attempt"]))
    elif trial.state is None:
        trial.state = event.get("state")
        epochs = event.get("epochs")
        trial.epochs = int(epochs) if epochs is not None else None
        trial.reason = event.get("reason")


def read_looks(path: str | Path) -> list[dict[str, Any]]:
    """The record's look events in order (record.schema), the first of repeated ones."""
    seen, looks = set(), []
    for event in read_events(path)[0]:
        if event.get("event") == LOOK and event.get("epoch") not in seen:
            seen.add(event.get("epoch"))
            looks.append({k: v for k, v in event.items() if not k.startswith("_")})
    return looks


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric metrics as floats (None becomes NaN; other non-numbers are dropped)."""
    out = {}
    for name, value in metrics.items():
        if value is None:
            out[name] = math.nan
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
