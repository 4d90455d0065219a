"""After every search and resume: check Ray, the Optuna study and MLflow against `record.jsonl`.

The record is the one source of truth. Each source gets a tally, written to
`<output_dir>/reconcile.json` as {source: {checked, missing, duplicated, repaired, mismatched}}:
`checked` counts the trials compared, the other four list what was found (one line each).
What the record can fix is fixed: an Optuna trial left RUNNING is told its recorded end, and MLflow
gets its missing runs, metric steps and end states (search/tracking/repair.py). Reconciling never
raises: a source that cannot be read is logged and reported as `error`.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from reports.load import TrialRecord
from search.record import ABANDONED, COMPLETED, FAILED, STOPPED_EARLY, RecordCallback
from search.recorded import Findings, read_trials
from search.searcher import load_study, outcome
from search.tracking.repair import check_mlflow
from search.tuner import STUDY_FILE
from trainables.nonfinite import failed_epoch

REPORT_FILE = "reconcile.json"
# Study user attr: numbers of the Optuna trials whose Ray trial a kill cut before it began.
NEVER_STARTED = "never_started"
OPTUNA_STATE = {
    COMPLETED: TrialState.COMPLETE,
    STOPPED_EARLY: TrialState.PRUNED,
    FAILED: TrialState.FAIL,
    ABANDONED: TrialState.FAIL,
}
log = logging.getLogger(__name__)


def told_value(trial: TrialRecord, metric: str) -> float | None:
    """The value the searcher told Optuna for this completed trial: `searcher.outcome` of its last
    recorded result (no budget check: the record already says completed)."""
    if not trial.results:
        return None
    _, value = outcome(trial.results[max(trial.results)], False, 0, f"best_{metric}")
    return value


def _trial_id(result: Any) -> str:
    """A Ray Result's trial id: reported with every result, else its folder's name (the id)."""
    return str((result.metrics or {}).get("trial_id") or Path(str(result.path)).name)


def ray_trial_ids(results: Iterable[Any]) -> set[str]:
    """The trial ids of Ray's ResultGrid: every trial Ray knows, started or not."""
    return {_trial_id(r) for r in results}


def check_ray(results: Iterable[Any], trials: dict[str, TrialRecord]) -> Findings:
    """Ray's ResultGrid: every recorded trial once (abandoned ones were replaced by Ray), the same
    last epoch (for a non-finite failure: the same failed epoch), and an error exactly where the
    record says failed."""
    found = Findings()
    results = list(results)
    counts = Counter(_trial_id(r) for r in results)
    found.duplicated += [f"trial {t}: {n} results" for t, n in counts.items() if n > 1]
    for result in results:
        trial_id = _trial_id(result)
        trial = trials.get(trial_id)
        found.checked += 1
        if trial is None:
            found.mismatched.append(f"trial {trial_id}: in Ray, not in the record")
            continue
        _check_ray_epoch(result.metrics or {}, trial, found)
        failed = result.error is not None
        if trial.state is not None and failed != (trial.state == FAILED):
            found.mismatched.append(f"trial {trial_id}: Ray error={failed}, recorded {trial.state}")
    live = [t for t, trial in trials.items() if trial.state != ABANDONED]
    found.missing += [f"trial {t}: not in Ray's results" for t in live if t not in counts]
    return found


def _check_ray_epoch(metrics: dict[str, Any], trial: TrialRecord, found: Findings) -> None:
    """Ray's last result against the record: a flagged non-finite result (no `epoch`; the record
    skips it) names the epoch the record's end counts, any other has the last recorded epoch."""
    flagged, epoch = failed_epoch(metrics), metrics.get("epoch")
    tid, last = trial.trial_id, max(trial.results) if trial.results else None
    if flagged is not None:
        if trial.epochs is not None and flagged != trial.epochs:
            found.mismatched.append(
                f"trial {tid}: Ray failed at epoch {flagged}, recorded {trial.epochs}"
            )
    elif epoch is not None and int(epoch) != last:
        found.mismatched.append(f"trial {tid}: Ray's last epoch {epoch}, recorded {last}")


def abandon_orphans(output_dir: Path, study_name: str, ray_trials: set[str], metric: str) -> None:
    """Close what a killed driver left open that Ray's last snapshot did not know (`ray_trials`:
    the trial ids of the resumed search; Ray replaced the others).

    A recorded trial without an end gets an `abandoned` end in the record and FAIL in the study
    (with its recorded epochs); an Optuna suggestion that never started (in no record, unknown to
    Ray, or cut by the kill before it named its Ray trial) is told FAIL and its number listed in
    the study's user attribute `never_started`.
    """
    trials = read_trials(output_dir)
    orphans = [t for tid, t in trials.items() if t.state is None and tid not in ray_trials]
    record = RecordCallback(output_dir, max_epochs=0)
    for trial in orphans:
        reason = "started after Ray's last snapshot before a kill"
        record.write_end(trial.trial_id, ABANDONED, len(trial.results), reason)
    record.close()
    if not (output_dir / STUDY_FILE).is_file():
        return
    study = load_study(output_dir / STUDY_FILE, study_name)
    never_started = list(study.user_attrs.get(NEVER_STARTED, []))
    orphan_ids = {t.trial_id for t in orphans}
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tid = frozen.user_attrs.get("ray_trial_id")  # None: the kill cut its suggestion short
        if tid is not None and (tid in ray_trials or (tid in trials and tid not in orphan_ids)):
            continue  # Ray still runs it, or the record has its end (check_optuna tells it)
        if tid not in trials:
            never_started.append(frozen.number)
            study.set_user_attr(NEVER_STARTED, never_started)
        _tell_from_record(study, frozen, trials.get(tid), metric, TrialState.FAIL, None)


