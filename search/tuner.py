"""Wiring: the search config and the compiled space → the arguments of a Ray Tune `Tuner`.

`tuner_parts` is a pure function (tests assert where each option lands); `build_tuner` and
`restore_tuner` turn its parts into a Tuner over the trainable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.cluster import EXPERIMENT_DIR, plan_storage
from search.config import SearchConfig
from search.guard import TrialGuard
from search.searcher import SearcherSpec, make_searcher
from search.trainable import tune_trial
from spaces import Space
from trainables.canonical import TrainFacts, canonical
from trainables.errors import UserInputError
from trainables.nonfinite import failed_epoch
from trainables.objective import Objective
from trainables.params import is_plain_ce
from trainables.plugins import BUILT_IN, Plugins

EXPERIMENT = EXPERIMENT_DIR  # Ray's experiment folder inside output_dir
DEFAULT_NUM_SAMPLES = 32
STUDY_FILE = "optuna.journal"  # the Optuna study (journal storage) inside output_dir


@dataclass
class TunerParts:
    trainable_resources: dict[str, float]
    param_space: dict[str, Any]
    tune_config: tune.TuneConfig
    run_config: tune.RunConfig
    objective: Objective
    plugins: Plugins


def make_scheduler(cfg: SearchConfig) -> TrialScheduler:
    """ASHA over epochs (max_t = train.max_epochs) or FIFO, from a registry."""
    return SCHEDULERS[cfg.scheduler.name](cfg)


class AnchoredASHA(ASHAScheduler):
    """ASHA that lets the first plain-CE trial (the report's baseline anchor) train the full budget,
    so every trial on the Pareto front is compared with a finished baseline, not a 2-epoch one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.anchor: str | None = None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        if self.anchor is None and _plain_ce(trial.config):
            self.anchor = trial.trial_id

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if failed_epoch(result) is not None:
            return TrialScheduler.CONTINUE  # no rung value; the trial raises next (search/guard.py)
        action = super().on_trial_result(tune_controller, trial, result)
        if trial.trial_id == self.anchor and result.get(self._time_attr, 0) < self._max_t:
            return TrialScheduler.CONTINUE
        return action


def _plain_ce(config: dict[str, Any]) -> bool:
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


SCHEDULERS = {"asha": _asha, "fifo": lambda cfg: FIFOScheduler()}


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


def tuner_parts(
    cfg: SearchConfig,
    space: Space,
    cluster_cpus: float,
    cluster_gpus: float,
    multi_node: bool = False,
    facts: TrainFacts | None = None,
    plugins: Plugins = BUILT_IN,
) -> TunerParts:
    """Every Tuner argument derived from the config, the space and the cluster's resources
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
    )
    searcher = make_searcher(algorithm, space, spec)
    tune_config = tune.TuneConfig(
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        search_alg=searcher,
        scheduler=make_scheduler(cfg),
        num_samples=num_samples(cfg, space),
        # An actor that dies with its node while handed to the next trial fails that trial twice,
        # and Tune ends a trial that fails while it waits to restart whatever max_failures says.
        reuse_actors=not multi_node,
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    run_config = tune.RunConfig(
        name=EXPERIMENT,
        storage_path=storage.ray_path,  # a URI: each worker uploads its own checkpoints
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # all: a fallback for each
        failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures),
        verbose=0,
        log_to_file=True,
    )
    resources = {"cpu": cfg.resources.cpu_per_trial, "gpu": gpu}
    return TunerParts(
        resources, param_space, tune_config, run_config, cfg.search.objective, plugins
    )


def _trial_name(trial: Any) -> str:
    return str(trial.trial_id)


def trainable(parts: TunerParts, data_ref: Any) -> Any:
    """The trial function with its resources and the dataset (shipped once via the object store)."""
    fn = tune.with_parameters(
        tune_trial, data=data_ref, objective=parts.objective, plugins=parts.plugins
    )
    return tune.with_resources(fn, parts.trainable_resources)


def build_tuner(parts: TunerParts, data_ref: Any, callbacks: list) -> tune.Tuner:
    """A new Tuner from `tuner_parts`, with the driver's callbacks (record, MLflow, progress)."""
    run_config = parts.run_config
    run_config.callbacks = [*callbacks, TrialGuard()]
    return tune.Tuner(
        trainable(parts, data_ref),
        param_space=parts.param_space,
        tune_config=parts.tune_config,
        run_config=run_config,
    )


def restore_tuner(ray_path: str, parts: TunerParts, data_ref: Any, callbacks: list) -> tune.Tuner:
    """Reopen an interrupted search: finished trials stay finished, unfinished ones resume.

    `ray_path`: Ray's storage path of the search, `plan_storage(output_dir).ray_path`.

    The searcher and scheduler state come back from Ray's experiment checkpoint; the callbacks are
    this process's fresh ones (Ray would otherwise unpickle the interrupted driver's copies).
    """
    tuner = tune.Tuner.restore(
        f"{ray_path.rstrip('/')}/{EXPERIMENT}",
        trainable=trainable(parts, data_ref),
        param_space=parts.param_space,
        resume_unfinished=True,
        resume_errored=False,
    )
    run_config = tuner._local_tuner.get_run_config()  # no public setter in Ray 2.x
    run_config.callbacks = [*callbacks, TrialGuard()]
    return tuner
