"""One MLflow run as the tracker sees it: what its trial has done, and what is not yet sent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric

from search.tracking.names import is_metric_value
from trainables.objective import Objective

PARENT_KEY = "__parent__"


@dataclass
class Pending:
    """Data queued for one run, sent in this order: reopen, params/tags/metrics, files, status."""

    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # artifact file -> text
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)  # (local path, dir)
    reopen: bool = False
    status: str | None = None

    def is_empty(self) -> bool:
        return not (
            self.params
            or self.tags
            or self.metrics
            or self.texts
            or self.artifacts
            or self.reopen
            or self.status
        )

    def then(self, newer: Pending) -> Pending:
        """This older unsent queue followed by `newer`; a newer reopen cancels an older status."""
        return Pending(
            params={**self.params, **newer.params},
            tags={**self.tags, **newer.tags},
            metrics=self.metrics + newer.metrics,
            texts={**self.texts, **newer.texts},
            artifacts=self.artifacts + newer.artifacts,
            reopen=self.reopen or newer.reopen,
            status=newer.status if (newer.status or newer.reopen) else self.status,
        )


@dataclass
class RunRecord:
    """A run keyed by Ray trial id (or PARENT_KEY); `active` = opened in this session, not ended."""

    key: str
    name: str
    create_tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    epochs: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    end_state: str | None = None
    active: bool = False
    retries: int = 0
    reports_best: bool = False  # the trial reports best_<metric> per epoch: no extra value at end
    pending: Pending = field(default_factory=Pending)

    def observe(self, epoch: int, value: Any, mode: str) -> None:
        """Count 0-based `epoch` as trained and keep the best finite `value` (max or min)."""
        self.epochs = max(self.epochs, epoch + 1)
        if not is_metric_value(value) or not math.isfinite(float(value)):
            return
        value = float(value)
        if Objective(direction=mode).better(value, self.best_value):
            self.best_epoch, self.best_value = epoch, value

    def take(self) -> Pending:
        """The queued data, leaving an empty queue (the writer puts back what it could not send)."""
        pending, self.pending = self.pending, Pending()
        return pending

    def put_back(self, unsent: Pending) -> None:
        self.pending = unsent.then(self.pending)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "end_state": self.end_state,
            "retries": self.retries,
            "reports_best": self.reports_best,
        }

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any]) -> RunRecord:
        return cls(
            key=key,
            name=str(data.get("name") or key),
            run_id=data.get("run_id"),
            epochs=int(data.get("epochs") or 0),
            best_epoch=data.get("best_epoch"),
            best_value=data.get("best_value"),
            end_state=data.get("end_state"),
            retries=int(data.get("retries") or 0),
            reports_best=bool(data.get("reports_best")),
        )
