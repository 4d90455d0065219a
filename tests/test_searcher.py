"""The Optuna searcher's bookkeeping, driven by hand (no Ray engine): end states, repeats, the
journal, snapshots and seeds."""

from __future__ import annotations

import json
from dataclasses import replace

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search.searcher import (
    MAX_REDRAWS,
    SearcherSpec,
    StudySearcher,
    load_study,
    make_searcher,
    open_study,
    outcome,
)
from spaces import load_space
from trainables.objective import Objective

TWO_POINT_SPACE = """\
# Run: (test) two configurations only
params:
  elf.strategy: {choice: [none, rso]}
"""
VALUE = {"none": 0.5, "rso": 0.6}


def two_point_space(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(TWO_POINT_SPACE)
    return load_space(str(path))


def two_point_searcher(tmp_path, max_epochs: int) -> StudySearcher:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage, sampler=optuna.samplers.TPESampler(seed=0), direction="maximize"
    )
    return StudySearcher(
        two_point_space(tmp_path),
        study,
        storage,
        metric="val_macro_f1",
        mode="max",
        max_epochs=max_epochs,
    )


def spec(tmp_path, seed: int = 0, name: str = "s") -> SearcherSpec:
    return SearcherSpec(
        metric="val_macro_f1",
        mode="max",
        seed=seed,
        max_epochs=4,
        max_concurrent=1,
        study_path=str(tmp_path / f"{name}.journal"),
        study_name=name,
    )


def finished(epoch: int, f1: float, step: int) -> dict:
    return {"epoch": epoch, "val_macro_f1": f1, "best_val_macro_f1": f1, "training_iteration": step}


def run_both_points(searcher: StudySearcher) -> dict[str, str]:
    """Run trials until both configurations have a value; Ray trial id -> its strategy."""
    seen: dict[str, str] = {}
    for i in range(2):
        tid = f"t{i}"
        config = searcher.suggest(tid)
        while config["elf.strategy"] in seen.values():
            tid += "x"
            config = searcher.suggest(tid)
        seen[tid] = config["elf.strategy"]
        searcher.on_trial_complete(tid, finished(0, VALUE[seen[tid]], 1))
    return seen


def test_outcome_maps_end_states():
    full = {"epoch": 3, "best_val_macro_f1": 0.7, "val_macro_f1": 0.6}
    assert outcome(full, False, 4, "best_val_macro_f1") == (TrialState.COMPLETE, 0.7)
    assert outcome(full | {"epoch": 1}, False, 4, "best_val_macro_f1")[0] == TrialState.PRUNED
    assert outcome(full, True, 4, "best_val_macro_f1")[0] == TrialState.FAIL
    assert outcome(None, False, 4, "best_val_macro_f1")[0] == TrialState.FAIL
    nan = full | {"best_val_macro_f1": float("nan")}
    assert outcome(nan, False, 4, "best_val_macro_f1")[0] == TrialState.FAIL


def test_equivalent_configs_are_told_not_run(tmp_path):
    searcher = two_point_searcher(tmp_path, max_epochs=1)
    seen = run_both_points(searcher)
    searcher.suggest("t_next")  # both configurations are known: repeats are told, not run
    repeats = [t for t in searcher.study.trials if "duplicate_of" in t.user_attrs]
    assert repeats, "TPE over two points must propose a repeat"
    for t in repeats:
        assert "ray_trial_id" not in t.user_attrs
        assert t.state == TrialState.COMPLETE
        assert t.value == VALUE[seen[t.user_attrs["duplicate_of"]]]


def test_a_repeat_runs_after_max_redraws_and_keeps_its_trial(tmp_path):
    searcher = two_point_searcher(tmp_path, max_epochs=1)
    run_both_points(searcher)
    before = len(searcher.study.trials)
    searcher.suggest("again")
    asked = searcher.study.trials[before:]
    assert len(asked) == MAX_REDRAWS  # TPE proposes nothing new over two known points
    *told, last = asked
    assert all("duplicate_of" in t.user_attrs for t in told)
    assert last.user_attrs == {"ray_trial_id": "again"} and last.state == TrialState.RUNNING
    searcher.on_trial_complete("again", finished(0, 0.55, 1))
    searcher.save(str(tmp_path / "searcher.pkl"))
    assert (searcher.study.trials[-1].state, searcher.study.trials[-1].value) == (
        TrialState.COMPLETE,
        0.55,
    )


