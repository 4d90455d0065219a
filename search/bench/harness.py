"""Harness efficiency, ours against plain Ray Tune: `python -m search.bench harness`.

N trials of a fixed workload (the real trial: plain cross-entropy on synthetic data sized so that
one trial takes about 0.5, 2 or 8 s warm) on every local CPU, once through `search.driver.run`
(FIFO over a grid of seeds, MLflow on SQLite) and once through plain Ray Tune with its defaults
(the same function trainable, no actor reuse, Ray's default loggers, MLflowLoggerCallback on SQLite):

    ideal = Σ epochs executed × warm epoch time (`train` in this process, 1 thread) / slots
    efficiency = ideal / wall

`wall` is the whole search call (data, Tuner, trials, MLflow flush) with Ray already running; Ray's
own start (`ray_init_s`) and a new MLflow database's schema set-up are measured apart. Each repeat
runs ours and the baseline back to back (alternating which goes first) after measuring the warm
work, so a change in the machine's load hits both; figures are medians over repeats.

The helpers (`Workload`, `ray_session`, `run_ours`, `run_baseline`, `warm_trial_s`) are shared by
the logging, search and gpu parts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search.bench import Figures

EPOCHS = 12  # the default train.max_epochs
LENGTHS = (0.5, 2.0, 8.0)  # warm seconds of one trial
TARGETS = {0.5: 0.75, 2.0: 0.90}  # efficiency of our harness by trial length
CALIBRATION_ROWS = (6000, 24000)  # n_train of the two warm epochs timed to size the workloads
MIN_ROWS = 512
# Environment that search.driver.quiet_ray sets; the baseline runs without it (Ray's defaults).
QUIET_RAY_ENV = (
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
    "TUNE_GLOBAL_CHECKPOINT_S",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S",
)
BASE_CONFIG = {"loss.kind": "ce", "elf.strategy": "none"}  # the trial every run repeats


@dataclass(frozen=True)
class Sizes:
    trials: int
    lengths: tuple[float, ...]
    repeats: int
    epochs: int


SIZES = {True: Sizes(4, (0.5,), 1, 4), False: Sizes(32, LENGTHS, 3, EPOCHS)}


@dataclass(frozen=True)
class Workload:
    """`trials` identical trials (seeds 0..trials-1) of `epochs` epochs over `rows` training rows."""

    trials: int
    epochs: int
    rows: int

    def data_options(self) -> dict[str, Any]:
        return {"n_train": self.rows}


@dataclass(frozen=True)
class Run:
    """One timed search: wall seconds, epochs executed, and (ours) seconds to the first result."""

    wall_s: float
    epochs: int
    trials: int
    first_result_s: float | None = None
    output_dir: Path | None = None


# ---------------------------------------------------------------- Ray and quiet output


@contextlib.contextmanager
def ray_session() -> Iterator[dict[str, float]]:
    """A local Ray on every CPU (bound to 127.0.0.1), shut down on exit if this started it.

    Yields {"slots": CPUs, "gpus": GPUs, "ray_init_s": seconds ray.init took}.
    """
    import ray

    started = not ray.is_initialized()
    t0 = time.perf_counter()
    if started:
        ray.init(
            address="local",
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
    init_s = time.perf_counter() - t0
    res = ray.cluster_resources()
    try:
        yield {"slots": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0), "ray_init_s": init_s}
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow the progress lines and Ray's INFO logging of a timed search."""
    loggers = [logging.getLogger(n) for n in ("ray", "ray.tune", "ray.train", "mlflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
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


def _train_s(rows: int, epochs: int) -> list[float]:
    """Seconds of each epoch of one warm-process `train` call (no checkpoint, no Ray)."""
    from trainables.params import TrialParams
    from trainables.presets import build_dataset
    from trainables.trial import train

    data = build_dataset("synthetic", {"n_train": rows})
    params = TrialParams.from_flat(BASE_CONFIG | {"train.max_epochs": epochs})
    times: list[float] = []
    with one_thread():
        train(params, data, lambda m, _: times.append(m["epoch_time_s"]), torch.device("cpu"))
    return times


def warm_trial_s(work: Workload) -> float:
    """Seconds one whole trial of `work` takes in this (already warm) process, on one thread."""
    from trainables.params import TrialParams
    from trainables.presets import build_dataset
    from trainables.trial import train

    data = build_dataset("synthetic", work.data_options())
    params = TrialParams.from_flat(BASE_CONFIG | {"train.max_epochs": work.epochs})
    with one_thread():
        t0 = time.perf_counter()
        train(params, data, lambda m, c: None, torch.device("cpu"))
        return time.perf_counter() - t0


def size_for(seconds: float, epochs: int) -> int:
    """n_train whose trial of `epochs` epochs takes about `seconds` warm (linear in the rows)."""
    small, large = CALIBRATION_ROWS
    _train_s(small, 1)  # warm-up: imports, allocator, dynamo
    t_small, t_large = _train_s(small, 2)[-1], _train_s(large, 2)[-1]
    per_row = max((t_large - t_small) / (large - small), 1e-9)
    fixed = max(t_small - per_row * small, 0.0)
    return max(MIN_ROWS, round((seconds / epochs - fixed) / per_row))


# ---------------------------------------------------------------- the two harnesses


def grid_space(path: Path, trials: int) -> Path:
    """A space file: the base trial over a grid of `trials` seeds."""
    seeds = ", ".join(str(s) for s in range(trials))
    lines = [f"  {k}: {v}" for k, v in BASE_CONFIG.items()] + [f"  seed:\n    grid: [{seeds}]"]
    path.write_text("description: benchmark workload\nparams:\n" + "\n".join(lines) + "\n")
    return path


def run_ours(
    work: Workload, out: Path, mlflow_uri: str | None, overrides: tuple[str, ...] = ()
) -> Run:
    """`search.driver.run` over `work` (FIFO, grid of seeds) into `out`; times the whole call."""
    out.parent.mkdir(parents=True, exist_ok=True)
    space = grid_space(out.parent / f"{out.name}-space.yaml", work.trials)
    mlflow = [f"mlflow.tracking_uri={mlflow_uri}"] if mlflow_uri else ["mlflow.enabled=false"]
    argv = [
        f"space={space}",
        "scheduler=fifo",
        f"train.max_epochs={work.epochs}",
        f"data.n_train={work.rows}",
        f"output_dir={out}",
        "verbose=0",
        *mlflow,
        *overrides,
    ]
    return timed_search(argv, out)


def timed_search(argv: list[str], out: Path) -> Run:
    """Load the config from `argv`, time `search.driver.run`, read epochs from the record."""
    from search.config import load_config
    from search.driver import run
    from search.record import RECORD_FILE, read_record
    from spaces import load_space

    cfg = load_config(argv)
    space = load_space(cfg.space)
    with quiet():
        start, t0 = time.time(), time.perf_counter()
        run(cfg, space)
        wall = time.perf_counter() - t0
    events = read_record(out / RECORD_FILE)
    results = [e for e in events if e["event"] == "result"]
    first = min((e["time"] for e in results), default=None)
    return Run(
        wall_s=wall,
        epochs=len(results),
        trials=sum(e["event"] == "start" for e in events),
        first_result_s=None if first is None else first - start,
        output_dir=out,
    )


def baseline_trainable(data: Any, gpu: float = 0.0) -> Any:
    """The project's function trainable with the dataset, as a plain Ray Tune user would pass it."""
    from ray import tune

    from trainables.trial import tune_trial

    return tune.with_resources(tune.with_parameters(tune_trial, data=data), {"cpu": 1, "gpu": gpu})


def run_baseline(work: Workload, out: Path, mlflow_uri: str | None) -> Run:
    """Plain Ray Tune over the same trials: Ray's defaults, MLflowLoggerCallback, no actor reuse."""
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from trainables.presets import build_dataset

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
        data = build_dataset("synthetic", work.data_options())
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


# ---------------------------------------------------------------- pairing and the part


def paired(
    sides: dict[str, Callable[[int], Any]], repeats: int, before: Callable[[int], Any] | None = None
) -> list[dict[str, Any]]:
    """Per repeat r: `before(r)` (if given), then each side(r), order rotated every repeat.

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


def efficiency(run: Run, trial_s: float, epochs: int, slots: float) -> float:
    """ideal / wall, ideal = epochs executed × warm epoch seconds / slots."""
    return run.epochs * (trial_s / epochs) / slots / run.wall_s


def _length_figures(
    length: float, sizes: Sizes, slots: float, root: Path, uris: dict[str, str]
) -> Figures:
    rows = size_for(length, sizes.epochs)
    work = Workload(sizes.trials, sizes.epochs, rows)
    sides = {
        "ours": lambda r: run_ours(work, root / f"ours-{length:g}-{r}", uris["ours"]),
        "baseline": lambda r: run_baseline(work, root / f"ray-{length:g}-{r}", uris["baseline"]),
    }
    rounds = paired(sides, sizes.repeats, before=lambda r: warm_trial_s(work))
    eff = {
        side: [efficiency(row[side], row["before"], work.epochs, slots) for row in rounds]
        for side in sides
    }
    key = f"t{length:g}s"
    figures: Figures = {
        f"{key}_rows": rows,
        f"{key}_warm_trial_s": median([row["before"] for row in rounds]),
        f"{key}_ours_wall_s": median([row["ours"].wall_s for row in rounds]),
        f"{key}_baseline_wall_s": median([row["baseline"].wall_s for row in rounds]),
        f"{key}_ours_first_result_s": median([row["ours"].first_result_s or 0 for row in rounds]),
        f"{key}_ours_epochs": rounds[-1]["ours"].epochs,
        f"{key}_baseline_epochs": rounds[-1]["baseline"].epochs,
        f"{key}_ours_efficiency": median(eff["ours"]),
        f"{key}_baseline_efficiency": median(eff["baseline"]),
        f"{key}_ours_vs_baseline_speed": median(
            [row["baseline"].wall_s / row["ours"].wall_s for row in rounds]
        ),
    }
    if length in TARGETS:
        figures[f"{key}_target"] = TARGETS[length]
        figures[f"{key}_target_met"] = figures[f"{key}_ours_efficiency"] >= TARGETS[length]
    return figures


def run(quick: bool) -> Figures:
    """Efficiency of ours and of plain Ray Tune per trial length (see the module docstring)."""
    sizes = SIZES[quick]
    with tempfile.TemporaryDirectory(prefix="bench-harness-") as tmp, ray_session() as ray_info:
        root = Path(tmp)
        t0 = time.perf_counter()
        uris = {side: sqlite_uri(root / f"{side}.db") for side in ("ours", "baseline")}
        figures: Figures = {
            "trials": sizes.trials,
            "epochs": sizes.epochs,
            "slots": ray_info["slots"],
            "repeats": sizes.repeats,
            "ray_init_s": ray_info["ray_init_s"],
            "mlflow_db_init_s": (time.perf_counter() - t0) / 2,
        }
        for length in sizes.lengths:
            figures |= _length_figures(length, sizes, ray_info["slots"], root, uris)
    return figures
