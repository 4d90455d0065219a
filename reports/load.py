"""Read a search's output folder: record.jsonl (through record.read_trials), config.yaml,
space.yaml and data.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from record import (
    CONFIG_FILE,
    CONFIRMATION,
    DATA_FILE,
    RECORD_FILE,
    SPACE_FILE,
    TrialRecord,
    read_looks,
    read_trials,
)
from reports.searched import SpaceParam, narrowed, read_space
from trainables.errors import UserInputError


@dataclass
class Run:
    """One search output folder, as read from disk."""

    output_dir: Path
    trials: list[TrialRecord]  # sorted by trial id (natural order: t2 before t10)
    config: dict[str, Any]
    space: list[SpaceParam] | None  # None when space.yaml is absent
    notes: list[str]  # what was skipped while reading, one sentence each
    confirmations: list[TrialRecord] = field(default_factory=list)  # the confirmation's runs
    facts: dict[str, Any] = field(default_factory=dict)  # data.json: classes, counts, test labels
    looks: list[dict[str, Any]] = field(default_factory=list)  # the confirmation's looks

    @property
    def max_epochs(self) -> int | None:
        value = (self.config.get("train") or {}).get("max_epochs")
        return int(value) if isinstance(value, int | float) else None

    def setting(self, dotted: str) -> Any:
        """A config value by dotted key (None when absent)."""
        node: Any = self.config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def metrics(self) -> set[str]:
        """Every metric name any trial reported."""
        return {m for t in self.trials for row in t.results.values() for m in row}


def load_run(output_dir: str | Path) -> Run:
    """Read `output_dir`; a missing folder or record.jsonl is a UserInputError."""
    root = Path(output_dir)
    record = root / RECORD_FILE
    if not record.is_file():
        raise UserInputError(f"{record}: not found (expected a search output folder)")
    trials, notes = read_trials(record)
    confirmations, _ = read_trials(record, CONFIRMATION)
    config = read_optional_yaml(root / CONFIG_FILE)
    data_path = root / DATA_FILE
    facts = json.loads(data_path.read_text()) if data_path.is_file() else {}
    space_path = root / SPACE_FILE
    tasks = tuple(facts.get("tasks") or ())
    space = read_space(space_path, tasks) if space_path.is_file() else None
    if space is None:
        notes.append(f"{SPACE_FILE} not found: searched parameters inferred from varying params")
    notes += [f"Labels: {n}" for n in facts.get("labels", [])]
    notes += [f"Collapsed by the data, not searched: {n}" for n in facts.get("collapsed", [])]
    if space is not None and facts:
        space = narrowed(space, facts.get("values_left", {}))
    return Run(root, trials, config, space, notes, confirmations, facts, read_looks(record))


def read_optional_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file at `path`, {} when there is no file or it holds no mapping
    (space files and configs read for a search go through `spaces.safe_yaml.read_checked_yaml`)."""
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserInputError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return doc if isinstance(doc, dict) else {}
