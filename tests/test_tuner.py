"""Wiring without running Ray: each config option lands where it should in `tune.run`'s arguments."""

from __future__ import annotations

import optuna
import pytest
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

from search.config import load_config
from search.searcher import StudySearcher
from search.tuner import AnchoredASHA, concurrency, gpu_fraction, tune_parts
from spaces import load_space


def parts(tmp_path, *args: str, cpus: float = 2, gpus: float = 0):
    cfg = load_config([f"output_dir={tmp_path}", *args])
    return cfg, tune_parts(cfg, load_space(cfg.space), cpus, gpus)


def test_defaults_asha_optuna_limited_to_cpu_slots(tmp_path):
    cfg, p = parts(tmp_path, "train.max_epochs=7", "scheduler.grace_period=3", "search.seed=5")
    tc = p.run_args
    assert isinstance(tc["scheduler"], AnchoredASHA)
    assert tc["scheduler"]._max_t == 7
    assert min(t for t, _ in tc["scheduler"]._brackets[0]._rungs) == 3  # grace period
    assert tc["scheduler"]._reduction_factor == 3
    assert isinstance(tc["search_alg"], ConcurrencyLimiter) and tc["search_alg"].max_concurrent == 2
    assert isinstance(tc["search_alg"].searcher, StudySearcher)
    assert isinstance(tc["search_alg"].searcher.study.sampler, optuna.samplers.TPESampler)
    assert (tmp_path / "optuna.journal").is_file()
    assert tc["metric"] == "val_macro_f1" and tc["mode"] == "max"
    assert tc["num_samples"] == 32 and tc["reuse_actors"] is True
    assert p.param_space == {"train.max_epochs": 7, "train.checkpoint_every_s": 5.0}
    assert p.trainable_resources == {"cpu": 1.0, "gpu": 0.0}
    assert tc["storage_path"] == str(tmp_path.resolve())
    assert tc["max_failures"] == 1 and tc["raise_on_failed_trial"] is False


def test_fifo_random_and_explicit_limits(tmp_path):
    _, p = parts(
        tmp_path,
        "scheduler=fifo",
        "search.algorithm=random",
        "search.num_samples=5",
        "search.max_concurrent=3",
    )
    assert isinstance(p.run_args["scheduler"], FIFOScheduler)
    limiter = p.run_args["search_alg"]
    assert isinstance(limiter, ConcurrencyLimiter) and limiter.max_concurrent == 3
    assert isinstance(limiter.searcher.study.sampler, optuna.samplers.RandomSampler)
    assert p.run_args["num_samples"] == 5
    assert "elf.strategy" not in p.param_space  # Optuna suggests the space


def test_nsga2_and_several_objectives_make_a_multi_objective_nsga2_study(tmp_path):
    _, p = parts(tmp_path, "search.algorithm=nsga2", "search.objectives=[val_macro_f1,val_ece]")
    study = p.run_args["search_alg"].searcher.study
    assert isinstance(study.sampler, optuna.samplers.NSGAIISampler)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_macro_f1", "val_ece"]


def test_grid_space_runs_each_point_once(tmp_path):
    _, p = parts(tmp_path, "space=baseline")
    assert isinstance(p.run_args["search_alg"], BasicVariantGenerator)
    assert p.run_args["num_samples"] == 1
    assert p.param_space["seed"] == {"grid_search": [0, 1, 2, 3, 4]}


@pytest.mark.parametrize(
    ("setting", "gpus", "expected"),
    [("auto", 0, 0.0), ("auto", 2, 0.25), (0.5, 1, 0.5), (0, 4, 0.0)],
)
def test_gpu_fraction(setting, gpus, expected):
    assert gpu_fraction(setting, gpus) == expected


def test_gpu_slots_bound_concurrency(tmp_path):
    cfg, p = parts(
        tmp_path, "resources.gpu_per_trial=0.25", "resources.cpu_per_trial=0.5", cpus=16, gpus=1
    )
    assert p.trainable_resources == {"cpu": 0.5, "gpu": 0.25}
    assert concurrency(cfg, 16, 1, 0.25) == 4


def test_asha_never_ranks_a_flagged_non_finite_result(tmp_path):
    """A trial's flagged non-finite epoch (NaN metrics) is no rung value: ASHA lets it raise."""
    import math

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from trainables.trial.nonfinite import NonFiniteError, flagged_result

    cfg, p = parts(tmp_path, "train.max_epochs=9", "scheduler.grace_period=1")
    asha = p.run_args["scheduler"]
    asha.set_search_properties("val_macro_f1", "max")
    trial = Trial("t", config={"loss.kind": "focal"}, stub=True)
    asha.on_trial_add(None, trial)
    flagged = flagged_result(NonFiniteError("x at epoch 0", 0, ["val_macro_f1"]))
    assert math.isnan(flagged["val_macro_f1"])
    decision = asha.on_trial_result(None, trial, flagged | {"training_iteration": 1})
    assert decision == TrialScheduler.CONTINUE
    rungs = asha._brackets[0]._rungs
    assert all(not recorded for _, recorded in rungs), "a NaN reached ASHA's rungs"
