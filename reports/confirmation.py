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
probabilities) resample seeds only, from the values each run recorded. Multi-task data: a task's
metric (test_<task>_macro_f1, …) from that task's labels and predictions; a combined one
(test_macro_f1, …) is the mean over tasks, each resample drawing the same rows for every task.

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
class TaskLabels:
    """One task's test labels: its name ("" for single-task data), class ids (n,), class count and
    minority class (the fewest training rows)."""

    name: str
    y: np.ndarray
    classes: int
    minority: int


def task_labels(facts: Mapping[str, Any]) -> list[TaskLabels] | None:
    """The test labels of data.json's `facts` per task; None without recorded labels."""
    labels, counts = facts.get("test_labels"), facts.get("train_counts") or []
    tasks = facts.get("tasks") or {"": facts.get("classes") or []}
    if not labels or not all(tasks.values()):
        return None
    y = np.asarray(labels, dtype=np.int64).reshape(len(labels), -1)
    out, start = [], 0
    for t, (name, classes) in enumerate(tasks.items()):
        mine = counts[start : start + len(classes)]
        minority = min(range(len(mine)), key=mine.__getitem__) if mine else 0
        out.append(TaskLabels(name, y[:, t], len(classes), minority))
        start += len(classes)
    return out


def _route(metric: str, tasks: Sequence[TaskLabels]) -> tuple[list[int], str] | None:
    """(the tasks, the label metric) a test_* metric is computed from; None: seeds only."""
    name = metric.removeprefix("test_")
    for t, task in enumerate(tasks):
        own = name.removeprefix(f"{task.name}_")
        if task.name and own != name and LABEL_METRICS.fullmatch(own):
            return [t], own
    multi = len(tasks) > 1
    if LABEL_METRICS.fullmatch(name) and not (multi and name.startswith("f1_c")):
        return list(range(len(tasks))), name
    return None


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
    options: int  # plain-CE configurations the baseline was chosen from


