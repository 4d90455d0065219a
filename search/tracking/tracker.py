"""The search's MLflow bookkeeping: a parent run per search, a child run per trial.

Hooks (`trial_started`, `trial_result`, ...) only change memory (a RunBook); the Syncer's thread
sends it with `log_batch` (a trial's run once it ended, `flush_every` of its metric values wait, or
after `flush_interval_s`), and `close` sends the rest. A failing store never raises into the
search: the data stays queued, a warning is logged, and the next flush retries.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from reports.defaults import COMPLETED, FAILED, INTERRUPTED, RUN_STATUS, STOPPED_EARLY
from search.record import RAY_BOOKKEEPING, result_epoch
from search.tracking.book import RunBook
from search.tracking.names import (
    flatten,
    is_metric_value,
    param_value,
    sanitize_key,
    sanitize_keys,
    tag_value,
)
from search.tracking.record import Pending, RunRecord
from search.tracking.settings import TrackerSettings, default_tags
from search.tracking.state import STATE_FILE_NAME, TrackerState, load_state
from search.tracking.sync import Syncer
from search.tracking.writer import OUTPUT_DIR_TAG, SEARCH_NAME_TAG

# Result keys not worth a metric history or tag: Ray's numeric bookkeeping (the step already is
# the epoch) and Ray's non-metric fields (ids, dates, the config, which the params hold).
_SKIPPED = RAY_BOOKKEEPING | {"trial_id", "date", "experiment_tag", "checkpoint_dir_name", "config"}
_RAY_TAGGED = {"hostname": "ray.hostname", "node_ip": "ray.node_ip"}
_PARENT_END_STATE = {"FINISHED": COMPLETED, "KILLED": INTERRUPTED, "FAILED": FAILED}
_LIVE: dict[str, SearchTracker] = {}  # open trackers by resolved output folder
log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def live_tracker(output_dir: str | Path) -> SearchTracker | None:
    """The open tracker of this process writing to `output_dir`, if any."""
    return _LIVE.get(str(Path(output_dir).resolve()))


def queue_params(pending: Pending, config: Mapping[str, Any]) -> None:
    """Flat, sanitised params; a value cut to MLflow's limit is kept whole as params/<key>.txt."""
    flat = flatten(config)
    for original, key in sanitize_keys(flat).items():
        value, cut = param_value(flat[original])
        pending.params[key] = value
        if cut:
            pending.texts[f"params/{key}.txt"] = str(flat[original])


