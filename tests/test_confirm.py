"""A tiny tracked search with its confirmation stage (two paired seeds first): paired seeds, the
baseline, test metrics only there, the figures against numpy, MLflow children and the parent's
answer, resume without re-training, a larger budget continuing the sequence, and the report
rebuilt from MLflow. One Ray start."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import SMALL, assert_nothing_lost, read_record, sqlite_store
from sklearn.metrics import f1_score

from reports.mlflow_run import write_mlflow_report
from search.config import load_config
from search.confirm import run_confirmation
from search.run import summary as cli_summary
from search.searcher import load_study
from search.tuner import STUDY_FILE
from spaces import load_space
from trainables.data.presets import build_dataset
from trainables.params import is_plain_ce

pytestmark = pytest.mark.slow
TEST_METRICS = ["test_macro_f1", "test_worst_recall", "test_ece"]


@pytest.fixture(scope="module")
def search(ray_local, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from search.driver import run

    tmp = tmp_path_factory.mktemp("confirm")
    cfg = load_config(
        [
            "space=elf",
            f"output_dir={tmp / 'out'}",
            "search.num_samples=5",
            "train.max_epochs=3",
            "scheduler.grace_period=1",
            "scheduler.reduction_factor=2",
            "confirm.min_seeds=2",
            "confirm.max_seeds=2",
            "confirm.top_k=2",
            "verbose=0",
            f"mlflow.tracking_uri={sqlite_store(tmp)}",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
        ]
    )
    outcome = run(cfg, load_space(cfg.space))
    assert outcome.report_dir is not None
    return {"cfg": cfg, "outcome": outcome, "out": outcome.output_dir, "tmp": tmp}


def events(out: Path) -> list[dict[str, Any]]:
    return read_record(out / "record.jsonl")


def confirmation_runs(out: Path) -> dict[str, dict[str, Any]]:
    """run id -> {start, result, end} of the record's confirmation runs."""
    runs: dict[str, dict[str, Any]] = {}
    confirming = {e["trial_id"] for e in events(out) if e["event"] == "start" and e.get("stage")}
    for e in events(out):
        if e["trial_id"] in confirming:
            runs.setdefault(e["trial_id"], {})[e["event"]] = e
    return runs


def summary(search: dict[str, Any]) -> dict[str, Any]:
    return json.loads((search["out"] / "report" / "summary.json").read_text())


def test_every_configuration_trains_the_same_seeds_for_the_full_budget(search):
    out = search["out"]
    runs = confirmation_runs(out)
    searched = {
        e["trial_id"]: e for e in events(out) if e["event"] == "start" and not e.get("stage")
    }
    by_source: dict[str, set[int]] = {}
    for run_id, r in runs.items():
        start = r["start"]
        assert start["stage"] == "confirmation" and r["end"]["state"] == "completed", run_id
        assert r["end"]["epochs"] == 3  # full budget, no early stopping
        by_source.setdefault(start["source"], set()).add(start["params"]["seed"])
        for m in TEST_METRICS:
            assert 0.0 <= r["result"]["metrics"][m] <= 1.0
        assert len(r["result"]["predictions"]) == SMALL["n_test"]
    assert all(seeds == {1, 2} for seeds in by_source.values())  # paired
    roles = {r["start"]["source"]: r["start"]["role"] for r in runs.values()}
    params = {r["start"]["source"]: r["start"]["params"] for r in runs.values()}
    completed = {
        e["trial_id"]
        for e in events(out)
        if e["event"] == "end" and e["state"] == "completed" and e["trial_id"] in searched
    }
    results = [e for e in events(out) if e["event"] == "result"]
    best = {
        t: max(e["metrics"]["val_macro_f1"] for e in results if e["trial_id"] == t)
        for t in completed
    }
    plain = [t for t in best if is_plain_ce(searched[t]["params"])]
    candidates = sorted(set(best) - set(plain), key=lambda t: -best[t])[:2]
    assert set(candidates) <= {s for s, role in roles.items() if role == "candidate"}
    options = {s for s, role in roles.items() if role == "baseline"}
    assert all(is_plain_ce(params[s]) for s in options)
    assert max(plain, key=best.get) in options  # the best plain-CE trial on validation
    for c in (s for s, role in roles.items() if role == "candidate"):  # and every plain-CE twin
        twin = {k: v for k, v in params[c].items() if k.startswith("train.")}
        assert any({k: params[o].get(k) for k in twin} == twin for o in options), c
    chosen = summary(search)["confirmation"]["baseline"]
    mean_val = {
        s: np.mean(
            [
                r["result"]["metrics"]["val_macro_f1"]
                for r in runs.values()
                if r["start"]["source"] == s
            ]
        )
        for s in options
    }
    assert mean_val[chosen] == max(mean_val.values())  # chosen on validation


