"""Fractional GPUs: with one logical GPU and gpu_per_trial=0.25, four trials run at once, on CPU,
under FIFO and under MOASHA."""

from __future__ import annotations

import pytest
from conftest import start_local_ray
from helpers import read_record
from test_search import small_search

pytestmark = pytest.mark.slow
# ~3-5 s per trial, four at once on 2 cores: longer than the spread of four actors' start-ups (a
# 3-epoch trial could end before the fourth actor was up: resources held at once, yet no overlap)
EPOCHS = 60


@pytest.fixture(scope="module")
def ray_one_gpu():
    ray = pytest.importorskip("ray")
    start_local_ray(ray, num_cpus=2, num_gpus=1)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize(
    "scheduler",
    # MOASHA's first rung after half the epochs: every trial starts before any may stop
    ["scheduler=fifo", f"scheduler=moasha scheduler.grace_period={EPOCHS // 2}"],
)
def test_four_trials_share_one_logical_gpu(ray_one_gpu, tmp_path, scheduler):
    _, outcome = small_search(
        tmp_path,
        "search.num_samples=4",
        *scheduler.split(),
        f"train.max_epochs={EPOCHS}",
        "resources.gpu_per_trial=0.25",
        "resources.cpu_per_trial=0.5",
    )
    events = read_record(outcome.output_dir / "record.jsonl")
    ended = ("completed", "stopped_early")
    assert sum(e["event"] == "end" and e["state"] in ended for e in events) == 4
    starts = {e["trial_id"]: e["time"] for e in events if e["event"] == "start"}
    ends = {e["trial_id"]: e["time"] for e in events if e["event"] == "end"}
    # every trial started before any trial ended: all four held a quarter of the GPU at once
    assert max(starts.values()) < min(ends.values()), (starts, ends)
    devices = {e["device"] for e in events if e["event"] == "result"}
    assert devices == {"cpu"}, "torch sees no CUDA here, so every trial must fall back to CPU"
