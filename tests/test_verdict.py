"""The confirmation's statistics and verdicts on hand-built runs, against independent computations:
scipy's t-interval and bootstrap, scikit-learn's metrics, the confidence sequence's formula; the
sequential stage's decisions (which configurations get seeds next) on hand-built sequences."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import scipy_row_sd
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, recall_score

from record import BASELINE, CANDIDATE, COMPLETED, CONFIRMATION, TrialRecord
from reports.confirmation import (
    BETTER,
    EQUIVALENT,
    UNDECIDED,
    WORSE,
    Comparison,
    Config,
    Interval,
    TaskLabels,
    answer,
    confirm,
    confusions,
    margins,
    paired_differences,
    split_alpha,
    t_interval,
    verdict,
    why_open,
)
from reports.objectives import Objective
from reports.sequential import critical_t
from search.confirm import next_seeds
from trainables.metrics.table import score

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
    got = score(metric, confusions(weights, y, preds, K), minority=1)  # (B, S)
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


def paired_difference(cand, base, metric, labels, resamples, alphas=(0.025, 0.025)):
    tasks = None if labels is None else [TaskLabels("", np.asarray(labels), K, 0)]
    return paired_differences(cand, base, [metric], tasks, resamples, alphas)[metric]


def test_the_test_rows_part_is_scipys_paired_bootstrap_standard_error():
    """With the seeds fixed only rows are resampled: the test-rows half-width is z(1 − α/2) × the
    standard error scipy.stats.bootstrap (paired) gives the macro-F1 difference."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, K, 400)
    better = np.where(rng.random(400) < 0.8, y, rng.integers(0, K, 400))
    worse = np.where(rng.random(400) < 0.7, y, rng.integers(0, K, 400))

    def f1(t, p):
        return f1_score(t, p, labels=range(K), average="macro", zero_division=0)

    cand = config("c", [1], [{"test_macro_f1": f1(y, better)}], [better])
    base = config("b", [1], [{"test_macro_f1": f1(y, worse)}], [worse])
    delta, n, _ = paired_difference(cand, base, "test_macro_f1", y, 4000, (0.025, 0.05))
    sd = scipy_row_sd((y, better, worse), lambda t, a, b: f1(t, a) - f1(t, b))
    assert n == 1 and delta.estimate == pytest.approx(f1(y, better) - f1(y, worse))
    assert delta.rows_part == pytest.approx(stats.norm.ppf(0.975) * sd, rel=0.1)
    assert delta.seeds_part == math.inf  # one seed says nothing about seed noise


def test_seed_part_is_the_confidence_sequence_and_probabilities_skip_the_rows():
    """A probability-based metric is not recomputed from rows: its interval is the confidence
    sequence alone, mean ± t*_n·sd/√n at the seeds' α."""
    d = np.array([0.01, 0.03, -0.005, 0.02, 0.012, 0.018])
    cand = config("c", [1, 2, 3, 4, 5, 6], [{"test_ece": 0.2 + x} for x in d])
    base = config("b", [1, 2, 3, 4, 5, 6], [{"test_ece": 0.2}] * 6)
    delta, n, sd = paired_difference(cand, base, "test_ece", None, 200, (0.01, 0.01))
    half = critical_t(6, 0.01) * d.std(ddof=1) / math.sqrt(6)
    assert (n, delta.estimate, sd) == (6, pytest.approx(d.mean()), pytest.approx(d.std(ddof=1)))
    assert (delta.low, delta.high) == (
        pytest.approx(d.mean() - half),
        pytest.approx(d.mean() + half),
    )
    assert delta.seeds_part == pytest.approx(half) and math.isnan(delta.rows_part)


def test_only_common_seeds_are_paired():
    cand = config("c", [1, 2, 3], [{"test_ece": v} for v in (0.1, 0.2, 0.3)])
    base = config("b", [2, 3], [{"test_ece": v} for v in (0.1, 0.1)])
    delta, n, _ = paired_difference(cand, base, "test_ece", None, 500)
    assert n == 2 and delta.estimate == pytest.approx(((0.2 - 0.1) + (0.3 - 0.1)) / 2)


def test_four_verdicts_follow_the_direction_and_the_margin():
    up, down = Interval(0.02, 0.01, 0.03), Interval(-0.02, -0.03, -0.01)
    inside, across = Interval(0.001, -0.004, 0.006), Interval(0, -0.02, 0.02)
    f1, ece = Objective("test_macro_f1", "max"), Objective("test_ece", "min")
    cases = (up, down, inside, across)
    assert [verdict(i, f1, 0.01) for i in cases] == [BETTER, WORSE, EQUIVALENT, UNDECIDED]
    assert [verdict(i, ece, 0.01) for i in cases] == [WORSE, BETTER, EQUIVALENT, UNDECIDED]
    assert verdict(inside, f1, None) == UNDECIDED  # no margin: equivalence cannot be said
    assert verdict(inside, f1, 0.006) == UNDECIDED  # the bound touches the margin
    assert verdict(Interval(0.1, -math.inf, math.inf), f1, 0.5) == UNDECIDED


