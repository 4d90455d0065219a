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
import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from search.tracking.settings import TrackerSettings
from search.tracking.tracker import SearchTracker, live_tracker
from trainables.nonfinite import failed_epoch

_REASON_CHARS = 500
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the actor name in error files
log = logging.getLogger(__name__)


def _attach(settings: TrackerSettings) -> TrialRunCallback:
    """The callback of the open tracker for these settings' output folder, or of a new one."""
    tracker = live_tracker(settings.output_dir)
    if tracker is not None:
        return tracker.callback()
    return TrialRunCallback(SearchTracker(dataclasses.replace(settings, resume=True)), owns=True)


def _never_raise(hook: Callable) -> Callable:
    """A tracking bug or bad value must not abort the search: log it and carry on."""

    @functools.wraps(hook)
    def guarded(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception:
            log.warning(
                "MLflow tracking: %s failed; the search goes on", hook.__name__, exc_info=True
            )
            return None

    return guarded


def _failure(trial: Any) -> tuple[str, str]:
    """(one-line reason, full error text) of a failed trial, read from Ray's error file."""
    details = ""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        details = _ANSI_COLOUR.sub("", Path(path).read_text(errors="replace"))
    lines = [line.strip() for line in details.splitlines() if line.strip()]
    reason = lines[-1] if lines else "unknown error (no error file)"
    return reason[:_REASON_CHARS], details


class TrialRunCallback(Callback):
    """Forwards Ray Tune's trial events to a SearchTracker; holds no MLflow state itself.

    `owns`: the callback made the tracker (restored Tuner, no driver tracker), so it also closes it
    when the experiment ends. `as_recorded` (search.record.RecordCallback.as_recorded, a callback
    listed before this one) turns a result into the record's values, so MLflow logs what the record
    holds also for an epoch re-trained after a restore.
    """

    def __init__(
        self,
        tracker: SearchTracker,
        owns: bool = False,
        as_recorded: Callable[[str, dict], dict] | None = None,
    ):
        self.tracker, self.owns, self.as_recorded = tracker, owns, as_recorded
        tracker.adopt_callback(self)

    def __reduce__(self):
        return _attach, (self.tracker.settings,)

    @_never_raise
    def setup(self, **info: Any) -> None:
        self.tracker.start()

    @_never_raise
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.trial_started(trial.trial_id, str(trial), trial.config)

    @_never_raise
    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if failed_epoch(result) is not None:  # a non-finite epoch logs nothing; the run FAILED
            return
        if self.as_recorded is not None:
            result = self.as_recorded(trial.trial_id, result)
        self.tracker.trial_result(trial.trial_id, result)

    @_never_raise
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.trial_completed(trial.trial_id)

    @_never_raise
    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        reason, details = _failure(trial)
        self.tracker.trial_failed(trial.trial_id, str(trial), trial.config, reason, details)

    @_never_raise
    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.trial_retried(trial.trial_id)

    @_never_raise
    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.tracker.experiment_ended()
        if self.owns:
            self.tracker.close()

    @_never_raise
    def get_state(self) -> dict | None:
        return self.tracker.snapshot()

    @_never_raise
    def set_state(self, state: dict) -> None:
        self.tracker.merge(state)
