"""All runs of one search (parent + one per trial) and the lock that guards them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from search.tracking.record import PARENT_KEY, RunRecord
from search.tracking.state import TrackerState


@dataclass
class RunBook:
    """The parent record, {Ray trial id: record}, and the experiment they live in."""

    tracking_uri: str
    parent: RunRecord
    trials: dict[str, RunRecord] = field(default_factory=dict)
    experiment_id: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def new(cls, tracking_uri: str, search_name: str) -> RunBook:
        return cls(tracking_uri, RunRecord(PARENT_KEY, search_name))

    def records(self) -> list[RunRecord]:
        """Parent first (children need its run id), then trials in start order."""
        with self.lock:
            return [self.parent, *self.trials.values()]

    def adopt(self, state: TrackerState) -> bool:
        """Take the parent and trials of a saved state of the same store; False if it is not."""
        if state.tracking_uri != self.tracking_uri or not state.parent_run_id:
            return False
        with self.lock:
            if self.parent.run_id not in (None, state.parent_run_id):
                return False
            self.parent.run_id = state.parent_run_id
            for key, record in state.trials.items():
                self.trials.setdefault(key, record)
        return True

    def snapshot(self) -> dict[str, Any]:
        """The resume state as JSON-ready data."""
        with self.lock:
            state = TrackerState(
                self.tracking_uri, self.experiment_id, self.parent.run_id, dict(self.trials)
            )
            return state.to_json()
