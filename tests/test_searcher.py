"""The Optuna searcher's bookkeeping, driven by hand (no Ray engine): end states and repeats."""

from __future__ import annotations

from optuna.trial import TrialState

from search.searcher import HonestOptunaSearch, outcome
from spaces import load_space

TWO_POINT_SPACE = """\
# Run: (test) two configurations only
params:
  elf.strategy: {choice: [none, rso]}
"""


def two_point_searcher(tmp_path, max_epochs: int) -> HonestOptunaSearch:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_POINT_SPACE)
    return HonestOptunaSearch(
        space=load_space(str(path)).define_by_run,
        metric="val_macro_f1",
        mode="max",
        seed=0,
        max_epochs=max_epochs,
        best_key="best_val_macro_f1",
    )


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
    seen = {}
    for i in range(2):  # run trials until both configurations have a value
        tid = f"t{i}"
        config = searcher.suggest(tid)
        while config["elf.strategy"] in seen.values():
            tid += "x"
            config = searcher.suggest(tid)
        seen[tid] = config["elf.strategy"]
        value = {"none": 0.5, "rso": 0.6}[config["elf.strategy"]]
        searcher.on_trial_complete(
            tid,
            {
                "epoch": 0,
                "best_val_macro_f1": value,
                "val_macro_f1": value,
                "training_iteration": 1,
            },
        )
    searcher.suggest("t_next")  # both configurations are known: repeats are told, not run
    trials = searcher._ot_study.trials
    repeats = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert repeats, "TPE over two points must propose a repeat"
    for t in repeats:
        earlier = t.user_attrs["duplicate_of"]
        assert t.state == TrialState.COMPLETE
        assert t.value == {"none": 0.5, "rso": 0.6}[seen[earlier]]


def test_study_writes_wait_for_the_record(tmp_path):
    """Ray tells the searcher before its callbacks write the record: a value or end reaches the
    study only at the searcher's next call or at Ray's snapshot of it (`save`)."""
    searcher = two_point_searcher(tmp_path, max_epochs=2)
    searcher.suggest("a")
    (frozen,) = searcher._ot_study.trials
    assert frozen.user_attrs["ray_trial_id"] == "a" and frozen.state == TrialState.RUNNING

    def result(epoch: int, f1: float) -> dict:
        return {"epoch": epoch, "val_macro_f1": f1, "best_val_macro_f1": f1}

    searcher.on_trial_result("a", result(0, 0.5) | {"training_iteration": 1})
    assert searcher._ot_study.trials[0].intermediate_values == {}
    searcher.on_trial_complete("a", result(1, 0.7) | {"training_iteration": 2})
    assert searcher._ot_study.trials[0].intermediate_values == {1: 0.5}
    assert searcher._ot_study.trials[0].state == TrialState.RUNNING
    searcher.save(str(tmp_path / "searcher.pkl"))
    done = searcher._ot_study.trials[0]
    assert (done.state, done.value, done.intermediate_values) == (
        TrialState.COMPLETE,
        0.7,
        {1: 0.5, 2: 0.7},
    )
