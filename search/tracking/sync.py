"""Send a RunBook's queued data to MLflow from one background thread, off the search's hot path.

The thread flushes every `flush_interval_s`, when poked (a run ended, or one run has `flush_every`
metric values queued), and once more with retries when stopped. A flush sends a trial's queue only
when it is due (its run ended, `flush_every` values wait, or it has waited `flush_interval_s`), so
a short trial goes out in one `log_batch` rather than a few (MLflow's SQL store spends ~10 ms per
call besides ~0.09 ms per value); `sync` and the last flush send everything. A flush stops at the
first failure (one dead store costs one timeout, not one per run), keeps the unsent data queued
and logs a warning; it never raises.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from search.tracking.book import RunBook
from search.tracking.record import RunRecord
from search.tracking.settings import TrackerSettings
from search.tracking.state import save_state
from search.tracking.writer import (
    PARENT_RUN_TAG,
    SEARCH_NAME_TAG,
    TRIAL_ID_TAG,
    MlflowWriter,
    fail_fast,
)

log = logging.getLogger(__name__)


class Syncer:
    """The one writer of a tracker: owns the MLflow client and the background thread."""

    def __init__(self, settings: TrackerSettings, book: RunBook, state_path: Path):
        self.settings, self.book, self.state_path = settings, book, state_path
        self.writer = MlflowWriter(settings.tracking_uri)
        self._cond = threading.Condition()
        self._requested = self._completed = self._forced = 0
        self._last_ok = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._lookup_pending = settings.resume
        self._failing = False
        self.failures = 0  # failed MLflow calls so far (each was retried)
        self._waiting_since: dict[str, float] = {}  # record key -> when a flush first held it

    # ----- thread control --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlflow-writer", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Ask for a flush soon, without waiting."""
        with self._cond:
            self._requested += 1
            self._cond.notify_all()

    def sync(self, timeout_s: float) -> bool:
        """Flush everything now and wait up to `timeout_s`; True if everything queued was sent."""
        self.start()
        with self._cond:
            self._requested += 1
            target = self._forced = self._requested
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._completed >= target, timeout_s)
            return done and self._last_ok

    def stop(self, timeout_s: float) -> bool:
        """Final flush (with retries) and end of the thread; False if it outlived `timeout_s`."""
        self.start()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stopping and self._requested <= self._completed:
                    self._cond.wait(self.settings.flush_interval_s)
                target, stopping = self._requested, self._stopping
                force = self._forced > self._completed
            ok = self._finish() if stopping else self.flush(force)
            with self._cond:
                self._completed, self._last_ok = max(self._completed, target), ok
                self._cond.notify_all()
            if stopping:
                return

    def _finish(self) -> bool:
        """The last flush, retried `retry_backoff_s` apart: at least `close_retries` times, and
        for up to `close_retry_s`; then no child is left RUNNING."""
        ok = self.flush(force=True)
        deadline = time.monotonic() + self.settings.close_retry_s
        tries = 0
        while not ok and (tries < self.settings.close_retries or time.monotonic() < deadline):
            time.sleep(self.settings.retry_backoff_s)
            ok = self.flush(force=True)
            tries += 1
        self._kill_running_children()
        return ok

    # ----- one flush -------------------------------------------------------------------------

    def flush(self, force: bool = True) -> bool:
        """Send the queues that are due (all of them when `force`) in this thread; True when
        nothing due was left unsent."""
        with self._flush_lock, fail_fast():
            asked = self.book.experiment_id is None or self._lookup_pending
            try:
                if self.book.experiment_id is None:
                    self.book.experiment_id = self.writer.ensure_experiment(
                        self.settings.experiment
                    )
                if self._lookup_pending:
                    self._adopt_existing_runs()
                    self._lookup_pending = False
                now = time.monotonic()
                due = [r for r in self.book.records() if self._due(r, now, force)]
                asked = asked or bool(due)
                done = all(self._send(record) for record in due)
            except Exception as error:
                self._report(error)
                done = False
            save_state(self.state_path, self.book.snapshot())
            if done and asked and self._failing:
                log.warning("MLflow tracking: the store answers again; queued data sent")
                self._failing = False
            return done

    def _due(self, record: RunRecord, now: float, force: bool) -> bool:
        """A non-empty queue when `force`, the parent's always; a trial's once its run ended (or
        reopens), `flush_every` values wait, or a flush first held it `flush_interval_s` ago."""
        with self.book.lock:
            pending = record.pending
            if pending.is_empty():
                return False
            if (
                force
                or record is self.book.parent
                or pending.status is not None
                or pending.reopen
                or len(pending.metrics) >= self.settings.flush_every
            ):
                return True
        since = self._waiting_since.setdefault(record.key, now)
        return now - since >= self.settings.flush_interval_s

    def _send(self, record: RunRecord) -> bool:
        self._waiting_since.pop(record.key, None)
        with self.book.lock:
            pending = record.take()
        if pending.is_empty():
            return True
        try:
            if record.run_id is None:
                record.run_id = self._create_run(record)
                save_state(self.state_path, self.book.snapshot())
            self.writer.send(record.run_id, pending, announce=record is self.book.parent)
            return True
        except Exception as error:
            self._report(error, record)
            return False
        finally:
            with self.book.lock:
                record.put_back(pending)

    def _create_run(self, record: RunRecord) -> str:
        """A trial's run gets its linking tags here, from its key, also when its record came from
        the state file of a driver killed before the run existed."""
        tags = dict(record.create_tags)
        if record is not self.book.parent:
            if self.book.parent.run_id is None:
                raise RuntimeError("the parent run does not exist yet")
            tags[PARENT_RUN_TAG] = self.book.parent.run_id
            tags[TRIAL_ID_TAG] = record.key
            tags[SEARCH_NAME_TAG] = self.settings.search_name
        return self.writer.create_run(self.book.experiment_id, record.name, tags)

    def _adopt_existing_runs(self) -> None:
        """On resume: reuse the parent (state file, else tag search) and its children (by tag)."""
        parent, experiment_id = self.book.parent, self.book.experiment_id
        if parent.run_id is not None and not self.writer.run_exists(parent.run_id):
            parent.run_id = None
        if parent.run_id is None:
            output_dir = str(Path(self.settings.output_dir).resolve())
            parent.run_id = self.writer.find_parent(
                experiment_id, self.settings.search_name, output_dir
            )
        if parent.run_id is None:
            return
        with self.book.lock:
            parent.pending.reopen = True
        for run in self.writer.children(experiment_id, parent.run_id):
            trial_id = run.data.tags.get(TRIAL_ID_TAG)
            if trial_id is not None:
                self._adopt_child(trial_id, run)

    def _adopt_child(self, trial_id: str, run) -> None:
        tags, metrics = run.data.tags, run.data.metrics
        with self.book.lock:
            record = self.book.trials.setdefault(trial_id, RunRecord(trial_id, run.info.run_name))
            record.run_id = record.run_id or run.info.run_id
            if record.end_state is None and tags.get("end_state") != "running":
                record.end_state = tags.get("end_state")
            # the furthest of what any source saw: the state file, the end tag (stale after a
            # reopened run was killed) and the latest logged epoch
            logged = int(metrics["epoch"]) + 1 if "epoch" in metrics else 0
            record.epochs = max(record.epochs, int(tags.get("epochs_trained") or 0), logged)

    def _kill_running_children(self) -> None:
        """Last guard: every child of the parent still RUNNING in MLflow becomes KILLED."""
        if self.book.experiment_id is None or self.book.parent.run_id is None:
            return
        try:
            with fail_fast():
                running = self.writer.children(
                    self.book.experiment_id, self.book.parent.run_id, "RUNNING"
                )
                for run in running:
                    self.writer.terminate(run.info.run_id, "KILLED")
        except Exception as error:
            self._report(error)

    def _report(self, error: Exception, record: RunRecord | None = None) -> None:
        where = f" (run {record.name})" if record is not None else ""
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "MLflow tracking failed%s: %s; data kept, retrying", where, error)
        self._failing = True
        self.failures += 1