def test_the_search_never_sees_the_test_split(search):
    """Search trials report no test metric and the study holds the 5 trials only."""
    out = search["out"]
    for e in events(out):
        if e["event"] == "result" and not e["trial_id"].startswith("confirm_"):
            assert not [k for k in e["metrics"] if k.startswith("test_")], e["trial_id"]
    assert len(load_study(out / STUDY_FILE, search["cfg"].name).trials) == 5
    assert_nothing_lost(out, search["cfg"].mlflow.tracking_uri)


def test_figures_against_numpy_and_the_answer_everywhere(search):
    out, figures = search["out"], summary(search)["confirmation"]
    runs = confirmation_runs(out)
    for config in figures["configs"]:
        mine = [r for r in runs.values() if r["start"]["source"] == config["config"]]
        for m in TEST_METRICS:
            values = np.array([r["result"]["metrics"][m] for r in mine])
            assert config["test"][m]["mean"] == pytest.approx(values.mean(), abs=1e-12)
            assert config["test"][m]["sd"] == pytest.approx(values.std(ddof=1), abs=1e-12)
    answer = figures["answer"]
    assert answer and search["outcome"].answer == answer
    printed = cli_summary(search["outcome"])
    assert f"answer (test split, paired seeds): {answer}" in printed
    assert "search's best (validation, one seed each, optimistic):" in printed
    md = (out / "report" / "pareto.md").read_text()
    assert md.splitlines()[2] == f"**Answer (test split, confirmed):** {answer}"
    assert "(validation, one seed, optimistic" in md
    assert answer in (out / "report" / "pareto.html").read_text().replace("&#x27;", "'")


def test_mlflow_children_and_parent_answer(search):
    from mlflow import MlflowClient

    client = MlflowClient(search["cfg"].mlflow.tracking_uri)
    parent_id = json.loads((search["out"] / "mlflow_mirror.json").read_text())["parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.data.tags["answer"] == summary(search)["confirmation"]["answer"]
    runs = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )
    confirming = [r for r in runs if r.data.tags.get("stage") == "confirmation"]
    assert sorted(r.info.run_name for r in confirming) == sorted(confirmation_runs(search["out"]))
    for r in confirming:
        assert r.info.status == "FINISHED" and "test_macro_f1" in r.data.metrics
        assert r.data.tags["role"] in ("baseline", "candidate")


def test_resume_with_more_seeds_trains_only_the_new_ones(search):
    """A finished search resumed with confirm.min_seeds=3 trains seed 3 of every configuration."""
    from search.driver import run
    from search.run import resolve

    out = search["out"]
    before = confirmation_runs(out)
    sources = {r["start"]["source"] for r in before.values()}
    cfg, space = resolve(
        [f"resume={out}", "confirm.min_seeds=3", "confirm.max_seeds=3", "verbose=0"], {}
    )
    outcome = run(cfg, space)
    after = confirmation_runs(out)
    new = set(after) - set(before)
    assert {after[r]["start"]["params"]["seed"] for r in new} == {3}
    assert {after[r]["start"]["source"] for r in new} == sources
    for rid, r in before.items():  # untouched
        assert after[rid]["result"]["metrics"] == r["result"]["metrics"]
    figures = json.loads((out / "report" / "summary.json").read_text())["confirmation"]
    assert all(c["seeds"] == [1, 2, 3] for c in figures["configs"])
    assert outcome.answer == figures["answer"] and "3 paired seeds" in outcome.answer
    assert_nothing_lost(out, search["cfg"].mlflow.tracking_uri)


