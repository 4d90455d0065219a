"""Searches sharing one MLflow store, experiment and output root do not mix their histories.

Two searches at once (separate processes, same name). Then three in sequence: `alpha` and `beta`,
then a second search named `alpha` in another folder (allowed: a search is its output folder; the
same name gets its own parent run, told apart by the `search.output_dir` tag). Then the first is
resumed without its run map (mlflow_mirror.json), so it must find its parent by name *and* folder,
not the newer same-named one. Optuna studies never share a store: each lives in its search's own
`optuna.journal`.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import SMALL, assert_nothing_lost, sqlite_store
from mlflow import MlflowClient

from mirrors import STATE_FILE
from search.config import load_config
from search.run import resolve
from spaces import load_space

pytestmark = pytest.mark.slow

TWO_TRIALS = """\
# Run: python -m search.run space=<this file> (test: searches sharing a store)
params:
  loss.kind: ce
  seed: {choice: [0, 1, 2, 3]}
points_to_evaluate:
  - {seed: 0}
  - {seed: 1}
"""
EXPERIMENT = "shared"


def search(root, store: str, folder: str, name: str):
    from search.driver import run

    (root / "space.yaml").write_text(TWO_TRIALS)
    cfg = load_config(
        [
            f"space={root / 'space.yaml'}",
            f"output_dir={root / folder}",
            f"name={name}",
            "scheduler=fifo",
            "search.num_samples=2",
            "train.max_epochs=2",
            f"mlflow.tracking_uri={store}",
            f"mlflow.experiment={EXPERIMENT}",
            "verbose=0",
            "confirm.max_seeds=0",  # the subprocess test above confirms, both searches at once
            *(f"data.{k}={v}" for k, v in SMALL.items()),
        ]
    )
    return run(cfg, load_space(cfg.space))


def parents(client: MlflowClient) -> dict[str, object]:
    """{output folder: parent run} of every search in the experiment (one each)."""
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = [r for r in client.search_runs([experiment]) if "mlflow.parentRunId" not in r.data.tags]
    folders = [r.data.tags["search.output_dir"] for r in runs]
    assert len(folders) == len(set(folders)), "one parent run per search"
    return dict(zip(folders, runs, strict=True))


def test_two_searches_at_once_on_one_store(tmp_path):
    """Two `python -m search.run` processes at the same time, same store, experiment and name
    (first in this module: each starts its own Ray, before the module's shared one exists)."""
    store = sqlite_store(tmp_path)
    (tmp_path / "space.yaml").write_text(TWO_TRIALS)
    args = [
        f"space={tmp_path / 'space.yaml'}",
        "name=alpha",
        "scheduler=fifo",
        "search.num_samples=2",
        "train.max_epochs=3",
        f"mlflow.tracking_uri={store}",
        f"mlflow.experiment={EXPERIMENT}",
        "verbose=0",
        *(f"data.{k}={v}" for k, v in SMALL.items()),
    ]
    folders = [tmp_path / "x", tmp_path / "y"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "search.run", *args, f"output_dir={folder}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for folder in folders
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-2000:]
    found = parents(MlflowClient(store))
    assert sorted(found) == sorted(str(f.resolve()) for f in folders)
    for folder in folders:
        assert_nothing_lost(folder, store)


def test_searches_on_one_store_keep_their_own_runs_and_studies(ray_local, tmp_path):
    store = sqlite_store(tmp_path)
    outcomes = [
        search(tmp_path, store, "a", "alpha"),
        search(tmp_path, store, "b", "beta"),
        search(tmp_path, store, "c", "alpha"),
    ]
    for outcome in outcomes:
        assert outcome.counts == {"completed": 2}
        assert_nothing_lost(outcome.output_dir, store)  # own children and study, nothing else
    client = MlflowClient(store)
    before = parents(client)
    assert sorted(r.data.tags["search.name"] for r in before.values()) == [
        "alpha",
        "alpha",
        "beta",
    ]

    first = outcomes[0].output_dir
    (first / STATE_FILE).unlink()
    cfg, space = resolve([f"resume={first}"], {})
    from search.driver import run

    resumed = run(cfg, space)
    assert resumed.counts == {"completed": 2}
    after = parents(client)
    assert {k: r.info.run_id for k, r in after.items()} == {
        k: r.info.run_id for k, r in before.items()
    }
    assert all(r.info.status == "FINISHED" for r in after.values())
    for outcome in outcomes:
        assert_nothing_lost(outcome.output_dir, store)