def test_study_writes_wait_for_the_record(tmp_path):
    """Ray tells the searcher before its callbacks write the record: a value or end reaches the
    study only at the searcher's next call or at Ray's snapshot of it (`save`)."""
    searcher = two_point_searcher(tmp_path, max_epochs=2)
    searcher.suggest("a")
    (frozen,) = searcher.study.trials
    assert frozen.user_attrs["ray_trial_id"] == "a" and frozen.state == TrialState.RUNNING
    searcher.on_trial_result("a", finished(0, 0.5, 1))
    assert searcher.study.trials[0].intermediate_values == {}
    searcher.on_trial_complete("a", finished(1, 0.7, 2))
    assert searcher.study.trials[0].intermediate_values == {1: 0.5}
    assert searcher.study.trials[0].state == TrialState.RUNNING
    searcher.save(str(tmp_path / "searcher.pkl"))
    done = searcher.study.trials[0]
    assert (done.state, done.value, done.intermediate_values) == (
        TrialState.COMPLETE,
        0.7,
        {1: 0.5, 2: 0.7},
    )


def test_a_stopped_trial_is_pruned_with_its_intermediates(tmp_path):
    searcher = two_point_searcher(tmp_path, max_epochs=4)
    searcher.suggest("a")
    searcher.on_trial_result("a", finished(0, 0.5, 1))
    searcher.on_trial_complete("a", finished(1, 0.6, 2))  # ASHA stopped it after 2 of 4 epochs
    searcher.suggest("b")
    (stopped, _) = searcher.study.trials
    assert stopped.state == TrialState.PRUNED and stopped.intermediate_values == {1: 0.5, 2: 0.6}


def test_snapshot_restores_into_a_fresh_searcher(tmp_path):
    """Tuner.restore: a new searcher takes the snapshot's state (plain JSON) and keeps its own
    facts; a tell the journal already holds (snapshot older than the journal) is not told twice,
    and a trial resumed from the snapshot still reports to its Optuna trial."""
    space = load_space("elf")
    snapshot = tmp_path / "snapshot.json"
    first = make_searcher("optuna", space, spec(tmp_path)).searcher
    first.suggest("a")
    first.suggest("c")
    first.on_trial_result("c", finished(0, 0.3, 1))
    first.save(str(snapshot))
    assert json.loads(snapshot.read_text())["steps"] == {"c": [1]}
    first.on_trial_complete("a", finished(3, 0.8, 4))
    first.suggest("b")  # flushes a's end to the journal; the snapshot predates it
    facts = object()  # stands in for the data's DataFacts
    again = make_searcher("optuna", space, replace(spec(tmp_path), facts=facts)).searcher
    again.restore(str(snapshot))
    assert again._facts is facts
    again.on_trial_complete("a", finished(3, 0.9, 4))
    again.on_trial_result("c", finished(0, 0.3, 1))  # Ray replays c's epoch: told once
    again.on_trial_complete("c", finished(1, 0.4, 2))
    again.save(str(snapshot))
    a, c = load_study(tmp_path / "s.journal", "s").trials[:2]
    assert (a.state, a.value) == (TrialState.COMPLETE, 0.8)
    assert (c.state, c.intermediate_values) == (TrialState.PRUNED, {1: 0.3, 2: 0.4})


def test_points_to_evaluate_come_first_and_are_enqueued_once(tmp_path):
    space = load_space("elf")
    searcher = make_searcher("optuna", space, spec(tmp_path)).searcher
    configs = [searcher.suggest(f"t{i}") for i in range(len(space.points()))]
    for point, config in zip(space.points(), configs, strict=True):
        assert {k: config[k] for k in point} == point
    journal = JournalStorage(JournalFileBackend(spec(tmp_path).study_path))
    open_study(space, spec(tmp_path), optuna.samplers.TPESampler(seed=0), journal)  # as a resume
    study = load_study(tmp_path / "s.journal", "s")
    assert len(study.trials) == len(space.points())
    assert not study.get_trials(states=(TrialState.WAITING,))


