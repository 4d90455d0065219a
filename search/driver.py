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
from optuna.trial import TrialState

from search.record import ABANDONED, RECORD_FILE, RecordCallback, read_record
from search.searcher import load_study
from search.run import Outcome, best_trials, prepare_output
from search.tuner import STUDY_FILE
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
    """Skip Ray's per-trial CSV/JSON/TensorBoard writers (the record replaces them) and their noise;
    snapshot the experiment every 2 s so a killed driver loses at most that much of Ray's state."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def end_counts(output_dir: Path) -> dict[str, int]:
    """Trials per end state, from the record."""
    counts: dict[str, int] = {}
    for e in read_record(output_dir / RECORD_FILE):
        if e["event"] == "end":
            counts[e["state"]] = counts.get(e["state"], 0) + 1
    return counts


def abandon_orphans(output_dir: Path, study_name: str) -> None:
    """Close trials a killed driver started after Ray's last snapshot (Ray replaced them).

    Each gets an `abandoned` end in the record and FAIL in the Optuna study, so no trial is left
    open anywhere.
    """
    events = read_record(output_dir / RECORD_FILE)
    ended = {e["trial_id"] for e in events if e["event"] == "end"}
    orphans = [e["trial_id"] for e in events if e["event"] == "start" and e["trial_id"] not in ended]
    if not orphans:
        return
    record = RecordCallback(output_dir, max_epochs=0)
    for tid in orphans:
        epochs = sum(e["event"] == "result" and e["trial_id"] == tid for e in events)
        record.write_end(tid, ABANDONED, epochs, "started after Ray's last snapshot before a kill")
    record.close()
    if (output_dir / STUDY_FILE).exists():
        study = load_study(output_dir / STUDY_FILE, study_name)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("ray_trial_id") in orphans:
                study.tell(t.number, state=TrialState.FAIL)


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
    try:
        tuner.fit()  # Ray turns Ctrl-C into a graceful stop with its state saved
    finally:
        for cb in callbacks:
            close = getattr(cb, "close", None)
            if close:
                close()
    if cfg.resume:
        abandon_orphans(output_dir, cfg.name)
    counts = end_counts(output_dir)
    expected = parts.tune_config.num_samples * (space.grid_size or 1)
    return Outcome(
        output_dir=output_dir,
        counts=counts,
        best=best_trials(output_dir, space, cfg.search.metric),
        interrupted=sum(counts.values()) < expected,
    )
