"""The harness-owned, append-only record of a search: every trial's params, results and end state.

`<output_dir>/record.jsonl`, one JSON object per line, written by the driver only:
  {"event": "start",  "trial_id", "params": {...}}
  {"event": "result", "trial_id", "epoch", "time", "device", "node", "metrics": {...numeric...}}
  {"event": "end",    "trial_id", "state": completed|stopped_early|failed, "epochs", "reason"}
`device` is cpu or cuda and `node` the Ray node id the epoch ran on.
A (trial, epoch) result or a trial's start/end is written once, also across resumes.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from reports.defaults import COMPLETED, FAILED, RECORD_FILE, STOPPED_EARLY
from trainables.nonfinite import failed_epoch

ABANDONED = "abandoned"  # started by a killed driver after Ray's last snapshot; Ray replaced it
# The numeric fields Ray adds to every result: bookkeeping, not the trainable's metrics.
RAY_BOOKKEEPING = frozenset(
    {"training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid"}
    | {"time_since_restore", "iterations_since_restore", "done", "should_checkpoint"}
)


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The trainable's numeric metrics, without Ray's bookkeeping fields."""
    return {
        k: float(v)
        for k, v in result.items()
        if k not in RAY_BOOKKEEPING and isinstance(v, int | float) and not isinstance(v, bool)
    }


def end_state(trial: Trial, max_epochs: int) -> str:
    """completed when the trial trained the full budget, stopped_early (by the scheduler) otherwise."""
    if trial.status == Trial.ERROR:
        return FAILED
    epochs = int((trial.last_result or {}).get("epoch", -1)) + 1
    return COMPLETED if epochs >= max_epochs else STOPPED_EARLY


def failure_reason(trial: Trial) -> str:
    """The last exception line from the trial's error file, e.g. 'NonFiniteError: ... epoch 3'."""
    path = trial.error_file
    if not path or not Path(path).exists():
        return "unknown error"
    lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    return (errors or lines or ["unknown error"])[-1][:500]


def result_epoch(result: Mapping[str, Any]) -> int:
    """The 0-based epoch of a result: its numeric `epoch`, else Ray's training_iteration - 1."""
    epoch = result.get("epoch")
    if isinstance(epoch, numbers.Real) and not isinstance(epoch, bool):
        return int(epoch)
    return int(result.get("training_iteration", 1)) - 1


def read_record(path: str | Path) -> list[dict[str, Any]]:
    """Events of a record file, skipping a truncated last line (an interrupted write)."""
    events = []
    p = Path(path)
    if not p.exists():
        return events
    for line in p.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


class RecordCallback(Callback):
    """Appends every start, result and end to the record, once each, flushing line by line."""

    def __init__(self, output_dir: str | Path, max_epochs: int) -> None:
        self.path = Path(output_dir) / RECORD_FILE
        self.max_epochs = max_epochs
        self._seen: set[tuple] = set()
        self._metrics: dict[tuple[str, int], dict[str, float]] = {}  # (trial, epoch) -> metrics
        for e in read_record(self.path):
            self._seen.add(self._key(e))
            if e["event"] == "result":
                self._metrics.setdefault((e["trial_id"], e["epoch"]), e["metrics"])
        self._file = None

    @staticmethod
    def _key(event: dict[str, Any]) -> tuple:
        return (event["event"], event["trial_id"], event.get("epoch"))

    def _write(self, event: dict[str, Any]) -> None:
        key = self._key(event)
        if key in self._seen:
            return
        self._seen.add(key)
        event.setdefault("time", time.time())
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", buffering=1)
        self._file.write(json.dumps(event, default=str, allow_nan=True) + "\n")

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self._write({"event": "start", "trial_id": trial.trial_id, "params": dict(trial.config)})

    def on_trial_result(self, iteration, trials, trial: Trial, result: dict, **info) -> None:
        if failed_epoch(result) is not None:
            return  # the non-finite epoch: no result; the trial's end says failed at that epoch
        metrics = numeric_metrics(result)
        epoch = result_epoch(result)
        self._metrics.setdefault((trial.trial_id, epoch), metrics)
        self._write(
            {
                "event": "result",
                "trial_id": trial.trial_id,
                "epoch": epoch,
                "time": time.time(),
                "device": result.get("device"),
                "node": result.get("node"),
                "metrics": metrics,
            }
        )

    def as_recorded(self, trial_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """`result` as the record holds it: the numbers first recorded for its (trial, epoch) (a
        re-trained epoch keeps them), with the result's text values; call after on_trial_result."""
        texts = {k: v for k, v in result.items() if isinstance(v, str)}
        return texts | self._metrics.get((trial_id, result_epoch(result)), numeric_metrics(result))

    def on_trial_complete(self, iteration, trials, trial: Trial, **info) -> None:
        self._end(trial, end_state(trial, self.max_epochs), None)

    def on_trial_error(self, iteration, trials, trial: Trial, **info) -> None:
        self._end(trial, FAILED, failure_reason(trial))

    def _end(self, trial: Trial, state: str, reason: str | None) -> None:
        last = trial.last_result or {}
        failed_at = failed_epoch(last)
        epochs = failed_at if failed_at is not None else int(last.get("epoch", -1)) + 1
        self.write_end(trial.trial_id, state, epochs, reason)

    def write_end(self, trial_id: str, state: str, epochs: int, reason: str | None) -> None:
        """Record a trial's end state (once)."""
        event = {"event": "end", "trial_id": trial_id, "state": state, "epochs": epochs}
        self._write(event | {"reason": reason})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_file"} | {"_file": None}
