"""A real small search on a local Ray: trials finish, ASHA stops some, Optuna agrees with Ray."""

from __future__ import annotations

import json

import pytest
from helpers import SMALL, read_record, sqlite_store
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.config import load_config
from search.searcher import load_study
from search.tuner import STUDY_FILE
from spaces import load_space

pytestmark = pytest.mark.slow

STATE_OF = {
    "completed": TrialState.COMPLETE,
    "stopped_early": TrialState.PRUNED,
    "failed": TrialState.FAIL,
}


def small_search(tmp_path, *extra: str):
    from search.driver import run

    args = [
        "space=elf",
        f"output_dir={tmp_path / 'out'}",
        "search.num_samples=8",
        "train.max_epochs=4",
        "scheduler.grace_period=1",
        "scheduler.reduction_factor=2",
        f"mlflow.tracking_uri={sqlite_store(tmp_path)}",
        *(f"data.{k}={v}" for k, v in SMALL.items()),
        "confirm.max_seeds=0",  # the search is under test; the val_ece test confirms too
        *extra,
    ]
    cfg = load_config(args)
    return cfg, run(cfg, load_space(cfg.space))


def test_small_search_asha_and_optuna_agree(ray_local, tmp_path):
    cfg, outcome = small_search(tmp_path)
    events = read_record(outcome.output_dir / "record.jsonl")
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    starts = {e["trial_id"] for e in events if e["event"] == "start"}
    assert len(starts) == 8 and set(ends) == starts
    states = [e["state"] for e in ends.values()]
    assert "stopped_early" in states and "completed" in states
    results = [(e["trial_id"], e["epoch"]) for e in events if e["event"] == "result"]
    assert len(results) == len(set(results)), "a result was recorded twice"
    for tid, end in ends.items():
        epochs = [ep for t, ep in results if t == tid]
        assert epochs == list(range(end["epochs"]))
    study = load_study(outcome.output_dir / STUDY_FILE, cfg.name)
    assert len(study.trials) == 8
    for t in study.trials:
        end = ends[t.user_attrs["ray_trial_id"]]
        assert t.state == STATE_OF[end["state"]], (t.number, end)
        assert len(t.intermediate_values) == end["epochs"]
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(max(t.intermediate_values.values()))
    assert outcome.counts["completed"] + outcome.counts["stopped_early"] == 8

    client = MlflowClient(outcome.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("elf").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 8
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in children:
        end = next(e for e in ends.values() if e["trial_id"] == r.data.tags["ray.trial_id"])
        assert r.data.tags["end_state"] == end["state"]
        history = client.get_metric_history(r.info.run_id, "val_macro_f1")
        assert [m.step for m in history] == list(range(end["epochs"]))


def test_a_table_search_drops_what_the_data_cannot_tell_apart(ray_local, tmp_path, caplog):
    """Ownership mapped only at package level, none missing: granularity and missing policy are
    collapsed before the search, said in the log, data.json and the report, and never searched."""
    import json

    import numpy as np
    import pandas as pd

    from search.driver import run

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "label": rng.choice(["bug", "style", "question"], n, p=[0.6, 0.3, 0.1]),
            "f1": rng.normal(size=n),
            "f2": rng.normal(size=n),
            "share": rng.uniform(size=n),
            "reviews": rng.uniform(size=n),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = [
        "space=elf",
        f"output_dir={tmp_path / 'out'}",
        "search.num_samples=4",
        "train.max_epochs=2",
        "mlflow.enabled=false",
        "confirm.max_seeds=0",
        "data=table",
        f"data.path={tmp_path / 't.csv'}",
        "data.label=label",
        "data.ownership={share: {signal: aco, granularity: package}, "
        "reviews: {signal: rso, granularity: package}}",
    ]
    cfg = load_config(args)
    outcome = run(cfg, load_space(cfg.space))
    notes = json.loads((outcome.output_dir / "data.json").read_text())
    assert notes["classes"] == ["bug", "question", "style"] and sum(notes["train_counts"]) < n
    assert len(notes["collapsed"]) == 3  # repository and subsystem copy package; elf.missing
    assert sum("data table: elf." in r.getMessage() for r in caplog.records) == 3
    starts = [e for e in read_record(outcome.output_dir / "record.jsonl") if e["event"] == "start"]
    assert len(starts) == 4
    for key, only in (("elf.granularity", "package"), ("elf.missing", "default")):
        assert {e["params"].get(key) or only for e in starts} == {only}
    assert notes["values_left"] == {"elf.granularity": ["package"], "elf.missing": ["default"]}
    from reports.load import load_run

    searched = {p.key for p in load_run(outcome.output_dir).space}
    assert "elf.strategy" in searched and not searched & {"elf.granularity", "elf.missing"}
    report = (outcome.output_dir / "report" / "pareto.md").read_text()
    assert "Collapsed by the data, not searched: elf.granularity=repository" in report


def test_one_definition_of_best_when_lower_is_better(ray_local, tmp_path, capsys):
    """search.metric=val_ece, mode min: the trial's best_val_ece, Optuna, the progress line, the
    summary and the report all take each trial's smallest val_ece."""
    from reports.analysis import analyse
    from reports.load import load_run

    cfg, outcome = small_search(
        tmp_path,
        "search.metric=val_ece",
        "search.mode=min",
        "confirm.min_seeds=2",
        "confirm.max_seeds=2",
    )
    everything = read_record(outcome.output_dir / "record.jsonl")
    confirming = {e["trial_id"] for e in everything if e["event"] == "start" and e.get("stage")}
    events = [e for e in everything if e["trial_id"] not in confirming]
    ends = {e["trial_id"]: e["state"] for e in events if e["event"] == "end"}
    smallest: dict[str, float] = {}
    for e in (e for e in events if e["event"] == "result"):
        tid, value = e["trial_id"], e["metrics"]["val_ece"]
        smallest[tid] = min(smallest.get(tid, value), value)
        assert e["metrics"]["best_val_ece"] == smallest[tid]  # the trial's own running best
        assert "best_val_macro_f1" not in e["metrics"]
    completed = {t: v for t, v in smallest.items() if ends[t] == "completed"}
    study = load_study(outcome.output_dir / STUDY_FILE, cfg.name)
    told = {
        t.user_attrs["ray_trial_id"]: t.value for t in study.trials if t.state.name == "COMPLETE"
    }
    assert told == completed
    assert [b["value"] for b in outcome.best] == sorted(completed.values())[:3]
    lines = [line for line in capsys.readouterr().out.splitlines() if "best val_ece" in line]
    assert lines[-1].split("best val_ece ")[1].split()[0] == f"{min(smallest.values()):.4f}"
    rows = analyse(load_run(outcome.output_dir)).rows
    assert {r.trial_id: r.values["val_ece"] for r in rows if r.trial_id in completed} == completed
    figures = json.loads((outcome.output_dir / "report" / "summary.json").read_text())
    confirmation = figures["confirmation"]  # chosen and judged with lower-is-better too
    assert confirmation["metric"] == "test_ece" and confirming
    runs = [e for e in everything if e["event"] == "result" and e["trial_id"] in confirming]
    options = {c["config"] for c in confirmation["configs"] if c["role"] == "baseline"}
    mean_val = {
        s: sum(e["metrics"]["val_ece"] for e in runs if e["trial_id"].startswith(f"confirm_{s}_s"))
        for s in options
    }
    assert confirmation["baseline"] == min(mean_val, key=mean_val.get)


def test_a_front_search_ranks_and_tells_every_objective(ray_local, tmp_path):
    """scheduler=moasha: the study is multi-objective with the report's three directions, each
    completed trial told its recorded values at its best val_macro_f1 epoch (the epoch the report
    counts), the others PRUNED or FAIL; the report says which search produced its front; the
    parent run is tagged with the objectives and each trial with its front membership."""
    from reports.analysis import analyse
    from reports.load import load_run

    cfg, outcome = small_search(tmp_path, "scheduler=moasha")
    events = read_record(outcome.output_dir / "record.jsonl")
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    assert len(ends) == 8 and outcome.counts["completed"] + outcome.counts["stopped_early"] == 8
    assert outcome.counts["stopped_early"] > 0  # rungs at 1 and 2 with η = 2
    study = load_study(outcome.output_dir / STUDY_FILE, cfg.name)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE", "MINIMIZE"]
    rows = {r.trial_id: r for r in analyse(load_run(outcome.output_dir)).rows}
    metrics = ("val_macro_f1", "val_worst_recall", "val_ece")
    for t in study.trials:
        end = ends[t.user_attrs["ray_trial_id"]]
        assert t.state == STATE_OF[end["state"]] and not t.intermediate_values
        if t.state == TrialState.COMPLETE:
            row = rows[end["trial_id"]]
            assert t.values == pytest.approx([row.values[m] for m in metrics])
    report = (outcome.output_dir / "report" / "pareto.md").read_text()
    assert (
        "Searched by: Optuna TPE, multi-objective on val_macro_f1:max, val_worst_recall:max, "
        "val_ece:min; early stopping: MOASHA on the same objectives." in report
    )
    client = MlflowClient(outcome.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("elf").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["search_objectives"] == ", ".join(
        f"{m}:{d}" for m, d in zip(metrics, ("max", "max", "min"), strict=True)
    )
    figures = json.loads((outcome.output_dir / "report" / "summary.json").read_text())
    assert parent.data.tags["front_search"] == figures["searched_by"]
    tagged = {
        r.data.tags["ray.trial_id"]: r.data.tags["pareto_front"]
        for r in runs
        if "pareto_front" in r.data.tags
    }
    assert set(tagged) == set(figures["ranks"]) and figures["front"]
    assert tagged == {t: str(t in figures["front"]).lower() for t in figures["ranks"]}