def _recorded_steps(trial: TrialRecord | None, metric: str) -> dict[int, float]:
    """The intermediate values the searcher reports for the recorded epochs (step = epoch + 1)."""
    results = trial.results.items() if trial is not None else ()
    return {e + 1: r[metric] for e, r in results if math.isfinite(r.get(metric, math.nan))}


def _tell_from_record(
    study: Any,
    frozen: Any,
    trial: TrialRecord | None,
    metric: str,
    state: TrialState,
    value: float | None,
) -> None:
    """Report the recorded epochs a RUNNING study trial lacks (a kill cut the searcher's deferred
    writes, search/searcher.py), then tell it `state`."""
    running = optuna.Trial(study, frozen._trial_id)  # Optuna has no public handle by number
    for step, recorded in sorted(_recorded_steps(trial, metric).items()):
        if step not in frozen.intermediate_values:
            running.report(recorded, step)
    study.tell(running, value, state=state)


def check_optuna(
    output_dir: Path, study_name: str, trials: dict[str, TrialRecord], metric: str
) -> Findings | None:
    """The Optuna journal: every recorded trial once, its state and value as recorded; a trial
    left RUNNING after its recorded end is told that end. None without a journal (no Optuna)."""
    path = output_dir / STUDY_FILE
    if not path.is_file():
        return None
    study = load_study(path, study_name)
    found = Findings()
    by_trial: dict[str, list] = {}
    never_started = set(study.user_attrs.get(NEVER_STARTED, []))
    for frozen in study.get_trials(deepcopy=False):
        if "ray_trial_id" in frozen.user_attrs and frozen.number not in never_started:
            by_trial.setdefault(frozen.user_attrs["ray_trial_id"], []).append(frozen)
    for trial_id, frozen_trials in by_trial.items():
        if trial_id not in trials:
            found.mismatched.append(f"trial {trial_id}: in Optuna, not in the record")
        elif len(frozen_trials) > 1:
            found.duplicated.append(f"trial {trial_id}: {len(frozen_trials)} Optuna trials")
    for trial_id, trial in trials.items():
        found.checked += 1
        if trial_id not in by_trial:
            found.missing.append(f"trial {trial_id}: not in the study")
            continue
        _check_optuna_trial(study, by_trial[trial_id][0], trial, metric, found)
    return found


def _check_optuna_trial(
    study: Any, frozen: Any, trial: TrialRecord, metric: str, found: Findings
) -> None:
    if trial.state is None:
        return  # interrupted: Optuna keeps it RUNNING until the resume finishes it
    expected = OPTUNA_STATE[trial.state]
    value = told_value(trial, metric) if expected == TrialState.COMPLETE else None
    tid = trial.trial_id
    if frozen.state == TrialState.RUNNING:
        _tell_from_record(study, frozen, trial, metric, expected, value)
        found.repaired.append(f"trial {tid}: RUNNING told {expected.name} from the record")
        return
    steps, recorded = set(frozen.intermediate_values), set(_recorded_steps(trial, metric))
    if recorded - steps:
        found.missing.append(f"trial {tid}: Optuna lacks steps {sorted(recorded - steps)}")
    if steps - recorded:
        found.mismatched.append(f"trial {tid}: Optuna steps {sorted(steps - recorded)} unrecorded")
    if frozen.state != expected:
        found.mismatched.append(f"trial {tid}: Optuna {frozen.state.name}, recorded {trial.state}")
    elif value is not None and frozen.value != value:
        found.mismatched.append(f"trial {tid}: Optuna value {frozen.value}, recorded {value}")


def _guarded(source: str, check: Any, *args: Any) -> Findings | None:
    """Run one source's check; a failure becomes a Findings with its error, never an exception."""
    try:
        return check(*args)
    except Exception as error:
        log.warning("reconcile: checking %s failed: %s", source, error, exc_info=True)
        return Findings(error=f"{type(error).__name__}: {error}")


def reconcile(
    output_dir: Path,
    study_name: str,
    results: Iterable[Any] | None,
    tracking_uri: str | None,
    metric: str,
    mode: str,
    thorough: bool = True,
) -> dict[str, Findings]:
    """Compare Ray's `results`, the study and MLflow (when `tracking_uri`) with the record, repair
    what the record can, write reconcile.json and log one summary line. Never raises.

    `thorough=False` (a search whose tracker sent everything, none of it failing) compares only
    `metric`'s MLflow history per run, not every metric's. `mode` is not needed: Optuna's value is
    the trial's own `best_<metric>` (searcher.outcome).
    """
    output_dir = Path(output_dir)
    report: dict[str, Findings] = {}
    try:
        trials = read_trials(output_dir)
        if results is not None:
            report["ray"] = _guarded("Ray", check_ray, results, trials)
        optuna = _guarded("Optuna", check_optuna, output_dir, study_name, trials, metric)
        if optuna is not None:
            report["optuna"] = optuna
        if tracking_uri:
            only = None if thorough else (metric,)
            report["mlflow"] = _guarded(
                "MLflow", check_mlflow, tracking_uri, output_dir, trials, only
            )
        data = {source: asdict(found) for source, found in report.items()}
        (output_dir / REPORT_FILE).write_text(json.dumps(data, indent=1))
    except Exception as error:
        log.warning("reconcile: %s; the search's results stand", error, exc_info=True)
        return report
    clean = all(not (f.missing or f.duplicated or f.mismatched or f.error) for f in report.values())
    log.log(
        logging.INFO if clean else logging.WARNING,
        "reconcile (%s): %s",
        output_dir / REPORT_FILE,
        "; ".join(f"{source} {found.summary()}" for source, found in report.items()),
    )
    return report
