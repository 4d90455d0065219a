"""The MLflow mirror of a search: its record (`record.jsonl`) and report, sent to MLflow.

One parent run per search, one child run per recorded trial and per confirmation run (run name
its id, tags `stage`, `source`, `role`, its test predictions as an artifact); the report's answer
becomes the parent's `answer` tag and the confirmation's looks (record.schema LOOK) its metrics
`confirm.<candidate>.delta|low|high` with step = the candidate's paired seeds, so the interval
narrows round by round in MLflow's charts. `sync()` reads the record from the
offset the mirror's state file saved, turns the new events into batched `log_batch` calls per run
and saves the state after each call: the same pass runs every `interval_s` during the search (a
background thread), and catches up after a kill, an outage or a resume. `close(status)` runs it a
last time (retrying), ends the runs of trials the record left without an end KILLED
(`end_state=interrupted`) and the parent with `status`. MLflow errors never reach the search: the
record holds everything, and the next pass sends it.

Exactly once: a call holds whole events of one run; before it is sent the state names it in
flight (its run, the record offset after its last event and its last metric as a probe), and an
in-flight call whose probe MLflow holds counts as sent (log_batch is atomic). The looks are a
pseudo-trial (trial id LOOK) whose run is the parent, ended from the start: sent and settled like
a trial's events, never created, renamed, reopened or ended by the mirror as a trial.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Container
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from mirrors.batching import Batch, batches, entity_size, joinable
from mirrors.names import flatten_params, param_value, sanitize_key, sanitize_keys, tag_value
from mirrors.settings import MirrorSettings, default_tags
from mirrors.store import (
    OUTPUT_DIR_TAG,
    PARENT_RUN_TAG,
    RUN_STATUS,
    SEARCH_NAME_TAG,
    TRIAL_ID_TAG,
    child_runs,
    ensure_experiment,
    fail_fast,
    find_parent_run_id,
    open_store,
    quiet_urls,
)
from record import (
    COMPLETED,
    CONFIRMATION,
    FAILED,
    INTERRUPTED,
    LOOK,
    RECORD_FILE,
    STOPPED_EARLY,
    read_events,
)
from record.schema import PREDICTIONS_FILE, REPORT_DIR

STATE_FILE = "mlflow_mirror.json"
SUMMARY_FILE = "summary.json"  # the report's figures: Pareto ranks and front by trial id
_PARENT_END_STATE = {"FINISHED": COMPLETED, "KILLED": INTERRUPTED, "FAILED": FAILED}
log = logging.getLogger(__name__)


@dataclass
class RunMirror:
    """One trial's child run as mirrored so far (for LOOK: the parent run, `ended` from the
    start)."""

    run_id: str | None = None
    sent: int = 0  # record offset before which this trial's events are all in MLflow
    status: str = "RUNNING"  # the run's MLflow status as last set
    ended: bool = False  # the record has the trial's end
    best_epoch: int | None = None
    best_value: float | None = None
    reports_best: bool = False  # the trial reports best_<metric> per epoch


@dataclass
class MirrorState:
    """What the mirror has sent, saved in `<output_dir>/mlflow_mirror.json` after every call."""

    tracking_uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    parent_sent: bool = False  # the parent's params, tags and artifacts
    offset: int = 0  # record offset before which every event is in MLflow
    runs: dict[str, RunMirror] = field(default_factory=dict)
    report: str | None = None  # SHA-256 of the report summary last sent
    inflight: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path, tracking_uri: str) -> MirrorState | None:
        """The saved state for `tracking_uri`, or None (missing, unreadable, another store)."""
        try:
            data = json.loads(path.read_text())
            runs = {k: RunMirror(**v) for k, v in data.pop("runs").items()}
            state = cls(**data, runs=runs)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return state if state.tracking_uri == tracking_uri else None

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename); a failure only warns."""
        try:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(asdict(self), indent=1))
            os.replace(tmp, path)
        except OSError as error:
            log.warning("MLflow mirror: cannot write %s (%s)", path, error)


