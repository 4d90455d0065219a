"""MOASHA fed hand-made results, as Ray's own scheduler tests feed ASHA: rungs, the ranking
(non-dominated sorting, then hypervolume contribution), ties, duplicates, NaN, one objective,
mixed directions, a constant objective, max_t, the plain-CE anchor and save/restore."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.config import load_config
from search.moasha import MOASHA, milestones, rung_order
from search.tuner import AnchoredMOASHA, tune_parts
from spaces import load_space
from trainables.objective import Objective

ACC, ECE = Objective("val_accuracy", "max"), Objective("val_ece", "min")
CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def trial(name: str, config: dict | None = None) -> Trial:
    focal = {"loss.kind": "focal"}
    return Trial("t", config=focal if config is None else config, trial_id=name, stub=True)


def feed(scheduler: MOASHA, results: list[tuple[str, int, dict]]) -> list[str]:
    """Each (trial id, epoch count, metrics) to on_trial_result; the decisions in order."""
    trials: dict[str, Trial] = {}
    out = []
    for name, step, metrics in results:
        if name not in trials:
            trials[name] = trial(name)
            scheduler.on_trial_add(None, trials[name])
        out.append(
            scheduler.on_trial_result(None, trials[name], metrics | {"training_iteration": step})
        )
    return out


@pytest.mark.parametrize(("grace", "max_t", "rf"), [(1, 10, 3), (2, 12, 3), (1, 81, 3), (2, 9, 2)])
def test_milestones_are_ray_asha_rungs(grace, max_t, rf):
    asha = ASHAScheduler(
        time_attr="training_iteration", max_t=max_t, grace_period=grace, reduction_factor=rf
    )
    ray_rungs = sorted(int(m) for m, _ in asha._brackets[0]._rungs)
    assert milestones(grace, max_t, rf) == ray_rungs


def test_rung_order_by_front_then_hypervolume_contribution():
    """2-D minimisation points: front {(1,3), (2,2), (3,1)}, (3,3) behind it, a NaN row last.
    The reference is the nadir (3,3) nudged by 0.1 of the spread (2,2): (3.2, 3.2). Exclusive
    contributions by hand, sorted by x: (1,3): (2−1)(3.2−3) = 0.2; (2,2): (3−2)(3−2) = 1;
    (3,1): (3.2−3)(2−1) = 0.2."""
    points = np.array([[1, 3], [2, 2], [3, 1], [3, 3], [np.nan, 0]], dtype=float)
    assert rung_order(points).tolist() == [1, 0, 1, 3, 4]


def test_duplicates_share_their_points_place():
    """moocore gives a duplicated point 0 contribution; MOASHA gives each copy the point's."""
    points = np.array([[2, 2], [1, 3], [2, 2], [3, 1]], dtype=float)
    assert rung_order(points).tolist() == [0, 2, 0, 2]


def test_one_objective_is_asha_on_that_objective():
    """Accuracy arrives 0.5, 0.7, 0.6, 0.4 at rung 1 with η = 3: the third has one of three ahead
    (not < 3/3) and stops, the fourth has three of four ahead; Ray's ASHA decides the same."""
    values = [0.5, 0.7, 0.6, 0.4]
    results = [(f"t{i}", 1, {"val_accuracy": v}) for i, v in enumerate(values)]
    ours = feed(MOASHA([ACC], max_t=9, grace_period=1, reduction_factor=3), results)
    asha = ASHAScheduler(
        time_attr="training_iteration",
        metric="val_accuracy",
        mode="max",
        max_t=9,
        grace_period=1,
        reduction_factor=3,
    )
    theirs = []
    for name, step, metrics in results:
        t = trial(name)
        asha.on_trial_add(None, t)
        theirs.append(asha.on_trial_result(None, t, metrics | {"training_iteration": step}))
    assert ours == [CONTINUE, CONTINUE, STOP, STOP] == theirs


def test_mixed_directions_rank_in_each_objectives_own_direction():
    """(accuracy max, ECE min): t1 (0.9, 0.05) dominates t0 (0.8, 0.10); t2 (0.7, 0.20) is
    dominated by both and stops (2 ahead of 3, not < 1)."""
    moasha = MOASHA([ACC, ECE], max_t=9, grace_period=1, reduction_factor=3)
    decisions = feed(
        moasha,
        [
            ("t0", 1, {"val_accuracy": 0.8, "val_ece": 0.10}),
            ("t1", 1, {"val_accuracy": 0.9, "val_ece": 0.05}),
            ("t2", 1, {"val_accuracy": 0.7, "val_ece": 0.20}),
        ],
    )
    assert decisions == [CONTINUE, CONTINUE, STOP]
    assert moasha.rungs()[1]["t1"] == pytest.approx([-0.9, 0.05])  # max becomes −value


