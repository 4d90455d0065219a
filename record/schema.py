"""What a search's output folder holds and what `record.jsonl` says, one JSON object per line:

  {"event": "start",  "trial_id", "time", "params": {...}}
  {"event": "result", "trial_id", "time", "epoch", "device", "node", "metrics": {...numeric...},
   "notes": {...text...}}                                  e.g. checkpoint_fallback
  {"event": "retry",  "trial_id", "time", "attempt"}       Ray restarts the trial after a crash
  {"event": "end",    "trial_id", "time", "state", "epochs", "reason", "error"}

`state` is one of END_STATES; `reason` is one line, `error` the full error text of a failure.
Each event is written once per `event_key`, also across resumes.
"""

from __future__ import annotations

from typing import Any

RECORD_FILE = "record.jsonl"
CONFIG_FILE = "config.yaml"
SPACE_FILE = "space.yaml"
DATA_FILE = "data.json"  # the classes, training counts and what the data collapsed in the space
RESEED_FILE = "reseed.jsonl"  # re-trainings of finalists with new seeds
REPORT_DIR = "report"  # the Pareto report: pareto.html, pareto.md, summary.json, trials.csv, plots

COMPLETED, STOPPED_EARLY, FAILED = "completed", "stopped_early", "failed"
ABANDONED = "abandoned"  # started by a killed driver after Ray's last snapshot; Ray replaced it
END_STATES = (COMPLETED, STOPPED_EARLY, FAILED, ABANDONED)
INTERRUPTED = "interrupted"  # not an end: a trial the search left without one (mirrors say so)

EVENTS = ("start", "result", "retry", "end")


def event_key(event: dict[str, Any]) -> tuple:
    """What makes an event unique: its kind, trial and epoch (result) or attempt (retry)."""
    return (event["event"], event["trial_id"], event.get("epoch", event.get("attempt")))
