"""Search the front: MO sampling + MOASHA against ASHA + TPE and FIFO + random, at equal compute:
`python -m benchmarks front`.

Per dataset (`synthetic`, `data=nova`) and search seed r (search.seed=r), the four searches run
back to back, the order rotated per seed, on `space=elf` with the report's objectives (macro-F1,
worst-class recall, calibration error):

    moasha_motpe  search.algorithm=optuna scheduler=moasha  (multi-objective TPE study + MOASHA)
    moasha_nsga2  search.algorithm=nsga2 scheduler=moasha   (the sampler's alternative: NSGA-II)
    asha_tpe      search.algorithm=optuna scheduler=asha    (TPE and ASHA on val_macro_f1)
    fifo_random   search.algorithm=random scheduler=fifo    (every trial trains the full budget)

Equal compute is counted in epochs trained. The three early-stopping searches get the same
num_samples; FIFO + random then gets num_samples = round(mean epochs of the others / max_epochs),
so its epochs match theirs within one trial's budget. Each search's figures:

    val_hv       hypervolume of the validation front of its full-budget trials (values at the
                 epoch the report counts, `reports.analysis`)
    val_hv_at_budget  the same over the trials that finished within the first B epochs it trained
                 (record order), B = the fewest epochs any of the four trained for that seed:
                 exactly equal compute
    test_hv      hypervolume of the confirmed front: the test-split means (confirm.min_seeds =
                 confirm.max_seeds seeds each) of the configurations the confirmation retrained
                 from its validation front (confirm.top_k=0; the plain-CE baseline too, the same
                 for every search)
    test_hv_per_seed, test_hv_per_seed_half  the mean over the confirmation's seeds of the test
                 hypervolume of each seed's front, and its 95% t half-width: how sure one
                 search's confirmed front is
    epochs       epochs its trials trained (the confirmation's not counted)

Every hypervolume uses one fixed reference point, the worst value of each bounded objective
(0 for a max metric, 1 for a min metric) moved out by REF_MARGIN, so searches, seeds and splits
compare. Medians over
seeds per dataset, and per search its test_hv gain over the incumbent (ASHA + TPE, today's
default), paired by search seed, with a 95% t-interval over the seeds. `winner_<dataset>` is the
search whose gain interval lies above 0 (of several, the largest mean gain), else the incumbent;
the default search is the one that wins on both datasets, else the incumbent: a default changes on
evidence, not on a median that seed noise could reverse.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from benchmarks import Figures
from benchmarks.harness import quiet, ray_session
from record import RECORD_FILE, read_events
from reports.analysis import analyse, points
from reports.confirmation import group_runs
from reports.load import load_run
from reports.objectives import Objective, parse_objectives, to_minimisation
from reports.pareto import hypervolume, nondominated
from reports.rows import counted_values
from trainables.metrics.table import bounded, default_objectives

# The targets table (benchmarks.target_rows): (what, measured figure, target, met figure).
SUMMARY = [("search whose fronts win on every dataset", "default", "sets the default", None)]
SEARCHES = {
    "moasha_motpe": ("search.algorithm=optuna", "scheduler=moasha"),
    "moasha_nsga2": ("search.algorithm=nsga2", "scheduler=moasha"),
    "asha_tpe": ("search.algorithm=optuna", "scheduler=asha"),
    "fifo_random": ("search.algorithm=random", "scheduler=fifo"),
}
# run first: FIFO + random's num_samples matches their epochs
EARLY_STOPPING = ("moasha_motpe", "moasha_nsga2", "asha_tpe")
PER_SEED = ("test_hv_per_seed", "test_hv_per_seed_half")
FIGURES = ("epochs", "val_hv", "val_hv_at_budget", "test_hv", *PER_SEED)
INCUMBENT = "asha_tpe"  # today's default: another search replaces it only by beating it
SMALL = ("data.n_train=600", "data.n_val=300", "data.n_test=300", "data.reviewers=40")
DATASETS = {"synthetic": ("data=synthetic",), "nova": ("data=nova",)}
# per size: the searches, datasets, seeds, num_samples of the early-stopping searches, max_epochs,
# grace period, reduction factor, confirmation seeds, extra overrides; --quick runs two searches
# (the new path and FIFO's sizing), small, to stay well under a minute
SIZES: dict[bool, dict[str, Any]] = {
    True: {
        "searches": ("moasha_motpe", "fifo_random"),
        "datasets": ("synthetic",),
        "seeds": 1,
        "samples": 3,
        "epochs": 2,
        "grace": 1,
        "eta": 2,
        "confirm_seeds": 1,
        "extra": SMALL,
    },
    False: {
        "searches": tuple(SEARCHES),
        "datasets": ("synthetic", "nova"),
        "seeds": 5,
        "samples": 32,
        "epochs": 12,
        "grace": 2,
        "eta": 3,
        "confirm_seeds": 3,
        "extra": (),
    },
}
OBJECTIVES = parse_objectives(default_objectives())
REF_MARGIN = 0.01  # of each bounded objective's range [0, 1], beyond its worst value


def reference(objectives: Sequence[Objective]) -> np.ndarray:
    """The fixed minimisation reference point: each bounded objective's worst value moved
    REF_MARGIN further out (−0.01 for a max metric, 1.01 for a min one), so that a point at the
    worst value (a worst-class recall of 0) still adds volume."""
    worst = []
    for o in objectives:
        if not bounded(o.metric):
            raise ValueError(f"{o.metric}: no fixed reference point for an unbounded metric")
        worst.append(-REF_MARGIN if o.direction == "max" else 1.0 + REF_MARGIN)
    return to_minimisation(np.array([worst]), objectives)[0]


def front_hv(values: np.ndarray, objectives: Sequence[Objective]) -> float:
    """Hypervolume of the non-dominated rows of (n, k) values (own directions); 0 without rows."""
    if not len(values):
        return 0.0
    pts = to_minimisation(values, objectives)
    return hypervolume(pts[nondominated(pts)], reference(objectives))


def val_hv(output_dir: Path) -> float:
    """The validation front's hypervolume over the full-budget trials (the report's rows)."""
    a = analyse(load_run(output_dir), [str(o) for o in OBJECTIVES])
    pts = points(a.candidates, OBJECTIVES)
    return hypervolume(pts[nondominated(pts)], reference(OBJECTIVES)) if len(pts) else 0.0


def search_results(output_dir: Path) -> list[dict[str, Any]]:
    """The search's result events (the confirmation's left out), in record order."""
    events, _ = read_events(output_dir / RECORD_FILE)
    staged = {e["trial_id"] for e in events if e["event"] == "start" and e.get("stage")}
    return [e for e in events if e["event"] == "result" and e["trial_id"] not in staged]


def val_hv_at_budget(output_dir: Path, budget: int, max_epochs: int) -> float:
    """val_hv over the trials whose max_epochs results all lie in the first `budget` results."""
    by_trial: dict[str, dict[int, dict[str, float]]] = {}
    for e in search_results(output_dir)[:budget]:
        by_trial.setdefault(e["trial_id"], {})[e["epoch"]] = e["metrics"]
    primary = OBJECTIVES[0]  # val_macro_f1: search.metric, the epoch the report counts
    rows = []
    for results in by_trial.values():
        if len(results) == max_epochs:
            _, values = counted_values(results, OBJECTIVES, primary, "best")
            rows.append([values[o.metric] for o in OBJECTIVES])
    finite = [r for r in rows if all(math.isfinite(v) for v in r)]
    return front_hv(np.array(finite).reshape(-1, len(OBJECTIVES)), OBJECTIVES)


def confirmed_hv(output_dir: Path) -> float | None:
    """The confirmed front's hypervolume on the test split (summary.json's confirmation)."""
    summary = output_dir / "report" / "summary.json"
    confirmation = (
        json.loads(summary.read_text()).get("confirmation") if summary.is_file() else None
    )
    if not confirmation:
        return None
    tested = [Objective(f"test_{o.metric.removeprefix('val_')}", o.direction) for o in OBJECTIVES]
    rows = [
        [c["test"][o.metric]["mean"] for o in tested]
        for c in confirmation["configs"]
        if c["seeds"] and all(o.metric in c["test"] for o in tested)
    ]
    finite = [r for r in rows if r and all(v is not None and math.isfinite(v) for v in r)]
    return front_hv(np.array(finite).reshape(-1, len(tested)), tested)


def confirmed_hv_by_seed(output_dir: Path) -> tuple[float, float]:
    """(mean, 95% t half-width) over the confirmation's seeds of the test hypervolume of each
    seed's front: the configurations the confirmation re-trained, each at that seed's test values
    (NaN half-width with fewer than two seeds; (NaN, NaN) without a confirmation)."""
    tested = [Objective(f"test_{o.metric.removeprefix('val_')}", o.direction) for o in OBJECTIVES]
    configs = group_runs(load_run(output_dir).confirmations)
    hv = []
    for seed in sorted({s for c in configs for s in c.seeds}):
        rows = [
            [c.values[c.seeds.index(seed)].get(o.metric, math.nan) for o in tested]
            for c in configs
            if seed in c.seeds
        ]
        finite = [r for r in rows if all(math.isfinite(v) for v in r)]
        hv.append(front_hv(np.array(finite).reshape(-1, len(tested)), tested))
    if len(hv) < 2:
        return (hv[0] if hv else math.nan), math.nan
    return float(np.mean(hv)), float(
        stats.t.ppf(0.975, len(hv) - 1) * np.std(hv, ddof=1) / math.sqrt(len(hv))
    )


@dataclass(frozen=True)
class Search:
    """One finished search: its output folder, the epochs its trials trained, its wall time."""

    output_dir: Path
    epochs: int
    wall_s: float


def timed(argv: list[str]) -> Search:
    """`search.driver.run` on the config `argv` gives, timed; epochs from its record."""
    from search.config import load_config
    from search.driver import run as run_search
    from spaces import load_space

    cfg = load_config(argv)
    with quiet():
        t0 = time.perf_counter()
        run_search(cfg, load_space(cfg.space))
        wall = time.perf_counter() - t0
    out = Path(cfg.output_dir)
    return Search(out, len(search_results(out)), wall)


def _search(name: str, dataset: str, seed: int, samples: int, size: dict, root: Path) -> Search:
    seeds = size["confirm_seeds"]
    argv = [
        "space=elf",
        *DATASETS[dataset],
        *size["extra"],
        f"search.num_samples={samples}",
        f"search.seed={seed}",
        f"train.max_epochs={size['epochs']}",
        f"scheduler.grace_period={size['grace']}",
        f"scheduler.reduction_factor={size['eta']}",
        f"output_dir={root / f'{dataset}-{name}-{seed}'}",
        "mlflow.enabled=false",
        "verbose=0",
        f"confirm.min_seeds={seeds}",
        f"confirm.max_seeds={seeds}",
        "confirm.top_k=0",  # the front's configurations (and the baseline) only
        *SEARCHES[name],
    ]
    return timed(argv)


def one_seed(dataset: str, seed: int, size: dict, root: Path) -> dict[str, Search]:
    """The four searches of one seed: the early-stopping ones (order rotated by seed), then FIFO
    + random sized to their mean epochs."""
    early = [name for name in EARLY_STOPPING if name in size["searches"]]
    shift = seed % len(early)
    order = early[shift:] + early[:shift]
    row = {name: _search(name, dataset, seed, size["samples"], size, root) for name in order}
    epochs = statistics.mean(row[name].epochs for name in early)
    fifo_samples = max(1, round(epochs / size["epochs"]))
    row["fifo_random"] = _search("fifo_random", dataset, seed, fifo_samples, size, root)
    return row


def score(row: dict[str, Search], max_epochs: int) -> dict[str, dict[str, float | None]]:
    """Per search of one seed: epochs, val_hv, val_hv_at_budget, test_hv."""
    budget = min(search.epochs for search in row.values())
    out = {}
    for name in row:
        out_dir = row[name].output_dir
        out[name] = {
            "epochs": float(row[name].epochs),
            "val_hv": val_hv(out_dir),
            "val_hv_at_budget": val_hv_at_budget(out_dir, budget, max_epochs),
            "test_hv": confirmed_hv(out_dir),
            **dict(zip(PER_SEED, confirmed_hv_by_seed(out_dir), strict=True)),
            "wall_s": row[name].wall_s,
        }
    return out


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def gain(scores: list[dict[str, dict[str, float | None]]], name: str) -> tuple[float, float, float]:
    """(mean, low, high) of `name`'s test_hv minus the incumbent's over the search seeds, paired
    by seed, with the 95% t-interval (NaN bounds with fewer than two seeds)."""
    d = np.array([s[name]["test_hv"] - s[INCUMBENT]["test_hv"] for s in scores], dtype=float)
    if len(d) < 2:
        return float(d.mean()), math.nan, math.nan
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def winner(scores: list[dict[str, dict[str, float | None]]]) -> str:
    """The search whose confirmed fronts beat the incumbent's (`gain`'s interval above 0), the
    largest mean gain of several; else the incumbent: a default changes only on evidence."""
    ahead = {n: gain(scores, n) for n in scores[0] if n != INCUMBENT}
    ahead = {n: g for n, g in ahead.items() if g[1] > 0}
    return max(ahead, key=lambda n: ahead[n][0]) if ahead else INCUMBENT


def run(quick: bool) -> Figures:
    """The four searches' front hypervolumes per dataset (medians over seeds)."""
    size = SIZES[quick]
    figures: Figures = {
        "searches": ", ".join(size["searches"]),
        "seeds": size["seeds"],
        "num_samples": size["samples"],
        "max_epochs": size["epochs"],
        "confirm_seeds": size["confirm_seeds"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-front-") as tmp, ray_session():
        root = Path(tmp)
        for dataset in size["datasets"]:
            scores = [
                score(one_seed(dataset, seed, size, root), size["epochs"])
                for seed in range(size["seeds"])
            ]
            for name in size["searches"]:
                for figure in (*FIGURES, "wall_s"):
                    values = [s[name][figure] for s in scores]
                    figures[f"{dataset}_{name}_{figure}"] = _median(values)
                if INCUMBENT in scores[0] and name != INCUMBENT:
                    mean, low, high = gain(scores, name)
                    figures[f"{dataset}_{name}_test_hv_gain"] = mean
                    figures[f"{dataset}_{name}_test_hv_gain_low"] = low
                    figures[f"{dataset}_{name}_test_hv_gain_high"] = high
            figures[f"winner_{dataset}"] = winner(scores) if INCUMBENT in scores[0] else "n/a"
    winners = {figures[f"winner_{d}"] for d in size["datasets"]}
    figures["default"] = winners.pop() if len(winners) == 1 else INCUMBENT
    return figures
