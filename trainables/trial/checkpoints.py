"""Loading a trial's checkpoint: the newest loadable one, falling back to older ones with a warning.

Ray keeps every checkpoint of a trial (`checkpoint_000000`, `checkpoint_000001`, ... in the trial's
folder, `CheckpointConfig(num_to_keep=None)`). `restore` tries the newest first and, when its
`state.pt` is missing, truncated or not a checkpoint, the one before, and so on back to the oldest;
each skip is a warning naming the folder and the reason. No loadable checkpoint is an error, never a
silent restart from scratch. Paths are on a pyarrow filesystem (local or a URI's, as Ray stores
them). Loading is `torch.load(..., weights_only=True)`: tensors and plain values only.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
FALLBACK = "checkpoint_fallback"  # result key: the note after restoring an older checkpoint
REQUIRED_KEYS = ("state", "epoch", "best", "best_epoch", "train_time_s")  # state: the trainable's
BUILT_IN_KEYS = {"model", "optim", "gen", "torch_rng"}  # the built-in loop's state
_FOLDER = re.compile(r"^checkpoint_(\d+)$")  # Ray's checkpoint folder names


class NoLoadableCheckpoint(RuntimeError):
    """Every checkpoint of the trial is missing or damaged; the message lists each one's reason."""


@dataclass(frozen=True)
class Restored:
    """The state loaded, the folder it came from, and the newer folders skipped with their reasons."""

    state: dict[str, Any]
    path: str
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"])

    def note(self) -> str:
        """One line for logs and MLflow: which checkpoint was used and why newer ones were not."""
        why = "; ".join(f"{_name(p)}: {reason}" for p, reason in self.skipped)
        return f"restored from {_name(self.path)} (epoch {self.epoch}) after skipping {why}"


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _index(path: str) -> int | None:
    match = _FOLDER.match(_name(path))
    return int(match.group(1)) if match else None


def candidates(fs: pafs.FileSystem, newest: str) -> list[str]:
    """`newest` and its older sibling checkpoint folders, newest first (by Ray's index)."""
    newest = newest.rstrip("/")
    top = _index(newest)
    if top is None:
        return [newest]
    parent = newest.rsplit("/", 1)[0]
    infos = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    older = {
        index: info.path.rstrip("/")
        for info in infos
        if info.type == pafs.FileType.Directory
        and (index := _index(info.path)) is not None
        and index < top
    }
    return [newest, *(older[i] for i in sorted(older, reverse=True))]


def load_file(fs: pafs.FileSystem, folder: str) -> dict[str, Any]:
    """The checkpoint in `folder` (on `fs`); raises when it is missing, damaged or incomplete."""
    path = f"{folder.rstrip('/')}/{CHECKPOINT_FILE}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise FileNotFoundError(f"no {CHECKPOINT_FILE}")
    with fs.open_input_stream(path) as f:
        data = f.read()
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state" not in state and state.keys() >= BUILT_IN_KEYS:
        state = {"state": {k: state.pop(k) for k in BUILT_IN_KEYS}} | state  # before plug-ins
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"not a trial checkpoint (missing {', '.join(missing)})")
    return state


def load_state(directory: str | Path) -> dict[str, Any]:
    """Load the checkpoint in a local folder (tensors and plain values only)."""
    return load_file(pafs.LocalFileSystem(), str(Path(directory).resolve()))


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]


def restore(fs: pafs.FileSystem, newest: str) -> Restored:
    """Load the newest loadable checkpoint at or before `newest`, warning about each one skipped.

    Raises NoLoadableCheckpoint naming every checkpoint tried and why it failed.
    """
    skipped: list[tuple[str, str]] = []
    for folder in candidates(fs, newest):
        try:
            state = load_file(fs, folder)
        except Exception as error:  # any damage: a truncated zip, garbage, a wrong object
            reason = _reason(error)
            log.warning("checkpoint %s is unusable (%s); trying the one before", folder, reason)
            skipped.append((folder, reason))
            continue
        restored = Restored(state, folder, tuple(skipped))
        if skipped:
            log.warning("checkpoint fallback: %s", restored.note())
        return restored
    tried = "; ".join(f"{p}: {r}" for p, r in skipped)
    raise NoLoadableCheckpoint(
        f"no loadable checkpoint ({len(skipped)} tried, newest first): {tried}; "
        "not restarting from scratch"
    )
