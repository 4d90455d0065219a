"""`run(config, space)`: build the data, start or join Ray, run the search and the stages after it
(`search/stages.py`: the confirmation, the report), leave the output folder.

Bad input fails before Ray starts; trial failures never take the search down; Ctrl-C stops cleanly
and says how to resume.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mirrors import MirrorSettings, MlflowMirror, check_reachable, resolve_tracking_uri
from record import ABANDONED, DATA_FILE, RECORD_FILE, TrialRecord, read_trials
from search.cluster import (
    check_storage,
    connect,
    in_client_process,
    is_client,
    on_head,
    plan_storage,
    push,
)
from search.cluster.push_callback import PushCallback
from search.config import SearchConfig
from search.outputs import Outcome, best_trials, prepare_output
from search.progress import ProgressCallback
from search.recording import RecordCallback
from search.stages import StageContext, run_stages
from search.study import abandon_orphans, catch_up_study
from search.teacher import with_teacher
from spaces import Space, load_space
from spaces.fit import double_correction, fit_to_data, takes_any, values_left
from spaces.loss_preflight import Corner, check_corners
from spaces.pins import pin
from trainables.canonical import DataFacts
from trainables.data.dataset import Dataset
from trainables.models.registry import ignored_keys
from trainables.params import LQ_ON
from trainables.plugins import Plugins
from trainables.trial.loop import load_trainable
from trainables.trial.plugin_preflight import preflight

log = logging.getLogger(__name__)


def quiet_ray() -> None:
    """Skip Ray's per-trial CSV/JSON/TensorBoard writers (the record replaces them) and their noise;
    snapshot the experiment every 2 s so a killed driver loses at most that much of Ray's state."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def end_counts(trials: list[TrialRecord]) -> dict[str, int]:
    """Trials per recorded end state."""
    counts: dict[str, int] = {}
    for trial in trials:
        if trial.state is not None:
            counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts


def run(cfg: SearchConfig, space: Space) -> Outcome:
    """Run (or resume) the search described by `cfg` over `space`."""
    if is_client(cfg.cluster.address):
        connect(cfg.cluster.address)
        if in_client_process():  # Ray Client: this whole function runs on the head node
            return run_on_head(cfg, space)
    from search.tuner import run_search, tune_parts

    prepared = prepare(cfg, space)
    data, plugins, facts, space = prepared.data, prepared.plugins, prepared.facts, prepared.space
    notes, left = prepared.notes, prepared.left
    uri = None
    if cfg.mlflow.enabled:
        uri = resolve_tracking_uri(cfg.mlflow.tracking_uri, None, Path.cwd())
        check_reachable(uri)  # before any output or trial
    quiet_ray()
    cluster = connect(cfg.cluster.address)
    check_storage(cfg.output_dir, cluster, cfg.cluster.shared_storage)
    storage = plan_storage(cfg.output_dir)
    output_dir = prepare_output(cfg, space)
    write_data_notes(output_dir, data, notes, left)
    parts = tune_parts(
        cfg, space, cluster.max_cpus, cluster.max_gpus, cluster.multi_node, facts, plugins
    )
    record = RecordCallback(output_dir, cfg.train.max_epochs)
    callbacks: list[Any] = [record]
    if cfg.verbose:
        callbacks.append(ProgressCallback(cfg.search.objective, cfg.train.max_epochs))
    mirror = MlflowMirror(mirror_settings(cfg, space, output_dir, uri)) if uri else None
    if mirror is not None:
        mirror.start()  # the parent run exists before the first trial; a resume catches up
    if storage.remote:
        callbacks.append(PushCallback(storage))
    searched = data.without_test()  # the test split is the confirmation stage's alone
    status, ray_trials = "FAILED", None
    try:
        # Ray turns Ctrl-C into a graceful stop with its state saved
        known = run_search(parts, searched, callbacks, resume=bool(cfg.resume))
        if cfg.resume:
            ray_trials = {str(t.trial_id) for t in known}
            abandon_orphans(output_dir, ray_trials)
        trials, _ = read_trials(output_dir / RECORD_FILE)
        counts = end_counts(trials)
        merged = getattr(parts.run_args["search_alg"], "merged", [])  # a canonical grid's
        for line in merged:
            log.info("search: %s", line)
        expected = parts.run_args["num_samples"] * (space.grid_size or 1) - len(merged)
        outcome = Outcome(
            output_dir=output_dir,
            counts=counts,
            best=best_trials(trials, space, cfg.search.metric, cfg.search.mode),
            tracking_uri=uri,
            experiment_id=None if mirror is None else mirror.experiment_id,
            cluster=cluster.describe(),
            interrupted=sum(n for s, n in counts.items() if s != ABANDONED) < expected,
        )
        status = "KILLED" if outcome.interrupted else "FINISHED"
        if not outcome.interrupted:  # the confirmation, the report: search/stages.py
            run_stages(StageContext(cfg, output_dir, data, plugins, facts, outcome))
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        record.close()
        try:
            catch_up_study(output_dir, cfg.name, cfg.search.objective, ray_trials, cfg.objectives)
        except Exception as error:  # the record holds every trial; the study is a mirror
            log.warning("Optuna study not caught up with the record: %s", error)
        if mirror is not None:
            mirror.close(status)  # the record, the report and its Pareto ranks
        push(storage)  # a URI output_dir gets the record, config, journal, report
    return outcome


def run_on_head(cfg: SearchConfig, space: Space) -> Outcome:
    """`run(cfg, space)` in a task on the head node of the Ray Client cluster this process joined
    (search/cluster/client.py `on_head`); the space file travels as its text."""
    return on_head(_run_here, cfg, Path(space.path).name, Path(space.path).read_text())


