"""The confirmation stage's answer: how each re-trained configuration does on the test split, and
whether it beats the plain-CE baseline beyond seed and test-set noise.

Per configuration and test metric: mean, sample sd (ddof=1) and the 95% t-interval
mean ± t(0.975, N−1)·sd/√N over its N seeds.

Per candidate against the baseline (paired: the seeds both finished, the same test rows): the
difference Δ = mean over seeds of m(candidate) − m(baseline), and its interval from a two-level
bootstrap: each of B resamples draws n of the n test rows and N of the N seeds with replacement,
the same rows and seeds for both, and recomputes Δ. The interval is the (α/2k, 1 − α/2k)
percentiles of the resampled Δ: Bonferroni-corrected for the k candidates, so that all k intervals
hold together with probability ≥ 1 − α. Metrics computed from predicted classes (macro_f1,
accuracy, worst_recall, minority_f1, f1_c<k>) resample rows and seeds; the others (ece, loss need
probabilities) resample seeds only, from the values each run recorded.

Verdict: "better" when the whole interval lies on the metric's good side of 0, "worse" when it lies
on the bad side, else "not distinguishable".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from record import BASELINE, CANDIDATE, COMPLETED, TrialRecord
from reports.objectives import Objective

BETTER, WORSE, SAME = "better", "worse", "not distinguishable"
LABEL_METRICS = re.compile(r"(macro_f1|accuracy|worst_recall|minority_f1|f1_c\d+)")
ROW_CHUNK = 256  # bootstrap resamples per vectorised block (bounds memory at ~N·256·n)
IGNORED = ("seed", "train.max_epochs", "train.checkpoint_every_s")  # not settings of a loss


@dataclass
class Config:
    """One confirmed configuration: its finished runs by seed, aligned lists."""

    label: str  # the search trial it re-trains
    role: str
    params: dict[str, Any]
    seeds: list[int] = field(default_factory=list)
    values: list[dict[str, float]] = field(default_factory=list)  # per seed: test_* and val_*
    predictions: list[np.ndarray] = field(default_factory=list)
    failed: int = 0

    def column(self, metric: str) -> np.ndarray:
        return np.array([v.get(metric, math.nan) for v in self.values], dtype=float)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """A candidate against the baseline on one metric."""

    metric: str
    delta: Interval
    seeds: int  # paired seeds
    verdict: str


@dataclass
class Confirmation:
    configs: list[Config]
    baseline: Config | None
    objectives: tuple[Objective, ...]  # test-split counterparts of the report's objectives
    primary: Objective  # the search metric's test counterpart: the one the answer is about
    comparisons: dict[str, dict[str, Comparison]]  # candidate label -> metric -> comparison
    alpha: float
    answer: str


def note(c: Confirmation) -> str:
    """How the figures were computed, in two sentences (the report prints it under the table)."""
    base = c.baseline.label if c.baseline is not None else "none"
    k = len(c.comparisons)
    return (
        f"Each configuration re-trained with the same paired seeds for the full budget; the epoch "
        f"is chosen on validation ({c.primary.metric.replace('test_', 'val_')}), the figures are "
        f"the test split's at it: mean ± sd [95% t-interval over seeds]. Δ: candidate − plain CE "
        f"baseline (trial {base}, the best plain-CE trial of the search on validation), with a "
        f"{1 - c.alpha:.0%} family-wise interval (Bonferroni over {k} candidate(s)) from a paired "
        f"bootstrap over seeds and test rows; verdict {BETTER!r} or {WORSE!r} when that interval "
        f"excludes 0, else {SAME!r}."
    )


def test_name(metric: str) -> str:
    """val_x → test_x (the metric the confirmation reports for a validation objective)."""
    return f"test_{metric.removeprefix('val_')}"


def group_runs(runs: Sequence[TrialRecord]) -> list[Config]:
    """The confirmation runs of the record, one Config per source trial (in record order)."""
    configs: dict[str, Config] = {}
    for run in runs:
        label = str(run.source or run.trial_id)
        params = {k: v for k, v in run.params.items() if k != "seed"}
        config = configs.setdefault(label, Config(label, run.role or CANDIDATE, params))
        if run.state != COMPLETED or not run.results:
            config.failed += run.state is not None
            continue
        config.seeds.append(int(run.params.get("seed", 0)))
        config.values.append(next(iter(run.results.values())))
        preds = run.predictions or []
        config.predictions.append(np.asarray(preds, dtype=np.int64))
    for config in configs.values():  # seed order, so pairs line up
        order = np.argsort(config.seeds, kind="stable")
        config.seeds = [config.seeds[i] for i in order]
        config.values = [config.values[i] for i in order]
        config.predictions = [config.predictions[i] for i in order]
    return list(configs.values())


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, Interval]:
    """(mean, sd, t-interval) of finite `values`; sd and bounds are NaN below two values."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return math.nan, math.nan, Interval(math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, Interval(mean, math.nan, math.nan)
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1)) * sd / math.sqrt(v.size)
    return mean, sd, Interval(mean, mean - half, mean + half)


