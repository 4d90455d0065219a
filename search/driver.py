"""`run(config, space)`: build the data, start or join Ray, run the Tuner, leave the output folder.

Bad input fails before Ray starts; trial failures never take the search down; Ctrl-C stops cleanly
and says how to resume.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from search.config import SearchConfig
from search.record import RECORD_FILE, RecordCallback, read_record
from search.run import Outcome, best_trials, prepare_output
from spaces import Space

log = logging.getLogger(__name__)


def start_ray(address: str) -> None:
    """Join the cluster at `address`, or start a local Ray bound to 127.0.0.1 with no dashboard."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)


def quiet_ray() -> None:
    """Skip Ray's per-trial CSV/JSON/TensorBoard writers (the record replaces them) and their noise."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def end_counts(output_dir: Path) -> dict[str, int]:
    """Trials per end state, from the record."""
    counts: dict[str, int] = {}
    for e in read_record(output_dir / RECORD_FILE):
        if e["event"] == "end":
            counts[e["state"]] = counts.get(e["state"], 0) + 1
    return counts


def run(cfg: SearchConfig, space: Space) -> Outcome:
    """Run (or resume) the search described by `cfg` over `space`."""
    import ray
    from trainables.presets import build_dataset

    from search.tuner import build_tuner, restore_tuner, tuner_parts

    data = build_dataset(cfg.data["preset"], {k: v for k, v in cfg.data.items() if k != "preset"})
    output_dir = prepare_output(cfg, space)
    quiet_ray()
    start_ray(cfg.cluster.address)
    res = ray.cluster_resources()
    parts = tuner_parts(cfg, space, res.get("CPU", 1), res.get("GPU", 0))
    data_ref = data
    from search.progress import ProgressCallback

    callbacks: list[Any] = [
        RecordCallback(output_dir, cfg.train.max_epochs),
        ProgressCallback(cfg.search.metric, cfg.train.max_epochs),
    ]
    tuner = (
        restore_tuner(str(output_dir), parts, data_ref, callbacks)
        if cfg.resume
        else build_tuner(parts, data_ref, callbacks)
    )
    notes = []
    try:
        tuner.fit()
    except KeyboardInterrupt:
        notes.append(f"interrupted: continue with  python -m search.run resume={output_dir}")
        raise
    finally:
        for cb in callbacks:
            close = getattr(cb, "close", None)
            if close:
                close()
    return Outcome(
        output_dir=output_dir,
        counts=end_counts(output_dir),
        best=best_trials(output_dir, space, cfg.search.metric),
        notes=notes,
    )
