"""Seed robustness (`report.reseeds=N`): re-train each Pareto-front config with N new seeds.

After a finished search, each config on the front (finished, full-budget trials, as the report
computes it) trains again for `train.max_epochs` epochs, without early stopping, as Ray tasks over
the dataset in the object store. Each re-training is scored on the validation split (the report's
objectives) and, for these finalists only, on the test split (`test_*`). One JSON line per
(finalist trial id, seed) goes to <output_dir>/reseed.jsonl (format: reports/reseed.py); pairs
already there are not re-run, so a resumed search does only the rest. Re-trainings are not search
trials: they never reach record.jsonl, the Optuna study or Ray Tune.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from record import RESEED_FILE
from reports.reseed import read_reseeds
from search.config import SearchConfig
from trainables.dataset import Dataset
from trainables.objective import Objective

SEED_STRIDE = 1_000_003  # new seed k (1..N) of a config = its seed + k * SEED_STRIDE: never its own
log = logging.getLogger(__name__)


def new_seeds(original: int, n: int) -> list[int]:
    """The `n` re-training seeds of a config trained with seed `original` (all differ from it)."""
    return [original + k * SEED_STRIDE for k in range(1, n + 1)]


def finalists(output_dir: Path, objectives: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{trial id: params} of the Pareto front over the search's finished, full-budget trials."""
    from reports import analyse, load_run

    analysis = analyse(load_run(output_dir), list(objectives))
    return {tid: dict(analysis.row(tid).params) for tid in analysis.front}


def best_index(history: Sequence[Mapping[str, Any]], metric: str, mode: str) -> int:
    """Index of the epoch with the best `metric` in `history` (ties: the earliest)."""
    return Objective(metric, mode).best_index([h[metric] for h in history])


def retrain(
    params: Mapping[str, Any], data: Dataset, metric: str, mode: str, gpu: bool
) -> dict[str, Any]:
    """Train `params` for their full budget; return the best-`metric` epoch's metrics (totals such
    as train_time_s from the last epoch) and that epoch's model scored on the test split (test_*).

    Raises what training raises (e.g. NonFiniteError).
    """
    import torch

    from reports.defaults import TOTAL_METRICS
    from trainables.models import build_model
    from trainables.trial import evaluate, pick_device, prepare_params, train

    trial = prepare_params(dict(params), data)
    device = pick_device(gpu)
    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] = {}

    def keep(metrics: dict[str, Any], ckpt: dict[str, Any]) -> None:
        history.append(dict(metrics))
        if best_index(history, metric, mode) == len(history) - 1:
            best_state.clear()
            best_state.update({k: v.detach().cpu().clone() for k, v in ckpt["model"].items()})

    train(trial, data, keep, device)
    row = history[best_index(history, metric, mode)] | {
        t: history[-1][t] for t in TOTAL_METRICS if t in history[-1]
    }
    if len(data.test):  # data.test_frac=0: no test split, validation figures only
        model = build_model(data.num_features, data.num_classes, data.vocab_size, trial)
        model.load_state_dict(best_state)
        minority = int(torch.argmin(data.train_counts()))
        scores = evaluate(model.to(device), data.test.to(device), data.num_classes, minority)
        row |= {f"test_{k.removeprefix('val_')}": v for k, v in scores.items()}
    return row | {"epochs": len(history), "device": device.type}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of reseed.jsonl (reports.reseed.read_reseeds, tolerant); a last line cut by a kill
    is dropped from the file too, so that its pair runs again and the next row starts a line."""
    rows = read_reseeds(path, tolerant=True)
    if rows is None:
        return []
    text = path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(rows) < len(lines) or not text.endswith("\n"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def plan(
    front: Mapping[str, Mapping[str, Any]], n: int, done: set[tuple[str, int]], max_epochs: int
) -> list[tuple[str, int, dict[str, Any]]]:
    """(trial id, seed, flat config) of every re-training not in `done`, in trial-id order."""
    out = []
    for tid, params in sorted(front.items()):
        for seed in new_seeds(int(params.get("seed", 0)), n):
            if (tid, seed) not in done:
                config = dict(params) | {"seed": seed, "train.max_epochs": max_epochs}
                out.append((tid, seed, config))
    return out


def run_reseeds(cfg: SearchConfig, output_dir: Path, data: Dataset) -> None:
    """Re-train the search's finalists with `report.reseeds` new seeds each (no-op at 0).

    A failed re-training is a row with its `error`; any other error is a warning, never a failure
    of the search. Ctrl-C cancels the tasks still running; finished rows stay.
    """
    if cfg.report.reseeds <= 0:
        return
    try:
        path = output_dir / RESEED_FILE
        done = {(str(r.get("config")), int(r.get("seed", -1))) for r in read_rows(path)}
        front = finalists(output_dir, cfg.report.objectives)
        todo = plan(front, cfg.report.reseeds, done, cfg.train.max_epochs)
    except Exception as e:  # the search's results stand without reseeds
        log.warning("no reseeds: %s", e)
        return
    if not todo:
        return
    log.info("re-training %d finalist config(s) with new seeds: %d run(s)", len(front), len(todo))
    try:
        _run_tasks(cfg, todo, data, path)
    except Exception as e:  # rows written so far stay; a resume runs the rest
        log.warning("reseeds stopped: %s", e)


def _run_tasks(
    cfg: SearchConfig, todo: list[tuple[str, int, dict[str, Any]]], data: Dataset, path: Path
) -> None:
    """Run `todo` as Ray tasks with a trial's resources; append each row to `path` as it ends."""
    import ray

    from search.tuner import gpu_fraction

    gpu = gpu_fraction(cfg.resources.gpu_per_trial, ray.cluster_resources().get("GPU", 0))
    task = ray.remote(retrain).options(num_cpus=cfg.resources.cpu_per_trial, num_gpus=gpu)
    data_ref = ray.put(data)
    metric, mode = cfg.search.metric, cfg.search.mode
    pending = {task.remote(c, data_ref, metric, mode, gpu > 0): (t, s) for t, s, c in todo}
    try:
        with path.open("a") as out:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                tid, seed = pending.pop(ref)
                out.write(json.dumps(_row(ref, tid, seed)) + "\n")
                out.flush()
    finally:
        for ref in pending:
            ray.cancel(ref)


def _row(ref: Any, trial_id: str, seed: int) -> dict[str, Any]:
    """The reseed.jsonl row of a finished task: its metrics, or its error."""
    import ray

    head = {"config": trial_id, "seed": seed}
    try:
        result = ray.get(ref)
    except Exception as e:  # a failing re-training never takes the others down
        lines = [line for line in str(e).splitlines() if line.strip()]
        return head | {"error": lines[-1] if lines else type(e).__name__, "time": time.time()}
    return head | result | {"time": time.time()}
