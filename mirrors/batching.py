"""Split buffered metrics, params and tags into `log_batch` calls within MLflow's limits.

Limits come from the installed MLflow (`mlflow.utils.validation`): per call at most 1000 metrics,
100 params, 100 tags, 1000 entities in all, and a request body under 1 MB.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.validation import (
    MAX_BATCH_LOG_REQUEST_SIZE,
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

# JSON overhead per entity beyond key and value ({"key":..,"value":..,"timestamp":..,"step":..}).
_ENTITY_OVERHEAD_BYTES = 96
# Keep 10 % of the request limit free for the envelope and escaping.
_REQUEST_BUDGET_BYTES = int(MAX_BATCH_LOG_REQUEST_SIZE * 0.9)


@dataclass
class Batch:
    """One `log_batch` call's worth of entities."""

    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)
    size_bytes: int = 0

    @property
    def count(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


def entity_size(entity: Metric | Param | RunTag) -> int:
    return len(str(entity.key).encode()) + len(str(entity.value).encode()) + _ENTITY_OVERHEAD_BYTES


def _fits(batch: Batch, kind: str, size: int) -> bool:
    """True when one more entity of `kind` (metrics, params, tags) of `size` bytes fits `batch`."""
    per_kind = MAX_METRICS_PER_BATCH if kind == "metrics" else MAX_PARAMS_TAGS_PER_BATCH
    return (
        len(getattr(batch, kind)) < per_kind
        and batch.count < MAX_ENTITIES_PER_BATCH
        and batch.size_bytes + size <= _REQUEST_BUDGET_BYTES
    )


def joinable(a: Batch, b: Batch) -> bool:
    """True when `a` and `b` together fit one `log_batch` call."""
    return (
        len(a.metrics) + len(b.metrics) <= MAX_METRICS_PER_BATCH
        and len(a.params) + len(b.params) <= MAX_PARAMS_TAGS_PER_BATCH
        and len(a.tags) + len(b.tags) <= MAX_PARAMS_TAGS_PER_BATCH
        and a.count + b.count <= MAX_ENTITIES_PER_BATCH
        and a.size_bytes + b.size_bytes <= _REQUEST_BUDGET_BYTES
    )


def batches(
    metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
) -> Iterator[Batch]:
    """Greedy packing in order (params, tags, metrics); every yielded batch is within the limits."""
    batch = Batch()
    for kind, entities in (("params", params), ("tags", tags), ("metrics", metrics)):
        for entity in entities:
            size = entity_size(entity)
            if batch.count and not _fits(batch, kind, size):
                yield batch
                batch = Batch()
            getattr(batch, kind).append(entity)
            batch.size_bytes += size
    if batch.count:
        yield batch
