"""Fractional GPUs: with one logical GPU and gpu_per_trial=0.25, four trials run at once, on CPU."""

from __future__ import annotations

import pytest

from search.record import read_record
from tests.test_search import small_search

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_one_gpu():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


def test_four_trials_share_one_logical_gpu(ray_one_gpu, tmp_path):
    _, outcome = small_search(
        tmp_path,
        "search.num_samples=4",
        "scheduler=fifo",
        "train.max_epochs=3",
        "resources.gpu_per_trial=0.25",
        "resources.cpu_per_trial=0.5",
    )
    events = read_record(outcome.output_dir / "record.jsonl")
    assert sum(e["event"] == "end" and e["state"] == "completed" for e in events) == 4
    spans: dict[str, list[float]] = {}
    for e in events:
        if e["event"] == "result":
            spans.setdefault(e["trial_id"], []).append(e["time"])
    # every trial's first epoch ended before any trial's last epoch: all four ran at once
    assert max(min(v) for v in spans.values()) < min(max(v) for v in spans.values())
    devices = {e["device"] for e in events if e["event"] == "result"}
    assert devices == {"cpu"}, "torch sees no CUDA here, so every trial must fall back to CPU"