def label_scores(
    metric: str, y: np.ndarray, preds: np.ndarray, rows: np.ndarray, k: int, minority: int
) -> np.ndarray:
    """(S, B) values of `metric` for S prediction vectors `preds` (S, n) on B row resamples
    `rows` (B, n); definitions as trainables.metrics (F1 with zero_division=0, worst recall over
    the classes present)."""
    s_count, b_count = preds.shape[0], rows.shape[0]
    truth = y[rows]  # (B, n)
    cells = (np.arange(s_count * b_count).reshape(s_count, b_count, 1) * k * k).astype(np.int64)
    index = cells + truth[None] * k + preds[:, rows]  # (S, B, n)
    confusion = np.bincount(index.ravel(), minlength=s_count * b_count * k * k)
    confusion = confusion.reshape(s_count, b_count, k, k).astype(float)  # true × predicted
    tp = np.diagonal(confusion, axis1=2, axis2=3)
    support, predicted = confusion.sum(3), confusion.sum(2)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if metric == "macro_f1":
        return f1.mean(2)
    if metric == "accuracy":
        return tp.sum(2) / truth.shape[1]
    if metric == "worst_recall":
        recall = np.divide(tp, support, out=np.full_like(tp, np.inf), where=support > 0)
        return recall.min(2)
    if metric == "minority_f1":
        return f1[..., minority]
    return f1[..., int(metric.removeprefix("f1_c"))]


def paired_difference(
    cand: Config,
    base: Config,
    metric: str,
    labels: np.ndarray | None,
    classes: int,
    minority: int,
    resamples: int,
    level: float,
    seed: int = 0,
) -> tuple[Interval, int]:
    """Δ of `metric` (a test_* name) between `cand` and `base` over their common seeds, with the
    two-level bootstrap interval described in the module docstring; and the number of seeds."""
    common = sorted(set(cand.seeds) & set(base.seeds))
    if not common:
        return Interval(math.nan, math.nan, math.nan), 0
    ci = [cand.seeds.index(s) for s in common]
    bi = [base.seeds.index(s) for s in common]
    diff = cand.column(metric)[ci] - base.column(metric)[bi]  # per seed, on all test rows
    rng = np.random.default_rng(seed)
    name = metric.removeprefix("test_")
    by_rows = labels is not None and LABEL_METRICS.fullmatch(name) is not None
    draws = []
    for start in range(0, resamples, ROW_CHUNK):
        b = min(ROW_CHUNK, resamples - start)
        seeds = rng.integers(0, len(common), size=(b, len(common)))
        if by_rows:
            rows = rng.integers(0, len(labels), size=(b, len(labels)))
            pc = np.stack([cand.predictions[i] for i in ci])
            pb = np.stack([base.predictions[i] for i in bi])
            d = label_scores(name, labels, pc, rows, classes, minority)
            d = d - label_scores(name, labels, pb, rows, classes, minority)  # (S, B)
            draws.append(d[seeds, np.arange(b)[:, None]].mean(1))
        else:
            draws.append(diff[seeds].mean(1))
    sample = np.concatenate(draws)
    tail = (1 - level) / 2
    low, high = np.quantile(sample, [tail, 1 - tail])
    return Interval(float(diff.mean()), float(low), float(high)), len(common)