def note(c: Confirmation) -> str:
    """How the figures were computed (the report prints it above the table)."""
    base = c.baseline.label if c.baseline is not None else "none"
    k = len(c.comparisons)
    return (
        f"Each configuration re-trained with the same paired seeds for the full budget; the epoch "
        f"is chosen on validation ({c.primary.metric.replace('test_', 'val_')}), the figures are "
        f"the test split's at it: mean ± sd [95% t-interval over seeds]. Δ: candidate − plain CE "
        f"baseline ({base}: of {c.options} plain-CE configuration(s), the search's best plain-CE "
        f"trial and the candidates' plain-CE twins with their train.* values, the one with the "
        f"best mean validation {c.primary.metric.replace('test_', 'val_')}), with a "
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


def confusions(weights: np.ndarray, y: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """(B, S, k, k) true × predicted counts of S prediction vectors `preds` (S, n) under B row
    resamples given as row multiplicities `weights` (B, n): one matrix product."""
    s_count, n = preds.shape
    cells = np.arange(s_count)[None, :] * k * k + y[:, None] * k + preds.T  # (n, S)
    onehot = np.zeros((n, s_count * k * k), dtype=np.float32)
    onehot[np.arange(n)[:, None], cells] = 1.0
    return (weights @ onehot).reshape(len(weights), s_count, k, k)


def label_scores(metric: str, confusion: np.ndarray, minority: int) -> np.ndarray:
    """`metric` from confusion matrices (..., k, k) as trainables.metrics defines it: F1 with
    zero_division=0, worst recall over the classes present."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    support, predicted = confusion.sum(-1), confusion.sum(-2)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if metric == "macro_f1":
        return f1.mean(-1)
    if metric == "accuracy":
        return tp.sum(-1) / support.sum(-1)
    if metric == "worst_recall":
        recall = np.divide(tp, support, out=np.full_like(tp, np.inf), where=support > 0)
        return recall.min(-1)
    if metric == "minority_f1":
        return f1[..., minority]
    return f1[..., int(metric.removeprefix("f1_c"))]


def paired_differences(
    cand: Config,
    base: Config,
    metrics: Sequence[str],
    labels: Sequence[TaskLabels] | None,
    resamples: int,
    level: float,
    seed: int = 0,
) -> dict[str, tuple[Interval, int]]:
    """{metric: (Δ, paired seeds)} for the test_* `metrics` between `cand` and `base` over their
    common seeds, with the two-level bootstrap interval of the module docstring (the same
    resamples for every metric)."""
    common = sorted(set(cand.seeds) & set(base.seeds))
    if not common:
        return {m: (Interval(math.nan, math.nan, math.nan), 0) for m in metrics}
    ci = [cand.seeds.index(s) for s in common]
    bi = [base.seeds.index(s) for s in common]
    per_seed = {m: cand.column(m)[ci] - base.column(m)[bi] for m in metrics}  # on all rows
    tasks = labels or []
    n = len(tasks[0].y) if tasks else 0
    recorded = bool(tasks) and all(
        len(p) == n and p.size == n * len(tasks) for p in cand.predictions + base.predictions
    )  # else (no predictions recorded) seeds only
    routes = {m: _route(m, tasks) for m in metrics} if recorded else {}
    on_rows = [m for m, r in routes.items() if r is not None]
    needed = sorted({t for m in on_rows for t in routes[m][0]})

    def stacked(config: Config, idx: list[int], t: int) -> np.ndarray:
        return np.stack([config.predictions[i].reshape(n, -1)[:, t] for i in idx])

    pc = {t: stacked(cand, ci, t) for t in needed}
    pb = {t: stacked(base, bi, t) for t in needed}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, resamples, ROW_CHUNK):
        b = min(ROW_CHUNK, resamples - start)
        picked = (np.arange(b)[:, None], rng.integers(0, len(common), size=(b, len(common))))
        if on_rows:
            weights = rng.multinomial(n, np.full(n, 1 / n), size=b).astype(np.float32)
            cc = {t: confusions(weights, tasks[t].y, pc[t], tasks[t].classes) for t in needed}
            cb = {t: confusions(weights, tasks[t].y, pb[t], tasks[t].classes) for t in needed}
        for m in metrics:
            if m in on_rows:
                which, name = routes[m]
                d = sum(
                    label_scores(name, cc[t], tasks[t].minority)
                    - label_scores(name, cb[t], tasks[t].minority)
                    for t in which
                ) / len(which)  # (b, S)
            else:
                d = np.broadcast_to(per_seed[m], (b, len(common)))
            draws[m].append(d[picked].mean(1))
    tail = (1 - level) / 2
    out = {}
    for m in metrics:
        low, high = np.quantile(np.concatenate(draws[m]), [tail, 1 - tail])
        out[m] = (Interval(float(per_seed[m].mean()), float(low), float(high)), len(common))
    return out


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
    labels: Sequence[TaskLabels] | None,
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
    options = [c for c in configs if c.role == BASELINE and c.seeds]
    baseline = min(options, key=lambda c: (_order(c, primary), c.label), default=None)  # on val
    configs.sort(key=lambda c: (c is not baseline, c.role == BASELINE, _order(c, head), c.label))
    candidates = [c for c in configs if c.role != BASELINE and c.seeds]
    level = 1 - alpha / max(1, len(candidates))
    comparisons: dict[str, dict[str, Comparison]] = {}
    for cand in candidates if baseline is not None else ():  # the same resamples for each
        deltas = paired_differences(
            cand, baseline, [o.metric for o in tests], labels, resamples, level
        )
        comparisons[cand.label] = {
            o.metric: Comparison(o.metric, *deltas[o.metric], verdict(deltas[o.metric][0], o))
            for o in tests
        }
    result = Confirmation(configs, baseline, tests, head, comparisons, alpha, "", len(options))
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


def plain_ce(params: Mapping[str, Any]) -> str:
    """A plain-CE configuration by what can differ between them: its train.* values."""
    train = sorted(k for k in params if k.startswith("train.") and k not in IGNORED)
    return ", ".join(["plain CE", *(f"{k}={_short(params[k])}" for k in train)])


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
        if not any(cfg.role == CANDIDATE for cfg in c.configs):
            return "no candidate to confirm: the search's full-budget trials are all plain CE"
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
        worse = sum(x.verdict == WORSE for x in compared.values())
        head = (
            f"no configuration beats plain CE on {metric} beyond seed and test-set noise "
            f"(best: trial {best}, {delta})"
        ) + (f"; {worse} of {len(compared)} worse" if worse else "")
    else:
        mean, sd, _ = t_interval(cand.column(metric))
        bmean, bsd, _ = t_interval(base.column(metric))
        head = (
            f"{describe(cand.params, base.params)} (trial {best}): {metric} {mean:.3f} ± "
            f"{_sd(sd)} vs plain CE {bmean:.3f} ± {_sd(bsd)}, {delta}"
        )
    return head + _elsewhere(c)


def _elsewhere(c: Confirmation) -> str:
    """The answer's closing clause for the other objectives, e.g. "; other objectives: test_ece:
    4 better of 4"; empty when no candidate differs from the baseline on any of them."""
    parts = []
    for o in c.objectives:
        if o.metric == c.primary.metric:
            continue
        verdicts = [m[o.metric].verdict for m in c.comparisons.values() if o.metric in m]
        counts = [f"{verdicts.count(v)} {v}" for v in (BETTER, WORSE) if verdicts.count(v)]
        if counts:
            parts.append(f"{o.metric}: {' and '.join(counts)} of {len(verdicts)}")
    return f"; other objectives: {', '.join(parts)}" if parts else ""


def _sd(sd: float) -> str:
    return f"{sd:.3f}" if math.isfinite(sd) else "n/a"


def table(c: Confirmation) -> list[dict[str, Any]]:
    """One row per configuration: role, seeds, per test metric mean ± sd [95% interval], and for a
    candidate each metric's Δ [corrected interval] and verdict."""
    base_params = None if c.baseline is None else c.baseline.params
    rows = []
    for cfg in c.configs:
        role = cfg.role if cfg is c.baseline or cfg.role != BASELINE else "plain-CE option"
        row: dict[str, Any] = {
            "config": cfg.label,
            "role": role,
            "settings": plain_ce(cfg.params)
            if cfg.role == BASELINE
            else describe(cfg.params, base_params),
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