@dataclass
class Piece:
    """What some record events of one trial ask of its run; `through` = record offset after them."""

    through: int
    batch: Batch = field(default_factory=Batch)
    texts: dict[str, str] = field(default_factory=dict)  # artifact file -> text
    status: str | None = None

    def add(self, kind: str, entity: Metric | Param | RunTag) -> None:
        getattr(self.batch, kind).append(entity)
        self.batch.size_bytes += entity_size(entity)

    def takes(self, other: Piece) -> bool:
        """True when `other` fits into this piece's one log_batch call (and this has no end)."""
        return not (self.texts or self.status) and joinable(self.batch, other.batch)

    def merge(self, other: Piece) -> None:
        """`other` after this piece: a tag set again keeps only its later value."""
        newer = {tag.key for tag in other.batch.tags}
        older = [tag for tag in self.batch.tags if tag.key in newer]
        self.batch.tags = [tag for tag in self.batch.tags if tag.key not in newer]
        self.batch.size_bytes -= sum(entity_size(tag) for tag in older)
        for kind in ("metrics", "params", "tags"):
            getattr(self.batch, kind).extend(getattr(other.batch, kind))
        self.batch.size_bytes += other.batch.size_bytes
        self.texts |= other.texts
        self.status, self.through = other.status, other.through


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


