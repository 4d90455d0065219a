"""What the MLflow mirror of a search is told by the driver, with every default and why."""

from __future__ import annotations

import contextlib
import getpass
import socket
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from trainables.objective import Objective

# A pass over the record's new events every 2 s: the UI lags a running trial by about that, and a
# short trial's epochs go out in one log_batch call rather than one per epoch.
DEFAULT_INTERVAL_S = 2.0
# At close, a failing store gets at least this many more passes, `retry_backoff_s` apart, and more
# for up to `close_retry_s` (a restarting server is back within that); what is still unsent then
# waits in the record for the next resume.
DEFAULT_CLOSE_RETRIES = 3
DEFAULT_RETRY_BACKOFF_S = 1.0
DEFAULT_CLOSE_RETRY_S = 30.0
_PROJECT = "loss-search"


@dataclass(frozen=True)
class MirrorSettings:
    """One search's MLflow mirror: where (URI, experiment), what (config, tags, artifacts), how."""

    tracking_uri: str
    experiment: str
    search_name: str
    output_dir: Path
    config: dict[str, Any] = field(default_factory=dict)  # resolved search config -> parent params
    tags: dict[str, str] = field(default_factory=dict)  # parent tags (space, data preset, ...)
    artifacts: tuple[Path, ...] = ()  # files logged on the parent run at its creation
    max_epochs: int | None = None
    objective: Objective = Objective()
    resume: bool = False  # find the parent and children of an earlier run of this search
    interval_s: float = DEFAULT_INTERVAL_S
    close_retries: int = DEFAULT_CLOSE_RETRIES
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S
    close_retry_s: float = DEFAULT_CLOSE_RETRY_S


def _git_commit(folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _version() -> str:
    try:
        return metadata.version(_PROJECT)
    except metadata.PackageNotFoundError:
        return "unknown"


def default_tags() -> dict[str, str]:
    """Provenance tags for the parent run: project version, git commit (in a checkout), host."""
    tags = {"project_version": _version(), "host": socket.gethostname()}
    commit = _git_commit(Path(__file__).resolve().parent)
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    with contextlib.suppress(OSError, KeyError):
        tags["mlflow.user"] = getpass.getuser()
    return tags
