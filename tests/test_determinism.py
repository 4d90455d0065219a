"""Same config and seed → the same sampled configurations and the same metrics, bit for bit (CPU),
and the same confirmation."""

from __future__ import annotations

import pytest
from helpers import SMALL, read_record

from search.config import load_config
from spaces import load_space

pytestmark = pytest.mark.slow
TIMES = {"epoch_time_s", "train_time_s"}


def trials(out, confirmation: bool = False) -> list[tuple[dict, list[dict]]]:
    """(params, per-epoch metrics without timings) per search trial, in start order; or per
    confirmation run (written in the order they finish)."""
    events = read_record(out / "record.jsonl")
    starts = [e for e in events if e["event"] == "start" and bool(e.get("stage")) == confirmation]
    order = [e["trial_id"] for e in starts]
    params = {e["trial_id"]: e["params"] for e in starts}
    metrics = {t: [] for t in order}
    for e in events:
        if e["event"] == "result" and e["trial_id"] in metrics:
            metrics[e["trial_id"]].append({k: v for k, v in e["metrics"].items() if k not in TIMES})
    return [(params[t], metrics[t]) for t in order]


def test_two_runs_sample_and_score_identically(ray_local, tmp_path):
    from search.driver import run

    outs = []
    for i in range(2):
        cfg = load_config(
            [
                "space=full",
                f"output_dir={tmp_path / f'run{i}'}",
                "search.num_samples=5",
                "search.max_concurrent=1",
                "search.seed=7",
                "scheduler=fifo",
                "train.max_epochs=2",
                "mlflow.enabled=false",
                "confirm.min_seeds=1",
                "confirm.max_seeds=1",
                "confirm.top_k=1",
                "confirm.front=false",
                *(f"data.{k}={v}" for k, v in SMALL.items()),
            ]
        )
        outs.append(run(cfg, load_space(cfg.space)).output_dir)
    first, second = trials(outs[0]), trials(outs[1])
    assert len(first) == 5
    assert [p for p, _ in first] == [p for p, _ in second]
    assert [m for _, m in first] == [m for _, m in second]
    confirmed = [sorted(trials(o, confirmation=True), key=repr) for o in outs]  # ids are Ray's
    assert confirmed[0] and confirmed[0] == confirmed[1]
