"""The Tune callback that writes the record (`record.jsonl`, see record.schema) from Ray's events.

Listed first among the driver's callbacks; the other stores mirror the file it writes.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from record import COMPLETED, FAILED, RECORD_FILE, STOPPED_EARLY, RecordWriter
from trainables.trial.nonfinite import failed_epoch

# The numeric fields Ray adds to every result: bookkeeping, not the trainable's metrics.
RAY_BOOKKEEPING = frozenset(
    {"training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid"}
    | {"time_since_restore", "iterations_since_restore", "done", "should_checkpoint"}
)
# Ray's text fields of a result: ids and hosts, not what the trainable said.
RAY_TEXTS = frozenset({"trial_id", "date", "hostname", "node_ip", "experiment_tag"})
REASON_CHARS = 500
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the actor name in error files


def numeric_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The trainable's numeric metrics, without Ray's bookkeeping fields."""
    return {
        k: float(v)
        for k, v in result.items()
        if k not in RAY_BOOKKEEPING and isinstance(v, int | float) and not isinstance(v, bool)
    }


def text_fields(result: Mapping[str, Any]) -> dict[str, str]:
    """The trainable's text values (e.g. `device`, a checkpoint-fallback note), without Ray's."""
    return {k: v for k, v in result.items() if isinstance(v, str) and k not in RAY_TEXTS}


def result_epoch(result: Mapping[str, Any]) -> int:
    """The 0-based epoch of a result: its numeric `epoch`, else Ray's training_iteration - 1."""
    epoch = result.get("epoch")
    if isinstance(epoch, numbers.Real) and not isinstance(epoch, bool):
        return int(epoch)
    return int(result.get("training_iteration", 1)) - 1


def end_state(trial: Trial, max_epochs: int) -> str:
    """completed when the trial trained the full budget, stopped_early (by the scheduler) otherwise."""
    if trial.status == Trial.ERROR:
        return FAILED
    epochs = int((trial.last_result or {}).get("epoch", -1)) + 1
    return COMPLETED if epochs >= max_epochs else STOPPED_EARLY


def failure(trial: Trial) -> tuple[str, str]:
    """(the last exception line, e.g. 'NonFiniteError: ... epoch 3', the whole error text) from
    the trial's error file."""
    path = trial.error_file
    if not path or not Path(path).is_file():
        return "unknown error (no error file)", ""
    text = _ANSI_COLOUR.sub("", Path(path).read_text(errors="replace"))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    return (errors or lines or ["unknown error"])[-1][:REASON_CHARS], text


class RecordCallback(Callback):
    """Appends every start, result, retry and end of a trial to the record, once each."""

    def __init__(self, output_dir: str | Path, max_epochs: int) -> None:
        self.writer = RecordWriter(Path(output_dir) / RECORD_FILE)
        self.max_epochs = max_epochs

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        self.writer.write({"event": "start", "trial_id": trial.trial_id, "params": trial.config})

    def on_trial_result(self, iteration, trials, trial: Trial, result: dict, **info) -> None:
        if failed_epoch(result) is not None:
            return  # the non-finite epoch: no result; the trial's end says failed at that epoch
        event = {"event": "result", "trial_id": trial.trial_id, "epoch": result_epoch(result)}
        texts = {"device": result.get("device"), "node": result.get("node")}
        notes = {k: v for k, v in text_fields(result).items() if k not in texts}
        event |= texts | {"metrics": numeric_metrics(result)} | ({"notes": notes} if notes else {})
        self.writer.write(event)

    def on_trial_recover(self, iteration, trials, trial: Trial, **info) -> None:
        done = [a for kind, t, a in self.writer.keys if kind == "retry" and t == trial.trial_id]
        attempt = max(done, default=0) + 1
        self.writer.write({"event": "retry", "trial_id": trial.trial_id, "attempt": attempt})

    def on_trial_complete(self, iteration, trials, trial: Trial, **info) -> None:
        self._end(trial, end_state(trial, self.max_epochs), None, None)

    def on_trial_error(self, iteration, trials, trial: Trial, **info) -> None:
        self._end(trial, FAILED, *failure(trial))

    def _end(self, trial: Trial, state: str, reason: str | None, error: str | None) -> None:
        last = trial.last_result or {}
        failed_at = failed_epoch(last)
        epochs = failed_at if failed_at is not None else int(last.get("epoch", -1)) + 1
        self.write_end(trial.trial_id, state, epochs, reason, error)

    def write_end(
        self, trial_id: str, state: str, epochs: int, reason: str | None, error: str | None = None
    ) -> None:
        """Record a trial's end state (once)."""
        event = {"event": "end", "trial_id": trial_id, "state": state, "epochs": epochs}
        self.writer.write(event | {"reason": reason} | ({"error": error} if error else {}))

    def close(self) -> None:
        self.writer.close()

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self.close()
