"""Ctrl-C stops a search cleanly and says how to resume; a driver killed with SIGKILL resumes too:
finished trials are not re-run, nothing is lost or duplicated in the record, Optuna or MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SMALL, assert_nothing_lost, read_record, sqlite_store
from mlflow import MlflowClient

pytestmark = pytest.mark.slow
TRIALS = 6


def start(*args: str, **kwargs) -> subprocess.Popen:
    """`python -m search.run` in its own process group (as a terminal runs it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "search.run", *args], start_new_session=True, text=True, **kwargs
    )


def wait_for_ends(out: Path, n: int, timeout: float = 240) -> set[str]:
    """Poll the record until at least `n` trials have ended; their ids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = {e["trial_id"] for e in read_record(out / "record.jsonl") if e["event"] == "end"}
        if len(ended) >= n:
            return ended
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} trials ended in {timeout} s")


def resume_to_the_end(out: Path) -> subprocess.CompletedProcess:
    """`python -m search.run resume=out` in the foreground; it must finish with exit 0."""
    final = subprocess.run(
        [sys.executable, "-m", "search.run", f"resume={out}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    return final


def key(event: dict) -> tuple:
    return event["event"], event["trial_id"], event.get("epoch")


def checkpoints(out: Path, trials: set[str]) -> dict[str, list[str]]:
    """Each trial's checkpoint folders: a re-run trial would add more."""
    return {t: sorted(p.name for p in (out / "tune" / t).glob("checkpoint_*")) for t in trials}


def open_runs(uri: str) -> list[str]:
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r.info.run_id for r in client.search_runs(experiments, "attributes.status = 'RUNNING'")]


