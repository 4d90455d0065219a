"""Calibration of the confirmation's verdicts against a known truth: `python -m benchmarks verdict`.

The synthetic world draws test rows for free, so the truth is measurable. Pools of real
re-trainings: plain CE and ELF (rso, package) trained with the pool seeds of SIZES each on the
`synthetic` preset's world (and on `synthetic-flat`'s), every model predicting the pool's rows. The true Δ
of a candidate is the mean over the pool's seeds of its macro-F1 minus the baseline's on all
the pool's rows; a candidate whose runs are drawn from the baseline's own pool has Δ = 0 exactly.

One simulated confirmation draws a test split of the default size from the pool's rows (without
replacement) and, for every seed it asks for, one pool seed per configuration (a candidate with
an effect pairs with the baseline's same pool seed, as paired seeds do; a null one draws its own),
then runs the stage's own decision code (reports.confirmation.confirm, search.confirm.next_seeds)
round after round with the default min_seeds, max_seeds, α and margin, K candidates, two trial
slots. Reported, each with its Monte-Carlo sd:
- coverage: how often the interval at the stop holds the true Δ (each candidate's; and all K of a
  confirmation at once, the family-wise level the intervals are built for);
- family-wise false verdicts with no effect (K null candidates): any "better" or "worse";
- power: how often the world's effect is called "better" (one effect candidate among K);
- the same null worlds under the procedure the stage replaced (a two-level bootstrap percentile
  interval over seeds and rows, valid at a fixed n) re-checked after every round: its family-wise
  false-verdict rate;
- cost: re-trainings per confirmation against a fixed 30-seed design, and the power of fixed
  designs of 5 to 30 seeds at one look (a fixed-n t-interval plus the same test-row part), so
  the fixed design with the same power can be read off.
The row bootstrap behind each interval's test-split part uses SIM_RESAMPLES resamples (the
product's default is confirm.bootstrap = 1000; the part is an sd, whose Monte-Carlo error at 200
resamples is about 5%).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy import stats

from benchmarks import Figures
from record import BASELINE, CANDIDATE, COMPLETED, CONFIRMATION, TrialRecord
from reports.confirmation import (
    BETTER,
    EQUIVALENT,
    UNDECIDED,
    WORSE,
    Comparison,
    Config,
    Confirmation,
    Interval,
    TaskLabels,
    confirm,
    group_runs,
    resampled_confusions,
    split_alpha,
    verdict,
)
from reports.objectives import Objective
from search.config import ConfirmSection
from search.confirm import next_seeds, run_id
from trainables.data.presets import PRESETS
from trainables.data.synthetic import make_synthetic
from trainables.metrics.table import score
from trainables.trial.loop import predict_best

PRIMARY = Objective("val_macro_f1", "max")
K = 4  # candidates per confirmation, as in a default run (top 3 and the front)
SLOTS = 2  # trial slots of the 2-CPU machine
SIM_RESAMPLES = 200
FIXED_SEEDS = 30  # the fixed design the cost is compared with
FIXED = (5, 8, 10, 15, 20, FIXED_SEEDS)  # fixed designs whose power is measured (same worlds)
BASE = {"loss.kind": "ce", "elf.strategy": "none", "train.lr": 0.004}
ELF = BASE | {"elf.strategy": "rso", "elf.granularity": "package"}
# (pool seeds, pool rows, test rows, simulations); quick: a smoke test of the code path
SIZES = {True: (6, 3000, 1000, 4), False: (40, 60_000, 10_000, 300)}
SUMMARY = [
    ("family-wise coverage of the 95% intervals", "family_coverage", ">= 0.95", "coverage_met"),
    ("family-wise false verdicts, no effect", "null_false_rate", "<= 0.05", "null_met"),
    ("re-trainings / a fixed 30-seed design", "cost_ratio", "<= 0.4", "cost_met"),
]


def pool(preset: str, config: dict[str, Any], seeds: int, rows: int) -> tuple[np.ndarray, ...]:
    """(test labels (rows,), predicted classes (seeds, rows)) of `config` trained with seeds
    1..`seeds` on `preset`'s world with a test split of `rows` rows."""
    data = make_synthetic(replace(PRESETS[preset].base, n_test=rows))
    preds = [
        predict_best(config | {"seed": s}, data, data.test)[0].argmax(1).numpy()
        for s in range(1, seeds + 1)
    ]
    return data.test.y.numpy(), np.stack(preds)