def _run_here(cfg: SearchConfig, filename: str, text: str) -> Outcome:
    path = Path(tempfile.mkdtemp(prefix="loss-search-space-")) / filename
    path.write_text(text)
    load_trainable(cfg.plugins)  # their declared keys are trial keys on the head too
    space = load_space(str(path))  # a resumed search's space.yaml holds its pins already
    return run(cfg, space if cfg.resume else pin(space, cfg.params))


@dataclass(frozen=True)
class Prepared:
    """What the driver builds before Ray: the data as the trials get it, the plug-ins, the data's
    facts, the fitted space with its notes and the values each collapsed key kept, and the loss
    preflight's corners."""

    data: Dataset
    plugins: Plugins
    facts: DataFacts
    space: Space
    notes: list[str]
    left: dict[str, list[Any]]
    corners: list[Corner]


def prepare(cfg: SearchConfig, space: Space) -> Prepared:
    """Build and check everything a search needs before Ray starts (so bad input costs no
    cluster): the data, the label-quality scores (when the space can set lq.method), the
    teachers, the plug-ins' one-batch preflight, the space fitted to the data and the loss
    preflight of its corners."""
    from reports.objectives import parse_objectives  # already imported: the config checked them
    from trainables.data.presets import build_dataset

    data = build_dataset(cfg.data["preset"], {k: v for k, v in cfg.data.items() if k != "preset"})
    data, plugins = model_inputs(cfg, data)
    if not data.tasks and takes_any(space, "lq.method", LQ_ON):  # the lq.* weights' scores, once
        data = cfg.lq.scored(data)
    if cfg.distill.teacher:  # soft labels once: the trials' and the confirmation's data
        data = with_teacher(cfg.distill.teacher, data, plugins, cfg.distill.folds)
    reported = [*parse_objectives(cfg.report.objectives), *cfg.objectives]
    objectives = list(dict.fromkeys(o.metric for o in reported))
    preflight(plugins, data, cfg.search.objective, objectives)
    facts = DataFacts.of(data, ignored_keys(plugins.model, plugins.encoder, data.vocab_size))
    fitted, notes = fit_to_data(space, facts)
    for note in notes:
        log.warning("data %s: %s", cfg.data["preset"], note)
    twice = double_correction(fitted)
    if twice:  # said once here; the trials' own warnings stay in their logs
        log.warning(twice)
    start = time.perf_counter()
    measured = check_corners(fitted, data, plugins, facts)
    log.info(
        "loss preflight: %d corner(s) of %s, one batch each, in %.1f s",
        len(measured),
        fitted.name,
        time.perf_counter() - start,
    )
    left = values_left(space, fitted)
    return Prepared(data, plugins, facts, fitted, notes, left, measured)


def model_inputs(cfg: SearchConfig, data: Dataset) -> tuple[Dataset, Plugins]:
    """The data as the `model=` choice reads it, and the plug-ins the trials load: model=text
    embeds the texts once (frozen) or tokenizes them for the encoder (finetune)."""
    plugins = cfg.plugins
    if cfg.model.name != "text":
        return data.without_texts(), plugins
    from trainables.models.encoder import embed_frozen, tokenize

    if cfg.model.mode == "frozen":
        cache = Path(cfg.model.cache_dir or Path.home() / ".cache" / "loss-search" / "embeddings")
        embedded = embed_frozen(
            data, cfg.model.encoder, cache, cfg.model.batch_size, cfg.verbose > 0
        )
        return embedded, plugins
    return tokenize(data, cfg.model.encoder), replace(plugins, encoder=cfg.model.encoder)


def write_data_notes(
    output_dir: Path, data: Any, notes: list[str], left: dict[str, list[Any]]
) -> None:
    """`data.json`: the classes, their training counts, what the data collapsed in the space (one
    sentence each), the values each collapsed key kept (a resume keeps the first notes) and how
    the label-quality scores were computed (null: they were not)."""
    path = output_dir / DATA_FILE
    if path.is_file():
        notes = list(dict.fromkeys(json.loads(path.read_text()).get("collapsed", []) + notes))
    facts = {
        "preset": data.meta.get("preset"),
        "classes": list(data.classes),
        "tasks": {name: list(classes) for name, classes in data.tasks.items()},
        "train_counts": data.train_counts().tolist(),
        "test_labels": data.test.y.tolist(),  # (n,) or (n, T): the paired bootstrap resamples rows
        "labels": data.meta.get("label_notes", []),  # what loading did to the label column
        "collapsed": notes,
        "values_left": left,
        "label_quality": data.meta.get("label_quality"),  # folds, model, seed, methods
    }
    path.write_text(json.dumps(facts, indent=1) + "\n")


def mirror_settings(cfg: SearchConfig, space: Space, output_dir: Path, uri: str) -> MirrorSettings:
    """What the MLflow mirror of this search sends besides the record: parent params and tags."""
    tags = {
        "space": space.name,
        "data_preset": cfg.data["preset"],
        "searcher": cfg.search.algorithm,
        "scheduler": cfg.scheduler.name,
        "search_objectives": ", ".join(str(o) for o in cfg.objectives),  # what the search ranked
    }
    return MirrorSettings(
        tracking_uri=uri,
        experiment=cfg.mlflow.experiment or space.name,
        search_name=cfg.name,
        output_dir=output_dir,
        config=cfg.to_dict(),
        tags=tags,
        artifacts=tuple(output_dir / f for f in ("config.yaml", "space.yaml", DATA_FILE)),
        max_epochs=cfg.train.max_epochs,
        objective=cfg.search.objective,
        resume=bool(cfg.resume),
    )