def test_ctrl_c_then_sigkill_then_resume_loses_nothing(tmp_path):
    out, uri = tmp_path / "out", sqlite_store(tmp_path)
    search = start(
        "space=elf",
        f"output_dir={out}",
        f"search.num_samples={TRIALS}",
        "scheduler=fifo",
        "train.max_epochs=25",
        "train.checkpoint_every_s=0",
        "confirm.max_seeds=0",  # the search's resume; the next test presses Ctrl-C in the stage
        f"mlflow.tracking_uri={uri}",
        *(f"data.{k}={v}" for k, v in SMALL.items()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_ends(out, 1)
    os.kill(search.pid, signal.SIGINT)  # Ctrl-C reaches the driver
    stdout, stderr = search.communicate(timeout=180)
    assert search.returncode == 130, stderr[-2000:]
    assert "search interrupted:" in stdout
    assert f"continue: python -m search.run resume={out}" in stdout
    text = (out / "record.jsonl").read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())
    assert not open_runs(uri), "a run left RUNNING after Ctrl-C"
    interrupted = {e["trial_id"] for e in read_record(out / "record.jsonl") if e["event"] == "end"}
    assert len(interrupted) < TRIALS, "Ctrl-C must land mid-search"

    resumed = start(f"resume={out}", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_ends(out, len(interrupted) + 1)
    os.killpg(resumed.pid, signal.SIGKILL)
    resumed.wait()
    before = read_record(out / "record.jsonl")
    done = {e["trial_id"] for e in before if e["event"] == "end"}
    assert len(done) < TRIALS, "the kill must land mid-search"
    finished = {key(e): e for e in before if e["trial_id"] in done}
    saved = checkpoints(out, done)

    final = resume_to_the_end(out)
    after = read_record(out / "record.jsonl")
    starts = [e["trial_id"] for e in after if e["event"] == "start" and not e.get("stage")]
    ends = {e["trial_id"]: e["state"] for e in after if e["event"] == "end"}
    ends = {t: state for t, state in ends.items() if t in starts}  # the search's trials
    assert len(starts) == len(set(starts)) and sorted(ends) == sorted(starts)
    # trials started after Ray's last snapshot were replaced by Ray and are closed as abandoned
    assert sum(state == "completed" for state in ends.values()) == TRIALS
    assert set(ends.values()) <= {"completed", "abandoned"}
    for e in after:  # what finished before the kill is as it was, and was not trained again
        if e["trial_id"] in done:
            assert e == finished[key(e)]
    assert checkpoints(out, done) == saved
    assert f"search finished: {TRIALS} completed" in final.stdout
    assert not open_runs(uri)
    assert_nothing_lost(out, uri)


def confirmation_ends(out: Path) -> set[str]:
    events = read_record(out / "record.jsonl")
    confirming = {e["trial_id"] for e in events if e["event"] == "start" and e.get("stage")}
    return {e["trial_id"] for e in events if e["event"] == "end" and e["trial_id"] in confirming}


def test_ctrl_c_during_confirmation_then_resume_retrains_only_the_rest(tmp_path):
    out, uri = tmp_path / "out", sqlite_store(tmp_path)
    search = start(
        "space=elf",
        f"output_dir={out}",
        "search.num_samples=3",
        "scheduler=fifo",
        "train.max_epochs=8",
        "confirm.min_seeds=3",
        "confirm.max_seeds=6",  # rounds after the first: the resume continues the sequence
        "confirm.top_k=2",
        f"mlflow.tracking_uri={uri}",
        *(f"data.{k}={v}" for k, v in SMALL.items()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not confirmation_ends(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(search.pid, signal.SIGINT)
    stdout, stderr = search.communicate(timeout=180)
    assert search.returncode == 130, stderr[-2000:]
    assert f"resume={out}" in stdout
    assert not open_runs(uri), "a run left RUNNING after Ctrl-C"
    before = read_record(out / "record.jsonl")
    done = confirmation_ends(out)
    planned = 3 * 3  # plain CE, top 2 and their twins: at least 3 configurations, 3 seeds each
    assert 1 <= len(done) < planned, "Ctrl-C must land mid-confirmation"
    finished = {key(e): e for e in before if e["trial_id"] in done}

    final = resume_to_the_end(out)
    assert "answer (test split, paired seeds):" in final.stdout
    after = read_record(out / "record.jsonl")
    for e in after:  # a run that finished before Ctrl-C is as it was, and was not trained again
        if e["trial_id"] in done:
            assert e == finished[key(e)]
    total = confirmation_ends(out)
    assert done < total and len(total) >= planned
    summary = json.loads((out / "report" / "summary.json").read_text())["confirmation"]
    assert sum(len(c["seeds"]) for c in summary["configs"]) == len(total)
    assert not open_runs(uri)
    assert_nothing_lost(out, uri)


def test_a_front_search_interrupted_then_resumed_loses_nothing(tmp_path):
    """scheduler=moasha (a multi-objective study, MOASHA's rungs): Ctrl-C mid-search, resume to
    the end; every trial ends once, the study holds each recorded end with the values at its best
    epoch and no intermediate values, Ray and MLflow hold every result once."""
    out, uri = tmp_path / "out", sqlite_store(tmp_path)
    search = start(
        "space=elf",
        f"output_dir={out}",
        f"search.num_samples={TRIALS}",
        "scheduler=moasha",
        "scheduler.grace_period=1",
        "train.max_epochs=25",
        "train.checkpoint_every_s=0",
        "confirm.max_seeds=0",
        f"mlflow.tracking_uri={uri}",
        *(f"data.{k}={v}" for k, v in SMALL.items()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_ends(out, 2)
    os.kill(search.pid, signal.SIGINT)
    _, stderr = search.communicate(timeout=180)
    assert search.returncode == 130, stderr[-2000:]
    done = {e["trial_id"] for e in read_record(out / "record.jsonl") if e["event"] == "end"}
    assert len(done) < TRIALS, "Ctrl-C must land mid-search"

    resume_to_the_end(out)
    after = read_record(out / "record.jsonl")
    starts = [e["trial_id"] for e in after if e["event"] == "start" and not e.get("stage")]
    ends = {e["trial_id"]: e["state"] for e in after if e["event"] == "end"}
    assert len(starts) == len(set(starts)) == TRIALS and sorted(ends) == sorted(starts)
    assert set(ends.values()) <= {"completed", "stopped_early"} and "completed" in ends.values()
    assert_nothing_lost(out, uri)
