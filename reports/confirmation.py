"""The confirmation stage's answer: how each re-trained configuration does on the test split, and
whether it beats the plain-CE baseline, matches it or is worse, with error guarantees that hold
however many rounds of seeds the sequential stage added (search/confirm.py).

Per configuration and test metric: mean, sample sd (ddof=1) and the 95% t-interval
mean ± t(0.975, N−1)·sd/√N over its N seeds (descriptive).

Per candidate against the baseline (paired: the seeds both finished, the same test rows), metric m:
the per-seed differences d_s = m(candidate, seed s) − m(baseline, seed s) on the whole test split
and Δ = their mean (a confirm.versus pair: one side against the other, alike). Of the
comparison's error α/k (Bonferroni over the k comparisons: candidates and pairs) each source of
error gets half:
- seeds: the anytime-valid confidence sequence of reports.sequential over d_1..d_n at α/(2k). It
  covers E_seed[d | this test split] at every n at once, so the stage may look after every round
  and stop when it likes;
- the test split: the seed-mean Δ recomputed on B resamples of the test rows (seeds fixed, the same
  rows for both configurations and every task), sd σ_rows; z(1 − α/(4k))·σ_rows covers the gap
  between this test split's Δ and the Δ on new data from the same source. Metrics that need
  probabilities (ece, loss: no confusion-matrix form in trainables.metrics.table) are not
  recomputed from rows: their interval is the seeds part alone (rows part NaN, said in the
  tables).
Interval: Δ ± (seeds part + rows part), covering the expected difference on new data with
probability ≥ 1 − α/k (union bound), all k comparisons of a metric together ≥ 1 − α. Multi-task
data: a task's metric (test_<task>_macro_f1, …) from that task's labels and predictions; a combined
one (test_macro_f1, …) is the mean over tasks.

Verdicts, in the metric's direction, with δ the metric's margin (confirm.delta, else
reports.defaults.MARGIN for a metric bounded in [0, 1], else none): better / worse when the interval excludes 0; equivalent when it lies inside
(−δ, δ); else undecided, with what keeps it open (`why_open`: seed noise, and about how many seeds
would close it, or the test split's size, which no number of seeds can fix).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from record import BASELINE, CANDIDATE, COMPLETED, TrialRecord
from reports.defaults import MARGIN
from reports.objectives import Objective
from reports.sequential import seeds_needed, sequence
from trainables.canonical import family_of
from trainables.metrics.table import bounded, lookup, score

BETTER, WORSE, EQUIVALENT, UNDECIDED = "better", "worse", "equivalent", "undecided"
VERDICTS = (BETTER, EQUIVALENT, WORSE, UNDECIDED)
COMPARISONS_TITLE = "Comparisons: candidates against the baseline, head-to-head pairs"
FAMILIES_TITLE = "The best of each family against the baseline"
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

    @functools.cached_property
    def families(self) -> tuple[str, ...]:
        """The families it trains as (trainables.canonical.family_of), computed once."""
        return family_of(self.params)


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
    """(the tasks, the bare metric) a test_* metric is computed from: one with a confusion-matrix
    form in trainables.metrics.table, a task's or (when the table combines it) the mean over
    tasks; None: seeds only."""
    name = metric.removeprefix("test_")
    for t, task in enumerate(tasks):
        own = name.removeprefix(f"{task.name}_")
        if task.name and own != name and _on_rows(own, multi=False):
            return [t], own
    if _on_rows(name, multi=len(tasks) > 1):
        return list(range(len(tasks))), name
    return None


def _on_rows(name: str, multi: bool) -> bool:
    """True when the bare metric `name` is recomputed from confusion matrices (multi-task: only a
    metric the table combines as the mean over tasks)."""
    found = lookup(name)
    return (
        found is not None
        and found[0].from_confusion is not None
        and (found[0].combined or not multi)
    )


@dataclass(frozen=True)
class Interval:
    """Δ and its interval; `seeds_part` and `rows_part` are the half-widths due to seed noise and
    to the finite test split (rows_part NaN: the test rows were not resampled)."""

    estimate: float
    low: float
    high: float
    seeds_part: float = math.nan
    rows_part: float = math.nan

    @property
    def rows_or_zero(self) -> float:
        """The test-rows part, 0 where the rows were not resampled."""
        return 0.0 if math.isnan(self.rows_part) else self.rows_part


@dataclass(frozen=True)
class Comparison:
    """A candidate against the baseline on one metric."""

    metric: str
    delta: Interval
    seeds: int  # paired seeds
    verdict: str
    margin: float | None = None  # δ: |Δ| below it does not matter
    sd: float = math.nan  # sd of the per-seed differences
    why: str = ""  # an undecided verdict: what keeps it open, and what would decide it
    needed: float = math.nan  # undecided: paired seeds estimated to decide (inf: none would)


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
    budget: int = 0  # confirm.max_seeds (0: unknown)
    merged: list[str] = field(default_factory=list)  # candidates canonical called equal
    # confirm.versus: "a:b" -> (the best candidate of a without b, of b without a) and their
    # comparison per metric (Δ = a's side − b's side on their common seeds)
    sides: dict[str, tuple[str, str]] = field(default_factory=dict)
    versus: dict[str, dict[str, Comparison]] = field(default_factory=dict)
    family_best: dict[str, str] = field(default_factory=dict)  # family -> its best candidate

    @property
    def k(self) -> int:
        """The comparisons α is shared by (Bonferroni): candidates and confirm.versus pairs."""
        return len(self.comparisons) + len(self.versus)


def note(c: Confirmation) -> str:
    """How the figures were computed (the report prints it above the tables)."""
    base = c.baseline.label if c.baseline is not None else "none"
    val = c.primary.metric.replace("test_", "val_")
    budget = f" (at most {c.budget})" if c.budget else ""
    return (
        f"Each configuration re-trained with paired seeds for the full budget; seeds were added in "
        f"rounds{budget} while a candidate's verdict on {c.primary.metric} was open. The epoch is "
        f"chosen on validation ({val}), the figures are the test split's at it: mean ± sd [95% "
        f"t-interval over seeds]. Δ: candidate − plain-CE baseline ({base}: of {c.options} plain-CE "
        f"configuration(s), the search's best plain-CE trial and the candidates' plain-CE twins, "
        f"the one with the best mean validation {val}), with a {1 - c.alpha:.0%} family-wise "
        f"interval (Bonferroni over {c.k} comparison(s): candidates and head-to-head pairs): an anytime-valid confidence sequence over "
        f"seeds plus a bootstrap of the test rows, valid however many rounds were looked at. "
        f"Verdict {BETTER!r} or {WORSE!r} when it excludes 0, {EQUIVALENT!r} when it lies inside "
        f"± the margin, else {UNDECIDED!r} (with why)."
    )


def test_name(metric: str) -> str:
    """val_x (or test_x) → test_x: the metric the confirmation reports for an objective."""
    return f"test_{metric.removeprefix('val_').removeprefix('test_')}"


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


def split_alpha(alpha: float, comparisons: int) -> tuple[float, float]:
    """(α of the confidence sequence over seeds, α of the test-row part) of one comparison:
    Bonferroni over the `comparisons` (candidates and pairs), then half to each source of error."""
    each = alpha / max(1, comparisons)
    return each / 2, each / 2


def row_spread(
    cand: Config,
    base: Config,
    ci: list[int],
    bi: list[int],
    metrics: Sequence[str],
    tasks: Sequence[TaskLabels],
    resamples: int,
    seed: int = 0,
) -> dict[str, float]:
    """{metric: sd over B row resamples of the seed-mean Δ} for the metrics computed from predicted
    classes (the seeds fixed, each resample drawing n of the n test rows for both configurations
    and every task); the others are left out."""
    n = len(tasks[0].y) if tasks else 0
    recorded = bool(tasks) and all(
        len(p) == n and p.size == n * len(tasks) for p in cand.predictions + base.predictions
    )
    routes = {m: _route(m, tasks) for m in metrics} if recorded and ci else {}
    on_rows = {m: r for m, r in routes.items() if r is not None}
    if not on_rows:
        return {}
    needed = sorted({t for which, _ in on_rows.values() for t in which})

    def draws_of(config: Config, idx: list[int], t: int) -> np.ndarray:  # (B, S, k, k)
        task = tasks[t]
        return np.stack(
            [
                resampled_confusions(
                    task.y,
                    config.predictions[i].reshape(n, -1)[:, t],
                    task.classes,
                    resamples,
                    seed,
                )
                for i in idx
            ],
            axis=1,
        )

    cc = {t: draws_of(cand, ci, t) for t in needed}
    cb = {t: draws_of(base, bi, t) for t in needed}
    out = {}
    for m, (which, name) in on_rows.items():
        d = sum(
            score(name, cc[t], tasks[t].minority) - score(name, cb[t], tasks[t].minority)
            for t in which
        ) / len(which)  # (B, S)
        out[m] = float(d.mean(1).std(ddof=1))
    return out


@functools.lru_cache(maxsize=2)
def row_weights(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(B, n) row multiplicities of B bootstrap resamples of n rows (each the counts of n rows drawn
    uniformly with replacement: multinomial(n, 1/n)), drawn by `seed`."""
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = (rows + np.arange(resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float32)


_DRAWS: dict[tuple, np.ndarray] = {}  # resampled_confusions' cache (the stage looks every round)
_DRAWS_KEPT = 1024  # entries (each B·k² float32: 100 kB at B = 1000, k = 5) before it starts over


def resampled_confusions(
    y: np.ndarray, pred: np.ndarray, k: int, resamples: int, seed: int = 0
) -> np.ndarray:
    """(B, k, k) confusion matrices of one prediction vector under the B row resamples of
    `row_weights` (the same for every prediction vector of the same length), in chunks of
    ROW_CHUNK; cached, since a sequential confirmation scores each run again at every look."""
    key = (hashlib.sha1(np.ascontiguousarray(pred).tobytes() + y.tobytes()).hexdigest(), k)
    key += (resamples, seed)
    if key not in _DRAWS:
        if len(_DRAWS) >= _DRAWS_KEPT:
            _DRAWS.clear()
        weights = row_weights(len(y), resamples, seed)
        _DRAWS[key] = np.concatenate(
            [
                confusions(weights[lo : lo + ROW_CHUNK], y, pred[None, :], k)[:, 0]
                for lo in range(0, resamples, ROW_CHUNK)
            ]
        )
    return _DRAWS[key]


def paired_differences(
    cand: Config,
    base: Config,
    metrics: Sequence[str],
    labels: Sequence[TaskLabels] | None,
    resamples: int,
    alphas: tuple[float, float],
    seed: int = 0,
) -> dict[str, tuple[Interval, int, float]]:
    """{metric: (Δ with its interval, paired seeds, sd of the per-seed differences)} for the
    test_* `metrics` of `cand` against `base` over their common seeds (the module docstring's
    procedure; `alphas` from split_alpha)."""
    common = sorted(set(cand.seeds) & set(base.seeds))
    ci = [cand.seeds.index(s) for s in common]
    bi = [base.seeds.index(s) for s in common]
    spread = row_spread(cand, base, ci, bi, metrics, labels or [], resamples, seed)
    z = float(stats.norm.ppf(1 - alphas[1] / 2))
    out = {}
    for m in metrics:
        d = cand.column(m)[ci] - base.column(m)[bi]  # on all rows, seed by seed
        d = d[np.isfinite(d)]  # a seed whose metric is not finite pairs nothing
        mean, seeds_part = sequence(d, alphas[0])
        rows_part = z * spread[m] if m in spread else math.nan
        half = seeds_part + (0.0 if math.isnan(rows_part) else rows_part)
        sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
        out[m] = (Interval(mean, mean - half, mean + half, seeds_part, rows_part), len(d), sd)
    return out


def verdict(delta: Interval, objective: Objective, margin: float | None = None) -> str:
    """better / worse when the interval lies on one side of 0 (in the metric's direction),
    equivalent when it lies inside ±margin, else undecided."""
    low, high = (-delta.high, -delta.low) if objective.sign > 0 else (delta.low, delta.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return UNDECIDED
    if low > 0 or high < 0:
        return BETTER if low > 0 else WORSE
    if margin is not None and -margin < low and high < margin:
        return EQUIVALENT
    return UNDECIDED


def why_open(cmp: Comparison, alpha_seeds: float, rows: int) -> tuple[str, float]:
    """(what keeps an undecided comparison open, the paired seeds estimated to decide it): the
    test split (its part of the interval alone is wider than the room |Δ| and the margin leave:
    no number of seeds decides, inf) or seed noise (about how many paired seeds would, at the
    observed sd and Δ). ("", NaN) for a decided one."""
    d = cmp.delta
    if cmp.verdict != UNDECIDED:
        return "", math.nan
    if not math.isfinite(d.estimate):
        return "no paired seeds with the baseline", math.nan
    gap = abs(d.estimate)
    room = max(gap, (cmp.margin - gap) if cmp.margin is not None else 0.0)
    rows_part = d.rows_or_zero
    if not math.isfinite(d.seeds_part) and not math.isfinite(cmp.sd):
        return "seed noise: too few paired seeds for an interval", math.nan
    if rows_part >= room and math.isfinite(d.seeds_part):
        if room <= 0:
            return "the test split: no number of seeds decides Δ = 0 without a margin", math.inf
        factor = (rows_part / room) ** 2
        more = f" (about {math.ceil(factor * rows):,} rows)" if rows else ""
        return (
            f"the test split: its part alone (±{rows_part:.4f}) is wider than |Δ| and the margin "
            f"leave; no number of seeds decides; a test split {factor:.1f}× larger{more}, or an "
            f"independent test set, would"
        ), math.inf
    needed = seeds_needed(cmp.sd, room - rows_part, alpha_seeds)
    if needed is None:
        return "seed noise: more paired seeds than can be estimated", math.inf
    return (
        f"seed noise: about {needed} paired seeds at the observed sd ({cmp.sd:.4f}) would decide"
    ), float(needed)


def margins(
    objectives: Sequence[Objective], configured: Mapping[str, float] | None = None
) -> dict[str, float | None]:
    """{test metric: δ}: confirm.delta's value (keyed by the val_ or test_ name), else MARGIN for
    a metric in [0, 1] (bounded in trainables.metrics.table), else None (no equivalence verdict)."""
    given = {test_name(k): float(v) for k, v in (configured or {}).items()}
    out: dict[str, float | None] = {}
    for o in objectives:
        default = MARGIN if bounded(o.metric) else None
        out[o.metric] = given.get(o.metric, default)
    return out


def head_to_head(
    candidates: Sequence[Config], versus: Sequence[tuple[str, str]], rank: Mapping[str, int]
) -> dict[str, tuple[Config, Config]]:
    """{"a:b": (the candidate in family a and not b, the one in b and not a)} for each pair whose
    both sides were confirmed, each side the best by the search's validation `rank` (source trial
    → position; fixed before the confirmation, so no test value chooses a side)."""
    out = {}
    for a, b in versus:
        side_a, side_b = best_in(candidates, rank, a, b), best_in(candidates, rank, b, a)
        if side_a is not None and side_b is not None:
            out[f"{a}:{b}"] = (side_a, side_b)
    return out


def best_in(
    candidates: Sequence[Config], rank: Mapping[str, int], has: str, lacks: str = ""
) -> Config | None:
    """The candidate of family `has` and not of `lacks` best by the search's validation `rank`."""
    pool = [c for c in candidates if has in c.families and lacks not in c.families]
    return min(pool, key=lambda c: (rank.get(c.label, len(rank)), c.label), default=None)


def family_best(candidates: Sequence[Config], rank: Mapping[str, int]) -> dict[str, str]:
    """{family: the label of its best candidate} for every family a candidate belongs to."""
    names = dict.fromkeys(f for c in candidates for f in c.families)
    return {f: best_in(candidates, rank, f).label for f in names}


def compare(
    cand: Config,
    base: Config,
    tests: Sequence[Objective],
    margin: Mapping[str, float | None],
    labels: Sequence[TaskLabels] | None,
    resamples: int,
    alphas: tuple[float, float],
) -> dict[str, Comparison]:
    """{metric: `cand` against `base`}: Δ with its interval, verdict and why it is open."""
    deltas = paired_differences(cand, base, [o.metric for o in tests], labels, resamples, alphas)
    rows = len(labels[0].y) if labels else 0
    out = {}
    for o in tests:
        interval, seeds, sd = deltas[o.metric]
        verdict_ = verdict(interval, o, margin[o.metric])
        cmp = Comparison(o.metric, interval, seeds, verdict_, margin[o.metric], sd)
        why, needed = why_open(cmp, alphas[0], rows)
        out[o.metric] = replace(cmp, why=why, needed=needed)
    return out


def confirm(
    runs: Sequence[TrialRecord],
    objectives: Sequence[Objective],
    primary: Objective,
    labels: Sequence[TaskLabels] | None,
    alpha: float = 0.05,
    resamples: int = 1000,
    delta: Mapping[str, float] | None = None,
    budget: int = 0,
    versus: Sequence[tuple[str, str]] = (),
    rank: Mapping[str, int] | None = None,
) -> Confirmation | None:
    """The confirmation of the record's confirmation `runs`; None without any. Each candidate is
    compared with the baseline and, for `versus` (family pairs, sides by `head_to_head`), each
    pair's sides with each other: k comparisons in all share α (Bonferroni)."""
    configs = group_runs(runs)
    if not configs:
        return None
    tests = tuple(Objective(test_name(o.metric), o.direction) for o in objectives)
    head = Objective(test_name(primary.metric), primary.direction)
    if head.metric not in {o.metric for o in tests}:
        tests = (head, *tests)
    margin = margins(tests, delta)
    baseline = choose_baseline(configs, primary)
    options = sum(c.role == BASELINE and bool(c.seeds) for c in configs)
    configs.sort(key=lambda c: (c is not baseline, c.role == BASELINE, _order(c, head), c.label))
    candidates = [c for c in configs if c.role != BASELINE and c.seeds]
    pairs = head_to_head(candidates, versus, rank or {})
    alphas = split_alpha(alpha, len(candidates) + len(pairs))
    compared = functools.partial(
        compare, tests=tests, margin=margin, labels=labels, resamples=resamples, alphas=alphas
    )
    comparisons: dict[str, dict[str, Comparison]] = {}
    for cand in candidates if baseline is not None else ():  # the same resamples for each
        comparisons[cand.label] = compared(cand, baseline)
    result = Confirmation(
        configs, baseline, tests, head, comparisons, alpha, "", options, budget=budget
    )
    result.sides = {pair: (a.label, b.label) for pair, (a, b) in pairs.items()}
    result.versus = {pair: compared(a, b) for pair, (a, b) in pairs.items()}
    result.family_best = family_best(candidates, rank or {})
    result.answer = answer(result)
    return result


def choose_baseline(configs: Sequence[Config], primary: Objective) -> Config | None:
    """The plain-CE option with the best mean validation `primary` over the seeds every option
    finished (so an option's later seeds, added while candidates were open, do not move it)."""
    options = [c for c in configs if c.role == BASELINE and c.seeds]
    shared = set.intersection(*(set(c.seeds) for c in options)) if options else set()

    def mean_of(c: Config) -> float:
        idx = [i for i, s in enumerate(c.seeds) if s in shared] or list(range(len(c.seeds)))
        mean = t_interval(c.column(primary.metric)[idx])[0]
        return primary.sign * mean if math.isfinite(mean) else math.inf

    return min(options, key=lambda c: (mean_of(c), c.label), default=None)


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


def describe_plain_ce(params: Mapping[str, Any]) -> str:
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
    sign = -c.primary.sign  # larger is better
    better = [label for label, cmp in compared.items() if cmp.verdict == BETTER]
    best = max(better or compared, key=lambda label: sign * compared[label].delta.estimate)
    cmp = compared[best]
    delta = f"{_delta(cmp, c.alpha, c.k)}, {cmp.seeds} paired seeds"
    if cmp.verdict == BETTER:
        cand = next(cfg for cfg in c.configs if cfg.label == best)
        mean, sd, _ = t_interval(cand.column(metric))
        bmean, bsd, _ = t_interval(base.column(metric))
        reach = -cmp.delta.low if c.primary.sign > 0 else cmp.delta.high  # most it may gain
        small = cmp.margin is not None and reach < cmp.margin
        small_text = f" (by less than the margin {cmp.margin:g})" if small else ""
        head = (
            f"better than plain CE on {metric}{small_text}: {describe(cand.params, base.params)} "
            f"(trial {best}), {mean:.3f} ± {_sd(sd)} vs {bmean:.3f} ± {_sd(bsd)}, {delta}"
        )
    elif cmp.verdict == EQUIVALENT:
        head = (
            f"equivalent to plain CE on {metric} within ±{cmp.margin:g}: no configuration beats "
            f"it (best: trial {best}, {delta})"
        )
    elif cmp.verdict == WORSE and all(x.verdict == WORSE for x in compared.values()):
        head = f"worse than plain CE on {metric}: every configuration (best: trial {best}, {delta})"
    elif cmp.verdict == WORSE:  # the largest Δ is worse; narrower ones are not decided
        head = (
            f"no configuration beats plain CE on {metric} (largest Δ: trial {best}, {delta}, worse)"
        )
    else:
        head = (
            f"undecided on {metric}: no configuration beats plain CE within the seed budget "
            f"(best: trial {best}, {delta}); open because of {cmp.why}"
        )
    return head + f"; verdicts: {_tally(list(compared.values()))}" + _elsewhere(c) + _versus(c)


def _versus(c: Confirmation) -> str:
    """The answer's clause for the head-to-head pairs on the primary metric, e.g. "; head to head
    on test_macro_f1: elf (trial 3) vs lq (trial 7) better, Δ +0.004 [+0.001, +0.008]"."""
    parts = []
    for pair, compared in c.versus.items():
        cmp = compared.get(c.primary.metric)
        if cmp is not None:
            (a, b), (ta, tb) = pair.split(":"), c.sides[pair]
            d = cmp.delta
            parts.append(
                f"{a} (trial {ta}) vs {b} (trial {tb}) {cmp.verdict}, Δ {d.estimate:+.3f} "
                f"[{d.low:+.3f}, {d.high:+.3f}], {cmp.seeds} paired seeds"
            )
    return f"; head to head on {c.primary.metric}: {'; '.join(parts)}" if parts else ""


def _delta(cmp: Comparison, alpha: float, k: int) -> str:
    """Δ, its interval and where its width comes from, e.g. "Δ +0.012 [+0.004, +0.020] (95%
    anytime-valid, Bonferroni over 4; seeds ±0.005, test rows ±0.003)"."""
    d = cmp.delta
    rows = "not resampled" if math.isnan(d.rows_part) else f"±{d.rows_part:.3f}"
    return (
        f"Δ {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}] ({1 - alpha:.0%} anytime-valid, "
        f"Bonferroni over {k}; seeds ±{d.seeds_part:.3f}, test rows {rows})"
    )


def _tally(comparisons: Sequence[Comparison]) -> str:
    """e.g. "1 better, 2 equivalent of 3"."""
    verdicts = [x.verdict for x in comparisons]
    counts = [f"{verdicts.count(v)} {v}" for v in VERDICTS if verdicts.count(v)]
    return f"{', '.join(counts)} of {len(verdicts)}"


def _elsewhere(c: Confirmation) -> str:
    """The answer's closing clause for the other objectives, e.g. "; other objectives: test_ece:
    4 better of 4"."""
    parts = []
    for o in c.objectives:
        if o.metric == c.primary.metric:
            continue
        found = [m[o.metric] for m in c.comparisons.values() if o.metric in m]
        if found:
            parts.append(f"{o.metric}: {_tally(found)}")
    return f"; other objectives: {', '.join(parts)}" if parts else ""


def _sd(sd: float) -> str:
    return f"{sd:.3f}" if math.isfinite(sd) else "n/a"


def table(c: Confirmation) -> list[dict[str, Any]]:
    """One row per configuration: role, settings, seeds, and per test metric mean ± sd [95%
    t-interval over its seeds]."""
    base_params = None if c.baseline is None else c.baseline.params
    rows = []
    for cfg in c.configs:
        role = cfg.role if cfg is c.baseline or cfg.role != BASELINE else "plain-CE option"
        row: dict[str, Any] = {
            "config": cfg.label,
            "role": role,
            "settings": describe_plain_ce(cfg.params)
            if cfg.role == BASELINE
            else describe(cfg.params, base_params),
            "seeds": len(cfg.seeds),
            "failed": cfg.failed,
        }
        for o in c.objectives:
            row[o.metric] = _mean_sd(*t_interval(cfg.column(o.metric)))
        rows.append(row)
    return rows


def comparison_table(c: Confirmation) -> list[dict[str, Any]]:
    """One row per comparison (each candidate against plain CE, each confirm.versus pair's sides
    against each other) and metric: Δ [interval], the seeds' and the test rows' parts of its
    half-width, the margin, the verdict and, when undecided, why."""
    rows = []
    pairs = {label: (label, "plain CE") for label in c.comparisons}
    pairs |= {pair: (c.sides[pair][0], f"{c.sides[pair][1]} ({pair})") for pair in c.versus}
    for label, compared in (c.comparisons | c.versus).items():
        for metric, x in compared.items():
            d = x.delta
            rows.append(
                {
                    "config": pairs[label][0],
                    "against": pairs[label][1],
                    "metric": metric,
                    "Δ [interval]": f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]",
                    "seeds part": f"±{d.seeds_part:.4f}",
                    "test-rows part": "not resampled"
                    if math.isnan(d.rows_part)
                    else f"±{d.rows_part:.4f}",
                    "seeds": x.seeds,
                    "margin": "none" if x.margin is None else f"±{x.margin:g}",
                    "verdict": x.verdict,
                    "why open": x.why,
                }
            )
    return rows


def family_table(c: Confirmation) -> list[dict[str, Any]]:
    """One row per family the candidates belong to: its best candidate (by the search's
    validation rank) and that one's Δ against plain CE on the primary metric."""
    rows = []
    for family, label in c.family_best.items():
        x = c.comparisons.get(label, {}).get(c.primary.metric)
        if x is not None:
            d = x.delta
            rows.append(
                {
                    "family": family,
                    "best": label,
                    "metric": x.metric,
                    "Δ [interval]": f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]",
                    "seeds": x.seeds,
                    "verdict": x.verdict,
                }
            )
    return rows


