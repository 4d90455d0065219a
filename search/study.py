"""The Optuna study caught up with the record after a search: what a kill cut or left open.

The searcher writes the study while the search runs; after a kill, the record may hold what the
study lacks (intermediate values, a trial's end) and the study may hold suggestions that never
became a recorded trial. `catch_up_study` tells the study what the record says; `abandon_orphans`
first ends, in the record, the trials a killed driver started that the resumed Ray no longer knows.
A multi-objective study (several search objectives) is told the objectives' values at the trial's
best epoch by search.metric, as the searcher tells them, and gets no intermediate values.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from record import (
    ABANDONED,
    COMPLETED,
    FAILED,
    RECORD_FILE,
    STOPPED_EARLY,
    TrialRecord,
    read_trials,
)
from reports.rows import best_epoch
from search.recording import RecordCallback
from search.searcher import outcome, values_outcome
from search.tuner import STUDY_FILE
from trainables.objective import Objective

# Study user attr: numbers of the Optuna trials whose Ray trial a kill cut before it began.
NEVER_STARTED = "never_started"
OPTUNA_STATE = {
    COMPLETED: TrialState.COMPLETE,
    STOPPED_EARLY: TrialState.PRUNED,
    FAILED: TrialState.FAIL,
    ABANDONED: TrialState.FAIL,
}


def abandon_orphans(output_dir: Path, ray_trials: set[str]) -> None:
    """A recorded trial without an end that Ray's last snapshot did not know (`ray_trials`: the
    resumed search's trials; Ray replaced the others) gets an `abandoned` end in the record."""
    trials, _ = read_trials(output_dir / RECORD_FILE)
    record = RecordCallback(output_dir, max_epochs=0)
    for trial in trials:
        if trial.state is None and trial.trial_id not in ray_trials:
            reason = "started after Ray's last snapshot before a kill"
            record.write_end(trial.trial_id, ABANDONED, len(trial.results), reason)
    record.close()


def catch_up_study(
    output_dir: Path,
    study_name: str,
    objective: Objective,
    ray_trials: set[str] | None,
    objectives: tuple[Objective, ...] = (),
) -> None:
    """Tell every RUNNING study trial whose recorded trial ended that end (with the recorded
    intermediate values it lacks). With `ray_trials` (a resume), a RUNNING suggestion that is in
    no record and unknown to Ray never started: FAIL, its number in user attr `never_started`."""
    if not (output_dir / STUDY_FILE).is_file():
        return
    trials = {t.trial_id: t for t in read_trials(output_dir / RECORD_FILE)[0]}
    storage = JournalStorage(JournalFileBackend(str(output_dir / STUDY_FILE)))
    study = optuna.load_study(study_name=study_name, storage=storage)
    multi = objectives if len(objectives) > 1 else ()
    never_started = list(study.user_attrs.get(NEVER_STARTED, []))
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = trials.get(frozen.user_attrs.get("ray_trial_id"))  # None: a kill cut it short
        if trial is not None and trial.state is not None:
            state, value = OPTUNA_STATE[trial.state], None
            if state == TrialState.COMPLETE:
                state, value = _told(trial, objective, multi)
            _tell(study, storage, frozen, None if multi else trial, objective.metric, state, value)
        elif trial is None and ray_trials is not None:
            if frozen.user_attrs.get("ray_trial_id") in ray_trials:
                continue
            never_started.append(frozen.number)
            study.set_user_attr(NEVER_STARTED, never_started)
            _tell(study, storage, frozen, None, objective.metric, TrialState.FAIL, None)


def _told(
    trial: TrialRecord, objective: Objective, multi: tuple[Objective, ...]
) -> tuple[TrialState, float | list[float] | None]:
    """COMPLETE and the value(s) the searcher tells for a completed trial: `_told_value`, or with
    several objectives their values at the best epoch by `objective` (FAIL when not finite)."""
    if not multi:
        return TrialState.COMPLETE, _told_value(trial, objective)
    epoch = best_epoch(trial.results, objective)
    row = trial.results.get(epoch, {}) if epoch is not None else None
    values = None if row is None else [float(row.get(o.metric, math.nan)) for o in multi]
    return values_outcome(values)


def _told_value(trial: TrialRecord, objective: Objective) -> float | None:
    """What the searcher tells Optuna for a completed trial: `outcome` of its last result."""
    if not trial.results:
        return None
    return outcome(trial.results[max(trial.results)], False, 0, objective.best_key)[1]


def _tell(
    study: optuna.Study,
    storage: BaseStorage,
    frozen: FrozenTrial,
    trial: TrialRecord | None,
    metric: str,
    state: TrialState,
    value: float | list[float] | None,
) -> None:
    """Report the recorded epochs (step = epoch + 1) a RUNNING study trial lacks, then end it."""
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
    for epoch, metrics in sorted((trial.results if trial else {}).items()):
        step, recorded = epoch + 1, metrics.get(metric, math.nan)
        if math.isfinite(recorded) and step not in frozen.intermediate_values:
            storage.set_trial_intermediate_value(trial_id, step, recorded)
    study.tell(frozen.number, value, state=state)
