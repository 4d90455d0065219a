"""MLflow tracking of a search: one parent run per search, one child run per trial.

Driver use (`close` runs on leaving the block: FINISHED, KILLED on Ctrl+C, FAILED on an error;
FINISHED becomes KILLED when Ray stopped on Ctrl+C itself and left trials unfinished)::

    uri = resolve_tracking_uri(cfg.tracking_uri, os.environ.get("MLFLOW_TRACKING_URI"), Path.cwd())
    check_reachable(uri)  # UserInputError before any trial
    settings = TrackerSettings(uri, experiment, search_name, out_dir, flat_config, tags=...,
                               artifacts=(resolved_yaml, space_yaml), max_epochs=..., resume=...)
    with SearchTracker(settings) as tracker:  # create it before Tuner(...) / Tuner.restore(...)
        tuner = Tuner(..., run_config=RunConfig(callbacks=[tracker.callback()]))
        tuner.fit()
        tracker.log_artifacts(report_dir, "report")
    print("Browse runs:", ui_command(uri))
"""

from search.tracking.callback import TrialRunCallback
from search.tracking.names import sanitize_key, sanitize_keys, truncate
from search.tracking.settings import TrackerSettings, default_tags
from search.tracking.state import STATE_FILE_NAME
from search.tracking.tracker import SearchTracker
from search.tracking.uri import check_reachable, resolve_tracking_uri, ui_command

__all__ = [
    "STATE_FILE_NAME",
    "SearchTracker",
    "TrackerSettings",
    "TrialRunCallback",
    "check_reachable",
    "default_tags",
    "resolve_tracking_uri",
    "sanitize_key",
    "sanitize_keys",
    "truncate",
    "ui_command",
]
