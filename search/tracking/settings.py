"""What a tracker is told by the driver, with every tracking default and why it was chosen.

Plain, picklable data: a Tuner pickles its callbacks, and `Tuner.restore` rebuilds the callback
from these settings when the driver has not created a tracker for the same output folder.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import socket
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_METRIC = "val_macro_f1"
DEFAULT_MODE = "max"
MODES = ("max", "min")
# Send a trial's run once this many of its metric values wait: one full log_batch call (MLflow's
# limit is 1000 metrics), i.e. about 35 epochs of the ~28 values a trial reports.
DEFAULT_FLUSH_EVERY = 1000
# Or once a flush has held its queue this long (and when its trial ends): the UI lags a running
# trial by at most about 2 × 2 s, and a short trial goes out in one call.
DEFAULT_FLUSH_INTERVAL_S = 2.0
# At close, a failing store gets at least this many more tries, `retry_backoff_s` apart, and more
# for up to `close_retry_s`, before the data is given up (with a warning; reconcile writes it later
# from the record): a restarting server is back within that, and the driver exits in bounded time.
DEFAULT_CLOSE_RETRIES = 3
DEFAULT_RETRY_BACKOFF_S = 1.0
DEFAULT_CLOSE_RETRY_S = 30.0
# The longest the driver blocks on MLflow (start, experiment end, close): more than close_retry_s
# plus one request's timeout (writer.FAIL_FAST); past it the driver moves on and warns.
DEFAULT_WAIT_S = 60.0
_PROJECT = "loss-search"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerSettings:
    """One search's tracking: where (URI, experiment), what (config, tags, artifacts) and how."""

    tracking_uri: str
    experiment: str
    search_name: str
    output_dir: Path
    config: dict[str, Any] = field(default_factory=dict)  # resolved search config -> parent params
    tags: dict[str, str] = field(default_factory=dict)  # parent tags (space, data preset, ...)
    artifacts: tuple[Path, ...] = ()  # files or folders logged on the parent at start
    max_epochs: int | None = None  # a trial with fewer epochs was stopped early
    metric: str = DEFAULT_METRIC
    mode: str = DEFAULT_MODE
    resume: bool = False  # reuse the parent and children of an earlier run of this search
    flush_every: int = DEFAULT_FLUSH_EVERY
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    close_retries: int = DEFAULT_CLOSE_RETRIES
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S
    close_retry_s: float = DEFAULT_CLOSE_RETRY_S
    wait_s: float = DEFAULT_WAIT_S

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {list(MODES)}, got {self.mode!r}")


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
