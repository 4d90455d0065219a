"""MLflow against the record (search/reconcile.py): find the search's runs, repair them from it.

The parent comes from the tracker's state file (`mlflow_runs.json`), its children by the
`ray.trial_id` tag. Per recorded trial: one child run (created from the record when missing),
each recorded (epoch, metric) exactly once in the run's history (a missing step is logged from the
record) and an end status (a run left RUNNING is terminated with the recorded state). Duplicates
and differing values are reported, never deleted: MLflow has no way to remove one metric value.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from mlflow.entities import Metric, Run

from reports.defaults import INTERRUPTED, RUN_STATUS
from reports.load import TrialRecord
from search.recorded import Findings
from search.tracking.batching import batches
from search.tracking.names import sanitize_key
from search.tracking.record import Pending
from search.tracking.state import STATE_FILE_NAME, load_state
from search.tracking.tracker import queue_params
from search.tracking.uri import check_reachable
from search.tracking.writer import (
    PARENT_RUN_TAG,
    SEARCH_NAME_TAG,
    TRIAL_ID_TAG,
    MlflowWriter,
    fail_fast,
)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def check_mlflow(
    tracking_uri: str,
    output_dir: Path,
    trials: dict[str, TrialRecord],
    only: tuple[str, ...] | None = None,
) -> Findings:
    """Compare the search's MLflow runs with the recorded `trials`; repair what the record can.

    `only`: compare just these metrics' histories (one query per run and metric, for a search
    whose tracker sent everything without a failure); None compares every recorded metric.
    """
    check_reachable(tracking_uri)  # a dead server: one clear error, not a wait per call
    with fail_fast():
        return _check(MlflowWriter(tracking_uri), output_dir, trials, only)


def _check(
    writer: MlflowWriter,
    output_dir: Path,
    trials: dict[str, TrialRecord],
    only: tuple[str, ...] | None,
) -> Findings:
    found = Findings()
    state = load_state(Path(output_dir) / STATE_FILE_NAME)
    uri = writer.tracking_uri
    parent_id = state.parent_run_id if state and state.tracking_uri == uri else None
    if parent_id is None or not writer.run_exists(parent_id):
        found.missing.append("the search's parent run")
        return found
    parent = writer.client.get_run(parent_id)
    experiment_id = parent.info.experiment_id
    runs: dict[str, list[Run]] = {}
    for run in writer.children(experiment_id, parent_id):
        runs.setdefault(run.data.tags.get(TRIAL_ID_TAG, ""), []).append(run)
    for trial_id, group in runs.items():
        if trial_id not in trials:
            found.mismatched.append(f"trial {trial_id or '?'}: child run not in the record")
        elif len(group) > 1:
            found.duplicated.append(f"trial {trial_id}: {len(group)} child runs")
    known = {key: record.run_id for key, record in (state.trials if state else {}).items()}
    search_name = parent.data.tags.get(SEARCH_NAME_TAG, parent.info.run_name)
    for trial_id, trial in trials.items():
        found.checked += 1
        group = sorted(runs.get(trial_id, []), key=lambda r: r.info.start_time or 0)
        run = next((r for r in group if r.info.run_id == known.get(trial_id)), None)
        run = run or (group[0] if group else None)
        if run is None:
            found.missing.append(f"trial {trial_id}: no child run")
            run_id = _create_child(writer, experiment_id, parent_id, search_name, trial)
            found.repaired.append(f"trial {trial_id}: child run created from the record")
            _check_metrics(writer, run_id, trial, found, None)
            _close(writer, run_id, trial, found, "RUNNING")
        else:
            _check_metrics(writer, run.info.run_id, trial, found, only)
            _close(writer, run.info.run_id, trial, found, run.info.status)
    return found


def _create_child(
    writer: MlflowWriter, experiment_id: str, parent_id: str, search_name: str, trial: TrialRecord
) -> str:
    """A child run for a recorded trial the tracker never wrote: its tags and params, as the
    tracker queues them (tracker.queue_params)."""
    tags = {TRIAL_ID_TAG: trial.trial_id, PARENT_RUN_TAG: parent_id, SEARCH_NAME_TAG: search_name}
    run_id = writer.create_run(experiment_id, f"trial_{trial.trial_id}", tags)
    pending = Pending(tags={"recovered_from": "record.jsonl"})
    queue_params(pending, trial.params)
    writer.send(run_id, pending)
    return run_id


def _check_metrics(
    writer: MlflowWriter,
    run_id: str,
    trial: TrialRecord,
    found: Findings,
    only: tuple[str, ...] | None,
) -> None:
    """Each recorded (epoch, metric) once with the recorded value (of `only`, else of every
    metric); missing ones logged."""
    keys = sorted({key for metrics in trial.results.values() for key in metrics})
    if only is not None:
        keys = [key for key in keys if key in only]
    absent: list[Metric] = []
    for key in keys:
        name = sanitize_key(key)
        history = writer.client.get_metric_history(run_id, name)
        steps = Counter(m.step for m in history)
        values = {m.step: m.value for m in history}
        tid = trial.trial_id
        for epoch, metrics in sorted(trial.results.items()):
            if key not in metrics:
                continue
            value = metrics[key]
            if steps[epoch] == 0:
                absent.append(Metric(name, value, int(trial.times.get(epoch, 0) * 1000), epoch))
            elif steps[epoch] > 1:
                found.duplicated.append(f"trial {tid} epoch {epoch} {name}: {steps[epoch]}x")
            elif not _same(values[epoch], value):
                found.mismatched.append(
                    f"trial {tid} epoch {epoch} {name}: MLflow {values[epoch]}, recorded {value}"
                )
        extra = sorted(set(steps) - {e for e, m in trial.results.items() if key in m})
        if extra:
            found.mismatched.append(f"trial {tid} {name}: steps {extra} not in the record")
    if absent:
        epochs = sorted({m.step for m in absent})
        found.missing.append(f"trial {trial.trial_id}: {len(absent)} values of epochs {epochs}")
        for batch in batches(metrics=absent):
            writer.client.log_batch(run_id, metrics=batch.metrics, synchronous=True)
        found.repaired.append(f"trial {trial.trial_id}: {len(absent)} metric values logged")


def _close(
    writer: MlflowWriter, run_id: str, trial: TrialRecord, found: Findings, status: str
) -> None:
    """A run still RUNNING is ended with the recorded state; a differing end is reported."""
    end_state = trial.state or INTERRUPTED
    expected = RUN_STATUS.get(end_state, RUN_STATUS[INTERRUPTED])  # abandoned: as interrupted
    if status == "RUNNING":
        writer.client.set_tag(run_id, "end_state", end_state)
        writer.terminate(run_id, expected)
        found.repaired.append(f"trial {trial.trial_id}: RUNNING run ended {expected}")
    elif trial.state in RUN_STATUS and status != expected:
        found.mismatched.append(
            f"trial {trial.trial_id}: run {status}, recorded {trial.state} ({expected})"
        )
