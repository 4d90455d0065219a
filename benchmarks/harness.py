"""Harness efficiency, ours against plain Ray Tune: `python -m benchmarks harness`.

N trials of a fixed workload (the real trial: plain cross-entropy on synthetic data sized so that
one trial takes about 0.5, 2 or 8 s warm) on every local CPU, once through `search.driver.run`
(FIFO over a grid of seeds, MLflow on SQLite, Pareto report) and once through plain Ray Tune with
its defaults (the same function trainable, no actor reuse, Ray's default loggers and experiment
snapshots, MLflowLoggerCallback on SQLite):

    ideal = Σ epochs executed × warm epoch time (`train` in this process, 1 thread) / slots
    efficiency = ideal / wall

`wall` is the whole search call (data, Tuner, trials, MLflow, report) with Ray already running;
Ray's own start (`ray_init_s`) is measured apart, and the MLflow databases exist beforehand (as
after a user's first search). Each repeat measures the warm work, then runs ours and the baseline
back to back (alternating which goes first), so a change in the machine's load hits both; figures
are medians over repeats. Where ours loses time is split out: `startup_s` (to the first result,
less one warm epoch: worker start and imports), `tail_s` (after the last trial: MLflow, report),
`epoch_overhead_ms` (between two results of a trial, less that epoch's own time: report,
checkpoint, driver round trip), `epoch_slowdown` (an epoch's time inside the search over its warm
time alone: CPU shared with the other trials, the driver and Ray), and `cold_worker_s` (what a
fresh worker process imports, timed in one). `machine_scaling` = a warm trial in one plain
process (no Ray) / the same while `slots` such processes train at once: what the machine itself
allows (1.0 when slots scale perfectly; vCPUs that share a core, or other load, give less), and
`ours_efficiency_of_machine` = ours_efficiency / machine_scaling.

The helpers (`ray_session`, `Workload`, `run_ours`, `timed_search`, `run_baseline`, `warm_trial_s`,
`paired`) are shared by the logging, search and gpu parts.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks import Figures

EPOCHS = 12  # the default train.max_epochs
LENGTHS = (0.5, 2.0, 8.0)  # warm seconds of one trial
TARGETS = {0.5: 0.75, 2.0: 0.90}  # efficiency of our harness by trial length
# The targets table (benchmarks.target_rows): (what, measured figure, target, met figure).
SUMMARY = [
    (
        f"efficiency, {t:g}-s trials",
        f"t{t:g}s_ours_efficiency",
        f">= {e:.2f}",
        f"t{t:g}s_target_met",
    )
    for t, e in TARGETS.items()
]
CALIBRATION_ROWS = (6000, 24000)  # n_train of the two warm epochs timed to size the workloads
MIN_ROWS = 512
BASE_CONFIG = {"loss.kind": "ce", "elf.strategy": "none"}  # the trial every run repeats
# Environment that search.driver.quiet_ray sets; the baseline runs without it (Ray's defaults).
QUIET_RAY_ENV = (
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
    "TUNE_GLOBAL_CHECKPOINT_S",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S",
)
# What a fresh Ray worker of a trial imports, in order, timed in a subprocess (seconds each).
COLD_WORKER = """
import json, time
t = [time.perf_counter()]
import ray; t.append(time.perf_counter())
import ray.tune; t.append(time.perf_counter())
import torch; t.append(time.perf_counter())
import trainables.trial.loop; t.append(time.perf_counter())
m = torch.nn.Linear(4, 4); o = torch.optim.AdamW(m.parameters())
m(torch.ones(1, 4)).sum().backward(); o.step(); t.append(time.perf_counter())
names = ["ray", "ray_tune", "torch", "trainables", "first_optimizer_step"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
"""
# One warm trial in a plain process that starts on "go" from stdin (see `parallel_trial_s`).
PARALLEL_TRIAL = """
import sys
from benchmarks.harness import MIN_ROWS, _train
_train(MIN_ROWS, 1)
print("ready", flush=True)
sys.stdin.readline()
print(_train(int(sys.argv[1]), int(sys.argv[2]))[0], flush=True)
"""


@dataclass(frozen=True)
class Sizes:
    trials: int
    lengths: tuple[float, ...]
    repeats: int
    epochs: int
    cold_worker: bool  # time a fresh worker's imports in a subprocess
    warm_up: bool  # start with untimed searches (see `warm_up`)


SIZES = {
    True: Sizes(2, (0.5,), 1, 2, False, False),
    False: Sizes(32, LENGTHS, 3, EPOCHS, True, True),
}
WARM_UP = (2, 2, MIN_ROWS)  # (trials, epochs, rows) of the untimed searches a full run starts with


@dataclass(frozen=True)
class Workload:
    """`trials` identical trials (seeds 0..trials-1) of `epochs` epochs over `rows` training rows."""

    trials: int
    epochs: int
    rows: int


@dataclass(frozen=True)
class Run:
    """One timed search. Ours also has, from its record: when the call started (time.time()),
    seconds from it to the first result and after the last trial ended, the median epoch time
    measured inside the trials, and the median per-epoch overhead (see `epoch_overhead`)."""

    wall_s: float
    epochs: int
    trials: int
    first_result_s: float | None = None
    tail_s: float | None = None
    epoch_s: float | None = None
    epoch_overhead_s: float | None = None
    output_dir: Path | None = None
    start_time: float = 0.0


# ---------------------------------------------------------------- Ray and quiet output


@contextlib.contextmanager
def ray_session() -> Iterator[dict[str, float]]:
    """A new local Ray on every CPU (bound to 127.0.0.1), shut down on exit if this started it.

    Started as a search starts its own (`search.cluster.connect("")`): `address="local"`, so
    that a cluster someone else started on this machine is never joined, and every server on
    loopback. Yields {"slots": CPUs, "gpus": GPUs, "ray_init_s": seconds the start took}.
    """
    import ray

    from search.cluster import connect

    started = not ray.is_initialized()
    t0 = time.perf_counter()
    info = connect("")
    init_s = time.perf_counter() - t0
    try:
        yield {"slots": info.cpus, "gpus": info.gpus, "ray_init_s": init_s}
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow Ray's and MLflow's INFO lines and any printing during a timed search."""
    loggers = [logging.getLogger(n) for n in ("ray", "ray.tune", "ray.train", "mlflow", "search")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def ray_defaults() -> Iterator[None]:
    """Unset the environment `quiet_ray` sets, so a baseline runs on Ray's defaults."""
    saved = {k: os.environ.pop(k) for k in QUIET_RAY_ENV if k in os.environ}
    try:
        yield
    finally:
        for k in QUIET_RAY_ENV:
            os.environ.pop(k, None)
        os.environ.update(saved)


def sqlite_uri(path: Path) -> str:
    """An MLflow SQLite URI whose schema exists already (a user's database after the first search)."""
    import mlflow

    uri = f"sqlite:///{path.resolve()}"
    with quiet():
        mlflow.MlflowClient(uri).search_experiments()
    return uri


# ---------------------------------------------------------------- the work itself


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread, as in a Ray trial with 1 CPU (Ray sets OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(rows: int, epochs: int) -> tuple[float, list[float]]:
    """(wall seconds, seconds of each epoch) of one built-in trial here: no checkpoint, no Ray."""
    from trainables.data.presets import build_dataset
    from trainables.trial.loop import run_local

    data = build_dataset("synthetic", {"n_train": rows})
    with one_thread():
        t0 = time.perf_counter()
        results = run_local(BASE_CONFIG | {"train.max_epochs": epochs}, data)
        return time.perf_counter() - t0, [r["epoch_time_s"] for r in results]


def warm_trial_s(work: Workload) -> float:
    """Seconds one whole trial of `work` takes in this (already warm) process, on one thread."""
    return _train(work.rows, work.epochs)[0]


def parallel_trial_s(work: Workload, slots: int) -> float:
    """Median seconds of one warm trial of `work` while `slots` processes (no Ray) each train one
    at the same time: what this machine gives `slots` concurrent trials at best."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", PARALLEL_TRIAL, str(work.rows), str(work.epochs)]
    procs = [
        subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(slots)
    ]
    for proc in procs:  # each is warm: start them together
        proc.stdout.readline()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    times = [float(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    return statistics.median(times)


def size_for(seconds: float, epochs: int) -> int:
    """n_train whose trial of `epochs` epochs takes about `seconds` warm (epoch time linear in rows);
    each size's epoch time is the fastest of 3 warm epochs, so a moment of load elsewhere on the
    machine does not skew the line (it once sized a 0.5-s trial at 0.13 s)."""
    small, large = CALIBRATION_ROWS
    _train(small, 1)  # warm-up: imports, allocator, the optimizer's first step
    t_small, t_large = (min(_train(rows, 4)[1][1:]) for rows in (small, large))
    per_row = max((t_large - t_small) / (large - small), 1e-9)
    fixed = max(t_small - per_row * small, 0.0)
    return max(MIN_ROWS, round((seconds / epochs - fixed) / per_row))


def cold_worker_s() -> dict[str, float]:
    """Seconds a fresh process spends importing what a trial's worker imports, and the first
    optimizer step."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", COLD_WORKER], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the two harnesses


def grid_space(path: Path, trials: int) -> Path:
    """A space file: the base trial over a grid of `trials` seeds."""
    seeds = ", ".join(str(s) for s in range(trials))
    lines = [f"  {k}: {v}" for k, v in BASE_CONFIG.items()] + [f"  seed:\n    grid: [{seeds}]"]
    path.write_text("description: benchmark workload\nparams:\n" + "\n".join(lines) + "\n")
    return path


def mlflow_args(uri: str | None) -> list[str]:
    return [f"mlflow.tracking_uri={uri}"] if uri else ["mlflow.enabled=false"]


def run_ours(
    work: Workload, out: Path, mlflow_uri: str | None, overrides: tuple[str, ...] = ()
) -> Run:
    """`search.driver.run` over `work` (FIFO, grid of seeds) into `out`; times the whole call."""
    out.parent.mkdir(parents=True, exist_ok=True)
    space = grid_space(out.parent / f"{out.name}-space.yaml", work.trials)
    argv = [
        f"space={space}",
        "scheduler=fifo",
        f"train.max_epochs={work.epochs}",
        f"data.n_train={work.rows}",
        f"output_dir={out}",
        "verbose=0",
        "confirm.max_seeds=0",  # the search is what is measured
        *mlflow_args(mlflow_uri),
        *overrides,
    ]
    return timed_search(argv)


def timed_search(argv: list[str]) -> Run:
    """Load the config from `argv` (CLI overrides), time `search.driver.run`, read its record."""
    from record import RECORD_FILE, read_events
    from search.config import load_config
    from search.driver import run
    from spaces import load_space

    cfg = load_config(argv)
    space = load_space(cfg.space)
    with quiet():
        start, t0 = time.time(), time.perf_counter()
        run(cfg, space)
        wall = time.perf_counter() - t0
    out = Path(cfg.output_dir)
    events, _ = read_events(out / RECORD_FILE)
    results = [e for e in events if e["event"] == "result"]
    ends = [e["time"] for e in events if e["event"] == "end"]
    return Run(
        wall_s=wall,
        epochs=len(results),
        trials=sum(e["event"] == "start" for e in events),
        first_result_s=min((e["time"] for e in results), default=start) - start,
        tail_s=start + wall - max(ends, default=start + wall),
        epoch_s=_median_or_none([e["metrics"]["epoch_time_s"] for e in results]),
        epoch_overhead_s=epoch_overhead(results),
        output_dir=out,
        start_time=start,
    )


def epoch_overhead(results: list[dict[str, Any]]) -> float | None:
    """Median over consecutive results k, k+1 of a trial of t(k+1) − t(k) − epoch_time_s(k+1):
    what reporting, checkpointing and the driver's round trip add to each epoch."""
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for e in results:
        by_trial.setdefault(e["trial_id"], []).append(e)
    return _median_or_none(
        [
            b["time"] - a["time"] - b["metrics"]["epoch_time_s"]
            for events in by_trial.values()
            for a, b in zip(events[:-1], events[1:], strict=True)
        ]
    )


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def baseline_trainable(data: Any) -> Any:
    """The project's function trainable with the dataset, as a plain Ray Tune user passes it."""
    from ray import tune

    from search.tune_trial import tune_trial

    return tune.with_resources(tune.with_parameters(tune_trial, data=data), {"cpu": 1})


def run_baseline(work: Workload, out: Path, mlflow_uri: str | None) -> Run:
    """Plain Ray Tune over the same trials: Ray's defaults, MLflowLoggerCallback, no actor reuse."""
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from trainables.data.presets import build_dataset

    callbacks = (
        [MLflowLoggerCallback(tracking_uri=mlflow_uri, experiment_name="plain-ray-tune")]
        if mlflow_uri
        else []
    )
    space = BASE_CONFIG | {
        "seed": tune.grid_search(list(range(work.trials))),
        "train.max_epochs": work.epochs,
    }
    with ray_defaults(), quiet():
        t0 = time.perf_counter()
        data = build_dataset("synthetic", {"n_train": work.rows})
        tuner = tune.Tuner(
            baseline_trainable(data),
            param_space=space,
            tune_config=tune.TuneConfig(metric="val_macro_f1", mode="max"),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(out.resolve()), callbacks=callbacks, verbose=0
            ),
        )
        grid = tuner.fit()
        wall = time.perf_counter() - t0
    epochs = sum(int(r.metrics.get("training_iteration", 0)) for r in grid)
    return Run(wall_s=wall, epochs=epochs, trials=len(grid), output_dir=out)


def warm_up(root: Path, uri: str | None, baseline: bool = False) -> None:
    """One tiny untimed search (and baseline), so that no timed one pays this process's first
    imports (the report's matplotlib, MLflow's store, Optuna); and `optuna.importance`, which a
    search this small does not reach (it imports scikit-learn where installed: about 1.3 s)."""
    import optuna.importance  # noqa: F401

    work = Workload(*WARM_UP)
    run_ours(work, root / "warm-up", uri)
    run_ours(work, root / "warm-up-asha", None, ("search.algorithm=optuna", "scheduler=asha"))
    if baseline:
        run_baseline(work, root / "warm-up-baseline", uri)


# ---------------------------------------------------------------- pairing and the part


def paired(
    sides: dict[str, Callable[[int], Any]], repeats: int, before: Callable[[int], Any] | None = None
) -> list[dict[str, Any]]:
    """Per repeat r: `before(r)` (if given), then every side(r), the order rotated each repeat.

    Returns one {"before": ..., side: result, ...} per repeat.
    """
    names = list(sides)
    rounds = []
    for r in range(repeats):
        row: dict[str, Any] = {"before": before(r) if before else None}
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            row[name] = sides[name](r)
        rounds.append(row)
    return rounds


def median(values: list[float]) -> float:
    return statistics.median(values)


def efficiency(run: Run, trial_s: float, epochs: int, slots: float, lost_s: float = 0.0) -> float:
    """ideal / (wall − lost_s), ideal = epochs executed × warm epoch seconds / slots."""
    return run.epochs * (trial_s / epochs) / slots / (run.wall_s - lost_s)


def _length_figures(length: float, sizes: Sizes, slots: float, root: Path, uris: dict) -> Figures:
    rows = size_for(length, sizes.epochs)
    work = Workload(sizes.trials, sizes.epochs, rows)
    sides = {
        "ours": lambda r: run_ours(work, root / f"ours-{length:g}-{r}", uris["ours"]),
        "baseline": lambda r: run_baseline(work, root / f"ray-{length:g}-{r}", uris["baseline"]),
    }
    rounds = paired(
        sides,
        sizes.repeats,
        before=lambda r: {
            "alone": warm_trial_s(work),
            "one": parallel_trial_s(work, 1),
            "parallel": parallel_trial_s(work, int(slots)),
        },
    )

    def per_round(fn: Callable[[Run, float], float], side: str = "ours") -> float:
        return median([fn(row[side], row["before"]["alone"] / work.epochs) for row in rounds])

    def startup(run: Run, epoch_s: float) -> float:
        return run.first_result_s - epoch_s

    def scaling(row: dict[str, Any]) -> float:
        return row["before"]["one"] / row["before"]["parallel"]

    def ours_efficiency(row: dict[str, Any]) -> float:
        return efficiency(row["ours"], row["before"]["alone"], work.epochs, slots)

    key = f"t{length:g}s"
    figures: Figures = {
        f"{key}_rows": rows,
        f"{key}_warm_trial_s": median([row["before"]["alone"] for row in rounds]),
        f"{key}_parallel_trial_s": median([row["before"]["parallel"] for row in rounds]),
        f"{key}_machine_scaling": median([scaling(row) for row in rounds]),
        f"{key}_ours_wall_s": per_round(lambda run, _: run.wall_s),
        f"{key}_baseline_wall_s": per_round(lambda run, _: run.wall_s, "baseline"),
        f"{key}_ours_epochs": rounds[-1]["ours"].epochs,
        f"{key}_baseline_epochs": rounds[-1]["baseline"].epochs,
        f"{key}_ours_efficiency": per_round(lambda run, e: efficiency(run, e, 1, slots)),
        f"{key}_baseline_efficiency": per_round(
            lambda run, e: efficiency(run, e, 1, slots), "baseline"
        ),
        f"{key}_ours_speedup_vs_baseline": median(
            [row["baseline"].wall_s / row["ours"].wall_s for row in rounds]
        ),
        f"{key}_ours_efficiency_of_machine": median(
            [ours_efficiency(row) / scaling(row) for row in rounds]
        ),
        f"{key}_ours_startup_s": per_round(startup),
        f"{key}_ours_tail_s": per_round(lambda run, _: run.tail_s),
        f"{key}_ours_epoch_overhead_ms": per_round(lambda run, _: run.epoch_overhead_s * 1e3),
        f"{key}_ours_epoch_slowdown": per_round(lambda run, e: run.epoch_s / e),
        f"{key}_ours_efficiency_after_startup": per_round(
            lambda run, e: efficiency(run, e, 1, slots, startup(run, e) + run.tail_s)
        ),
    }
    if length in TARGETS:
        figures[f"{key}_target"] = TARGETS[length]
        figures[f"{key}_target_met"] = figures[f"{key}_ours_efficiency"] >= TARGETS[length]
    return figures


def measure(sizes: Sizes) -> Figures:
    """The figures of this part at `sizes` (see the module docstring)."""
    figures: Figures = {"trials": sizes.trials, "epochs": sizes.epochs, "repeats": sizes.repeats}
    if sizes.cold_worker:
        figures |= {f"cold_worker_{k}_s": v for k, v in cold_worker_s().items()}
    with tempfile.TemporaryDirectory(prefix="bench-harness-") as tmp, ray_session() as ray_info:
        root = Path(tmp)
        uris = {side: sqlite_uri(root / f"{side}.db") for side in ("ours", "baseline")}
        figures |= {"slots": ray_info["slots"], "ray_init_s": ray_info["ray_init_s"]}
        if sizes.warm_up:
            warm_up(root, uris["ours"], baseline=True)
        for length in sizes.lengths:
            figures |= _length_figures(length, sizes, ray_info["slots"], root, uris)
    return figures


def run(quick: bool, trials: int | None = None) -> Figures:
    """Efficiency of ours and of plain Ray Tune per trial length; `quick`: 2 short trials, once;
    `trials` overrides the number of trials per search (default 32)."""
    sizes = SIZES[quick]
    if trials is not None:
        sizes = replace(sizes, trials=trials)
    return measure(sizes)
