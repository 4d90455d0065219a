"""The confirmation's statistics on hand-built runs, against independent computations: scipy's
t-interval and bootstrap, scikit-learn's metrics, and an exact enumeration of seed resamples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import scipy_row_interval
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, recall_score

from record import BASELINE, CANDIDATE, COMPLETED, CONFIRMATION, TrialRecord
from reports.confirmation import (
    BETTER,
    SAME,
    WORSE,
    Config,
    Interval,
    TaskLabels,
    answer,
    confirm,
    confusions,
    label_scores,
    paired_differences,
    t_interval,
    verdict,
)
from reports.objectives import Objective

K = 3


def run(source: str, role: str, seed: int, metrics: dict, preds=None) -> TrialRecord:
    return TrialRecord(
        trial_id=f"confirm_{source}_s{seed}",
        order=0,
        params={"seed": seed, "elf.strategy": "none" if role == BASELINE else "rso"},
        results={3: metrics},
        state=COMPLETED,
        stage=CONFIRMATION,
        source=source,
        role=role,
        predictions=None if preds is None else list(preds),
    )


def config(label: str, seeds: list[int], values: list[dict], preds=None) -> Config:
    preds = preds or [np.zeros(1, dtype=np.int64)] * len(seeds)
    return Config(label, CANDIDATE, {}, seeds, values, [np.asarray(p) for p in preds])


def test_t_interval_matches_scipy():
    values = np.array([0.81, 0.84, 0.79, 0.86, 0.83])
    mean, sd, ci = t_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean()) and sd == pytest.approx(values.std(ddof=1))
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
    one = t_interval(np.array([0.5]))
    assert one[0] == 0.5 and math.isnan(one[1]) and math.isnan(one[2].low)


@pytest.mark.parametrize("metric", ["macro_f1", "accuracy", "worst_recall", "minority_f1", "f1_c2"])
def test_label_scores_match_sklearn_on_each_resample(metric):
    rng = np.random.default_rng(1)
    y = rng.integers(0, K, 60)
    preds = np.stack([np.where(rng.random(60) < 0.7, y, rng.integers(0, K, 60)) for _ in range(2)])
    rows = rng.integers(0, 60, size=(5, 60))
    weights = np.stack([np.bincount(r, minlength=60) for r in rows]).astype(np.float32)
    got = label_scores(metric, confusions(weights, y, preds, K), minority=1)  # (B, S)
    for s, b in itertools.product(range(2), range(5)):
        t, p = y[rows[b]], preds[s, rows[b]]
        if metric == "macro_f1":
            want = f1_score(t, p, labels=range(K), average="macro", zero_division=0)
        elif metric == "accuracy":
            want = accuracy_score(t, p)
        elif metric == "worst_recall":
            want = min(recall_score(t, p, labels=sorted(set(t)), average=None, zero_division=0))
        else:
            klass = 1 if metric == "minority_f1" else 2
            want = f1_score(t, p, labels=[klass], average=None, zero_division=0)[0]
        assert got[b, s] == pytest.approx(want), (s, b)


def paired_difference(cand, base, metric, labels, resamples, level):
    tasks = None if labels is None else [TaskLabels("", np.asarray(labels), K, 0)]
    return paired_differences(cand, base, [metric], tasks, resamples, level)[metric]


def test_one_seed_row_bootstrap_agrees_with_scipy_paired_bootstrap():
    """With one seed only rows are resampled: scipy.stats.bootstrap (paired, percentile) of the
    macro-F1 difference gives the same interval up to Monte Carlo error."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, K, 400)
    better = np.where(rng.random(400) < 0.8, y, rng.integers(0, K, 400))
    worse = np.where(rng.random(400) < 0.7, y, rng.integers(0, K, 400))

    def f1(t, p):
        return f1_score(t, p, labels=range(K), average="macro", zero_division=0)

    cand = config("c", [1], [{"test_macro_f1": f1(y, better)}], [better])
    base = config("b", [1], [{"test_macro_f1": f1(y, worse)}], [worse])
    delta, n = paired_difference(cand, base, "test_macro_f1", y, 4000, 0.95)
    low, high = scipy_row_interval((y, better, worse), lambda t, a, b: f1(t, a) - f1(t, b))
    assert n == 1 and delta.estimate == pytest.approx(f1(y, better) - f1(y, worse))
    assert delta.low == pytest.approx(low, abs=0.015)
    assert delta.high == pytest.approx(high, abs=0.015)


