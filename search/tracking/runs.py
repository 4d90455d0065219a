"""Finding a search's MLflow runs: the tags that link them and paged run searches.

Shared by the tracker's writer (search/tracking/writer.py) and the MLflow report reader
(reports/mlflow_run.py), which both take any MlflowClient.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlflow.entities import Run, ViewType

PARENT_RUN_TAG = "mlflow.parentRunId"
TRIAL_ID_TAG = "ray.trial_id"
PAGE = 1000  # runs per search_runs call


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


def child_runs(
    client: Any, experiment_id: str, parent_run_id: str, status: str | None = None
) -> list[Run]:
    """The child runs of `parent_run_id`, newest first, optionally only those with `status`."""
    query = f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    return list(search_all(client, experiment_id, query))