def verdict(delta: Interval, objective: Objective) -> str:
    """better / worse / not distinguishable, from the interval and the metric's direction."""
    low, high = (-delta.high, -delta.low) if objective.sign > 0 else (delta.low, delta.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return SAME
    return BETTER if low > 0 else WORSE if high < 0 else SAME


def confirm(
    runs: Sequence[TrialRecord],
    objectives: Sequence[Objective],
    primary: Objective,
    labels: Sequence[int] | None,
    classes: int,
    minority: int,
    alpha: float = 0.05,
    resamples: int = 2000,
) -> Confirmation | None:
    """The confirmation of the record's confirmation `runs`; None without any."""
    configs = group_runs(runs)
    if not configs:
        return None
    tests = tuple(Objective(test_name(o.metric), o.direction) for o in objectives)
    head = Objective(test_name(primary.metric), primary.direction)
    if head.metric not in {o.metric for o in tests}:
        tests = (head, *tests)
    baseline = next((c for c in configs if c.role == BASELINE), None)
    configs.sort(key=lambda c: (c is not baseline, _order(c, head), c.label))
    candidates = [c for c in configs if c.role != BASELINE and c.seeds]
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    level = 1 - alpha / max(1, len(candidates))
    comparisons: dict[str, dict[str, Comparison]] = {}
    if baseline is not None and baseline.seeds:
        for i, cand in enumerate(candidates):
            comparisons[cand.label] = {}
            for o in tests:
                delta, n = paired_difference(
                    cand, baseline, o.metric, y, classes, minority, resamples, level, seed=i
                )
                comparisons[cand.label][o.metric] = Comparison(
                    o.metric, delta, n, verdict(delta, o)
                )
    result = Confirmation(configs, baseline, tests, head, comparisons, alpha, "")
    result.answer = answer(result)
    return result


def _order(c: Config, objective: Objective) -> float:
    """Best mean first in the tables; configurations without a finished run last."""
    mean = t_interval(c.column(objective.metric))[0]
    return objective.sign * mean if math.isfinite(mean) else math.inf


def describe(params: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str:
    """The keys in which `params` differ from the baseline's, as k=v (all keys without one)."""
    keys = sorted(k for k in params if k not in IGNORED)
    if baseline is not None:
        keys = [k for k in keys if params.get(k) != baseline.get(k)]
    return ", ".join(f"{k}={_short(params[k])}" for k in keys) or "the baseline's settings"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def answer(c: Confirmation) -> str:
    """The confirmation in one sentence (see the README's "Evidence" section for the form)."""
    metric = c.primary.metric
    base = c.baseline
    if base is None or not base.seeds:
        return "no confirmed answer: the plain-CE baseline has no finished confirmation run"
    compared = {label: m[metric] for label, m in c.comparisons.items() if metric in m}
    if not compared:
        return "no confirmed answer: no candidate configuration finished its confirmation runs"
    by_label = {cfg.label: cfg for cfg in c.configs}
    sign = -c.primary.sign  # larger is better
    better = [label for label, cmp in compared.items() if cmp.verdict == BETTER]
    pool = better or list(compared)
    best = max(pool, key=lambda label: sign * compared[label].delta.estimate)
    cmp, cand = compared[best], by_label[best]
    d = cmp.delta
    corrected = f"{1 - c.alpha:.0%} interval, Bonferroni over {len(compared)}"
    delta = (
        f"Δ {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}] ({corrected}), {cmp.seeds} paired seeds"
    )
    if not better:
        return (
            f"no configuration beats plain CE on {metric} beyond seed and test-set noise "
            f"(best: trial {best}, {delta})"
        )
    mean, sd, _ = t_interval(cand.column(metric))
    bmean, bsd, _ = t_interval(base.column(metric))
    return (
        f"{describe(cand.params, base.params)} (trial {best}): {metric} {mean:.3f} ± {_sd(sd)} "
        f"vs plain CE {bmean:.3f} ± {_sd(bsd)}, {delta}"
    )


def _sd(sd: float) -> str:
    return f"{sd:.3f}" if math.isfinite(sd) else "n/a"


def table(c: Confirmation) -> list[dict[str, Any]]:
    """One row per configuration: role, seeds, per test metric mean ± sd [95% interval], and for a
    candidate each metric's Δ [corrected interval] and verdict."""
    base_params = None if c.baseline is None else c.baseline.params
    rows = []
    for cfg in c.configs:
        row: dict[str, Any] = {
            "config": cfg.label,
            "role": cfg.role,
            "settings": describe(cfg.params, None if cfg is c.baseline else base_params),
            "seeds": len(cfg.seeds),
            "failed": cfg.failed,
        }
        for o in c.objectives:
            mean, sd, ci = t_interval(cfg.column(o.metric))
            row[o.metric] = _mean_sd(mean, sd, ci)
            cmp = c.comparisons.get(cfg.label, {}).get(o.metric)
            if cmp is not None:
                d = cmp.delta
                row[f"Δ {o.metric}"] = f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
                row[f"verdict {o.metric}"] = cmp.verdict
        rows.append(row)
    return rows


def figures(c: Confirmation) -> dict[str, Any]:
    """The confirmation as plain numbers (summary.json)."""
    configs = []
    for cfg in c.configs:
        metrics = {}
        for o in c.objectives:
            mean, sd, ci = t_interval(cfg.column(o.metric))
            metrics[o.metric] = {"mean": mean, "sd": sd, "low": ci.low, "high": ci.high}
        compared = {
            m: {
                "delta": x.delta.estimate,
                "low": x.delta.low,
                "high": x.delta.high,
                "seeds": x.seeds,
                "verdict": x.verdict,
            }
            for m, x in c.comparisons.get(cfg.label, {}).items()
        }
        configs.append(
            {
                "config": cfg.label,
                "role": cfg.role,
                "params": cfg.params,
                "seeds": cfg.seeds,
                "failed": cfg.failed,
                "test": metrics,
                "vs_baseline": compared,
            }
        )
    return {
        "answer": c.answer,
        "metric": c.primary.metric,
        "alpha": c.alpha,
        "correction": "bonferroni",
        "baseline": None if c.baseline is None else c.baseline.label,
        "configs": configs,
    }


def _mean_sd(mean: float, sd: float, ci: Interval) -> str:
    if not math.isfinite(mean):
        return ""
    if not math.isfinite(sd):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {sd:.4f} [{ci.low:.4f}, {ci.high:.4f}]"
