"""Read a search back from MLflow (no output folder needed): the parent run and its child runs.

The parent run (picked by id, or the latest parent run of an experiment) holds the resolved config
(artifact config.yaml, else its dotted params), the space file (artifact space.yaml) and the data's
facts (artifact data.json). Each child run is a trial: tag `ray.trial_id`, params = the trial's
config, metric histories with step = epoch, tags `end_state`, `epochs_trained` and
`failure_reason`; only the histories of the metrics the report needs are read. A child tagged
`stage=confirmation` is a confirmation run: its metrics, tags `source` and `role`, and its test
predictions (artifact test_predictions.json).
"""

from __future__ import annotations

import ast
import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mirrors.store import PARENT_RUN_TAG, TRIAL_ID_TAG, child_runs, fail_fast, search_all
from mirrors.uri import check_reachable, resolve_tracking_uri, sqlite_path
from record import (
    COMPLETED,
    CONFIG_FILE,
    CONFIRMATION,
    DATA_FILE,
    FAILED,
    SPACE_FILE,
    STOPPED_EARLY,
)
from record.reader import TrialRecord, natural_key
from record.schema import PREDICTIONS_FILE
from reports.load import Run, read_optional_yaml
from reports.objectives import check_available, parse_objectives
from reports.searched import read_space
from reports.tasks import balance_metrics
from trainables.errors import UserInputError

END_STATES = {COMPLETED, STOPPED_EARLY, FAILED}  # `end_state` tags of finished trials


def parse_value(text: str) -> Any:
    """An MLflow param string back as a Python literal (None, True, 3, 0.001, [..]); else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def nest(flat: dict[str, str]) -> dict[str, Any]:
    """{"train.max_epochs": "12"} → {"train": {"max_epochs": 12}} (values parsed)."""
    out: dict[str, Any] = {}
    for key, text in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[leaf] = parse_value(text)
    return out


def resolve_parent_run(client: Any, run_id: str | None, experiment: str | None) -> Any:
    """The parent run with id `run_id`, else the latest parent run of `experiment`."""
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception as e:
            raise UserInputError(
                f"--run-id {run_id}: no such MLflow run ({_first_line(e)})"
            ) from None
        if PARENT_RUN_TAG in run.data.tags:
            parent = run.data.tags[PARENT_RUN_TAG]
            raise UserInputError(f"--run-id {run_id}: a trial's run; its search's run is {parent}")
        return run
    found = client.get_experiment_by_name(experiment or "")
    if found is None:
        raise UserInputError(f"--experiment {experiment!r}: no such MLflow experiment")
    for run in search_all(client, found.experiment_id, ""):
        if PARENT_RUN_TAG not in run.data.tags:
            return run
    raise UserInputError(f"--experiment {experiment!r}: holds no search (parent) run")


def write_mlflow_report(
    tracking_uri: str,
    run_id: str | None,
    experiment: str | None,
    out: Path | None = None,
    objectives: str | Sequence[str] | None = None,
    **options: Any,
) -> Path:
    """Rebuild the report of a search from MLflow into `out` (default ./report-<run id>).

    `options` are write_run_report's (reference, margin, epoch_rule). A missing SQLite file, a
    down or slow server and any MLflow error are one UserInputError naming the URI and the search.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from reports.write import write_run_report

    uri = resolve_tracking_uri(tracking_uri, None, Path.cwd())
    database = sqlite_path(uri)
    if database is not None and not database.is_file():  # reading must not create an empty store
        raise UserInputError(f"--mlflow-uri {tracking_uri}: {database} not found")
    check_reachable(uri)
    search = f"--run-id {run_id}" if run_id else f"--experiment {experiment!r}"
    try:
        with fail_fast(), tempfile.TemporaryDirectory() as tmp:
            client = MlflowClient(uri)
            parent = resolve_parent_run(client, run_id, experiment)
            folder = Path(out or f"report-{parent.info.run_id}")
            run = load_mlflow_run(client, parent, folder, Path(tmp), objectives)
    except MlflowException as e:
        raise UserInputError(
            f"--mlflow-uri {tracking_uri} {search}: reading MLflow failed ({_first_line(e)})"
        ) from None
    return write_run_report(run, folder, objectives, **options)


