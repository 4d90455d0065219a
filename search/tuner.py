"""Wiring: the search config and the compiled space → the arguments of Ray Tune's `tune.run`.

`tune_parts` is a pure function (tests assert where each option lands); `run_search` runs them
over the trainable, a new search or the continuation of an interrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.cluster import EXPERIMENT_DIR, plan_storage
from search.config import SearchConfig
from search.moasha import MOASHA
from search.searcher import SearcherSpec, make_searcher
from search.trial_guard import TrialGuard
from search.tune_trial import tune_trial
from spaces import Space
from trainables.canonical import DataFacts, canonical
from trainables.errors import UserInputError
from trainables.objective import Objective
from trainables.params import is_plain_ce
from trainables.plugins import BUILT_IN, Plugins
from trainables.trial.nonfinite import failed_epoch

EXPERIMENT = EXPERIMENT_DIR  # Ray's experiment folder inside output_dir
DEFAULT_NUM_SAMPLES = 32
STUDY_FILE = "optuna.journal"  # the Optuna study (journal storage) inside output_dir


@dataclass
class TuneParts:
    """The trial's resources and config, and `tune.run`'s other keyword arguments (`run_args`)."""

    trainable_resources: dict[str, float]
    param_space: dict[str, Any]
    run_args: dict[str, Any]
    objective: Objective
    plugins: Plugins


def make_scheduler(cfg: SearchConfig) -> TrialScheduler:
    """ASHA over epochs (max_t = train.max_epochs), MOASHA over the search objectives, or FIFO,
    from a registry."""
    return SCHEDULERS[cfg.scheduler.name](cfg)


class Anchored:
    """A scheduler mix-in that lets the first plain-CE trial (the report's baseline anchor) train
    the full budget, so every trial on the Pareto front is compared with a finished baseline, not a
    2-epoch one; an epoch with a non-finite value continues (the trial raises next,
    search/trial_guard.py). The scheduler has `_time_attr` and `_max_t`, as Ray's ASHA does."""

    _time_attr: str
    _max_t: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.anchor: str | None = None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        if self.anchor is None and _trains_plain_ce(trial.config):
            self.anchor = trial.trial_id

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if failed_epoch(result) is not None:
            return TrialScheduler.CONTINUE
        action = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if trial.trial_id == self.anchor and result.get(self._time_attr, 0) < self._max_t:
            return TrialScheduler.CONTINUE
        return action


class AnchoredASHA(Anchored, ASHAScheduler):
    """Ray's ASHA on search.metric, with the plain-CE anchor (`Anchored`)."""


class AnchoredMOASHA(Anchored, MOASHA):
    """MOASHA on the search objectives (search.moasha), with the plain-CE anchor (`Anchored`)."""


def _trains_plain_ce(config: dict[str, Any]) -> bool:
    try:
        return is_plain_ce(canonical(config))
    except UserInputError:  # the trial fails with this error; it anchors nothing
        return False


def _asha(cfg: SearchConfig) -> TrialScheduler:
    return AnchoredASHA(
        time_attr="training_iteration",
        max_t=cfg.train.max_epochs,
        grace_period=cfg.scheduler.grace_period,
        reduction_factor=cfg.scheduler.reduction_factor,
    )


def _moasha(cfg: SearchConfig) -> TrialScheduler:
    return AnchoredMOASHA(
        cfg.objectives,
        time_attr="training_iteration",
        max_t=cfg.train.max_epochs,
        grace_period=cfg.scheduler.grace_period,
        reduction_factor=cfg.scheduler.reduction_factor,
    )


SCHEDULERS = {"asha": _asha, "moasha": _moasha, "fifo": lambda cfg: FIFOScheduler()}


def gpu_fraction(setting: Any, cluster_gpus: float) -> float:
    """resources.gpu_per_trial: a number as given; auto → 0.25 with GPUs in the cluster, else 0."""
    if setting == "auto":
        return 0.25 if cluster_gpus > 0 else 0.0
    return float(setting)


def concurrency(cfg: SearchConfig, cluster_cpus: float, cluster_gpus: float, gpu: float) -> int:
    """search.max_concurrent, or (0) the trial slots the resources allow, at least 1."""
    if cfg.search.max_concurrent:
        return cfg.search.max_concurrent
    slots = cluster_cpus // cfg.resources.cpu_per_trial
    if gpu > 0:
        slots = min(slots, cluster_gpus // gpu)
    return max(1, int(slots))


def searcher_name(cfg: SearchConfig, space: Space) -> str:
    """search.algorithm, except that a space with a grid runs every grid point (Ray's generator)."""
    return "grid" if space.grid_size else cfg.search.algorithm


def num_samples(cfg: SearchConfig, space: Space) -> int:
    """search.num_samples; 0 (default) means 32 trials, or one pass over a space's grid."""
    if cfg.search.num_samples:
        return cfg.search.num_samples
    return 1 if space.grid_size else DEFAULT_NUM_SAMPLES


def tune_parts(
    cfg: SearchConfig,
    space: Space,
    cluster_cpus: float,
    cluster_gpus: float,
    multi_node: bool = False,
    facts: DataFacts | None = None,
    plugins: Plugins = BUILT_IN,
) -> TuneParts:
    """Every `tune.run` argument derived from the config, the space and the cluster's resources
    (at full scale for an autoscaling cluster, so the autoscaler sees every trial's request)."""
    gpu = gpu_fraction(cfg.resources.gpu_per_trial, cluster_gpus)
    limit = concurrency(cfg, cluster_cpus, cluster_gpus, gpu)
    constants = {
        "train.max_epochs": cfg.train.max_epochs,
        "train.checkpoint_every_s": cfg.train.checkpoint_every_s,
    }
    algorithm = searcher_name(cfg, space)
    param_space = constants  # Optuna's searchers suggest the space itself
    if algorithm == "grid":
        from search.param_space import to_param_space

        param_space = to_param_space(space) | constants
    storage = plan_storage(cfg.output_dir)
    out = storage.local.resolve()
    spec = SearcherSpec(
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        seed=cfg.search.seed,
        max_epochs=cfg.train.max_epochs,
        max_concurrent=limit,
        study_path=str(out / STUDY_FILE),
        study_name=cfg.name,
        facts=facts,
        objectives=cfg.objectives,
    )
    searcher = make_searcher(algorithm, space, spec)
    run_args = {
        "metric": cfg.search.metric,
        "mode": cfg.search.mode,
        "search_alg": searcher,
        "scheduler": make_scheduler(cfg),
        "num_samples": num_samples(cfg, space),
        # An actor that dies with its node while handed to the next trial fails that trial twice,
        # and Tune ends a trial that fails while it waits to restart whatever max_failures says.
        "reuse_actors": not multi_node,
        "trial_name_creator": _trial_name,
        "trial_dirname_creator": _trial_name,
        "name": EXPERIMENT,
        "storage_path": storage.ray_path,  # a URI: each worker uploads its own checkpoints
        "checkpoint_config": tune.CheckpointConfig(num_to_keep=None),  # all: a fallback for each
        "max_failures": cfg.resources.max_failures,
        "raise_on_failed_trial": False,  # a failed trial is recorded, never the search's end
        "verbose": 0,
        "log_to_file": True,
    }
    resources = {"cpu": cfg.resources.cpu_per_trial, "gpu": gpu}
    return TuneParts(resources, param_space, run_args, cfg.search.objective, plugins)


def _trial_name(trial: Any) -> str:
    return str(trial.trial_id)


def trainable(parts: TuneParts, data_ref: Any) -> Any:
    """The trial function with its resources and the dataset (shipped once via the object store)."""
    fn = tune.with_parameters(
        tune_trial, data=data_ref, objective=parts.objective, plugins=parts.plugins
    )
    return tune.with_resources(fn, parts.trainable_resources)


def run_search(parts: TuneParts, data_ref: Any, callbacks: list, resume: bool) -> list[Any]:
    """Run the search; returns Ray's trials (every trial it knows, started or not).

    `resume`: continue the interrupted search in `run_args["storage_path"]`: finished trials stay
    finished, unfinished ones resume from their checkpoints, and the searcher's state comes back
    from Ray's experiment checkpoint. Either way the callbacks (record, progress, push) are this
    process's.
    """
    analysis = tune.run(
        trainable(parts, data_ref),
        config=parts.param_space,
        callbacks=[*callbacks, TrialGuard()],
        resume=resume,
        **parts.run_args,
    )
    return analysis.trials
