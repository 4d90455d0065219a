"""The soft labels of `distill.teacher=<output_dir>`: that search's confirmed best configuration
(best mean validation search.metric over its confirmation seeds) re-trained on this data, once per
seed, in the driver; its logits of the training split go to the trials with the data. A teacher
whose configuration sets lq.method trains with the label-quality scores its search used (its
lq.folds).

Out of fold (distill.folds = K ≥ 2): each seed's teacher is K models, model k trained on the other
folds of the training split and predicting fold k, so no row's soft label comes from a model that
fitted that row's label (in-sample logits of a fitted model are near one-hot). The teachers never
see a validation or test label: each chooses its epoch on its own training rows' metric (they stand
in for the validation split), and only the training split is predicted.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from record import COMPLETED, CONFIG_FILE, CONFIRMATION, DATA_FILE, RECORD_FILE, read_trials
from search.config import LabelQualitySection
from spaces.safe_yaml import read_checked_yaml
from trainables.data.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.objective import DEFAULT_OBJECTIVE, Objective
from trainables.plugins import BUILT_IN, Plugins
from trainables.trial.loop import predict_best

log = logging.getLogger(__name__)


def with_teacher(folder: str | Path, data: Dataset, plugins: Plugins, folds: int) -> Dataset:
    """`data` with the training split's teacher logits (n, S, C) of the search in `folder`: one
    teacher per confirmation seed, each row's logits out of fold (`cross_fit`)."""
    root = Path(folder)
    saved = _saved(root, data, plugins)
    metric = Objective(saved["search"]["metric"], saved["search"]["mode"])
    params, seeds = best_confirmed(root, metric)
    epochs = saved["train"]["max_epochs"]
    start = time.perf_counter()
    own = _scored_for(params, saved, data)
    logits = [
        cross_fit(params | {"seed": s, "train.max_epochs": epochs}, own, plugins, metric, folds)
        for s in seeds
    ]
    log.warning(
        "distill.teacher: %d teacher(s) × %d fold(s) of %s trained in %.1f s",
        len(seeds),
        max(folds, 1),
        ", ".join(f"{k}={v}" for k, v in params.items() if not k.startswith("train.")),
        time.perf_counter() - start,
    )
    return replace(data, train=replace(data.train, teacher=torch.stack(logits, dim=1)))


def _scored_for(params: dict[str, Any], saved: dict[str, Any], data: Dataset) -> Dataset:
    """`data` as the teacher's configuration trains on it: with the label-quality scores its
    lq.method reads (computed as the teacher's search did, with its lq.folds) when `data` has
    none; the student's data keeps only what its own space asked for."""
    if params.get("lq.method", "none") == "none" or data.train.quality is not None:
        return data
    return LabelQualitySection(**(saved.get("lq") or {})).scored(data)


def fold_of(y: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """(n,) fold ids: within each class, a seeded shuffle dealt round-robin to the folds."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    order = perm[torch.argsort(y[perm], stable=True)]  # grouped by class, shuffled within
    start = torch.cumsum(torch.bincount(y), 0) - torch.bincount(y)
    rank = torch.arange(len(y)) - start[y[order]]
    out = torch.empty(len(y), dtype=torch.long)
    out[order] = rank % folds
    return out


def cross_fit(
    config: dict[str, Any], data: Dataset, plugins: Plugins, metric: Objective, folds: int
) -> torch.Tensor:
    """(n, C) logits of the training split, each row predicted by a teacher that did not train
    on it (`folds` class-stratified folds; below 2: one teacher predicts its own training rows)."""
    train = data.train
    if folds < 2:
        return train_teacher(config, data, train, train, metric, plugins)
    fold = fold_of(train.y, folds, config["seed"])
    out = torch.empty(len(train), data.num_classes)
    for k in range(folds):
        held = (fold == k).nonzero().squeeze(1)
        fit = (fold != k).nonzero().squeeze(1)
        out[held] = train_teacher(config, data, train.rows(fit), train.rows(held), metric, plugins)
    return out


def _saved(root: Path, data: Dataset, plugins: Plugins) -> dict[str, Any]:
    """The teacher search's config, after checking it trained on this data with this model."""
    where = f"distill.teacher={root}"
    if not (root / CONFIG_FILE).is_file() or not (root / DATA_FILE).is_file():
        raise UserInputError(f"{where}: not a search output folder (no {CONFIG_FILE}, {DATA_FILE})")
    if data.tasks:
        raise UserInputError(f"{where}: distillation of multi-task data is not supported")
    saved = read_checked_yaml(root / CONFIG_FILE, str(root / CONFIG_FILE))
    facts = json.loads((root / DATA_FILE).read_text())
    same = facts.get("classes") == list(data.classes)
    if not same or facts.get("train_counts") != data.train_counts().tolist():
        raise UserInputError(
            f"{where}: it trained on other data (classes {facts.get('classes')}, training counts "
            f"{facts.get('train_counts')}); expected {list(data.classes)}, "
            f"{data.train_counts().tolist()}"
        )
    theirs = Plugins(
        saved["model"]["name"], saved.get("trainable") or "", loss=saved.get("loss") or ""
    )
    if theirs != replace(plugins, encoder=""):
        raise UserInputError(
            f"{where}: it trained model={theirs.model} trainable={theirs.trainable or 'built-in'} "
            f"loss={theirs.loss or 'built-in'}; this search trains model={plugins.model} "
            f"trainable={plugins.trainable or 'built-in'} loss={plugins.loss or 'built-in'}: use "
            "the same"
        )
    return saved


def best_confirmed(root: Path, metric: Objective) -> tuple[dict[str, Any], list[int]]:
    """(params without seed, seeds) of the confirmed configuration with the best mean
    validation `metric` over the seeds every confirmed configuration finished (the sequential
    stage gives open candidates more), and those seeds."""
    runs, _ = read_trials(root / RECORD_FILE, CONFIRMATION)
    groups: dict[str, list[Any]] = {}
    for run in runs:
        if run.state == COMPLETED and run.results:
            groups.setdefault(str(run.source), []).append(run)
    if not groups:
        raise UserInputError(
            f"distill.teacher={root}: no finished confirmation runs (confirm.max_seeds > 0 makes them)"
        )

    seeds = {s: {int(r.params["seed"]) for r in runs} for s, runs in groups.items()}
    shared = set.intersection(*seeds.values())  # a sequential stage gives some configs more

    def score(source: str) -> float:
        values = [
            next(iter(r.results.values())).get(metric.metric, math.nan)
            for r in groups[source]
            if int(r.params["seed"]) in shared or not shared
        ]
        mean = sum(values) / len(values)
        return metric.sign * mean if math.isfinite(mean) else math.inf

    best = min(sorted(groups), key=score)
    params = {k: v for k, v in groups[best][0].params.items() if k != "seed"}
    return params, sorted(shared or seeds[best])


def train_teacher(
    config: dict[str, Any],
    data: Dataset,
    fit: Split,
    predict: Split,
    metric: Objective = DEFAULT_OBJECTIVE,
    plugins: Plugins = BUILT_IN,
) -> torch.Tensor:
    """(len(predict), C) logits of `predict` by a teacher trained on `fit` alone (its epoch chosen
    by `metric` computed on `fit`, which stands in for the validation split)."""
    own = replace(data, train=fit, val=fit)
    logits, _ = predict_best(config, own, predict, plugins=plugins, objective=metric)
    return logits.cpu()
