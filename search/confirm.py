"""The confirmation stage: after the search, re-train its candidates and the plain-CE baseline with
paired seeds, choose each run's epoch on validation and score that epoch on the test split;
sequentially, adding seeds only where a verdict is still open.

Candidates: the `confirm.top_k` best full-budget trials by search.metric (validation), with
`confirm.front` the report's Pareto front, with `confirm.families` the best trial of each family
(trainables.params.families; a family none of whose trials trained the full budget: its best
stopped early) and the sides of each `confirm.versus` pair, plain CE left out, one per canonical
configuration (trials that train identically are confirmed once, said once). Baseline options: the best
full-budget plain-CE trial of the search and each candidate's plain-CE twin (its train.* values
with a plain-CE loss); the baseline is the option with the best mean validation value over the
seeds every option finished (the first `confirm.min_seeds`), so its learning rate is tuned over as many values as the
candidates' and a Δ measures the loss configuration.

Rounds: every configuration first trains seeds 1..`confirm.min_seeds`. Then, after each look at the
verdicts on search.metric (reports.confirmation: an anytime-valid interval, so looking after every
round keeps its error rates), each candidate whose verdict is still open gets its next seeds — as
many as fill the free trial slots, at least one — and the baseline the seeds they pair with, until
every verdict is decided, has tried seed `confirm.max_seeds`, or is futile (from FUTILE_AFTER seeds on,
its estimated seeds to a verdict exceed FUTILE_BEYOND × the budget, or only a larger test split
could decide it: reports.defaults). The plan is a function of the
record alone: a resumed stage continues the round it was in without re-training what finished, and
a finished one resumed with a larger budget continues the sequence (valid: the interval holds at
every number of seeds). Runs are Ray tasks with a trial's resources; a finished run goes to
record.jsonl as a confirmation run (record.schema) and each look as a `look` event, which MLflow
mirrors as the parent run's interval metrics (step = paired seeds).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from record import (
    BASELINE,
    CANDIDATE,
    COMPLETED,
    CONFIRMATION,
    FAILED,
    LOOK,
    RECORD_FILE,
    RecordWriter,
    TrialRecord,
)
from search.config import SearchConfig, versus_pair
from trainables.canonical import DataFacts, family_of
from trainables.data.dataset import Dataset
from trainables.objective import Objective, ranked, search_rank
from trainables.params import as_plain_ce, family_names, is_plain_ce
from trainables.plugins import BUILT_IN, Plugins

if TYPE_CHECKING:  # reports pulls in plotting: imported where the stage runs, not at startup
    from reports.confirmation import Confirmation
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


@dataclass(frozen=True)
class Round:
    """What the record says comes next: the runs to train, the candidates still open after the
    last look (None before the first), the look event to record (its figures, its epoch: the
    confirmation runs ended before it, and the merges), and the merge notes."""

    todo: list[Planned]
    open: list[str] | None = None
    look: dict[str, Any] | None = None
    merged: list[str] = field(default_factory=list)


def run_id(source: str, seed: int) -> str:
    return f"confirm_{source}_s{seed}"


def choose(
    run: Run, cfg: SearchConfig, facts: DataFacts | None = None
) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[str]]:
    """({source label: (role, params)} of the configurations to confirm, the merge notes): the
    candidates (top-k by the search metric and the front, loss settings other than plain CE; with
    confirm.families the best trial of each family, with confirm.versus the best of each side, by
    `search_rank`: full-budget trials first, then those stopped early) and
    the plain-CE options the baseline is chosen from (the best plain-CE search trial, and each
    candidate's plain-CE twin: its params with a plain-CE loss); configurations that `canonical`
    calls equal once, the first in rank order."""
    from reports import analyse
    from search.searcher import config_key

    params = {t.trial_id: dict(t.params) for t in run.trials}
    order = [tid for tid, _ in ranked(run.trials, cfg.search.objective)]
    plain = [t for t in order if is_plain_ce(params[t])]
    picked = [t for t in order if t not in plain][: cfg.confirm.top_k]
    if cfg.confirm.front:
        front = analyse(run, list(cfg.report.objectives)).front
        picked += [t for t in front if t not in picked and t not in plain]
    wanted = [(f, "") for f in family_names()] if cfg.confirm.families else []
    for a, b in (versus_pair(pair) for pair in cfg.confirm.versus):
        wanted += [(a, b), (b, a)]
    ranked_all = [t for t in search_rank(run.trials, cfg.search.objective) if t not in plain]
    mine = {t: family_of(params[t]) for t in ranked_all} if wanted else {}
    for has, lacks in wanted:
        best = next((t for t, f in mine.items() if has in f and lacks not in f), None)
        if best is not None and best not in picked:
            picked.append(best)
    keys: dict[str, str] = {}
    merged = []
    chosen = []
    for tid in picked:
        key = config_key(params[tid], facts)
        if key in keys:
            merged.append(f"trial {tid} trains as trial {keys[key]} does: confirmed once, as that")
            continue
        keys[key] = tid
        chosen.append(tid)
    options = {tid: params[tid] for tid in plain[:1]}
    options |= {f"{tid}_plain_ce": as_plain_ce(params[tid]) for tid in chosen}
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    seen: set[str] = set()
    for label, option in options.items():
        key = config_key(option, facts)
        if key not in seen:
            seen.add(key)
            out[label] = (BASELINE, option)
    for tid in chosen:
        out[tid] = (CANDIDATE, params[tid])
    return out, merged


def plan(
    output_dir: Path, cfg: SearchConfig, slots: int = 1, facts: DataFacts | None = None
) -> Round:
    """The next round, from the record alone (see the module docstring)."""
    from reports import load_run

    run = load_run(output_dir)  # the record read once: the search's trials and the runs so far
    chosen, merged = choose(run, cfg, facts)
    ended = {t.trial_id for t in run.confirmations if t.state}
    first = paired_seeds(cfg.confirm.min_seeds)
    todo = [
        _planned(source, role, params, seed, cfg)
        for seed in first
        for source, (role, params) in chosen.items()
        if run_id(source, seed) not in ended
    ]
    if todo:
        return Round(todo, merged=merged)
    mine = [t for t in run.confirmations if t.source in chosen]
    looked = look_at(mine, run, cfg)
    if looked is None or looked.baseline is None:
        return Round([], [], merged=merged)
    tried = {src: max(_seeds(mine, src), default=0) for src in chosen}
    need = next_seeds(looked, tried, cfg.confirm.max_seeds, slots)
    todo = [
        _planned(label, chosen[label][0], chosen[label][1], seed, cfg)
        for label, seeds in need.items()
        for seed in seeds
        if run_id(label, seed) not in ended
    ]
    still = [label for label in need if label != looked.baseline.label]
    look = _look_event(looked, run) | {"epoch": len(ended), "merged": merged}
    return Round(todo, still, look, merged)


def next_seeds(
    looked: Confirmation, tried: dict[str, int], budget: int, slots: int = 1
) -> dict[str, range]:
    """{configuration: the seeds it trains next} after a look. Each comparison on the primary
    metric that is undecided, below the budget and not futile (`_futile`) is open: a candidate
    against the baseline, or a confirm.versus pair's two sides. An open comparison's
    configurations train up to `per` seeds past the seeds they share (as many as fill `slots`
    with the others, at least one, up to the budget), and the baseline every seed up to the
    highest any candidate has tried or will. `tried`: the highest seed each configuration has
    ended (finished or failed), so a failing seed is not tried again."""
    from reports.confirmation import UNDECIDED

    primary = looked.primary.metric
    compared = {(label,): c[primary] for label, c in looked.comparisons.items()}
    compared |= {looked.sides[pair]: c[primary] for pair, c in looked.versus.items()}
    open_ = [
        labels
        for labels, cmp in compared.items()
        if cmp.verdict == UNDECIDED
        and all(tried.get(label, 0) < budget for label in labels)
        and not _futile(cmp, budget)
    ]
    per = max(1, slots // (len({x for labels in open_ for x in labels}) + 1))
    upto: dict[str, int] = {}
    for labels in open_:
        target = min(min(tried.get(label, 0) for label in labels) + per, budget)
        for label in labels:
            upto[label] = max(upto.get(label, 0), target)
    need = {
        label: range(tried.get(label, 0) + 1, n + 1)
        for label, n in upto.items()
        if n > tried.get(label, 0)
    }
    if looked.baseline is not None and looked.comparisons:
        ends = [tried.get(c, 0) for c in looked.comparisons] + [r.stop - 1 for r in need.values()]
        need[looked.baseline.label] = range(1, min(max(ends), budget) + 1)
    return need


def _futile(cmp: Any, budget: int) -> bool:
    """An open comparison the budget will not decide: from FUTILE_AFTER paired seeds on, its
    estimated seeds to a verdict exceed FUTILE_BEYOND × the budget (inf: only a larger test split
    could decide it)."""
    from reports.defaults import FUTILE_AFTER, FUTILE_BEYOND

    return cmp.seeds >= FUTILE_AFTER and cmp.needed > FUTILE_BEYOND * budget


def paired_seeds(n: int) -> list[int]:
    """The seeds every confirmed configuration trains first."""
    return list(range(1, n + 1))


def _seeds(runs: list[TrialRecord], source: str) -> list[int]:
    """The seeds of `source` the record has ended (finished or failed)."""
    return [int(t.params.get("seed", 0)) for t in runs if t.source == source and t.state]


def _planned(
    source: str, role: str, params: dict[str, Any], seed: int, cfg: SearchConfig
) -> Planned:
    config = params | {"seed": seed, "train.max_epochs": cfg.train.max_epochs}
    return Planned(run_id(source, seed), source, role, seed, config)


def look_at(runs: list[TrialRecord], run: Run, cfg: SearchConfig) -> Confirmation | None:
    """The verdicts on search.metric alone from `runs`, computed as the report computes them."""
    from reports.confirmation import confirm, task_labels

    primary = cfg.search.objective
    return confirm(
        runs,
        [primary],
        primary,
        task_labels(run.facts),
        alpha=cfg.confirm.alpha,
        resamples=cfg.confirm.bootstrap,
        delta=cfg.confirm.delta,
        budget=cfg.confirm.max_seeds,
        versus=[versus_pair(pair) for pair in cfg.confirm.versus],
        rank=search_rank(run.trials, primary),
    )


def _look_event(looked: Confirmation, run: Run) -> dict[str, Any]:
    """The look's figures per candidate not yet recorded at its number of paired seeds: Δ, its
    interval, the paired seeds and the verdict (record.schema LOOK)."""
    metric = looked.primary.metric
    seen = {(c, f["seeds"]) for e in run.looks for c, f in e.get("figures", {}).items()}
    figures = {}
    for label, compared in looked.comparisons.items():
        x = compared[metric]
        if (label, x.seeds) not in seen and x.seeds:
            d = x.delta
            values = {"delta": d.estimate, "low": d.low, "high": d.high}
            figures[label] = {"seeds": x.seeds, "verdict": x.verdict}
            figures[label] |= {k: v if math.isfinite(v) else None for k, v in values.items()}
    return {"metric": metric, "figures": figures}


def retrain(
    config: dict[str, Any], data: Dataset, objective: Objective, gpu: bool, plugins: Plugins
) -> dict[str, Any]:
    """Train `config` for its full budget; return the epoch with the best validation `objective`
    (the trial's own `best_epoch`), its validation metrics, the test split's metrics (test_*) and
    predicted class ids of the model at that epoch (the trainable passes it to `ctx.report`).
    train_time_s is the whole run's. Raises what training raises."""
    import torch

    from trainables.trial.context import evaluate
    from trainables.trial.loop import pick_device, predict_best

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
    cfg: SearchConfig,
    output_dir: Path,
    data: Dataset,
    plugins: Plugins = BUILT_IN,
    facts: DataFacts | None = None,
) -> int:
    """Train round after round what `plan` says (nothing when confirm.max_seeds is 0 or the data
    has no test split); the number of runs trained. A failing run is recorded as failed, never
    fatal; Ctrl-C stops the stage and keeps the finished runs."""
    if cfg.confirm.max_seeds <= 0 or not len(data.test):
        return 0
    import ray

    from search.tuner import concurrency, gpu_fraction

    gpus = ray.cluster_resources().get("GPU", 0)
    gpu = gpu_fraction(cfg.resources.gpu_per_trial, gpus)
    slots = concurrency(cfg, ray.cluster_resources().get("CPU", 1), gpus, gpu)
    writer = RecordWriter(output_dir / RECORD_FILE)
    trained, said = 0, False
    try:
        with interruptible():
            while True:
                step = plan(output_dir, cfg, slots, facts)
                if not said:
                    for line in step.merged:
                        log.info("confirmation: %s", line)
                    said = True
                if step.look is not None and step.look["figures"]:
                    writer.write({"event": LOOK, "trial_id": LOOK} | step.look)
                if not step.todo:
                    return trained
                _say(step)
                _run_tasks(cfg, step.todo, data, plugins, writer, gpu)
                trained += len(step.todo)
    finally:
        writer.close()


def _say(step: Round) -> None:
    configs = len({p.source for p in step.todo})
    if step.open is None:
        log.info(
            "confirming %d configuration(s) on the test split: %d run(s) first",
            configs,
            len(step.todo),
        )
    else:
        log.info(
            "confirmation: %d verdict(s) open (%s): %d more run(s)",
            len(step.open),
            ", ".join(step.open) or "pairing the baseline",
            len(step.todo),
        )


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
    cfg: SearchConfig,
    todo: list[Planned],
    data: Dataset,
    plugins: Plugins,
    writer: RecordWriter,
    gpu: float,
) -> None:
    import ray

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