def load_mlflow_run(
    client: Any,
    parent: Any,
    folder: Path,
    downloads: Path,
    objectives: str | Sequence[str] | None = None,
) -> Run:
    """The search of `parent` as a Run with output_dir `folder`; its files go to `downloads`.

    Reads the histories of the objectives (given, else the config's) and of search.metric.
    """
    run_id = parent.info.run_id
    config_path = _download(client, run_id, CONFIG_FILE, downloads)
    config = read_optional_yaml(config_path) if config_path else nest(dict(parent.data.params))
    space_path = _download(client, run_id, SPACE_FILE, downloads)
    data_path = _download(client, run_id, DATA_FILE, downloads)
    facts = json.loads(data_path.read_text()) if data_path else {}
    runs = _children(client, parent)
    children = [c for c in runs if c.data.tags.get("stage") != CONFIRMATION]
    confirmations = [_confirmation(client, c, i) for i, c in enumerate(runs) if c not in children]
    notes = [] if space_path else [f"{SPACE_FILE} not logged: searched parameters inferred"]
    spec = objectives if objectives is not None else (config.get("report") or {}).get("objectives")
    wanted = [o.metric for o in parse_objectives(spec)] if spec is not None else []
    if wanted:
        check_available(parse_objectives(spec), {m for c in children for m in c.data.metrics})
    metric = (config.get("search") or {}).get("metric")
    wanted += [metric] if metric and metric not in wanted else []
    wanted += [m for t in facts.get("tasks") or () for m in balance_metrics(t) if m not in wanted]
    trials = [_trial(client, c, i, wanted) for i, c in enumerate(children)]
    trials.sort(key=lambda t: natural_key(t.trial_id))
    space = read_space(space_path, tuple(facts.get("tasks") or ())) if space_path else None
    return Run(folder, trials, config, space, notes, confirmations, facts)


def _trial(client: Any, run: Any, order: int, metrics: Iterable[str]) -> TrialRecord:
    tags = run.data.tags
    results: dict[int, dict[str, float]] = {}
    for name in metrics:
        if name in run.data.metrics:
            for m in client.get_metric_history(run.info.run_id, name):
                results.setdefault(int(m.step), {})[name] = float(m.value)
    epochs = tags.get("epochs_trained")
    return TrialRecord(
        trial_id=tags[TRIAL_ID_TAG],
        order=order,
        params={k: parse_value(v) for k, v in run.data.params.items()},
        results=results,
        state=_end_state(tags.get("end_state")),
        epochs=int(epochs) if epochs and epochs.isdigit() else None,
        reason=tags.get("failure_reason"),
    )


def _confirmation(client: Any, run: Any, order: int) -> TrialRecord:
    """A confirmation run back from its child run: one result with every metric it logged."""
    tags = run.data.tags
    with tempfile.TemporaryDirectory() as tmp:
        path = _download(client, run.info.run_id, PREDICTIONS_FILE, Path(tmp))
        predictions = json.loads(path.read_text()) if path else None
    return TrialRecord(
        trial_id=tags[TRIAL_ID_TAG],
        order=order,
        params={k: parse_value(v) for k, v in run.data.params.items()},
        results={int(tags.get("best_epoch", 0)): dict(run.data.metrics)},
        state=_end_state(tags.get("end_state")),
        stage=CONFIRMATION,
        source=tags.get("source"),
        role=tags.get("role"),
        predictions=predictions,
    )


def _end_state(tag: str | None) -> str | None:
    """A finished trial's end state; None for interrupted or running (unfinished)."""
    return tag if tag in END_STATES else None


def _children(client: Any, parent: Any) -> list[Any]:
    """The trial runs of `parent`, oldest first; one per trial id (the earliest)."""
    runs = child_runs(client, parent.info.experiment_id, parent.info.run_id)
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    seen: dict[str, Any] = {}
    for run in runs:
        if TRIAL_ID_TAG in run.data.tags:
            seen.setdefault(run.data.tags[TRIAL_ID_TAG], run)
    if not seen:
        raise UserInputError(f"MLflow run {parent.info.run_id}: no trial (child) runs")
    return list(seen.values())


def _download(client: Any, run_id: str, path: str, folder: Path) -> Path | None:
    """Artifact `path` of the run copied into `folder`, or None when the run has no such file."""
    parent = str(Path(path).parent) if "/" in path else None
    if Path(path).name not in {
        f.path.split("/")[-1] for f in client.list_artifacts(run_id, parent)
    }:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, path, tmp))
        target = folder / Path(path).name
        target.write_bytes(local.read_bytes())
    return target


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
