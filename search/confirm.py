"""The confirmation stage: after the search, re-train its candidates and the plain-CE baseline with
the same paired seeds, choose each run's epoch on validation and score that epoch on the test split.

Candidates: the `confirm.top_k` best full-budget trials by search.metric (validation) and, with
`confirm.front`, the report's Pareto front, plain CE left out. Baseline options: the best
full-budget plain-CE trial of the search and each candidate's plain-CE twin (its train.* values with
a plain-CE loss); the report takes as the baseline the option with the best mean validation value
over the paired seeds, so the baseline's learning rate is tuned over as many values as the
candidates' and a Δ measures the loss configuration. Every configuration
trains with seeds 1..`confirm.seeds` (the search's trials use their own `seed`, 0 by default) for
the full budget, without early stopping, as Ray tasks with a trial's resources. A finished run goes
to record.jsonl as a confirmation run (record.schema): MLflow mirrors it like a trial, the report
reads it, and a resumed search re-trains only the runs the record has not ended.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from record import BASELINE, CANDIDATE, COMPLETED, CONFIRMATION, FAILED, RECORD_FILE, RecordWriter
from search.config import SearchConfig
from search.outputs import ranked
from trainables.dataset import Dataset
from trainables.objective import Objective
from trainables.params import as_plain_ce, is_plain_ce
from trainables.plugins import BUILT_IN, Plugins

if TYPE_CHECKING:  # reports pulls in plotting: imported where the stage runs, not at startup
    from reports.load import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """One confirmation run to train."""

    run_id: str
    source: str  # the search trial whose configuration it re-trains
    role: str
    seed: int
    config: dict[str, Any]


def paired_seeds(n: int) -> list[int]:
    """The seeds every confirmed configuration trains with."""
    return list(range(1, n + 1))


def run_id(source: str, seed: int) -> str:
    return f"confirm_{source}_s{seed}"


def choose(run: Run, cfg: SearchConfig) -> dict[str, tuple[str, dict[str, Any]]]:
    """{source label: (role, params)} of the configurations to confirm: the candidates (top-k by
    the search metric and the front, loss settings other than plain CE) and the plain-CE options
    the baseline is chosen from (the best plain-CE search trial, and each candidate's plain-CE
    twin: its params with a plain-CE loss), equivalent configurations once."""
    from reports import analyse
    from search.searcher import config_key

    params = {t.trial_id: dict(t.params) for t in run.trials}
    order = [tid for tid, _ in ranked(run.trials, cfg.search.objective)]
    plain = [t for t in order if is_plain_ce(params[t])]
    chosen = [t for t in order if t not in plain][: cfg.confirm.top_k]
    if cfg.confirm.front:
        front = analyse(run, list(cfg.report.objectives)).front
        chosen += [t for t in front if t not in chosen and t not in plain]
    options = {tid: params[tid] for tid in plain[:1]}
    options |= {f"{tid}_plain_ce": as_plain_ce(params[tid]) for tid in chosen}
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    seen: set[str] = set()
    for label, option in options.items():
        key = config_key(option)
        if key not in seen:
            seen.add(key)
            out[label] = (BASELINE, option)
    for tid in chosen:
        out[tid] = (CANDIDATE, params[tid])
    return out


def plan(output_dir: Path, cfg: SearchConfig) -> list[Planned]:
    """Every confirmation run the record has not ended, seed by seed (an interrupted stage leaves
    whole pairs behind as far as it can)."""
    from reports import load_run

    run = load_run(output_dir)  # the record read once: the search's trials and the runs so far
    ended = {t.trial_id for t in run.confirmations if t.state}
    chosen = choose(run, cfg)
    todo = []
    for seed in paired_seeds(cfg.confirm.seeds):
        for source, (role, params) in chosen.items():
            rid = run_id(source, seed)
            if rid not in ended:
                config = params | {"seed": seed, "train.max_epochs": cfg.train.max_epochs}
                todo.append(Planned(rid, source, role, seed, config))
    return todo


def retrain(
    config: dict[str, Any], data: Dataset, objective: Objective, gpu: bool, plugins: Plugins
) -> dict[str, Any]:
    """Train `config` for its full budget; return the epoch with the best validation `objective`
    (the trial's own `best_epoch`), its validation metrics, the test split's metrics (test_*) and
    predicted class ids of the model at that epoch (the trainable passes it to `ctx.report`).
    train_time_s is the whole run's. Raises what training raises."""
    import torch

    from trainables.context import evaluate
    from trainables.trial import pick_device, predict_best

    device = pick_device(gpu)
    logits, history = predict_best(
        config, data, data.test, plugins=plugins, objective=objective, device=device
    )
    chosen = history[-1]["best_epoch"]
    test = data.test.to(device)
    metrics = {k: v for k, v in history[chosen].items() if k.startswith("val_")}
    metrics |= evaluate(logits, test, data, "test_", history[chosen])  # val's temperatures
    blocks = logits.split(data.task_sizes or (data.num_classes,), dim=1)
    predicted = torch.stack([b.argmax(1) for b in blocks], dim=1)
    metrics["train_time_s"] = history[-1]["train_time_s"]
    return {
        "epoch": chosen,
        "epochs": len(history),
        "metrics": metrics,
        "predictions": (predicted if data.tasks else predicted[:, 0]).cpu().tolist(),
        "device": device.type,
    }


def run_confirmation(
    cfg: SearchConfig, output_dir: Path, data: Dataset, plugins: Plugins = BUILT_IN
) -> int:
    """Train what `plan` says (nothing when confirm.seeds is 0 or the data has no test split);
    the number of runs trained. A failing run is recorded as failed, never fatal; Ctrl-C stops
    the stage and keeps the finished runs."""
    if cfg.confirm.seeds <= 0 or not len(data.test):
        return 0
    todo = plan(output_dir, cfg)
    if not todo:
        return 0
    configs = len({p.source for p in todo})
    log.info("confirming %d configuration(s) on the test split: %d run(s)", configs, len(todo))
    writer = RecordWriter(output_dir / RECORD_FILE)
    try:
        with interruptible():
            _run_tasks(cfg, todo, data, plugins, writer)
    finally:
        writer.close()
    return len(todo)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here: Ray Tune's run leaves its own SIGINT handler behind,
    which only flags a stop for a search that has ended (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_tasks(
    cfg: SearchConfig, todo: list[Planned], data: Dataset, plugins: Plugins, writer: RecordWriter
) -> None:
    import ray

    from search.tuner import gpu_fraction

    gpu = gpu_fraction(cfg.resources.gpu_per_trial, ray.cluster_resources().get("GPU", 0))
    task = ray.remote(retrain).options(num_cpus=cfg.resources.cpu_per_trial, num_gpus=gpu)
    data_ref = ray.put(data)
    objective = cfg.search.objective
    pending = {task.remote(p.config, data_ref, objective, gpu > 0, plugins): p for p in todo}
    while pending:  # on Ctrl-C the tasks end with the driver's job (ray.cancel races completion)
        [ref], _ = ray.wait(list(pending), num_returns=1)
        _write(writer, pending.pop(ref), ref)


def _write(writer: RecordWriter, p: Planned, ref: Any) -> None:
    """The finished run's start, result and end events (a failure: start and a failed end)."""
    import ray

    start = time.time()
    head = {"trial_id": p.run_id}
    writer.write(
        head
        | {"event": "start", "time": start, "params": p.config, "stage": CONFIRMATION}
        | {"source": p.source, "role": p.role}
    )
    try:
        out = ray.get(ref)
    except Exception as error:  # a failing run never takes the others down
        lines = [line for line in str(error).splitlines() if line.strip()]
        reason = lines[-1] if lines else type(error).__name__
        writer.write(
            head | {"event": "end", "state": FAILED, "reason": reason, "error": str(error)}
        )
        return
    writer.write(
        head
        | {"event": "result", "epoch": out["epoch"], "device": out["device"]}
        | {"metrics": out["metrics"], "predictions": out["predictions"]}
    )
    writer.write(head | {"event": "end", "state": COMPLETED, "epochs": out["epochs"]})
