"""The Optuna study caught up with the record after a kill (search/study.py): what the searcher's
deferred writes lost is told from the record, what never started is closed, the rest left alone."""

from __future__ import annotations

import json

import optuna
from helpers import assert_nothing_lost
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from record import RECORD_FILE, read_trials
from search.study import NEVER_STARTED, abandon_orphans, catch_up_study
from trainables.objective import Objective

ECE = {"t1": [0.3, 0.1, 0.2], "t2": [0.4]}


def write_record(out, events) -> None:
    out.mkdir()
    lines = (json.dumps(e | {"time": 1_700_000_000.0 + i}) for i, e in enumerate(events))
    (out / RECORD_FILE).write_text("\n".join(lines) + "\n")
    (out / "config.yaml").write_text("search:\n  metric: val_ece\n  mode: min\n")


def journal(out) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(out / "optuna.journal")))


def test_a_trial_a_kill_left_running_is_told_its_recorded_end(tmp_path):
    """search.metric=val_ece, mode=min. The driver died after recording t1's end but before the
    searcher told Optuna, and t1's last intermediate value was never written: the catch-up
    reports it and tells COMPLETE with the best (lowest) val_ece, as the searcher would."""
    out = tmp_path / "out"
    events = [{"event": "start", "trial_id": t, "params": {"seed": 0}} for t in ECE]
    for trial, values in ECE.items():
        for epoch, value in enumerate(values):
            metrics = {"epoch": epoch, "val_ece": value, "best_val_ece": min(values[: epoch + 1])}
            events.append(
                {"event": "result", "trial_id": trial, "epoch": epoch, "metrics": metrics}
            )
    events += [
        {"event": "end", "trial_id": "t1", "state": "completed", "epochs": 3, "reason": None},
        {"event": "end", "trial_id": "t2", "state": "stopped_early", "epochs": 1, "reason": None},
    ]
    write_record(out, events)
    study = optuna.create_study(study_name="unit", storage=journal(out), direction="minimize")
    for trial_id, values in ECE.items():
        trial = study.ask()
        trial.set_user_attr("ray_trial_id", trial_id)
        for epoch, value in enumerate(values[:2]):
            trial.report(value, epoch + 1)
    study.tell(1, state=TrialState.PRUNED)

    catch_up_study(out, "unit", Objective("val_ece", "min"), None)
    t1, t2 = optuna.load_study(study_name="unit", storage=journal(out)).trials
    assert (t1.state, t1.value, t1.intermediate_values) == (
        TrialState.COMPLETE,
        0.1,
        {1: 0.3, 2: 0.1, 3: 0.2},
    )
    assert t2.state == TrialState.PRUNED
    assert_nothing_lost(out)


def test_abandon_orphans_closes_only_what_ray_no_longer_knows(tmp_path):
    """After a resume: a recorded trial without an end that Ray replaced ends `abandoned` and FAIL
    with its recorded epochs; a suggestion never started (no record, unknown to Ray) is told FAIL
    and listed as such; a trial Ray still holds (a later resume runs it) is left open."""
    out = tmp_path / "out"
    write_record(
        out,
        [
            {"event": "start", "trial_id": "gone", "params": {}},
            {"event": "result", "trial_id": "gone", "epoch": 0, "metrics": {"val_ece": 0.5}},
            {"event": "start", "trial_id": "held", "params": {}},
        ],
    )
    study = optuna.create_study(study_name="unit", storage=journal(out))
    for trial_id in ("gone", "held", "cut", "pending"):
        study.ask().set_user_attr("ray_trial_id", trial_id)
    study.ask()  # a suggestion the kill cut before it named its Ray trial

    abandon_orphans(out, {"held", "pending"})
    catch_up_study(out, "unit", Objective("val_ece", "min"), {"held", "pending"})
    trials = {t.trial_id: t for t in read_trials(out / RECORD_FILE)[0]}
    assert (trials["gone"].state, trials["gone"].epochs) == ("abandoned", 1)
    assert trials["held"].state is None
    study = optuna.load_study(study_name="unit", storage=journal(out))
    assert [t.state for t in study.trials] == [
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.FAIL,
    ]
    assert study.user_attrs[NEVER_STARTED] == [2, 4]
    assert study.trials[0].intermediate_values == {1: 0.5}  # the recorded epoch the kill cut


def test_a_multi_objective_study_is_told_the_values_at_the_best_epoch(tmp_path):
    """Objectives (val_macro_f1 max, val_ece min), search.metric val_macro_f1: the kill left t1
    RUNNING after its recorded completion; the catch-up tells COMPLETE with both values at the
    best val_macro_f1 epoch (epoch 1: 0.7, 0.2), writes no intermediate values (a
    multi-objective study keeps none), and a NaN objective at that epoch is FAIL."""
    out = tmp_path / "out"
    f1, ece = Objective("val_macro_f1", "max"), Objective("val_ece", "min")
    rows = {"t1": [(0.5, 0.1), (0.7, 0.2), (0.6, 0.05)], "t2": [(0.4, float("nan"))]}
    events = [{"event": "start", "trial_id": t, "params": {}} for t in rows]
    for trial, values in rows.items():
        for epoch, (a, b) in enumerate(values):
            metrics = {"epoch": epoch, "val_macro_f1": a, "val_ece": b}
            events.append(
                {"event": "result", "trial_id": trial, "epoch": epoch, "metrics": metrics}
            )
    events += [
        {"event": "end", "trial_id": t, "state": "completed", "epochs": len(v), "reason": None}
        for t, v in rows.items()
    ]
    write_record(out, events)
    study = optuna.create_study(
        study_name="unit", storage=journal(out), directions=["maximize", "minimize"]
    )
    for trial_id in rows:
        study.ask().set_user_attr("ray_trial_id", trial_id)

    catch_up_study(out, "unit", f1, None, (f1, ece))
    t1, t2 = optuna.load_study(study_name="unit", storage=journal(out)).trials
    assert (t1.state, t1.values, t1.intermediate_values) == (TrialState.COMPLETE, [0.7, 0.2], {})
    assert t2.state == TrialState.FAIL
