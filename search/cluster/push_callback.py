"""`PushCallback`: the driver's files copied to a URI output_dir while the search runs."""

from __future__ import annotations

import logging
import time

from ray.tune import Callback

from search.cluster.storage import Storage, push

log = logging.getLogger(__name__)

PUSH_PERIOD_S = 30.0  # a killed driver loses at most this much of its files' history


class PushCallback(Callback):
    """Pushes the driver's files to the output_dir URI every `period_s` and when the search ends.

    A failing push is logged and retried at the next period; it never stops the search.
    """

    def __init__(self, storage: Storage, period_s: float = PUSH_PERIOD_S) -> None:
        self.storage, self.period_s = storage, period_s
        self._last = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if time.monotonic() - self._last >= self.period_s:
            self._push()

    def on_experiment_end(self, trials: list, **info) -> None:
        self._push()

    def _push(self) -> None:
        self._last = time.monotonic()
        try:
            push(self.storage)
        except Exception as e:
            log.warning("copying %s to %s failed: %s", self.storage.local, self.storage.remote, e)
