"""Live progress on the terminal: trials by state, the best so far and the elapsed time."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ray.tune import Callback
from ray.tune.experiment import Trial

from record import FAILED
from search.recording import end_state
from trainables.objective import Objective


class ProgressCallback(Callback):
    """Prints one status line at most every `interval_s` seconds and whenever a trial ends."""

    def __init__(
        self,
        objective: Objective,
        max_epochs: int,
        interval_s: float = 5.0,
        stream: TextIO | None = None,
    ) -> None:
        self.objective, self.max_epochs, self.interval_s = objective, max_epochs, interval_s
        self.stream = stream
        self._t0 = time.monotonic()
        self._last = 0.0

    def _line(self, trials: list[Trial]) -> str:
        counts = {"running": 0, "pending": 0, "completed": 0, "stopped_early": 0, "failed": 0}
        best, best_id = None, ""
        for t in trials:
            if t.status == Trial.RUNNING:
                counts["running"] += 1
            elif t.status in (Trial.PENDING, Trial.PAUSED):
                counts["pending"] += 1
            elif t.status == Trial.ERROR:
                counts[FAILED] += 1
            else:
                counts[end_state(t, self.max_epochs)] += 1
            value = (t.last_result or {}).get(self.objective.best_key)
            if value is not None and self.objective.better(value, best):
                best, best_id = value, t.trial_id
        elapsed = time.monotonic() - self._t0
        states = " | ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
        best_txt = (
            f"best {self.objective.metric} {best:.4f} ({best_id})"
            if best is not None
            else "no result yet"
        )
        return f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {states} | {best_txt}"

    def _print(self, trials: list[Trial], force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval_s:
            self._last = now
            print(self._line(trials), file=self.stream or sys.stdout, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._print(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._print(trials, force=True)