def test_a_larger_budget_continues_the_sequence_where_verdicts_are_open(search):
    """Resumed with confirm.max_seeds=6, only the candidates whose verdict was still open (and the
    baseline they pair with) get seeds 4..6, in rounds; every round's look is in the record once,
    and on the parent MLflow run as the interval per paired seed."""
    from mlflow import MlflowClient

    from search.driver import run
    from search.run import resolve

    out = search["out"]
    figures = summary(search)["confirmation"]
    base = figures["baseline"]
    open_ = {
        c["config"]
        for c in figures["configs"]
        if c["vs_baseline"].get("test_macro_f1", {}).get("verdict") == "undecided"
    }
    before = confirmation_runs(out)
    cfg, space = resolve(
        [f"resume={out}", "confirm.min_seeds=3", "confirm.max_seeds=6", "verbose=0"], {}
    )
    run(cfg, space)
    new = {rid: r for rid, r in confirmation_runs(out).items() if rid not in before}
    got = {r["start"]["source"] for r in new.values()}
    assert got <= open_ | {base} and (not open_ or base in got)
    assert {r["start"]["params"]["seed"] for r in new.values()} <= {4, 5, 6}
    looks = [e for e in events(out) if e["event"] == "look"]
    assert looks and len({e["epoch"] for e in looks}) == len(looks)
    final = summary(search)["confirmation"]
    for c in final["configs"]:
        x = c["vs_baseline"].get("test_macro_f1")
        if x is not None and c["config"] in open_:
            assert x["verdict"] != "undecided" or len(c["seeds"]) == 6 or x["needed"] > 9
    client = MlflowClient(search["cfg"].mlflow.tracking_uri)
    parent_id = json.loads((out / "mlflow_mirror.json").read_text())["parent_run_id"]
    recorded = {
        (label, f["seeds"]): f["delta"]
        for e in looks
        for label, f in e["figures"].items()
        if f["delta"] is not None
    }
    for (label, seeds), delta in recorded.items():
        history = client.get_metric_history(parent_id, f"confirm.{label}.delta")
        assert [m.value for m in history if m.step == seeds] == [pytest.approx(delta)]
    assert_nothing_lost(out, search["cfg"].mlflow.tracking_uri)


def test_resume_retrains_only_what_the_record_has_not_ended(search):
    cfg, out = search["cfg"], search["out"]
    cfg = replace(cfg, confirm=replace(cfg.confirm, min_seeds=3, max_seeds=6))  # as resumed above
    data = build_dataset(cfg.data["preset"], {k: v for k, v in cfg.data.items() if k != "preset"})
    assert run_confirmation(cfg, out, data) == 0  # everything there: nothing re-trained
    record = out / "record.jsonl"
    lines = record.read_text().splitlines(keepends=True)
    cut = max(i for i, line in enumerate(lines) if '"event": "result"' in line)
    last = json.loads(lines[cut])  # the last run's result (its end follows, then a look)
    record.write_text("".join(lines[:cut]) + lines[cut][:40])  # result cut by a kill, no end
    assert run_confirmation(cfg, out, data) == 1
    redone = confirmation_runs(out)[last["trial_id"]]
    assert redone["end"]["state"] == "completed"
    again, before = redone["result"]["metrics"], last["metrics"]
    assert again.pop("train_time_s") > 0 and before.pop("train_time_s") > 0  # wall time differs
    assert again == before and redone["result"]["predictions"] == last["predictions"]  # same seed


def test_report_from_mlflow_has_the_same_confirmation(search):
    from search.stages import report

    report(search["out"])  # after the resume test's re-training, the folder's report again
    uri = search["cfg"].mlflow.tracking_uri
    run_id = json.loads((search["out"] / "mlflow_mirror.json").read_text())["parent_run_id"]
    rebuilt = write_mlflow_report(uri, run_id, None, search["tmp"] / "from-mlflow")
    mine = json.loads((rebuilt / "summary.json").read_text())["confirmation"]
    theirs = summary(search)["confirmation"]
    assert mine["answer"] == theirs["answer"]
    by_config = lambda f: {c["config"]: (c["role"], c["seeds"], c["test"]) for c in f["configs"]}  # noqa: E731
    assert by_config(mine) == by_config(theirs)