class SearchTracker:
    """Parent run of one search plus a child per trial; pass `callback()` to Ray, then `close()`."""

    def __init__(self, settings: TrackerSettings):
        self.settings = settings
        self.state_path = Path(settings.output_dir) / STATE_FILE_NAME
        self.book = RunBook.new(settings.tracking_uri, settings.search_name)
        self._syncer = Syncer(settings, self.book, self.state_path)
        self._started = self.closed = self._sent_all = False
        self._callback = None
        if settings.resume:
            state = load_state(self.state_path)
            if state is not None and not self.book.adopt(state):
                log.warning("MLflow tracking: %s is for another store; new runs", self.state_path)
        self._queue_parent()
        self._live_key = str(Path(settings.output_dir).resolve())
        _LIVE[self._live_key] = self
        atexit.register(self._at_exit)

    # ----- lifecycle -------------------------------------------------------------------------

    def callback(self, as_recorded: Callable[[str, dict], dict] | None = None):
        """The Ray Tune callback that feeds this tracker (one per tracker); see TrialRunCallback
        for `as_recorded`."""
        from search.tracking.callback import TrialRunCallback  # the callback imports this module

        return self._callback or TrialRunCallback(self, as_recorded=as_recorded)

    def adopt_callback(self, callback) -> None:
        """Remember the one callback feeding this tracker (called by TrialRunCallback)."""
        self._callback = callback

    def start(self) -> None:
        """Create (or on resume reopen) experiment and parent run, waiting up to `wait_s`."""
        if self._started or self.closed:
            return
        self._started = True
        if not self._syncer.sync(self.settings.wait_s):
            log.warning("MLflow tracking: parent run not written yet; the writer keeps trying")

    def flush(self) -> bool:
        """Send everything queued now, waiting up to `wait_s`; True if all was sent."""
        return self._syncer.sync(self.settings.wait_s)

    def close(self, status: str = "FINISHED") -> None:
        """End every run: open trials KILLED, the parent `status` (FINISHED becomes KILLED when
        trials were interrupted); send everything, retrying; no run is left RUNNING. Idempotent."""
        if status not in _PARENT_END_STATE:
            raise ValueError(f"status: expected one of {list(_PARENT_END_STATE)}, got {status!r}")
        if self.closed:
            return
        self.closed = True
        with self.book.lock:
            self._end_active_trials()
            final = "KILLED" if status == "FINISHED" and self.interrupted else status
            self.book.parent.pending.tags["end_state"] = _PARENT_END_STATE[final]
            self.book.parent.pending.status = final
        self._sent_all = self._syncer.stop(self.settings.wait_s)
        if not self._sent_all:
            log.warning(
                "MLflow tracking: the store did not answer within %.0f s; some runs may stay "
                "RUNNING (run ids in %s)",
                self.settings.wait_s,
                self.state_path,
            )
        atexit.unregister(self._at_exit)
        if _LIVE.get(self._live_key) is self:
            del _LIVE[self._live_key]

    def __enter__(self) -> SearchTracker:
        self.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        failed = "KILLED" if kind is KeyboardInterrupt else "FAILED"
        self.close("FINISHED" if kind is None else failed)

    def _at_exit(self) -> None:
        self.close("KILLED")

    @property
    def clean(self) -> bool:
        """Closed with everything sent, no MLflow call ever failed, and not a resume: MLflow holds
        what the tracker was given (reconcile then checks less, see search/tracking/repair.py)."""
        return (
            self.closed
            and self._sent_all
            and not self.settings.resume
            and not self._syncer.failures
        )

    @property
    def interrupted(self) -> bool:
        """True when some trial's run was ended as interrupted and not resumed since."""
        with self.book.lock:
            return any(r.end_state == INTERRUPTED for r in self.book.trials.values())

    @property
    def parent_run_id(self) -> str | None:
        return self.book.parent.run_id

    @property
    def experiment_id(self) -> str | None:
        return self.book.experiment_id

    def run_ids(self) -> dict[str, str | None]:
        """{Ray trial id: child run id} (None while the run is not created yet)."""
        with self.book.lock:
            return {key: record.run_id for key, record in self.book.trials.items()}

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Queue a file or folder for the parent run; sent by the writer, at the latest at close."""
        with self.book.lock:
            self.book.parent.pending.artifacts.append((str(path), artifact_path))
        self._syncer.poke()

    # ----- hooks (called by the Ray callback on the driver) ----------------------------------

    def trial_started(self, trial_id: str, name: str, config: Mapping[str, Any]) -> None:
        """Open the trial's run: create it (params = flat config) or reopen it on resume."""
        with self.book.lock:
            record = self.book.trials.get(trial_id)
            if record is None:
                record = self.book.trials[trial_id] = RunRecord(trial_id, name)
            if record.run_id is None:  # new, or known from a state file saved before its run
                queue_params(record.pending, config)
            elif not record.active:
                record.pending.reopen = True
                queue_params(record.pending, config)
            record.active, record.end_state = True, None
            record.pending.tags["end_state"] = "running"
        self.start()

    def trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """Queue every numeric value of `result` with step = epoch; strings become tags.

        An epoch already logged (a trial restarted without a checkpoint replays them) is skipped,
        so each step has one value.
        """
        with self.book.lock:
            record = self.book.trials.get(trial_id)
            epoch = result_epoch(result)
            if record is None or not record.active or epoch < record.epochs:
                return
            stamp, queued = _now_ms(), len(record.pending.metrics)
            kept = {k: v for k, v in result.items() if k not in _SKIPPED}
            for key, value in flatten(kept).items():
                if is_metric_value(value):
                    metric = Metric(sanitize_key(key), float(value), stamp, epoch)
                    record.pending.metrics.append(metric)
                elif isinstance(value, str):
                    record.pending.tags[sanitize_key(_RAY_TAGGED.get(key, key))] = tag_value(value)
            record.observe(epoch, result.get(self.settings.metric), self.settings.mode)
            record.reports_best |= f"best_{self.settings.metric}" in result
            every = self.settings.flush_every
            poke = len(record.pending.metrics) // every > queued // every  # crossed a multiple
        if poke:
            self._syncer.poke()

    def trial_completed(self, trial_id: str) -> None:
        """End the run FINISHED: `completed`, or `stopped_early` at rung = epochs trained."""
        with self.book.lock:
            record = self.book.trials.get(trial_id)
            if record is None or not record.active:
                return
            limit = self.settings.max_epochs
            if limit is not None and record.epochs < limit:
                record.pending.tags["stopped_rung"] = str(record.epochs)
                self._end(record, STOPPED_EARLY)
            else:
                self._end(record, COMPLETED)
        self._syncer.poke()

    def trial_failed(
        self, trial_id: str, name: str, config: Mapping[str, Any], reason: str, details: str = ""
    ) -> None:
        """End the run FAILED with tag failure_reason; the full error text goes to error.txt."""
        record = self.book.trials.get(trial_id)
        if record is None or not record.active:
            self.trial_started(trial_id, name, config)
        with self.book.lock:
            record = self.book.trials[trial_id]
            record.pending.tags["failure_reason"] = tag_value(reason)
            if details:
                record.pending.texts["error.txt"] = details
            self._end(record, FAILED)
        self._syncer.poke()

    def trial_retried(self, trial_id: str) -> None:
        """Count a retry (Ray restarts the trial after an error); the run stays open."""
        with self.book.lock:
            record = self.book.trials.get(trial_id)
            if record is not None:
                record.retries += 1
                record.pending.tags["retries"] = str(record.retries)

    def experiment_ended(self) -> None:
        """Ray's loop is over: still-open trials were interrupted (KILLED); send everything."""
        with self.book.lock:
            self._end_active_trials()
        self.flush()

    def _end_active_trials(self) -> None:
        for record in self.book.trials.values():
            if record.active:
                self._end(record, INTERRUPTED)

    def _end(self, record: RunRecord, end_state: str) -> None:
        """End the run's trial with `end_state`, its MLflow status from RUN_STATUS."""
        record.active, record.end_state = False, end_state
        tags = record.pending.tags
        tags.update(end_state=end_state, epochs_trained=str(record.epochs))
        if record.best_epoch is not None:
            metric = sanitize_key(f"best_{self.settings.metric}")
            tags["best_epoch"] = str(record.best_epoch)
            tags[metric] = repr(record.best_value)
            if not record.reports_best:  # else its history has the value at every step
                best = Metric(metric, float(record.best_value), _now_ms(), record.best_epoch)
                record.pending.metrics.append(best)
        record.pending.status = RUN_STATUS[end_state]

    def _queue_parent(self) -> None:
        settings, parent = self.settings, self.book.parent
        queue_params(parent.pending, settings.config)
        tags = {**default_tags(), **settings.tags}
        tags.update({SEARCH_NAME_TAG: settings.search_name, "search.metric": settings.metric})
        tags[OUTPUT_DIR_TAG] = str(Path(settings.output_dir).resolve())
        if settings.max_epochs is not None:
            tags["search.max_epochs"] = str(settings.max_epochs)
        tags["end_state"] = "running"
        parent.pending.tags.update({sanitize_key(k): tag_value(v) for k, v in tags.items()})
        parent.pending.artifacts.extend((str(path), None) for path in settings.artifacts)
        parent.create_tags = {
            SEARCH_NAME_TAG: settings.search_name,
            OUTPUT_DIR_TAG: tags[OUTPUT_DIR_TAG],
        }
        parent.pending.reopen = parent.run_id is not None

    # ----- Ray callback state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The resume state as JSON-ready data (also saved by Ray as the callback's state)."""
        return self.book.snapshot()

    def merge(self, data: Mapping[str, Any]) -> None:
        """Adopt runs of trials this tracker does not know yet (Ray's saved callback state)."""
        known = self.book.parent.run_id
        if self.book.adopt(TrackerState.from_json(dict(data))) and known is None:
            with self.book.lock:
                self.book.parent.pending.reopen = True
