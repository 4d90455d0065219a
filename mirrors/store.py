"""The MLflow store of a search: opening it, the tags that link its runs, finding them again.

Shared by the mirror (mirrors/mlflow.py) and the report's MLflow reader (reports/mlflow_run.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)

from mirrors.uri import artifact_location, sqlite_path
from record import ABANDONED, COMPLETED, FAILED, INTERRUPTED, STOPPED_EARLY

PARENT_RUN_TAG = "mlflow.parentRunId"
TRIAL_ID_TAG = "ray.trial_id"
SEARCH_NAME_TAG = "search.name"
OUTPUT_DIR_TAG = "search.output_dir"
# MLflow 3.x UI: experiments without this tag open on the GenAI traces page; this value opens the
# classic runs table (enum ExperimentKind in mlflow/server/js, key read by the experiment page).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The MLflow status of a trial's run per end state (an abandoned trial was interrupted for good).
RUN_STATUS = {
    COMPLETED: "FINISHED",
    STOPPED_EARLY: "FINISHED",
    FAILED: "FAILED",
    ABANDONED: "KILLED",
    INTERRUPTED: "KILLED",
}
PAGE = 1000  # runs per search_runs call
# MLflow's HTTP client retries a dead server 7 times over about 4 minutes, answering a restarted
# server only after its next backoff sleep. The mirror fails fast instead (one immediate retry,
# 20 s per request) and retries itself, with nothing lost: the record holds it all.
FAIL_FAST = {
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "1",
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "0",
    MLFLOW_HTTP_REQUEST_TIMEOUT.name: "20",
}
log = logging.getLogger(__name__)


@contextlib.contextmanager
def environment(values: dict[str, str], override: bool = True) -> Iterator[None]:
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
    return environment(FAIL_FAST, override=False)


def quiet_urls() -> contextlib.AbstractContextManager[None]:
    """MLflow prints "View run ... at URL" on every set_terminated over HTTP unless told not to."""
    return environment({MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name: "true"})


def open_store(uri: str) -> MlflowClient:
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


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`: created if missing, restored if deleted, kind tag set."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = artifact_location(client.tracking_uri, name)
        tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        return client.create_experiment(name, artifact_location=location, tags=tags)
    if experiment.lifecycle_stage == "deleted":
        log.warning("MLflow experiment %r was deleted; restoring it", name)
        client.restore_experiment(experiment.experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def search_all(client: Any, experiment_id: str, filter_string: str) -> Iterator[Run]:
    """Every active run of the experiment matching `filter_string`, newest first (all pages)."""
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=PAGE,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def child_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[Run]:
    """The child runs of `parent_run_id`, newest first."""
    return list(search_all(client, experiment_id, f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"))


def find_parent_run_id(
    client: Any, experiment_id: str, search_name: str, output_dir: str
) -> str | None:
    """The newest parent run of this search (same name and output folder), or None."""
    if "'" in search_name or "'" in output_dir:
        return None  # not quotable in a filter string
    query = (
        f"tags.`{SEARCH_NAME_TAG}` = '{search_name}' and tags.`{OUTPUT_DIR_TAG}` = '{output_dir}'"
    )
    parents = (
        r for r in search_all(client, experiment_id, query) if PARENT_RUN_TAG not in r.data.tags
    )
    run = next(parents, None)
    return run.info.run_id if run else None
