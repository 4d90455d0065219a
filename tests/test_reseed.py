"""A tiny tracked search with `report.reseeds=2`: finalists re-trained with new seeds through Ray,
test-set metrics for them only, the summary against numpy, resume without re-running, and the
report rebuilt from MLflow equal to the one from the output folder. One Ray start, one search."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import SMALL, read_record, sqlite_store

from reports.__main__ import main
from reports.mlflow_run import write_mlflow_report
from search.config import load_config
from search.reseed import RESEED_FILE, new_seeds, run_reseeds
from search.searcher import load_study
from search.tuner import STUDY_FILE
from spaces import load_space
from trainables.presets import build_dataset

pytestmark = pytest.mark.slow

OBJECTIVES = ["val_macro_f1:max", "val_worst_recall:max", "val_ece:min", "train_time_s:min"]
TEST_METRICS = ["test_macro_f1", "test_worst_recall", "test_ece"]


@pytest.fixture(scope="module")
def search(ray_local, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from search.driver import run

    tmp = tmp_path_factory.mktemp("reseed")
    cfg = load_config(
        [
            "space=elf",
            f"output_dir={tmp / 'out'}",
            "search.num_samples=4",
            "train.max_epochs=2",
            "scheduler.grace_period=1",
            "scheduler.reduction_factor=2",
            "report.reseeds=2",
            "verbose=0",
            f"mlflow.tracking_uri={sqlite_store(tmp)}",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
        ]
    )
    outcome = run(cfg, load_space(cfg.space))
    assert outcome.report_dir is not None
    return {"cfg": cfg, "out": outcome.output_dir, "report": outcome.report_dir, "tmp": tmp}


def reseed_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / RESEED_FILE).read_text().splitlines()]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_two_reseeds_per_front_trial_with_test_metrics(search: dict[str, Any]) -> None:
    out = search["out"]
    front = json.loads((search["report"] / "summary.json").read_text())["front"]
    assert front
    starts = {
        e["trial_id"]: e["params"]
        for e in read_record(out / "record.jsonl")
        if e["event"] == "start"
    }
    rows = reseed_rows(out)
    assert sorted(r["config"] for r in rows) == sorted(front * 2)
    for tid in front:
        seeds = sorted(r["seed"] for r in rows if r["config"] == tid)
        original = starts[tid].get("seed", 0)
        assert len(set(seeds)) == 2 and original not in seeds
        assert seeds == sorted(new_seeds(original, 2))
    for r in rows:
        assert "error" not in r and r["epochs"] == 2  # full budget, no early stopping
        assert "trial_id" not in r  # `config` is the label: the original trial id
        for m in TEST_METRICS:
            assert 0.0 <= r[m] <= 1.0
    # re-trainings are not search trials: 4 trials in the record and the study, nothing more
    assert len(starts) == 4
    assert len(load_study(out / STUDY_FILE, search["cfg"].name).trials) == 4


def test_summary_mean_std_and_front_of_means_against_numpy(search: dict[str, Any]) -> None:
    rows = reseed_rows(search["out"])
    table = {r["config"]: r for r in read_csv(search["report"] / "reseed.csv")}
    assert set(table) == {r["config"] for r in rows}
    metrics = [o.split(":")[0] for o in OBJECTIVES] + TEST_METRICS
    means = {}
    for config, summary in table.items():
        values = {m: np.array([r[m] for r in rows if r["config"] == config]) for m in metrics}
        assert int(summary["n_seeds"]) == 2 and int(summary["n_failed"]) == 0
        for m in metrics:
            assert float(summary[f"{m}_mean"]) == pytest.approx(np.mean(values[m]), abs=1e-12)
            assert float(summary[f"{m}_std"]) == pytest.approx(np.std(values[m], ddof=1), abs=1e-12)
        means[config] = np.array([np.mean(values[m]) for m in metrics[:4]]) * [-1, -1, 1, 1]
    for config, point in means.items():  # brute-force non-dominance on the (minimised) means
        dominated = any(
            np.all(other <= point) and np.any(other < point)
            for c, other in means.items()
            if c != config
        )
        assert table[config]["nondominated"] == str(not dominated)
    md = (search["report"] / "pareto.md").read_text()
    assert "## Seed robustness" in md and "test_macro_f1" in md and " ± " in md


def test_resume_reruns_only_missing_reseeds(search: dict[str, Any]) -> None:
    cfg, out = search["cfg"], search["out"]
    before = (out / RESEED_FILE).read_text()
    data = build_dataset(cfg.data["preset"], {k: v for k, v in cfg.data.items() if k != "preset"})
    run_reseeds(cfg, out, data)
    assert (out / RESEED_FILE).read_text() == before  # everything was there: nothing re-run
    lines = before.splitlines()
    (out / RESEED_FILE).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # cut by a kill
    run_reseeds(cfg, out, data)
    after = reseed_rows(out)
    assert len(after) == len(lines)
    redone, original = after[-1], json.loads(lines[-1])
    assert (redone["config"], redone["seed"]) == (original["config"], original["seed"])
    for m in ["val_macro_f1", "val_ece", "test_macro_f1", "test_ece"]:  # same seed, same numbers
        assert redone[m] == original[m]


def test_report_from_mlflow_equals_report_from_folder(search: dict[str, Any]) -> None:
    cfg, tmp = search["cfg"], search["tmp"]
    uri = cfg.mlflow.tracking_uri
    run_id = json.loads((search["out"] / "mlflow_mirror.json").read_text())["parent_run_id"]
    from_mlflow = write_mlflow_report(uri, run_id, None, tmp / "from-mlflow")
    assert main(["--mlflow-uri", uri, "--experiment", "elf", "--out", str(tmp / "cli")]) == 0
    folder_rows = read_csv(search["report"] / "trials.csv")
    for other in (from_mlflow, tmp / "cli"):
        rows = read_csv(other / "trials.csv")
        assert [r["trial_id"] for r in rows] == [r["trial_id"] for r in folder_rows]
        for a, b in zip(rows, folder_rows, strict=True):
            for key in ("state", "epochs", "pareto_rank", "on_front", "baseline", "status"):
                assert a[key] == b[key], (a["trial_id"], key)
            for o in OBJECTIVES:
                m = o.split(":")[0]
                assert float(a[m]) == pytest.approx(float(b[m]), abs=1e-9, nan_ok=True)
        assert (other / "reseed.csv").read_text() == (search["report"] / "reseed.csv").read_text()


def test_child_runs_carry_pareto_rank_and_front(search: dict[str, Any]) -> None:
    """Each candidate trial's MLflow run is tagged with its rank and front membership as in the
    report; trials off the candidate list (stopped early) carry no rank."""
    from mlflow import MlflowClient

    summary = json.loads((search["report"] / "summary.json").read_text())
    client = MlflowClient(search["cfg"].mlflow.tracking_uri)
    parent = json.loads((search["out"] / "mlflow_mirror.json").read_text())["parent_run_id"]
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}'")
    tags = {r.data.tags["ray.trial_id"]: r.data.tags for r in runs}
    assert summary["ranks"] and set(summary["ranks"]) <= set(tags)
    for trial_id, t in tags.items():
        rank = summary["ranks"].get(trial_id)
        assert t.get("pareto_rank") == (None if rank is None else str(rank)), trial_id
        on_front = str(trial_id in summary["front"]).lower()
        assert t.get("pareto_front") == (None if rank is None else on_front), trial_id