def test_margins_default_to_one_point_on_bounded_metrics_and_take_confirm_delta():
    objectives = [Objective(m, "max") for m in ("test_macro_f1", "test_a_worst_recall")]
    objectives += [Objective("test_loss", "min"), Objective("test_ece", "min")]
    got = margins(objectives, {"val_ece": 0.02})
    assert got == {
        "test_macro_f1": 0.01,
        "test_a_worst_recall": 0.01,
        "test_loss": None,
        "test_ece": 0.02,
    }
    assert split_alpha(0.05, 4) == (0.00625, 0.00625)


def comparison(estimate, seeds_part, rows_part, margin=0.01, sd=0.01, seeds=10):
    delta = Interval(
        estimate,
        estimate - seeds_part - rows_part,
        estimate + seeds_part + rows_part,
        seeds_part,
        rows_part,
    )
    f1 = Objective("test_macro_f1", "max")
    return Comparison("test_macro_f1", delta, seeds, verdict(delta, f1, margin), margin, sd)


def test_why_open_names_the_test_split_or_the_seeds_it_would_take():
    rows_bound = comparison(0.004, 0.001, 0.007)  # rows alone wider than |Δ| and δ − |Δ| leave
    why, needed = why_open(rows_bound, 0.01, 2000)
    assert needed == math.inf and why.startswith("the test split")
    assert "1.4× larger (about 2,723 rows)" in why  # (0.007 / 0.006)² × 2000 = 2722.2
    seedy = comparison(0.004, 0.02, 0.001)
    why, needed = why_open(seedy, 0.01, 2000)
    room = max(0.004, 0.01 - 0.004) - 0.001  # for the seeds part
    assert why.startswith(f"seed noise: about {int(needed)} paired seeds")
    n = int(needed)
    assert critical_t(n, 0.01) * 0.01 / math.sqrt(n) < room
    assert critical_t(n - 1, 0.01) * 0.01 / math.sqrt(n - 1) >= room
    why, needed = why_open(comparison(0.03, 0.005, 0.005), 0.01, 2000)  # decided: better
    assert why == "" and math.isnan(needed)


def runs_of(per_seed: dict[str, list[float]], role_of: dict[str, str]) -> list[TrialRecord]:
    """Confirmation runs whose test_macro_f1 (and val_macro_f1) per seed are given."""
    return [
        run(src, role_of[src], s + 1, {"test_macro_f1": v, "val_macro_f1": v})
        for src, values in per_seed.items()
        for s, v in enumerate(values)
    ]


F1 = [Objective("val_macro_f1", "max")]


def test_the_sequential_rule_on_hand_built_sequences():
    """After the first three seeds nothing can be decided (the sequence is infinite): every
    candidate gets one more seed per round (two slots, two open) and the baseline pairs them.
    Later, a clear winner and a clear copy of the baseline are decided and get no more seeds, an
    open one continues up to the budget, and one the budget cannot decide stops."""
    rng = np.random.default_rng(5)
    base = list(0.80 + rng.normal(0, 0.002, 12))
    roles = {"b": BASELINE, "win": CANDIDATE, "same": CANDIDATE}
    early = runs_of({"b": base[:3], "win": [0.9] * 3, "same": base[:3]}, roles)
    looked = confirm(early, F1, F1[0], None, resamples=100)
    assert {x["test_macro_f1"].verdict for x in looked.comparisons.values()} == {UNDECIDED}
    need = next_seeds(looked, {"b": 3, "win": 3, "same": 3}, budget=20, slots=2)
    assert need == {"win": range(4, 5), "same": range(4, 5), "b": range(1, 5)}

    win = [b + 0.05 + e for b, e in zip(base, rng.normal(0, 0.002, 12), strict=True)]
    later = runs_of({"b": base, "win": win, "same": base}, roles)
    looked = confirm(later, F1, F1[0], None, resamples=100)
    got = {label: x["test_macro_f1"].verdict for label, x in looked.comparisons.items()}
    assert got == {"win": BETTER, "same": EQUIVALENT}
    assert next_seeds(looked, {"b": 12, "win": 12, "same": 12}, budget=20, slots=8) == {
        "b": range(1, 13)
    }

    noisy = runs_of(
        {
            "b": base,
            "open": [b + 0.003 + e for b, e in zip(base, rng.normal(0, 0.02, 12), strict=True)],
        },
        {"b": BASELINE, "open": CANDIDATE},
    )
    looked = confirm(noisy, F1, F1[0], None, resamples=100)
    cmp = looked.comparisons["open"]["test_macro_f1"]
    assert cmp.verdict == UNDECIDED and cmp.needed > 30  # sd 0.02 against a margin of 0.01
    assert next_seeds(looked, {"b": 12, "open": 12}, budget=2 * int(cmp.needed), slots=4) == {
        "open": range(13, 15),
        "b": range(1, 15),
    }
    assert next_seeds(looked, {"b": 12, "open": 12}, budget=int(cmp.needed) // 2, slots=4) == {
        "b": range(1, 13)  # futile: well beyond the budget
    }
    assert next_seeds(looked, {"b": 12, "open": 12}, budget=12, slots=4) == {"b": range(1, 13)}


