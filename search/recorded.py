"""What reconciling shares (search/reconcile.py, search/tracking/repair.py): the record's trials and
the findings of one source compared with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reports.defaults import RECORD_FILE
from reports.load import TrialRecord, read_record


@dataclass
class Findings:
    """One source compared with the record."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> str:
        counts = (f"{len(getattr(self, k))} {k}" for k in ("missing", "duplicated", "repaired"))
        text = f"{self.checked} checked, {', '.join(counts)}, {len(self.mismatched)} mismatched"
        return text if self.error is None else f"{text}, error: {self.error}"


def read_trials(output_dir: Path) -> dict[str, TrialRecord]:
    """The record as {trial id: TrialRecord} (reports.load.read_record: the first of repeated
    events wins); no record file is no trials."""
    path = Path(output_dir) / RECORD_FILE
    if not path.is_file():
        return {}
    trials, _ = read_record(path)
    return {trial.trial_id: trial for trial in trials}
