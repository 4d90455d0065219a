"""What a search's output folder holds and what `record.jsonl` says, one JSON object per line:

  {"event": "start",  "trial_id", "time", "params": {...}, "stage", "source", "role"}
  {"event": "result", "trial_id", "time", "epoch", "device", "node", "metrics": {...numeric...},
   "notes": {...text...}, "predictions": [...]}            e.g. checkpoint_fallback
  {"event": "retry",  "trial_id", "time", "attempt"}       Ray restarts the trial after a crash
  {"event": "end",    "trial_id", "time", "state", "epochs", "reason", "error"}
  {"event": "look",   "trial_id": "look", "time", "epoch", "metric", "figures": {...},
   "merged": [...]}

`state` is one of END_STATES; `reason` is one line, `error` the full error text of a failure.
A search trial has no `stage`. A confirmation run (the re-training of the search's trial `source`
with one of the paired seeds after the search; role "baseline" or "candidate") has stage
CONFIRMATION, one result event (the epoch chosen on validation, with the test split's metrics
`test_*` and predicted class ids `predictions` in test-row order) and its end, all three written
when it has finished.
A look is the confirmation stage's view of its verdicts on `metric` after a round: per candidate
newly looked at, {"seeds", "delta", "low", "high", "verdict"} (null where not finite), and the
candidates merged as canonically equal, one sentence each; its `epoch` counts the confirmation
runs ended before it (a key, not a time). It belongs to no trial.
Each event is written once per `event_key`, also across resumes.
"""

from __future__ import annotations

from typing import Any

RECORD_FILE = "record.jsonl"
CONFIG_FILE = "config.yaml"
SPACE_FILE = "space.yaml"
DATA_FILE = "data.json"  # classes, training counts, test labels, what the data collapsed
PREDICTIONS_FILE = "test_predictions.json"  # a confirmation run's predictions, in MLflow
REPORT_DIR = "report"  # the Pareto report: pareto.html, pareto.md, summary.json, trials.csv, plots

COMPLETED, STOPPED_EARLY, FAILED = "completed", "stopped_early", "failed"
ABANDONED = "abandoned"  # started by a killed driver after Ray's last snapshot; Ray replaced it
END_STATES = (COMPLETED, STOPPED_EARLY, FAILED, ABANDONED)
INTERRUPTED = "interrupted"  # not an end: a trial the search left without one (mirrors say so)

LOOK = "look"  # the confirmation stage's look at its verdicts (no trial's)
EVENTS = ("start", "result", "retry", "end", LOOK)
SEARCH, CONFIRMATION = "search", "confirmation"  # stages: a search trial, a confirmation run
BASELINE, CANDIDATE = "baseline", "candidate"  # roles of a confirmation run


def event_key(event: dict[str, Any]) -> tuple:
    """What makes an event unique: its kind, trial and epoch (result) or attempt (retry)."""
    return (event["event"], event["trial_id"], event.get("epoch", event.get("attempt")))