@pytest.mark.parametrize("algorithm", ["optuna", "random"])
def test_same_seed_same_trials(tmp_path, algorithm):
    space = load_space("elf")

    def configs(seed: int, name: str) -> list[dict]:
        searcher = make_searcher(algorithm, space, spec(tmp_path, seed, name)).searcher
        out = []
        for i in range(8):
            out.append(searcher.suggest(f"t{i}"))
            searcher.on_trial_complete(f"t{i}", finished(3, 0.1 * i, 4))
        return out

    first, again, other = configs(0, "a"), configs(0, "b"), configs(1, "c")
    assert first == again and first != other
    for config in first:  # define-by-run: a conditional key only when its condition holds
        assert ("elf.granularity" in config) == (config["elf.strategy"] != "none")


F1, ECE = Objective("val_macro_f1", "max"), Objective("val_ece", "min")


def epoch_result(epoch: int, f1: float, ece: float, best: int) -> dict:
    """A trial's epoch as the loop reports it: best_epoch by val_macro_f1 (search.metric)."""
    return {
        "epoch": epoch,
        "training_iteration": epoch + 1,
        "val_macro_f1": f1,
        "val_ece": ece,
        "best_val_macro_f1": f1,
        "best_epoch": best,
    }


def test_several_objectives_make_a_multi_objective_study_told_at_the_best_epoch(tmp_path):
    """Directions live in the journal (optuna-dashboard reads them); a full-budget trial is told
    (val_macro_f1, val_ece) of its best val_macro_f1 epoch (epoch 1 here, not the last), a
    stopped one PRUNED, one with a NaN objective FAIL; no intermediate values are written; an
    equivalent configuration is told the earlier trial's values."""
    s = replace(spec(tmp_path), max_epochs=3, objectives=(F1, ECE))
    searcher = make_searcher("optuna", two_point_space(tmp_path), s).searcher
    first = searcher.suggest("a")
    for r in (epoch_result(0, 0.5, 0.2, 0), epoch_result(1, 0.7, 0.1, 1)):
        searcher.on_trial_result("a", r)
    searcher.on_trial_complete("a", epoch_result(2, 0.6, 0.05, 1))
    searcher.suggest("b")
    searcher.on_trial_complete("b", epoch_result(0, 0.4, 0.3, 0))
    searcher.on_trial_complete("a", None)  # already ended: nothing more
    searcher.save(str(tmp_path / "snap.json"))
    study = load_study(s.study_path, s.study_name)
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    by_id = {t.user_attrs.get("ray_trial_id"): t for t in study.trials}
    assert (by_id["a"].state, by_id["a"].values) == (TrialState.COMPLETE, [0.7, 0.1])
    assert by_id["b"].state == TrialState.PRUNED
    assert all(not t.intermediate_values for t in study.trials)
    assert [t.number for t in study.best_trials] == [by_id["a"].number]
    searcher.suggest("c")  # the two-point space: every ask repeats a's or b's configuration
    searcher.save(str(tmp_path / "snap.json"))
    study = load_study(s.study_path, s.study_name)
    of_a = [t for t in study.trials if t.user_attrs.get("duplicate_of") == "a"]
    assert of_a and all((t.state, t.values) == (TrialState.COMPLETE, [0.7, 0.1]) for t in of_a)
    assert first is not None


def test_a_nan_objective_fails_a_multi_objective_trial(tmp_path):
    s = replace(spec(tmp_path), max_epochs=1, objectives=(F1, ECE))
    searcher = make_searcher("optuna", two_point_space(tmp_path), s).searcher
    searcher.suggest("a")
    searcher.on_trial_complete("a", epoch_result(0, 0.5, float("nan"), 0))
    searcher.save(str(tmp_path / "snap.json"))
    (trial,) = load_study(s.study_path, s.study_name).trials
    assert trial.state == TrialState.FAIL