def test_ties_continue_and_nan_ranks_last():
    """Three equal results all continue (none ahead, as ASHA continues at the cutoff); a NaN
    objective ranks behind all of them and stops; a first result that is NaN continues; NaN
    results do not loosen the cut for the finite ones."""
    moasha = MOASHA([ACC, ECE], max_t=9, grace_period=1, reduction_factor=3)
    same = {"val_accuracy": 0.8, "val_ece": 0.1}
    decisions = feed(
        moasha,
        [("a", 1, same), ("b", 1, same), ("c", 1, same), ("d", 1, {"val_accuracy": math.nan})],
    )
    assert decisions == [CONTINUE, CONTINUE, CONTINUE, STOP]
    first = MOASHA([ACC], max_t=9, grace_period=1)
    assert feed(first, [("x", 1, {"val_accuracy": math.nan})]) == [CONTINUE]
    nans = MOASHA([ACC], max_t=9, grace_period=1, reduction_factor=3)
    four = [(f"n{i}", 1, {"val_accuracy": math.nan}) for i in range(4)]
    good, worse = ("g", 1, {"val_accuracy": 0.9}), ("w", 1, {"val_accuracy": 0.5})
    # the worse finite result has 1 ahead of it: 1 < 2/3 fails (with the NaNs counted, 1 < 6/3)
    assert feed(nans, [*four, good, worse])[-2:] == [CONTINUE, STOP]


def test_a_constant_objective_is_said_once(caplog):
    moasha = MOASHA([ACC, ECE], max_t=9, grace_period=1, reduction_factor=3)
    with caplog.at_level(logging.WARNING, logger="search.moasha"):
        decisions = feed(
            moasha,
            [
                ("a", 1, {"val_accuracy": 0.8, "val_ece": 0.1}),
                ("b", 1, {"val_accuracy": 0.9, "val_ece": 0.1}),
                ("c", 1, {"val_accuracy": 0.7, "val_ece": 0.1}),
                ("a", 3, {"val_accuracy": 0.8, "val_ece": 0.1}),
                ("b", 3, {"val_accuracy": 0.9, "val_ece": 0.1}),
            ],
        )
    said = [r.getMessage() for r in caplog.records if "val_ece" in r.getMessage()]
    assert len(said) == 1 and "ranks nothing" in said[0]
    assert decisions[:3] == [CONTINUE, CONTINUE, STOP]  # accuracy alone decides


def test_between_milestones_continue_and_max_t_stops():
    moasha = MOASHA([ACC], max_t=4, grace_period=1, reduction_factor=2)  # rungs 1, 2
    decisions = feed(
        moasha,
        [
            ("a", 1, {"val_accuracy": 0.9}),
            ("b", 1, {"val_accuracy": 0.1}),  # 1 of 2 ahead: not < 2/2 … stops
            ("a", 2, {"val_accuracy": 0.9}),
            ("a", 3, {"val_accuracy": 0.9}),  # no rung at 3
            ("a", 4, {"val_accuracy": 0.9}),  # max_t
        ],
    )
    assert decisions == [CONTINUE, STOP, CONTINUE, CONTINUE, STOP]
    assert moasha.num_stopped == 2


def test_save_and_restore_keep_the_rungs(tmp_path):
    results = [
        (f"t{i}", 1, {"val_accuracy": v, "val_ece": e})
        for i, (v, e) in enumerate([(0.8, 0.1), (0.6, 0.3), (0.9, 0.2)])
    ]
    later = [("t9", 1, {"val_accuracy": 0.7, "val_ece": 0.25})]
    whole = MOASHA([ACC, ECE], max_t=9, grace_period=1, reduction_factor=3)
    expected = feed(whole, results + later)
    first = MOASHA([ACC, ECE], max_t=9, grace_period=1, reduction_factor=3)
    feed(first, results)
    first.save(str(tmp_path / "moasha.json"))
    second = MOASHA([ACC, ECE], max_t=9, grace_period=1, reduction_factor=3)
    second.restore(str(tmp_path / "moasha.json"))
    assert second.rungs() == first.rungs()
    assert feed(second, later) == expected[-1:]


def test_scheduler_moasha_ranks_the_reports_objectives_and_keeps_the_anchor(tmp_path):
    cfg = load_config([f"output_dir={tmp_path}", "scheduler=moasha", "train.max_epochs=9"])
    parts = tune_parts(cfg, load_space(cfg.space), 4, 1)
    assert parts.trainable_resources == {"cpu": 1.0, "gpu": 0.25}  # fractional GPUs as with ASHA
    moasha = parts.run_args["scheduler"]
    assert isinstance(moasha, AnchoredMOASHA)
    assert moasha.objectives == cfg.objectives
    assert [o.metric for o in moasha.objectives] == ["val_macro_f1", "val_worst_recall", "val_ece"]
    assert moasha.set_search_properties("val_macro_f1", "max")
    good = {"val_macro_f1": 0.9, "val_worst_recall": 0.8, "val_ece": 0.05}
    bad = {"val_macro_f1": 0.1, "val_worst_recall": 0.0, "val_ece": 0.5}
    anchor, other, worse = trial("ce", {}), trial("f1"), trial("f2")
    for t in (anchor, other, worse):
        moasha.on_trial_add(None, t)
    assert moasha.anchor == "ce"
    assert moasha.on_trial_result(None, other, good | {"training_iteration": 2}) == CONTINUE
    # the anchor and `worse` report the same dominated point: 1 of 2, then 1 of 3 ahead
    assert moasha.on_trial_result(None, anchor, bad | {"training_iteration": 2}) == CONTINUE
    assert moasha.on_trial_result(None, worse, bad | {"training_iteration": 2}) == STOP
    assert moasha.on_trial_result(None, anchor, bad | {"training_iteration": 9}) == STOP