def test_seed_bootstrap_against_exact_enumeration_and_bonferroni_level():
    """A probability-based metric resamples seeds only: with three seeds the resampled mean takes
    27 equally likely values, whose exact percentiles the interval must approach; a stricter
    (Bonferroni) level widens it."""
    d = np.array([0.01, 0.03, -0.005])
    cand = config("c", [1, 2, 3], [{"test_ece": 0.2 + x} for x in d])
    base = config("b", [1, 2, 3], [{"test_ece": 0.2}] * 3)
    means = sorted(np.mean(combo) for combo in itertools.product(d, repeat=3))

    def exact(q: float) -> float:
        return float(np.quantile(means, q, method="inverted_cdf"))

    delta, n = paired_difference(cand, base, "test_ece", None, 20000, 0.95)
    assert (n, delta.estimate) == (3, pytest.approx(d.mean()))
    assert exact(0.025) - 1e-3 <= delta.low <= exact(0.05) + 1e-3
    assert exact(0.95) - 1e-3 <= delta.high <= exact(0.975) + 1e-3
    strict, _ = paired_difference(cand, base, "test_ece", None, 20000, 1 - 0.05 / 3)
    assert strict.low <= delta.low and strict.high >= delta.high


def test_only_common_seeds_are_paired():
    cand = config("c", [1, 2, 3], [{"test_ece": v} for v in (0.1, 0.2, 0.3)])
    base = config("b", [2, 3], [{"test_ece": v} for v in (0.1, 0.1)])
    delta, n = paired_difference(cand, base, "test_ece", None, 500, 0.95)
    assert n == 2 and delta.estimate == pytest.approx(((0.2 - 0.1) + (0.3 - 0.1)) / 2)


def test_verdict_follows_the_metric_direction():
    up, down, across = Interval(0.02, 0.01, 0.03), Interval(-0.02, -0.03, -0.01), Interval(0, -1, 1)
    f1, ece = Objective("test_macro_f1", "max"), Objective("test_ece", "min")
    assert [verdict(i, f1) for i in (up, down, across)] == [BETTER, WORSE, SAME]
    assert [verdict(i, ece) for i in (up, down, across)] == [WORSE, BETTER, SAME]
    assert verdict(Interval(0.1, math.nan, math.nan), f1) == SAME


def test_confirm_end_to_end_on_hand_built_runs():
    """A candidate right on every row the baseline gets wrong is 'better' with an interval above
    0; a copy of the baseline is 'not distinguishable' with Δ exactly 0; the answer names the
    better one with both means and the corrected interval."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, K, 300)
    runs = []
    for seed in (1, 2, 3):
        noisy = np.where(rng.random(300) < 0.6, y, (y + 1) % K)
        fixed = y.copy()
        for source, role, p in (("b0", BASELINE, noisy), ("c1", CANDIDATE, fixed)):
            m = {"test_macro_f1": f1_score(y, p, average="macro"), "test_ece": 0.1}
            runs.append(run(source, role, seed, m, p))
        copy = {"test_macro_f1": f1_score(y, noisy, average="macro"), "test_ece": 0.1}
        runs.append(run("c2", CANDIDATE, seed, copy, noisy))
    objectives = [Objective("val_macro_f1", "max"), Objective("val_ece", "min")]
    c = confirm(runs, objectives, objectives[0], [TaskLabels("", y, K, 0)], resamples=1000)
    assert c is not None and c.baseline.label == "b0"
    good, same = c.comparisons["c1"]["test_macro_f1"], c.comparisons["c2"]["test_macro_f1"]
    assert good.verdict == BETTER and good.delta.low > 0 and good.seeds == 3
    assert (same.verdict, same.delta.estimate, same.delta.low, same.delta.high) == (SAME, 0, 0, 0)
    assert c.comparisons["c1"]["test_ece"].verdict == SAME  # equal ECE on every seed
    assert c.answer.startswith(
        "elf.strategy=rso (trial c1): test_macro_f1 1.000 ± 0.000 vs plain CE"
    )
    assert "Bonferroni over 2" in c.answer and "3 paired seeds" in c.answer
    assert answer(c) == c.answer


def test_no_better_candidate_says_so():
    runs = [run("b0", BASELINE, s, {"test_macro_f1": 0.8}) for s in (1, 2)]
    runs += [run("c1", CANDIDATE, s, {"test_macro_f1": 0.8 + 0.01 * (-1) ** s}) for s in (1, 2)]
    objectives = [Objective("val_macro_f1", "max")]
    c = confirm(runs, objectives, objectives[0], None, resamples=500)
    assert c.answer.startswith("no configuration beats plain CE on test_macro_f1")
    assert "best: trial c1" in c.answer