def test_confirm_end_to_end_on_hand_built_runs():
    """A candidate right on every row the baseline gets wrong is 'better' with an interval above
    0; a copy of the baseline is 'equivalent' with Δ exactly 0; the answer names the better one
    with both means and the corrected interval."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, K, 300)
    runs = []
    seeds = range(1, 9)
    for seed in seeds:
        noisy = np.where(rng.random(300) < 0.6, y, (y + 1) % K)
        fixed = y.copy()
        for source, role, p in (("b0", BASELINE, noisy), ("c1", CANDIDATE, fixed)):
            m = {"test_macro_f1": f1_score(y, p, average="macro"), "test_ece": 0.1 + 0.01 * seed}
            runs.append(run(source, role, seed, m, p))
        copy = {"test_macro_f1": f1_score(y, noisy, average="macro"), "test_ece": 0.1 + 0.01 * seed}
        runs.append(run("c2", CANDIDATE, seed, copy, noisy))
    objectives = [Objective("val_macro_f1", "max"), Objective("val_ece", "min")]
    c = confirm(runs, objectives, objectives[0], [TaskLabels("", y, K, 0)], resamples=300)
    assert c is not None and c.baseline.label == "b0"
    good, same = c.comparisons["c1"]["test_macro_f1"], c.comparisons["c2"]["test_macro_f1"]
    assert good.verdict == BETTER and good.delta.low > 0 and good.seeds == 8
    assert (same.verdict, same.delta.estimate, same.delta.low, same.delta.high) == (
        EQUIVALENT,
        0,
        0,
        0,
    )
    assert c.comparisons["c1"]["test_ece"].verdict == EQUIVALENT  # equal ECE on every seed
    assert c.answer.startswith(
        "better than plain CE on test_macro_f1: elf.strategy=rso (trial c1), 1.000 ± 0.000 vs"
    )
    assert "Bonferroni over 2" in c.answer and "8 paired seeds" in c.answer
    assert "verdicts: 1 better, 1 equivalent of 2" in c.answer
    assert answer(c) == c.answer


def test_an_open_answer_says_why():
    runs = [run("b0", BASELINE, s, {"test_macro_f1": 0.8}) for s in (1, 2, 3)]
    runs += [run("c1", CANDIDATE, s, {"test_macro_f1": 0.8 + 0.01 * (-1) ** s}) for s in (1, 2, 3)]
    objectives = [Objective("val_macro_f1", "max")]
    c = confirm(runs, objectives, objectives[0], None, resamples=100)
    assert c.answer.startswith("undecided on test_macro_f1: no configuration beats plain CE")
    assert "best: trial c1" in c.answer and "open because of seed noise: about" in c.answer


def test_candidates_canonical_calls_equal_are_confirmed_once():
    """elf.normalize=mean without a clip bound trains as none does: of two such trials only the
    better-ranked is a candidate, said once; a plain-CE twin equal to a plain-CE trial is one
    option."""
    from reports.load import Run
    from search.config import load_config
    from search.confirm import choose

    params = {
        "t1": {"elf.strategy": "rso", "elf.normalize": "none", "train.lr": 0.004},
        "t2": {"elf.strategy": "rso", "elf.normalize": "mean", "train.lr": 0.004},
        "t3": {"elf.strategy": "none", "train.lr": 0.004},
    }
    scores = {"t1": 0.9, "t2": 0.89, "t3": 0.85}
    trials = [
        TrialRecord(
            tid,
            i,
            params=p | {"seed": 0},
            results={
                e: {"val_macro_f1": scores[tid], "val_worst_recall": 0.5, "val_ece": 0.1}
                for e in range(1, 4)
            },
            state=COMPLETED,
            epochs=3,
        )
        for i, (tid, p) in enumerate(params.items())
    ]
    cfg = load_config(["train.max_epochs=3", "confirm.top_k=3"])
    run_ = Run(Path("."), trials, cfg.to_dict(), None, [])
    chosen, merged = choose(run_, cfg)
    roles = {k: role for k, (role, _) in chosen.items()}
    assert roles == {"t3": BASELINE, "t1": CANDIDATE}  # t1's plain-CE twin trains as t3 does
    assert merged == ["trial t2 trains as trial t1 does: confirmed once, as that"]


def test_without_candidates_nothing_comes_next():
    runs = runs_of({"b": [0.8, 0.81, 0.79]}, {"b": BASELINE})
    looked = confirm(runs, F1, F1[0], None, resamples=100)
    assert looked.comparisons == {} and next_seeds(looked, {"b": 3}, budget=30, slots=2) == {}