@pytest.fixture(scope="module")
def multitask(ray_local, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A multi-task table (tasks a: 2 classes, b: 3) searched with space=multitask, confirmed."""
    import pandas as pd

    from search.driver import run

    tmp = tmp_path_factory.mktemp("multitask")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    table = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)])
    table["a"] = (x[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(int)
    table["b"] = np.digitize(x[:, 1] + 0.5 * rng.normal(size=400), [-0.5, 0.5])
    table.to_csv(tmp / "t.csv", index=False)
    cfg = load_config(
        [
            "space=multitask",
            "data=table",
            f"data.path={tmp / 't.csv'}",
            "data.label=[a,b]",
            f"output_dir={tmp / 'out'}",
            "search.num_samples=3",
            "train.max_epochs=3",
            "confirm.min_seeds=2",
            "confirm.max_seeds=2",
            "confirm.top_k=3",
            "verbose=0",
            f"mlflow.tracking_uri={sqlite_store(tmp)}",
        ]
    )
    outcome = run(cfg, load_space(cfg.space))
    return {"cfg": cfg, "out": outcome.output_dir, "tmp": tmp, "rows": table}


def test_a_multitask_search_confirms_each_task_and_their_mean(multitask):
    out = multitask["out"]
    runs = confirmation_runs(out)
    searched = [e for e in events(out) if e["event"] == "result" and e["trial_id"] not in runs]
    assert searched
    for e in searched:
        m = e["metrics"]
        assert m["val_macro_f1"] == pytest.approx((m["val_a_macro_f1"] + m["val_b_macro_f1"]) / 2)
        assert m["train_a_share"] + m["train_b_share"] == pytest.approx(1.0)
    facts = json.loads((out / "data.json").read_text())
    labels = np.array(facts["test_labels"])
    assert facts["tasks"] == {"a": ["0", "1"], "b": ["0", "1", "2"]} and labels.shape[1] == 2
    for r in runs.values():
        result = r["result"]
        predictions = np.array(result["predictions"])
        assert predictions.shape == labels.shape
        for t, name in enumerate("ab"):
            f1 = f1_score(labels[:, t], predictions[:, t], average="macro", zero_division=0)
            assert result["metrics"][f"test_{name}_macro_f1"] == pytest.approx(f1)
        baseline = r["start"]["role"] == "baseline"
        assert not baseline or r["start"]["params"].get("task.weighting", "uniform") == "uniform"
    figures = json.loads((out / "report" / "summary.json").read_text())
    configs = figures["confirmation"]["configs"]
    candidates = [c for c in configs if c["role"] == "candidate"]
    assert candidates  # the uncertainty-weighted point at least
    for c in candidates:
        assert {"test_macro_f1", "test_a_macro_f1", "test_b_macro_f1"} <= set(c["vs_baseline"])
    assert {row["task"] for row in figures["task_balance"]} == {"a", "b"}
    assert "## Task balance" in (out / "report" / "pareto.md").read_text()


def test_multitask_balance_reaches_mlflow_and_its_report(multitask):
    from mlflow import MlflowClient

    uri = multitask["cfg"].mlflow.tracking_uri
    parent_id = json.loads((multitask["out"] / "mlflow_mirror.json").read_text())["parent_run_id"]
    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )
    searched = [c for c in children if c.data.tags.get("stage") != "confirmation"]
    for c in searched:
        assert {"train_a_share", "train_b_weight", "val_b_macro_f1"} <= set(c.data.metrics)
    rebuilt = write_mlflow_report(uri, parent_id, None, multitask["tmp"] / "from-mlflow")
    mine = json.loads((rebuilt / "summary.json").read_text())
    theirs = json.loads((multitask["out"] / "report" / "summary.json").read_text())
    assert mine["task_balance"] == theirs["task_balance"]
    assert mine["confirmation"]["answer"] == theirs["confirmation"]["answer"]


def test_a_grid_trains_each_canonical_point_once(ray_local, tmp_path):
    """At 3 epochs warm-up fractions 0.125 and 0.5 both ramp 0-then-1: Ray's grid gives two points,
    the search trains one and is not taken for interrupted (the stage runs)."""
    from search.driver import run

    space = tmp_path / "grid.yaml"
    space.write_text(
        "# Run: python -m search.run space=grid.yaml\nparams:\n  loss.kind: ce\n"
        "  elf.strategy: rso\n  elf.warmup_frac: {grid: [0.125, 0.5]}\n  train.lr: 3.0e-3\n"
    )
    cfg = load_config(
        [
            f"space={space}",
            f"output_dir={tmp_path / 'out'}",
            "train.max_epochs=3",
            "scheduler.grace_period=1",
            "mlflow.enabled=false",
            "confirm.min_seeds=1",
            "confirm.max_seeds=1",
            "verbose=0",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
        ]
    )
    outcome = run(cfg, load_space(cfg.space))
    starts = [e for e in events(outcome.output_dir) if e["event"] == "start" and not e.get("stage")]
    assert [e["params"]["elf.warmup_frac"] for e in starts] == [0.125]
    assert not outcome.interrupted and outcome.answer