class MlflowMirror:
    """Mirrors one search's output folder to MLflow; `start()`, then `close(status)`."""

    def __init__(self, settings: MirrorSettings) -> None:
        self.settings = settings
        self.objective = settings.objective
        folder = Path(settings.output_dir)
        self.record_path, self.state_path = folder / RECORD_FILE, folder / STATE_FILE
        self.report_dir = folder / REPORT_DIR
        saved = (
            MirrorState.load(self.state_path, settings.tracking_uri) if settings.resume else None
        )
        self.state = saved or MirrorState(settings.tracking_uri)
        self._adopt = settings.resume and saved is None  # find the runs of an unsaved earlier run
        self._reopen = saved is not None and saved.parent_run_id is not None
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.closed = False

    @property
    def experiment_id(self) -> str | None:
        return self.state.experiment_id

    @property
    def parent_run_id(self) -> str | None:
        return self.state.parent_run_id

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """One pass now (the parent run exists when the search starts), then one per interval."""
        if not self.sync():
            log.warning("MLflow mirror: the store did not answer; the mirror keeps trying")
        self._thread = threading.Thread(target=self._loop, name="mlflow-mirror", daemon=True)
        self._thread.start()
        atexit.register(self.close, "KILLED")

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            self.sync(everything=False)

    def close(self, status: str = "FINISHED") -> bool:
        """Last passes (retried), then every open run ended: a trial without a recorded end
        KILLED, the parent `status` (FINISHED becomes KILLED when some trial was left without an
        end). True when MLflow holds everything. Idempotent."""
        if self.closed:
            return True
        self.closed = True
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        s = self.settings
        ok, tries, deadline = self.sync(), 0, time.monotonic() + s.close_retry_s
        while not ok and (tries < s.close_retries or time.monotonic() < deadline):
            time.sleep(s.retry_backoff_s)
            ok, tries = self.sync(), tries + 1
        ok = ok and self._guarded(self._end_all, status)
        if not ok:
            log.warning(
                "MLflow mirror: the store did not take everything; the record keeps it and the "
                "next resume sends it (state in %s)",
                self.state_path,
            )
        return ok

    def sync(self, everything: bool = True) -> bool:
        """Send what the record and the report hold and MLflow lacks (but, unless `everything`,
        what a running trial reported in the last `interval_s`); True when nothing due is left."""
        return self._guarded(self._sync, everything)

    def _guarded(self, step: Any, *args: Any) -> bool:
        with self._lock, fail_fast():
            try:
                step(*args)
                done = True
            except Exception as error:
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "MLflow mirror failed: %s; the record keeps it, retrying", error)
                self._failing, done = True, False
            self.state.save(self.state_path)
        if done and self._failing:
            log.warning("MLflow mirror: the store answers again; caught up")
            self._failing = False
        return done

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = open_store(self.settings.tracking_uri)
        return self._client

    # ----- one pass --------------------------------------------------------------------------

    def _sync(self, everything: bool) -> None:
        self._connect()
        events, offset = read_events(self.record_path, self.state.offset)
        by_trial: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            if event.get("event"):
                by_trial.setdefault(str(event["trial_id"]), []).append(event)
        for trial_id, trial_events in by_trial.items():
            mirror = self.state.runs.get(trial_id)
            unsent = [e for e in trial_events if mirror is None or e["_offset"] >= mirror.sent]
            if not everything and unsent and self._held(unsent):
                offset = min(offset, unsent[0]["_offset"])
                continue
            self._send_trial(trial_id, unsent)
        self.state.offset = offset
        self._send_report()

    def _held(self, unsent: list[dict[str, Any]]) -> bool:
        """A running trial's events wait until the oldest has waited `interval_s`: a short trial
        goes out in one call, a long one every pass or two."""
        ended = any(e["event"] == "end" for e in unsent)
        return (
            not ended and time.time() - float(unsent[0].get("time") or 0) < self.settings.interval_s
        )

    def _connect(self) -> None:
        state, s = self.state, self.settings
        if state.experiment_id is None:
            state.experiment_id = ensure_experiment(self.client, s.experiment)
        if state.parent_run_id is None:
            output_dir = str(Path(s.output_dir).resolve())
            if self._adopt:
                state.parent_run_id = find_parent_run_id(
                    self.client, state.experiment_id, s.search_name, output_dir
                )
            if state.parent_run_id is not None:
                self._adopt_children()
                self._reopen = True
            else:
                tags = {SEARCH_NAME_TAG: s.search_name, OUTPUT_DIR_TAG: output_dir}
                run = self.client.create_run(state.experiment_id, run_name=s.search_name, tags=tags)
                state.parent_run_id = run.info.run_id
            state.save(self.state_path)
        self._adopt = False
        if self._reopen:
            self.client.update_run(state.parent_run_id, status="RUNNING")
            self.client.set_tag(state.parent_run_id, "end_state", "running")
            self._reopen = False
        if not state.parent_sent:
            self._send_parent()
            state.parent_sent = True
        if state.inflight is not None:
            self._settle_inflight()

    def _send_parent(self) -> None:
        s, run_id = self.settings, self.state.parent_run_id
        piece = Piece(0)
        logged = self.client.get_run(run_id).data.params
        self._params(piece, s.config, skip=logged)
        tags = (
            default_tags() | s.tags | {"search.metric": s.objective.metric, "end_state": "running"}
        )
        if s.max_epochs is not None:
            tags["search.max_epochs"] = str(s.max_epochs)
        for key, value in tags.items():
            piece.add("tags", RunTag(sanitize_key(key), tag_value(value)))
        self._log(run_id, piece)
        for path in s.artifacts:
            if Path(path).is_file():
                self.client.log_artifact(run_id, str(path))

    def _adopt_children(self) -> None:
        """Runs of an earlier run of this search that left no state: each trial's run and the
        epochs it holds (its metric history of one key), and the looks the parent holds, so that
        nothing is sent twice."""
        events, _ = read_events(self.record_path)
        self._adopt_looks([e for e in events if e.get("event") == LOOK])
        for run in child_runs(self.client, self.state.experiment_id, self.state.parent_run_id):
            trial_id = run.data.tags.get(TRIAL_ID_TAG)
            if trial_id is None or trial_id in self.state.runs:
                continue
            mine = [e for e in events if e.get("trial_id") == trial_id]
            results = [e for e in mine if e["event"] == "result" and e.get("metrics")]
            mirror = self.state.runs[trial_id] = RunMirror(run.info.run_id, status=run.info.status)
            if not results:
                continue
            probe = sanitize_key(next(iter(results[0]["metrics"])))
            logged = {m.step for m in self.client.get_metric_history(run.info.run_id, probe)}
            unsent = [e for e in results if e["epoch"] not in logged]
            mirror.sent = unsent[0]["_offset"] if unsent else results[-1]["_end"]
            for event in results:
                if event["_offset"] < mirror.sent:
                    self._observe(mirror, event)

    def _adopt_looks(self, looks: list[dict[str, Any]]) -> None:
        """The looks an earlier run sent to the parent: calls go in record order and a look's
        metrics in its order, so the looks sent are those before the first whose last metric
        (key, step) the parent's history lacks."""
        mirror = self._look_mirror()
        logged: dict[str, set[int]] = {}
        for event in looks:
            metrics = self._piece(mirror, event).batch.metrics
            if not metrics:
                continue
            key, step = metrics[-1].key, metrics[-1].step
            if key not in logged:
                history = self.client.get_metric_history(self.state.parent_run_id, key)
                logged[key] = {m.step for m in history}
            if step not in logged[key]:
                return
            mirror.sent = event["_end"]

    def _look_mirror(self) -> RunMirror:
        """The looks' pseudo-run: the parent's id, ended (no trial of its own to end)."""
        mirror = self.state.runs.setdefault(LOOK, RunMirror(ended=True))
        mirror.run_id = self.state.parent_run_id
        return mirror

    def _settle_inflight(self) -> None:
        """The call a kill interrupted: sent when MLflow holds its probe metric."""
        flight, self.state.inflight = self.state.inflight, None
        mirror = self.state.runs.get(flight["trial_id"])
        if mirror is None or mirror.run_id is None:
            return
        key, step = flight["probe"]
        if any(m.step == step for m in self.client.get_metric_history(mirror.run_id, key)):
            mirror.sent = max(mirror.sent, flight["through"])

    def _send_trial(self, trial_id: str, events: list[dict[str, Any]]) -> None:
        if trial_id == LOOK:
            mirror = self._look_mirror()
        else:
            mirror = self.state.runs.setdefault(trial_id, RunMirror())
        if not events:
            return
        if mirror.run_id is None:
            tags = {
                PARENT_RUN_TAG: self.state.parent_run_id,
                TRIAL_ID_TAG: trial_id,
                SEARCH_NAME_TAG: self.settings.search_name,
            }
            confirming = events[0].get("stage") == CONFIRMATION
            name = trial_id if confirming else f"trial_{trial_id}"
            run = self.client.create_run(self.state.experiment_id, run_name=name, tags=tags)
            mirror.run_id = run.info.run_id
            self.state.save(self.state_path)
        if mirror.status != "RUNNING":  # a resumed trial's run was ended when its search stopped
            self.client.update_run(mirror.run_id, status="RUNNING")
            mirror.status = "RUNNING"
        call: Piece | None = None
        for event in events:
            piece = self._piece(mirror, event)
            if call is not None and call.takes(piece):
                call.merge(piece)
                continue
            if call is not None:
                self._send(trial_id, mirror, call)
            call = piece
        if call is not None:
            self._send(trial_id, mirror, call)

    def _piece(self, mirror: RunMirror, event: dict[str, Any]) -> Piece:
        """What one record event asks of the trial's run (see record.schema for the events)."""
        piece = Piece(event["_end"])
        kind = event["event"]
        if kind == "start":
            self._params(piece, event.get("params") or {})
            piece.add("tags", RunTag("end_state", "running"))
            for key in ("stage", "source", "role"):  # a confirmation run's (record.schema)
                if event.get(key):
                    piece.add("tags", RunTag(key, tag_value(event[key])))
        elif kind == "result":
            epoch, stamp = int(event["epoch"]), int(float(event.get("time") or 0) * 1000)
            for key, value in event["metrics"].items():
                value = math.nan if value is None else float(value)
                piece.add("metrics", Metric(sanitize_key(key), value, stamp, epoch))
            texts = {k: event.get(k) for k in ("device", "node")} | (event.get("notes") or {})
            for key, text in texts.items():
                if text is not None:
                    piece.add("tags", RunTag(sanitize_key(key), tag_value(text)))
            if event.get("predictions") is not None:
                piece.texts[PREDICTIONS_FILE] = json.dumps(event["predictions"])
            self._observe(mirror, event)
        elif kind == "retry":
            piece.add("tags", RunTag("retries", str(event["attempt"])))
        elif kind == "end":
            self._end_piece(piece, mirror, event)
        elif kind == LOOK:
            self._look_piece(piece, event)
        return piece

    @staticmethod
    def _look_piece(piece: Piece, event: dict[str, Any]) -> None:
        """A look's figures as the parent's metrics confirm.<candidate>.delta|low|high at step =
        the candidate's paired seeds (a bound that is not finite is recorded as null: left out)."""
        stamp = int(float(event.get("time") or 0) * 1000)
        for label, figures in (event.get("figures") or {}).items():
            for name in ("delta", "low", "high"):
                value = figures.get(name)
                if isinstance(value, int | float) and math.isfinite(value):
                    key = sanitize_key(f"confirm.{label}.{name}")
                    piece.add("metrics", Metric(key, float(value), stamp, int(figures["seeds"])))

    def _observe(self, mirror: RunMirror, event: dict[str, Any]) -> None:
        metrics = event["metrics"]
        mirror.reports_best |= self.objective.best_key in metrics
        value = metrics.get(self.objective.metric)
        finite = value is not None and math.isfinite(value)
        if finite and self.objective.better(value, mirror.best_value):
            mirror.best_epoch, mirror.best_value = int(event["epoch"]), float(value)

    def _end_piece(self, piece: Piece, mirror: RunMirror, event: dict[str, Any]) -> None:
        state, epochs = event["state"], event.get("epochs") or 0
        tags = {"end_state": state, "epochs_trained": str(epochs)}
        if state == STOPPED_EARLY:
            tags["stopped_rung"] = str(epochs)
        if event.get("reason"):
            tags["failure_reason"] = tag_value(event["reason"])
        if event.get("error"):
            piece.texts["error.txt"] = event["error"]
        if mirror.best_epoch is not None:
            best_key = sanitize_key(self.objective.best_key)
            tags |= {"best_epoch": str(mirror.best_epoch), best_key: repr(mirror.best_value)}
            if not mirror.reports_best:
                stamp = int(float(event.get("time") or 0) * 1000)
                piece.add("metrics", Metric(best_key, mirror.best_value, stamp, mirror.best_epoch))
        for key, value in tags.items():
            piece.add("tags", RunTag(key, value))
        piece.status = RUN_STATUS[state]
        mirror.ended = True

    def _params(self, piece: Piece, config: dict[str, Any], skip: Container[str] = ()) -> None:
        """Flat, sanitised params; a value cut to MLflow's limit is kept whole as params/<key>.txt."""
        flat = flatten_params(config)
        for original, key in sanitize_keys(flat).items():
            if key in skip:
                continue
            value, cut = param_value(flat[original])
            piece.add("params", Param(key, value))
            if cut:
                piece.texts[f"params/{key}.txt"] = str(flat[original])

    def _send(self, trial_id: str, mirror: RunMirror, piece: Piece) -> None:
        if piece.batch.metrics:
            last = piece.batch.metrics[-1]
            probe = [last.key, last.step]
            self.state.inflight = {"trial_id": trial_id, "through": piece.through, "probe": probe}
            self.state.save(self.state_path)
        self._log(mirror.run_id, piece)
        if piece.status:
            with quiet_urls():
                self.client.set_terminated(mirror.run_id, piece.status)
            mirror.status = piece.status
        mirror.sent, self.state.inflight = piece.through, None
        self.state.save(self.state_path)

    def _log(self, run_id: str, piece: Piece) -> None:
        b = piece.batch
        for call in batches(b.metrics, b.params, b.tags):
            self.client.log_batch(
                run_id, metrics=call.metrics, params=call.params, tags=call.tags, synchronous=True
            )
        for name, text in piece.texts.items():
            self.client.log_text(run_id, text, name)

    def _send_report(self) -> None:
        """The report folder as the parent's artifacts, its Pareto ranks as tags of the runs."""
        summary = self.report_dir / SUMMARY_FILE
        digest = _digest(summary)
        if digest is None or digest == self.state.report:
            return
        self.client.log_artifacts(self.state.parent_run_id, str(self.report_dir), REPORT_DIR)
        figures = json.loads(summary.read_text())
        confirmation = figures.get("confirmation") or {}
        tags = {"front_search": figures["searched_by"]} if figures.get("searched_by") else {}
        if confirmation.get("answer"):
            tags |= {"answer": confirmation["answer"], "answer_metric": confirmation["metric"]}
        if tags:
            batch = [RunTag(k, tag_value(v)) for k, v in tags.items()]
            self.client.log_batch(self.state.parent_run_id, tags=batch, synchronous=True)
        ranks, front = figures.get("ranks", {}), set(figures.get("front", []))
        for trial_id, mirror in self.state.runs.items():
            if mirror.run_id is not None and trial_id in ranks:
                tags = [
                    RunTag("pareto_rank", str(ranks[trial_id])),
                    RunTag("pareto_front", str(trial_id in front).lower()),
                ]
                self.client.log_batch(mirror.run_id, tags=tags, synchronous=True)
        self.state.report = digest

    def _end_all(self, status: str) -> None:
        if status not in _PARENT_END_STATE:
            raise ValueError(f"status: expected one of {list(_PARENT_END_STATE)}, got {status!r}")
        left = [m for m in self.state.runs.values() if not m.ended and m.run_id is not None]
        for mirror in left:
            if mirror.status == "RUNNING":
                self.client.set_tag(mirror.run_id, "end_state", INTERRUPTED)
                with quiet_urls():
                    self.client.set_terminated(mirror.run_id, RUN_STATUS[INTERRUPTED])
                mirror.status = RUN_STATUS[INTERRUPTED]
        final = "KILLED" if status == "FINISHED" and left else status
        parent = self.state.parent_run_id
        self.client.set_tag(parent, "end_state", _PARENT_END_STATE[final])
        self.client.set_terminated(parent, final)