def macro_f1(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Macro-F1 of predicted classes `p` against `y`, as the metric table defines it."""
    confusion = np.bincount(y * k + p, minlength=k * k).reshape(k, k).astype(float)
    return float(score("macro_f1", confusion, 0))


class World:
    """A baseline pool and a candidate pool on the same rows, with the candidate's true Δ."""

    def __init__(self, y: np.ndarray, base: np.ndarray, cand: np.ndarray) -> None:
        self.y, self.base, self.cand = y, base, cand
        self.k = int(y.max()) + 1
        self.truth = float(
            np.mean(
                [
                    macro_f1(y, c, self.k) - macro_f1(y, b, self.k)
                    for b, c in zip(base, cand, strict=True)
                ]
            )
        )


def simulate(
    world: World, effect: int, rows: int, rng: np.random.Generator, naive: bool = False
) -> dict[str, Any]:
    """One sequential confirmation with `effect` candidates drawn from the candidate pool (paired
    with the baseline's pool seed) and K − effect null ones drawn from the baseline pool; the
    verdicts at the stop, whether each interval holds its truth, and the runs it trained."""
    cfg = ConfirmSection()
    picked = np.sort(rng.choice(len(world.y), rows, replace=False))
    y = world.y[picked]
    labels = [TaskLabels("", y, world.k, 0)]
    labels_of = {"b": BASELINE} | {f"c{i}": CANDIDATE for i in range(K)}
    draws: dict[tuple[str, int], np.ndarray] = {}

    def predictions(label: str, seed: int) -> np.ndarray:
        if (label, seed) not in draws:
            j = int(rng.integers(len(world.base)))
            if label == "b":
                draws[label, seed] = world.base[j][picked]
                draws["pair", seed] = world.cand[j][picked]  # the effect's paired run
            elif int(label[1:]) < effect:
                predictions("b", seed)
                draws[label, seed] = draws["pair", seed]
            else:
                draws[label, seed] = world.base[j][picked]
        return draws[label, seed]

    runs: list[TrialRecord] = []
    tried = dict.fromkeys(labels_of, 0)

    def train(label: str, seeds: range) -> None:
        for seed in seeds:
            p = predictions(label, seed)
            f1 = macro_f1(y, p, world.k)
            runs.append(_run(label, labels_of[label], seed, f1, p))
            tried[label] = max(tried[label], seed)

    for label in labels_of:
        train(label, range(1, cfg.min_seeds + 1))
    while True:
        looked = confirm(
            runs, [PRIMARY], PRIMARY, labels, cfg.alpha, SIM_RESAMPLES, None, cfg.max_seeds
        )
        if naive:
            looked = two_level(looked, runs, labels)
        need = next_seeds(looked, tried, cfg.max_seeds, SLOTS)
        todo = {label: r for label, r in need.items() if r.stop - 1 > tried[label]}
        if not todo:
            break
        for label, seeds in todo.items():
            train(label, range(tried[label] + 1, seeds.stop))
    truths = {f"c{i}": world.truth if i < effect else 0.0 for i in range(K)}
    out = {"runs": len(runs), "verdicts": {}, "covered": {}}
    for label, compared in looked.comparisons.items():
        x = compared["test_macro_f1"]
        out["verdicts"][label] = x.verdict
        out["covered"][label] = x.delta.low <= truths[label] <= x.delta.high
    return out


def two_level(
    looked: Confirmation, runs: list[TrialRecord], labels: list[TaskLabels]
) -> Confirmation:
    """The same look under the procedure the stage replaced: per candidate the (α/2k, 1 − α/2k)
    percentiles of Δ over resamples that draw test rows and seeds with replacement (a two-level
    paired bootstrap at a fixed n), re-checked after every round; open: always one more round."""
    configs = {c.label: c for c in group_runs(runs)}
    base, task = configs[looked.baseline.label], labels[0]
    tail = looked.alpha / len(looked.comparisons) / 2
    rng = np.random.default_rng(len(runs))
    comparisons = {}
    for label, compared in looked.comparisons.items():
        x, cand = compared["test_macro_f1"], configs[label]
        common = sorted(set(cand.seeds) & set(base.seeds))

        d = _scores(cand, common, task) - _scores(base, common, task)
        picked = rng.integers(0, len(common), size=d.shape)
        low, high = np.quantile(np.take_along_axis(d, picked, 1).mean(1), [tail, 1 - tail])
        interval = Interval(x.delta.estimate, float(low), float(high))
        decided = verdict(interval, looked.primary, x.margin)
        needed = math.nan if decided != UNDECIDED else 0.0
        comparisons[label] = {
            x.metric: Comparison(x.metric, interval, x.seeds, decided, x.margin, x.sd, "", needed)
        }
    return replace(looked, comparisons=comparisons)


def _scores(c: Config, seeds: list[int], task: TaskLabels) -> np.ndarray:
    """(B, S) macro-F1 of `c`'s runs of `seeds` under B = 400 row resamples."""
    per_seed = [
        resampled_confusions(task.y, c.predictions[c.seeds.index(s)], task.classes, 400)
        for s in seeds
    ]
    return score("macro_f1", np.stack(per_seed, 1), task.minority)


def fixed_n(looked: Confirmation) -> Confirmation:
    """The same look with the seeds' part of each interval a fixed-n t-interval's (the fixed-N
    design's interval, valid at one look); its verdicts follow."""
    alpha_seeds = split_alpha(looked.alpha, len(looked.comparisons))[0]
    comparisons = {}
    for label, compared in looked.comparisons.items():
        x = compared["test_macro_f1"]
        n = x.seeds
        half = stats.t.ppf(1 - alpha_seeds / 2, n - 1) * x.sd / math.sqrt(n) if n > 1 else math.inf
        rows_part = x.delta.rows_or_zero
        d = x.delta.estimate
        interval = Interval(d, d - half - rows_part, d + half + rows_part, half, rows_part)
        decided = verdict(interval, looked.primary, x.margin)
        needed = math.nan if decided != UNDECIDED else 0.0  # open: always one more round
        comparisons[label] = {
            x.metric: Comparison(x.metric, interval, n, decided, x.margin, x.sd, "", needed)
        }
    return replace(looked, comparisons=comparisons)


def _run(label: str, role: str, seed: int, f1: float, preds: np.ndarray) -> TrialRecord:
    metrics = {"test_macro_f1": f1, "val_macro_f1": f1}
    return TrialRecord(
        run_id(label, seed),
        0,
        params={"seed": seed},
        results={0: metrics},
        state=COMPLETED,
        stage=CONFIRMATION,
        source=label,
        role=role,
        predictions=preds.tolist(),
    )


def fixed_design(world: World, rows: int, rng: np.random.Generator, seeds: int) -> bool:
    """One fixed-`seeds` confirmation of the effect at one look (a t-interval over seeds plus the
    same test-row part, at the same Bonferroni level over K): whether it calls "better"."""
    cfg = ConfirmSection()
    picked = np.sort(rng.choice(len(world.y), rows, replace=False))
    y, k = world.y[picked], world.k
    j = rng.integers(len(world.base), size=seeds)
    base = [world.base[i][picked] for i in j]
    cand = [world.cand[i][picked] for i in j]
    runs = [_run("b", BASELINE, s + 1, macro_f1(y, p, k), p) for s, p in enumerate(base)]
    runs += [_run("c0", CANDIDATE, s + 1, macro_f1(y, p, k), p) for s, p in enumerate(cand)]
    labels = [TaskLabels("", y, k, 0)]
    looked = confirm(runs, [PRIMARY], PRIMARY, labels, cfg.alpha / K, SIM_RESAMPLES)
    return fixed_n(looked).comparisons["c0"]["test_macro_f1"].verdict == BETTER


def rate(hits: list[bool]) -> tuple[float, float]:
    """(share, its Monte-Carlo sd)."""
    p = float(np.mean(hits)) if hits else math.nan
    return p, math.sqrt(p * (1 - p) / max(1, len(hits)))


def run(quick: bool) -> Figures:
    torch.set_num_threads(1)
    seeds, pool_rows, rows, sims = SIZES[quick]
    start = time.perf_counter()
    worlds = {}
    for preset in ("synthetic", "synthetic-flat"):
        y, base = pool(preset, BASE, seeds, pool_rows)
        _, cand = pool(preset, ELF, seeds, pool_rows)
        worlds[preset] = World(y, base, cand)
    figures: Figures = {"pool_seeds": seeds, "pool_rows": pool_rows, "test_rows": rows}
    figures |= {"simulations": sims, "pools_s": round(time.perf_counter() - start, 1)}
    rng = np.random.default_rng(0)
    effect = [simulate(worlds["synthetic"], 1, rows, rng) for _ in range(sims)]
    null = [simulate(worlds["synthetic"], 0, rows, rng) for _ in range(sims)]
    flat = [simulate(worlds["synthetic-flat"], 1, rows, rng) for _ in range(sims)]
    naive = [simulate(worlds["synthetic"], 0, rows, rng, naive=True) for _ in range(sims)]
    fixed = {
        n: [fixed_design(worlds["synthetic"], rows, rng, n) for _ in range(sims)] for n in FIXED
    }
    covered = [c for sim in effect + null for c in sim["covered"].values()]
    family = [all(sim["covered"].values()) for sim in effect + null]
    wrong = [any(v in (BETTER, WORSE) for v in s["verdicts"].values()) for s in null]
    naive_wrong = [any(v in (BETTER, WORSE) for v in s["verdicts"].values()) for s in naive]
    power = [s["verdicts"]["c0"] == BETTER for s in effect]
    null_in_effect = [
        v in (BETTER, WORSE) for s in effect for label, v in s["verdicts"].items() if label != "c0"
    ]
    for name, values in (
        ("coverage", covered),
        ("family_coverage", family),
        ("null_false_rate", wrong),
        ("naive_null_false_rate", naive_wrong),
        ("power", power),
        *((f"fixed{n}_power", hits) for n, hits in fixed.items()),
        ("false_among_effect_runs", null_in_effect),
        ("flat_coverage", [s["covered"]["c0"] for s in flat]),
        ("flat_better", [s["verdicts"]["c0"] == BETTER for s in flat]),
        ("null_equivalent", [v == EQUIVALENT for s in null for v in s["verdicts"].values()]),
    ):
        figures[name], figures[f"{name}_mc_sd"] = (round(v, 4) for v in rate(values))
    figures["true_delta"] = round(worlds["synthetic"].truth, 4)
    figures["flat_true_delta"] = round(worlds["synthetic-flat"].truth, 4)
    runs = [s["runs"] for s in effect]
    figures["runs_mean"] = round(float(np.mean(runs)), 1)
    figures["fixed30_runs"] = FIXED_SEEDS * (K + 1)
    figures["cost_ratio"] = round(figures["runs_mean"] / figures["fixed30_runs"], 3)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    if not quick:
        figures["coverage_met"] = figures["family_coverage"] >= 0.95
        figures["null_met"] = figures["null_false_rate"] <= 0.05
        figures["cost_met"] = figures["cost_ratio"] <= 0.4
    return figures
