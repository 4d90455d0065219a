"""docs/development.md's "Add a metric" example, run: one row in the metric table and a trial
reports the metric each epoch, the config accepts it as search.metric and objective, and the
confirmation's row bootstrap recomputes it from confusion matrices."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from reports.confirmation import (
    Config,
    TaskLabels,
    margins,
    paired_differences,
    resampled_confusions,
    row_weights,
)
from reports.defaults import MARGIN
from reports.objectives import Objective
from search.config import load_config
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.metrics.scores import classification_metrics
from trainables.metrics.table import (
    METRICS,
    Metric,
    is_reported,
    namespace,
    recall_per_class,
    register,
    reported,
    score,
    unregister,
)
from trainables.trial.loop import run_local

DOC = Path(__file__).resolve().parents[1] / "docs" / "development.md"


# --- the example, as docs/development.md shows it (test_the_docs_show_this_example) ---
def balanced_accuracy(confusion, minority):
    """Mean recall over the classes present in the target (scikit-learn's
    balanced_accuracy_score): (..., k, k) true × predicted counts -> (...)."""
    present = confusion.sum(-1) > 0  # (..., k)
    recall = namespace(confusion).where(present, recall_per_class(confusion), 0.0)
    return recall.sum(-1) / present.sum(-1)


BALANCED_ACCURACY = Metric(
    "balanced_accuracy", "max", bounded=True, from_confusion=balanced_accuracy
)
# --- end of the example ---


@pytest.fixture
def registered():
    """The example's row in the table for one test, taken out again however the test ends."""
    register(BALANCED_ACCURACY)
    try:
        yield BALANCED_ACCURACY
    finally:
        unregister(BALANCED_ACCURACY.name)
    assert "balanced_accuracy" not in METRICS and "val_balanced_accuracy" not in reported()


def test_the_docs_show_this_example():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = next(b for b in blocks if "BALANCED_ACCURACY = Metric(" in b)
    source = Path(__file__).read_text()
    definition = example[example.index("def balanced_accuracy") :]
    assert definition in source
    assert "from trainables.metrics.table import Metric, namespace, recall_per_class" in example


def test_a_trial_reports_it_each_epoch(registered):
    data = make_synthetic(SyntheticSpec(n_train=400, n_val=300, n_test=100, reviewers=30))
    config = {"train.max_epochs": 2, "train.batch_size": 64, "model.hidden": 16}
    objective = Objective("val_balanced_accuracy", "max")
    results = run_local(config, data, objective=objective)
    assert [r["epoch"] for r in results] == [0, 1]
    for r in results:
        assert 0.0 <= r["val_balanced_accuracy"] <= 1.0
        assert r["best_val_balanced_accuracy"] >= r["val_balanced_accuracy"]


def test_the_config_accepts_it(registered):
    argv = ["search.metric=val_balanced_accuracy", "search.mode=max"]
    argv += ["report.objectives=[val_balanced_accuracy:max,val_ece:min]"]
    cfg = load_config(argv)
    assert cfg.search.metric == "val_balanced_accuracy"
    assert list(cfg.report.objectives) == ["val_balanced_accuracy:max", "val_ece:min"]
    assert "val_balanced_accuracy" in reported()  # a single-task name, not only a task's
    assert is_reported("val_label_balanced_accuracy")  # a task's, on multi-task data


def test_not_reported_before_it_is_added():
    logits, target = torch.randn(50, 3), torch.randint(0, 3, (50,))
    assert "balanced_accuracy" not in classification_metrics(logits, target, 3, 0)
    assert "val_balanced_accuracy" not in reported()


def test_the_row_bootstrap_recomputes_it(registered):
    rng = np.random.default_rng(3)
    k, n, resamples = 4, 200, 50
    y = rng.integers(0, k, n)
    preds = [np.where(rng.random(n) < p, y, rng.integers(0, k, n)) for p in (0.8, 0.6)]
    weights = row_weights(n, resamples)  # (B, n) row multiplicities
    got = score("balanced_accuracy", resampled_confusions(y, preds[0], k, resamples), 0)
    for b in range(resamples):
        want = balanced_accuracy_score(y, preds[0], sample_weight=weights[b])
        assert got[b] == pytest.approx(want, rel=1e-6), b
    # in the confirmation: a test-rows part of its interval, and the default margin
    cand = Config("a", "candidate", {}, [0], [{"test_balanced_accuracy": 0.7}], [preds[0]])
    base = Config("b", "baseline", {}, [0], [{"test_balanced_accuracy": 0.6}], [preds[1]])
    tasks = [TaskLabels("", y, k, 0)]
    metric = "test_balanced_accuracy"
    interval, _, _ = paired_differences(cand, base, [metric], tasks, resamples, (0.025, 0.025))[
        metric
    ]
    assert np.isfinite(interval.rows_part) and interval.rows_part > 0
    assert margins([Objective(metric, "max")]) == {metric: MARGIN}
