"""A non-finite loss or metric is deterministic: the trial ends `failed` at once, never retried.

Ray 2.60 retries every exception a trial raises (`FailureConfig` has no per-exception filter), so
the trial announces the failure first: one last result flagged with FAILED_EPOCH and REASON, every
metric NaN (Ray's metric check passes, no score is told), then it raises NonFiniteError. The driver
(search/trial_guard.py) reads the flag and leaves Ray no retry; the record and MLflow skip the flagged
result, and the trial ends ERROR in Ray, FAIL in Optuna, FAILED in MLflow and `failed` in the record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

FAILED_EPOCH = "nonfinite_epoch"  # in a result: the epoch whose loss or metric was not finite
REASON = "nonfinite_reason"
_NOT_METRICS = {"epoch", "best_epoch"}


class NonFiniteError(RuntimeError):
    """The training loss or a validation metric became NaN or ±inf at `epoch`; `keys` are the
    metric names that epoch would have reported."""

    def __init__(self, message: str, epoch: int = -1, keys: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.epoch, self.keys = epoch, tuple(keys)

    def __reduce__(self) -> tuple:
        return type(self), (str(self), self.epoch, self.keys)


def flagged_result(error: NonFiniteError) -> dict[str, Any]:
    """The last result of a trial that hit a non-finite value: its metrics NaN, plus the flag."""
    nan = {k: math.nan for k in error.keys if k not in _NOT_METRICS and not k.startswith("best_")}
    return nan | {FAILED_EPOCH: error.epoch, REASON: f"NonFiniteError: {error}"}


def failed_epoch(result: Mapping[str, Any] | None) -> int | None:
    """The epoch a flagged result (see `flagged_result`) failed at; None for an ordinary result."""
    value = (result or {}).get(FAILED_EPOCH)
    return None if value is None else int(value)
