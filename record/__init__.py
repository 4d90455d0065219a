"""The record of a search, `<output_dir>/record.jsonl`: its schema, its one writer and its one reader.

The record is the one truth of a search; Ray's state, the Optuna study and MLflow mirror it. This
package imports nothing else of the project and no third-party library.
"""

from record.reader import TrialRecord, read_events, read_looks, read_trials
from record.schema import (
    ABANDONED,
    BASELINE,
    CANDIDATE,
    COMPLETED,
    CONFIG_FILE,
    CONFIRMATION,
    DATA_FILE,
    END_STATES,
    FAILED,
    INTERRUPTED,
    LOOK,
    RECORD_FILE,
    SEARCH,
    SPACE_FILE,
    STOPPED_EARLY,
)
from record.writer import RecordWriter

__all__ = [
    "ABANDONED",
    "BASELINE",
    "CANDIDATE",
    "COMPLETED",
    "CONFIG_FILE",
    "CONFIRMATION",
    "DATA_FILE",
    "END_STATES",
    "FAILED",
    "INTERRUPTED",
    "LOOK",
    "RECORD_FILE",
    "SEARCH",
    "SPACE_FILE",
    "STOPPED_EARLY",
    "RecordWriter",
    "TrialRecord",
    "read_events",
    "read_looks",
    "read_trials",
]