def figures(c: Confirmation) -> dict[str, Any]:
    """The confirmation as plain numbers (summary.json)."""
    configs = []
    for cfg in c.configs:
        metrics = {}
        for o in c.objectives:
            mean, sd, ci = t_interval(cfg.column(o.metric))
            metrics[o.metric] = {"mean": mean, "sd": sd, "low": ci.low, "high": ci.high}
        compared = {m: _numbers(x) for m, x in c.comparisons.get(cfg.label, {}).items()}
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
        "interval": "anytime-valid confidence sequence over seeds + test-row bootstrap",
        "max_seeds": c.budget,
        "baseline": None if c.baseline is None else c.baseline.label,
        "merged": c.merged,
        "configs": configs,
        "families": c.family_best,
        "versus": {
            pair: {"sides": list(c.sides[pair])} | {m: _numbers(x) for m, x in compared.items()}
            for pair, compared in c.versus.items()
        },
    }


def _numbers(x: Comparison) -> dict[str, Any]:
    d = x.delta
    return {
        "delta": d.estimate,
        "low": d.low,
        "high": d.high,
        "seeds_part": d.seeds_part,
        "rows_part": d.rows_part,
        "seeds": x.seeds,
        "sd": x.sd,
        "margin": x.margin,
        "verdict": x.verdict,
        "why": x.why,
        "needed": x.needed,
    }


def _mean_sd(mean: float, sd: float, ci: Interval) -> str:
    if not math.isfinite(mean):
        return ""
    if not math.isfinite(sd):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {sd:.4f} [{ci.low:.4f}, {ci.high:.4f}]"
