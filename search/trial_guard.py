"""Driver-side reactions to what a trial reports, before Ray acts on its next error.

- A result flagged non-finite (`trainables.trial.nonfinite`): the trial raises NonFiniteError next, and a
  deterministic failure must not be retried, so the trial's retry budget is set to the failures it
  already had; Ray then ends it ERROR at once, while crashes keep `resources.max_failures` retries.
- A checkpoint fallback (`checkpoint_fallback` in a result): logged as a warning in the driver.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from trainables.trial.checkpoints import FALLBACK
from trainables.trial.nonfinite import REASON, failed_epoch

log = logging.getLogger(__name__)


class TrialGuard(Callback):
    """Stops retries of non-finite trials and surfaces checkpoint fallbacks in the driver's log."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, str]] = set()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Trial, result: dict, **info: Any
    ) -> None:
        if failed_epoch(result) is not None:
            trial.max_failures = trial.num_failures  # the next error is final
            log.warning("trial %s: %s (not retried)", trial.trial_id, result.get(REASON))
        note = result.get(FALLBACK)
        if note and (trial.trial_id, note) not in self._warned:
            self._warned.add((trial.trial_id, note))
            log.warning("trial %s: checkpoint fallback: %s", trial.trial_id, note)
