"""The command line: --help, dry runs, and every error path (one line, exit 2, no Ray start)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from search.run import main
from spaces import load_space


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.run", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_spaces_presets_and_keys(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in (
        "elf",
        "focal",
        "full",
        "baseline",
        "synthetic",
        "nova",
        "search.num_samples",
        "resources.gpu_per_trial",
        "mlflow.tracking_uri",
        "resume",
        "dry_run",
    ):
        assert word in out
    # every data.* option of every preset, with its type and default
    assert re.search(r"data\.path +a string, required", out)
    assert re.search(r"data\.label +a string or a list of strings, required", out)
    assert re.search(r"data\.n_train +an integer, default 6000", out)
    assert re.search(r"data\.rare_classes +one of merge, drop, default 'merge'", out)
    assert re.search(r"data\.fold_labels +true or false, default False", out)
    assert "[defaults: noise_max=0.0]" in out  # synthetic-clean's own default
    for option in ("data.text ", "data.ownership ", "data.noise_decay ", "data.missing "):
        assert option in out


def test_dry_run_prints_config_and_space_without_ray(capsys):
    assert main(["space=elf", "dry_run=true", "search.num_samples=5"]) == 0
    out = capsys.readouterr().out
    assert "num_samples: 5" in out and "elf.strategy" in out
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["spce=elf"], "unknown key 'spce' (did you mean: space"),
        (["search.num_sample=4"], "did you mean: search.num_samples"),
        (["search.num_samples=four"], "search.num_samples"),
        (["space=elff"], "elff"),
        (["scheduler=hyperband"], "scheduler: expected one of ['asha', 'fifo', 'moasha']"),
        (
            ["search.algorithm=bayes"],
            "search.algorithm: expected one of ['optuna', 'random', 'nsga2']",
        ),
        (["search.metric=val_f1"], "search.metric: 'val_f1' is not a metric trials report"),
        (["data=parquet"], "parquet"),
        (["noequals"], "expected key=value"),
        (["resources.gpu_per_trial=-1"], "resources.gpu_per_trial"),
        (["resume=/nonexistent/folder"], "not an output folder of this tool"),
        (["data=table", "data.path=/nonexistent.csv", "data.label=y"], "/nonexistent.csv"),
        (
            ["report.reseeds=2"],
            "report.reseeds was replaced by confirm.min_seeds and confirm.max_seeds",
        ),
        (["confirm.max_seeds=-1"], "confirm.max_seeds: expected a value >= 0, got -1"),
        (["confirm.alpha=1.5"], "confirm.alpha: expected a value in (0, 1), got 1.5"),
    ],
)
def test_errors_are_one_line_exit_2(args, expected, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


def test_error_from_a_fresh_process_exits_2():
    p = cli("space=nonexistent_space")
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "nonexistent_space" in p.stderr


def test_best_trials_follow_the_mode_among_completed_trials(tmp_path):
    from record import read_trials
    from search.outputs import best_trials

    ece = {"a": [0.30, 0.10], "b": [0.20, 0.15], "c": [0.05]}  # c stopped early: not ranked
    events = [{"event": "start", "trial_id": t, "params": {"loss.kind": "ce"}} for t in ece]
    events += [
        {"event": "result", "trial_id": t, "epoch": e, "metrics": {"val_ece": v}}
        for t, values in ece.items()
        for e, v in enumerate(values)
    ]
    events += [
        {"event": "end", "trial_id": t, "state": s, "epochs": 2}
        for t, s in (("a", "completed"), ("b", "completed"), ("c", "stopped_early"))
    ]
    (tmp_path / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    space = load_space("elf")
    trials, _ = read_trials(tmp_path / "record.jsonl")
    low = best_trials(trials, space, "val_ece", "min")
    assert [(b["trial_id"], b["value"]) for b in low] == [("a", 0.10), ("b", 0.15)]
    high = best_trials(trials, space, "val_ece", "max")
    assert [(b["trial_id"], b["value"]) for b in high] == [("a", 0.30), ("b", 0.20)]


def test_resume_applies_what_may_change_and_refuses_the_rest(tmp_path, capsys):
    from search.outputs import prepare_output
    from search.run import resolve

    cfg, space = resolve([f"output_dir={tmp_path / 'out'}", "train.max_epochs=4"], {})
    out = prepare_output(cfg, space)
    resumed, _ = resolve([f"resume={out}", "verbose=0", "confirm.max_seeds=50"], {})
    assert (resumed.verbose, resumed.train.max_epochs, resumed.resume) == (0, 4, str(out))
    assert resumed.confirm.max_seeds == 50
    same, _ = resolve([f"resume={out}", "train.max_epochs=4"], {})  # as saved: nothing changes
    assert same.train.max_epochs == 4
    assert main([f"resume={out}", "train.max_epochs=6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "train.max_epochs cannot change on resume (saved 4, given 6); only verbose, "
        "mlflow.tracking_uri, dry_run, preflight, confirm.min_seeds, confirm.max_seeds, "
        "confirm.delta, confirm.top_k, confirm.front, confirm.families, confirm.versus, "
        "confirm.alpha, confirm.bootstrap can, or start a new search"
    )


def test_summary_links_the_experiments_runs_table(tmp_path):
    from search.outputs import Outcome
    from search.run import summary

    local = Outcome(tmp_path, {"completed": 1}, [], "sqlite:///m.db", experiment_id="7")
    text = summary(local)
    assert "open:   mlflow ui --backend-store-uri sqlite:///m.db --host 127.0.0.1" in text
    assert (
        "runs:   http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning" in text
    )
    served = summary(Outcome(tmp_path, {}, [], "http://127.0.0.1:5111/", experiment_id="3"))
    assert "mlflow ui" not in served
    assert (
        "runs:   http://127.0.0.1:5111/#/experiments/3/runs?workflowType=machine_learning" in served
    )
