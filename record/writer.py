"""The one writer of `record.jsonl`: append-only, each event once, flushed line by line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from record.reader import read_events
from record.schema import event_key


class RecordWriter:
    """Appends events to a record file, skipping any whose `event_key` it already holds."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.keys = {event_key(e) for e in read_events(self.path)[0] if e.get("event")}
        self._file: IO[str] | None = None

    def write(self, event: dict[str, Any]) -> bool:
        """Append `event` (stamped with `time` if it has none); False if it was already there."""
        key = event_key(event)
        if key in self.keys:
            return False
        self.keys.add(key)
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", buffering=1)
            if self._file.tell() and not self._ends_with_newline():
                self._file.write("\n")  # a line cut by a kill stays apart (readers skip it)
        line = json.dumps({"time": time.time()} | event, default=str, allow_nan=True)
        self._file.write(line + "\n")
        return True

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, 2)
            return f.read(1) == b"\n"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
