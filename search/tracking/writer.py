"""Every MLflow call the tracker makes, in one place; each may raise, the tracker retries later."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Param, Run, RunTag
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)

from search.tracking.batching import batches
from search.tracking.record import Pending
from search.tracking.runs import PARENT_RUN_TAG, child_runs, search_all
from search.tracking.runs import TRIAL_ID_TAG as TRIAL_ID_TAG  # importers know it from here
from search.tracking.uri import artifact_location, sqlite_path

# MLflow 3.x UI: experiments without this tag open on the GenAI traces page; this value opens the
# classic runs table (enum ExperimentKind in mlflow/server/js, key read by the experiment page).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
SEARCH_NAME_TAG = "search.name"
OUTPUT_DIR_TAG = "search.output_dir"
log = logging.getLogger(__name__)


# MLflow's HTTP client retries a dead server 7 times over about 4 minutes, holding the writer thread
# and answering a restarted server only after its next backoff sleep. The writer fails fast instead
# (one immediate retry, 20 s per request) and the Syncer retries with the data kept queued.
FAIL_FAST = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "1",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "0",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "20",
}


@contextlib.contextmanager
def _environment(values: dict[str, str], override: bool = True) -> Iterator[None]:
    """MLflow reads these settings from the environment per request: set them for the block (a
    value the user set stays when not `override`), then restore the environment."""
    before = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if override or before[name] is None:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fail_fast() -> contextlib.AbstractContextManager[None]:
    """MLflow calls in the block fail fast (FAIL_FAST), unless the user set those variables."""
    return _environment(FAIL_FAST, override=False)


def _url_printing(enabled: bool) -> contextlib.AbstractContextManager[None]:
    """MLflow prints "View run ... at URL" on every set_terminated over HTTP unless told not to."""
    name = MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name
    return _environment({name: "false" if enabled else "true"})


def _quoted(value: str) -> str | None:
    """`value` as a filter-string literal, or None if it cannot be quoted safely."""
    return None if "'" in value else f"'{value}'"


def _open_store(uri: str) -> MlflowClient:
    """A client of `uri`; a SQLite store is first created or migrated under a lock file beside
    the database, so that searches started together do not race MLflow's schema set-up."""
    database = sqlite_path(uri)
    if database is None:
        return MlflowClient(tracking_uri=uri)
    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # builds the store: tables, migrations
    return client


class MlflowWriter:
    """A lazily connected MlflowClient with the few operations the tracker needs."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = _open_store(self.tracking_uri)
        return self._client

    def ensure_experiment(self, name: str) -> str:
        """The id of experiment `name`: created if missing, restored if deleted, kind tag set."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            return self.client.create_experiment(
                name,
                artifact_location=artifact_location(self.tracking_uri, name),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        if experiment.lifecycle_stage == "deleted":
            log.warning("MLflow experiment %r was deleted; restoring it", name)
            self.client.restore_experiment(experiment.experiment_id)
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            self.client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
        return experiment.experiment_id

    def create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def run_exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:
            return False

    def send(self, run_id: str, pending: Pending, announce: bool = False) -> None:
        """Send `pending` to `run_id` in order, removing each part once sent (on an error the
        caller keeps only the unsent rest); `announce` lets MLflow print the run's URL at the end
        (the parent's; one line per trial would flood the search's output)."""
        if pending.reopen:
            self.client.update_run(run_id, status="RUNNING")
            pending.reopen = False
            pending.params = self._unlogged_params(run_id, pending.params)
        params = [Param(key, value) for key, value in pending.params.items()]
        tags = [RunTag(key, value) for key, value in pending.tags.items()]
        for batch in batches(pending.metrics, params, tags):
            self.client.log_batch(
                run_id,
                metrics=batch.metrics,
                params=batch.params,
                tags=batch.tags,
                synchronous=True,
            )
            for param in batch.params:
                pending.params.pop(param.key, None)
            for tag in batch.tags:
                pending.tags.pop(tag.key, None)
            del pending.metrics[: len(batch.metrics)]
        for artifact_file in list(pending.texts):
            self.client.log_text(run_id, pending.texts[artifact_file], artifact_file)
            del pending.texts[artifact_file]
        while pending.artifacts:
            self._log_path(run_id, *pending.artifacts[0])
            pending.artifacts.pop(0)
        if pending.status:
            self.terminate(run_id, pending.status, announce)
            pending.status = None

    def terminate(self, run_id: str, status: str, announce: bool = False) -> None:
        with _url_printing(announce):
            self.client.set_terminated(run_id, status)

    def _log_path(self, run_id: str, local_path: str, artifact_dir: str | None) -> None:
        path = Path(local_path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_dir)
        elif path.is_file():
            self.client.log_artifact(run_id, str(path), artifact_dir)
        else:
            log.warning("MLflow tracking: artifact %s does not exist; skipped", path)

    def _unlogged_params(self, run_id: str, params: dict[str, str]) -> dict[str, str]:
        """The params the run does not have yet; differing values are kept as logged (MLflow
        forbids changing a param), with a warning."""
        logged = self.client.get_run(run_id).data.params
        changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        if changed:
            log.warning("MLflow run %s keeps its logged values of params %s", run_id, changed)
        return {k: v for k, v in params.items() if k not in logged}

    def find_parent(self, experiment_id: str, search_name: str, output_dir: str) -> str | None:
        """The newest run of this search (same name and output folder), or None."""
        name, folder = _quoted(search_name), _quoted(output_dir)
        if name is None or folder is None:
            return None
        query = f"tags.`{SEARCH_NAME_TAG}` = {name} and tags.`{OUTPUT_DIR_TAG}` = {folder}"
        runs = search_all(self.client, experiment_id, query)
        parents = (r for r in runs if PARENT_RUN_TAG not in r.data.tags)
        run = next(parents, None)
        return run.info.run_id if run else None

    def children(
        self, experiment_id: str, parent_run_id: str, status: str | None = None
    ) -> list[Run]:
        """The child runs of `parent_run_id`, optionally only those with `status`."""
        return child_runs(self.client, experiment_id, parent_run_id, status)
