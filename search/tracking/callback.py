"""The Ray Tune callback that feeds a SearchTracker from the driver process (the one writer).

Hooks used (ray/tune/execution/tune_controller.py, Ray 2.60):
- on_trial_start: a trial's actor started, first time or again after restore / retry;
- on_trial_result: one `tune.report`, after the scheduler decided (step = the `epoch` metric);
- on_trial_complete: the trial returned, was stopped by the scheduler (ASHA) or by a stopper;
- on_trial_error / on_trial_recover: it raised, and will not / will be retried;
- on_experiment_end: the loop is over, also after Ctrl+C, when running trials get no other hook.

A Tuner pickles its callbacks (tuner.pkl) and `Tuner.restore` unpickles them: this callback
pickles as its settings and, unpickled, attaches to the live tracker of the same output folder
(create the tracker before `Tuner.restore`), or builds a resuming one from the settings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ray.tune import Callback

from search.tracking.settings import TrackerSettings
from search.tracking.tracker import SearchTracker, live_tracker

_REASON_CHARS = 500


def _attach(settings: TrackerSettings) -> TrialRunCallback:
    """The callback of the open tracker for these settings' output folder, or of a new one."""
    tracker = live_tracker(settings.output_dir)
    if tracker is None:
        tracker = SearchTracker(dataclasses.replace(settings, resume=True))
    return tracker.callback()


def _failure(trial: Any) -> tuple[str, str]:
    """(one-line reason, full error text) of a failed trial, read from Ray's error file."""
    details = ""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        details = Path(path).read_text(errors="replace")
    lines = [line.strip() for line in details.splitlines() if line.strip()]
    reason = lines[-1] if lines else "unknown error (no error file)"
    return reason[:_REASON_CHARS], details


class TrialRunCallback(Callback):
    """Forwards Ray Tune's trial events to a SearchTracker; holds no MLflow state itself."""

    def __init__(self, tracker: SearchTracker):
        self.tracker = tracker

    def __reduce__(self):
        return _attach, (self.tracker.settings,)

    def setup(self, **info: Any) -> None:
        self.tracker.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.trial_started(trial.trial_id, str(trial), trial.config)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.tracker.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.trial_completed(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        reason, details = _failure(trial)
        self.tracker.trial_failed(trial.trial_id, str(trial), trial.config, reason, details)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.trial_retried(trial.trial_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.tracker.experiment_ended()

    def get_state(self) -> dict | None:
        return self.tracker.snapshot()

    def set_state(self, state: dict) -> None:
        self.tracker.merge(state)
