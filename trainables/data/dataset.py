"""The in-memory dataset every trial trains on: three splits of tensors, built once per search."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from trainables.params import GRANULARITIES

TENSORS = ("x", "y", "aco", "rso", "tokens", "teacher", "quality")  # a Split's tensor columns


@dataclass
class Split:
    """One split. Ownership columns follow GRANULARITIES order; NaN marks missing ownership."""

    x: torch.Tensor  # (n, F) float32, standardised on the training split
    y: torch.Tensor  # (n,) int64 class ids; multi-task data: (n, T), column t task t's ids
    aco: torch.Tensor  # (n, 3) float32 authoring ownership in [0, 1] or NaN
    rso: torch.Tensor  # (n, 3) float32 reviewing ownership in [0, 1] or NaN
    tokens: torch.Tensor | None = None  # (n, L) int64 text ids, 0 = padding
    texts: Any = None  # the raw text column, a pyarrow string array (model=text reads it)
    teacher: torch.Tensor | None = None  # (n, S, C) logits of S teachers (distill.teacher)
    # (n, M) float64 label-quality scores of the training labels, one column per method of
    # trainables.params.LQ_ON (trainables.data.label_quality); training split only
    quality: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> Split:
        """A copy with every tensor on `device`."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(self, **{k: move(getattr(self, k)) for k in TENSORS})

    def task(self, t: int) -> Split:
        """This split with task `t`'s labels as y (n,)."""
        return replace(self, y=self.y[:, t])

    def rows(self, index: torch.Tensor) -> Split:
        """The rows `index` (int64, any order) of every column."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        texts = None if self.texts is None else self.texts.take(index.numpy())
        return replace(self, **{k: pick(getattr(self, k)) for k in TENSORS}, texts=texts)

    def take(self, rows: slice) -> Split:
        """The rows `rows` of every column."""
        cut = lambda t: None if t is None else t[rows]  # noqa: E731
        return replace(self, **{k: cut(getattr(self, k)) for k in (*TENSORS, "texts")})


@dataclass
class Dataset:
    """Train/validation/test splits plus what a model needs to size itself."""

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]  # class id -> label name; multi-task: "task:label", task by task
    vocab_size: int = 0  # number of text-id buckets including padding id 0; 0 when no text
    meta: dict[str, Any] = field(
        default_factory=dict
    )  # provenance: preset, seed, label mapping, notes
    tasks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # multi-task: name -> classes

    def without_test(self) -> Dataset:
        """This dataset with an empty test split: what the search's trials get (the test split
        is read by the confirmation stage only)."""
        return replace(self, test=self.test.take(slice(0, 0)))

    def without_texts(self) -> Dataset:
        """This dataset without the raw texts (only model=text reads them)."""
        drop = {k: replace(getattr(self, k), texts=None) for k in ("train", "val", "test")}
        return replace(self, **drop)

    @property
    def num_classes(self) -> int:
        """Logit columns: the class count, for multi-task data the sum over tasks."""
        return len(self.classes)

    @property
    def task_sizes(self) -> tuple[int, ...]:
        """Each task's class count, the blocks of the logits; () for single-task data."""
        return tuple(len(c) for c in self.tasks.values())

    def task(self, t: int) -> Dataset:
        """Task `t` of multi-task data as single-task data (its labels, classes)."""
        name, classes = list(self.tasks.items())[t]
        views = {k: getattr(self, k).task(t) for k in ("train", "val", "test")}
        meta = self.meta | {"task": name}
        return replace(self, **views, classes=classes, tasks={}, meta=meta)

    def views(self) -> list[tuple[str, Dataset]]:
        """(task name, single-task data) per task; [("", self)] for single-task data."""
        return [(n, self.task(t)) for t, n in enumerate(self.tasks)] or [("", self)]

    @property
    def num_features(self) -> int:
        return int(self.train.x.shape[1])

    def train_counts(self) -> torch.Tensor:
        """(K,) int64 number of training examples per class (multi-task: task by task)."""
        return torch.cat(
            [torch.bincount(d.train.y, minlength=len(d.classes)) for _, d in self.views()]
        )


def granularity_index(granularity: str) -> int:
    """Column of `granularity` in the (n, 3) ownership tensors."""
    return GRANULARITIES.index(granularity)
