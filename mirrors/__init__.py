"""Stores derived from a search's record: MLflow (`MlflowMirror`), with where it lives and how to
browse it. Imports no Ray: a mirror reads the output folder only."""

from mirrors.mlflow import STATE_FILE, MlflowMirror
from mirrors.settings import MirrorSettings
from mirrors.uri import check_reachable, resolve_tracking_uri, ui_command

__all__ = [
    "STATE_FILE",
    "MirrorSettings",
    "MlflowMirror",
    "check_reachable",
    "resolve_tracking_uri",
    "ui_command",
]
