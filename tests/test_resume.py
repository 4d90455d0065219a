"""A search killed with SIGKILL resumes: finished trials are not re-run, nothing is duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import SMALL, assert_nothing_lost

from search.record import read_record

pytestmark = pytest.mark.slow


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "search.run", *args]


def test_sigkill_then_resume(tmp_path):
    out = tmp_path / "out"
    args = [
        "space=elf",
        f"output_dir={out}",
        "search.num_samples=4",
        "scheduler=fifo",
        "train.max_epochs=25",
        "train.checkpoint_every_s=0",
        "mlflow.enabled=false",
        *(f"data.{k}={v}" for k, v in SMALL.items()),
    ]
    proc = subprocess.Popen(
        search_cmd(*args),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ended = [e for e in read_record(out / "record.jsonl") if e["event"] == "end"]
        if ended:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_record(out / "record.jsonl")
    done = {e["trial_id"] for e in before if e["event"] == "end"}
    assert done and len(done) < 4, "the kill must land mid-search"
    finished_results = {
        (e["trial_id"], e["epoch"]): e["metrics"]
        for e in before
        if e["event"] == "result" and e["trial_id"] in done
    }

    resumed = subprocess.run(
        search_cmd(f"resume={out}"), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = read_record(out / "record.jsonl")
    starts = [e["trial_id"] for e in after if e["event"] == "start"]
    ends = {e["trial_id"]: e["state"] for e in after if e["event"] == "end"}
    assert len(starts) == len(set(starts)) and sorted(ends) == sorted(starts)
    # trials started after Ray's last snapshot were replaced by Ray and are closed as abandoned
    assert sum(state == "completed" for state in ends.values()) == 4
    assert set(ends.values()) <= {"completed", "abandoned"}
    results = [(e["trial_id"], e["epoch"]) for e in after if e["event"] == "result"]
    assert len(results) == len(set(results))
    for e in after:  # finished trials were not re-run: their metrics are the ones logged before
        if e["event"] == "result" and e["trial_id"] in done:
            assert e["metrics"] == finished_results[(e["trial_id"], e["epoch"])]
    assert "search finished: 4 completed" in resumed.stdout
    assert_nothing_lost(out)
