"""write_report and `python -m reports` on hand-built search output folders.

`write_run` is the fixture generator: it writes record.jsonl, config.yaml and space.yaml the way
the search driver does. STANDARD_TRIALS is a small run whose front, baseline and exclusions are
known by hand (see the table in its comment).
"""

from __future__ import annotations

import csv
import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score

from reports import analyse, load_run, write_report
from reports.__main__ import main
from reports.importance import param_importances
from reports.rows import searched_keys

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ["val_macro_f1:max", "val_worst_recall:max", "val_ece:min", "train_time_s:min"]
SPACE = {
    "params": {
        "loss.kind": {"choice": ["ce", "focal"]},
        "loss.gamma": {"uniform": [0.5, 5.0], "when": {"loss.kind": "focal"}},
        "elf.strategy": {"choice": ["none", "aco", "rso"]},
        "cw.method": {"choice": ["none", "balanced"]},
        "train.balanced_sampling": {"choice": [False, True]},
        "train.lr": {"loguniform": [1e-4, 1e-2]},
        "train.max_epochs": 3,
    },
}
KEYS = list(SPACE["params"])[:-1]  # the searched keys, in file order


def epochs(f1: float, wr: float, ece: float, per_epoch: float, n: int = 3) -> list[dict]:
    """n epochs whose best val_macro_f1 is at epoch n-2 (or 0) with the given values there.

    Other epochs have worse f1 and different recall/ECE, so a wrong epoch choice shows; train
    time grows by `per_epoch` each epoch (total = per_epoch · n).
    """
    best = max(n - 2, 0)
    return [
        {
            "val_macro_f1": f1 - 0.1 * (e != best),
            "val_worst_recall": wr - 0.2 * (e != best),
            "val_ece": ece + 0.05 * (e != best),
            "val_loss": 1.0 / (e + 1),
            "train_time_s": per_epoch * (e + 1),
        }
        for e in range(n)
    ]


def trial(
    tid: str,
    params: dict,
    rows: list[dict],
    state: str | None = "completed",
    reason: str | None = None,
) -> dict[str, Any]:
    return {"id": tid, "params": params, "epochs": rows, "state": state, "reason": reason}


def plain(**extra: Any) -> dict[str, Any]:
    """Plain-CE params (the baseline recipe) updated with `extra`."""
    base = {
        "loss.kind": "ce",
        "elf.strategy": "none",
        "cw.method": "none",
        "train.balanced_sampling": False,
        "train.lr": 1e-3,
    }
    return base | extra


# id  | params            | state         | counted f1, recall, ece  | time | expected
# t10 | plain CE          | completed     | 0.60 0.35 0.08           | 30   | front, baseline
# t2  | focal γ2, aco     | completed     | 0.70 0.50 0.06           | 36   | front
# t3  | ce, rso           | completed     | 0.65 0.55 0.07           | 33   | front
# t4  | focal γ1          | completed     | 0.62 0.40 0.09           | 39   | rank 1 (under t2)
# t5  | cw balanced       | completed     | 0.70 0.50 0.06           | 36   | front (= t2)
# t6  | focal γ3, aco     | stopped_early | 0.90 0.90 0.01 (1 epoch) | 5    | listed, off front
# t7  | ce, aco           | failed        | -                        | -    | excluded
# t8  | focal γ4, rso     | completed     | ece NaN                  | 36   | excluded
# t9  | balanced sampling | completed     | 2 of 3 epochs            | 20   | excluded
# t1  | plain CE (later)  | completed     | 0.55 0.30 0.10           | 30   | rank 1, no baseline
STANDARD_TRIALS = [
    trial("t10", plain(), epochs(0.60, 0.35, 0.08, 10)),
    trial(
        "t2",
        plain(**{"loss.kind": "focal", "loss.gamma": 2.0, "elf.strategy": "aco"}),
        epochs(0.70, 0.50, 0.06, 12),
    ),
    trial("t3", plain(**{"elf.strategy": "rso", "train.lr": 3e-3}), epochs(0.65, 0.55, 0.07, 11)),
    trial(
        "t4",
        plain(**{"loss.kind": "focal", "loss.gamma": 1.0, "train.lr": 2e-4}),
        epochs(0.62, 0.40, 0.09, 13),
    ),
    trial("t5", plain(**{"cw.method": "balanced"}), epochs(0.70, 0.50, 0.06, 12)),
    trial(
        "t6",
        plain(**{"loss.kind": "focal", "loss.gamma": 3.0, "elf.strategy": "aco"}),
        epochs(0.90, 0.90, 0.01, 5, n=1),
        state="stopped_early",
    ),
    trial(
        "t7",
        plain(**{"elf.strategy": "aco"}),
        epochs(0.5, 0.3, 0.1, 10, n=1),
        state="failed",
        reason="NonFiniteError: loss is nan at epoch 1",
    ),
    trial(
        "t8",
        plain(**{"loss.kind": "focal", "loss.gamma": 4.0, "elf.strategy": "rso"}),
        [r | {"val_ece": math.nan} for r in epochs(0.8, 0.6, 0.05, 12)],
    ),
    trial("t9", plain(**{"train.balanced_sampling": True}), epochs(0.66, 0.45, 0.05, 10, n=2)),
    trial("t1", plain(), epochs(0.55, 0.30, 0.10, 10)),
]


def write_run(
    folder: Path,
    trials: list[dict],
    *,
    max_epochs: int = 3,
    objectives: list[str] | None = None,
    space: dict | None = None,
    extra_lines: list[str] = (),
) -> Path:
    """Write a search output folder: record.jsonl (events in trial order), config.yaml, space.yaml.

    `extra_lines` are appended verbatim (e.g. a repeated event or a truncated last line).
    """
    folder.mkdir(parents=True, exist_ok=True)
    events: list[dict] = []
    for t in trials:
        events.append({"event": "start", "trial_id": t["id"], "params": t["params"]})
        events += [
            {"event": "result", "trial_id": t["id"], "epoch": e, "metrics": m}
            for e, m in enumerate(t["epochs"])
        ]
        if t["state"]:
            events.append(
                {
                    "event": "end",
                    "trial_id": t["id"],
                    "state": t["state"],
                    "epochs": len(t["epochs"]),
                    "reason": t["reason"],
                }
            )
    lines = [json.dumps(e) for e in events] + list(extra_lines)
    (folder / "record.jsonl").write_text("\n".join(lines) + ("" if extra_lines else "\n"))
    config = {
        "space": "elf",
        "train": {"max_epochs": max_epochs},
        "search": {"metric": "val_macro_f1", "mode": "max"},
        "report": {"objectives": objectives or OBJECTIVES},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "space.yaml").write_text(yaml.safe_dump(space or SPACE, sort_keys=False))
    return folder


def standard_run(folder: Path) -> Path:
    """STANDARD_TRIALS with a repeated result line and a truncated last line."""
    repeat = json.dumps(
        {
            "event": "result",
            "trial_id": "t2",
            "epoch": 1,
            "metrics": STANDARD_TRIALS[1]["epochs"][1],
        }
    )
    return write_run(
        folder, STANDARD_TRIALS, extra_lines=[repeat, '{"event": "result", "trial_id": "t3", "epo']
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(standard_run(tmp_path_factory.mktemp("run")))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_write_report_writes_every_file(report: Path) -> None:
    names = {p.name for p in report.iterdir()}
    pairs = [  # the primary objective against each other one
        "val_macro_f1_vs_val_worst_recall",
        "val_macro_f1_vs_val_ece",
        "val_macro_f1_vs_train_time_s",
    ]
    assert {"pareto.html", "pareto.md", "trials.csv", "summary.json"} <= names
    assert {n for n in names if n.endswith(".png")} == {f"front_{p}.png" for p in pairs}
    for pair in pairs:
        png = (report / f"front_{pair}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    page = (report / "pareto.html").read_text()
    assert "<script src=" not in page and "<link " not in page  # nothing fetched: no CDN
    assert page.count("plotly.js v") >= 1 and len(page) > 1_000_000  # plotly.js inlined


def test_trials_csv_columns_and_values(report: Path) -> None:
    rows = read_csv(report / "trials.csv")
    objective_cols = [o.split(":")[0] for o in OBJECTIVES]
    head = ["trial_id", "state", "epochs", *KEYS, *objective_cols, "pareto_rank", "on_front"]
    assert list(rows[0])[: len(head)] == head
    by_id = {r["trial_id"]: r for r in rows}
    assert [r["trial_id"] for r in rows] == [
        "t1",
        "t2",
        "t3",
        "t4",
        "t5",
        "t6",
        "t7",
        "t8",
        "t9",
        "t10",
    ]
    t10 = by_id["t10"]  # counted epoch 1: f1 0.60, recall 0.35; time is the total, 30
    assert float(t10["val_macro_f1"]) == pytest.approx(0.60)
    assert float(t10["val_worst_recall"]) == pytest.approx(0.35)
    assert float(t10["val_ece"]) == pytest.approx(0.08)
    assert float(t10["train_time_s"]) == pytest.approx(30.0)
    assert t10["loss.kind"] == "ce" and t10["loss.gamma"] == ""
    assert by_id["t2"]["loss.gamma"] == "2.0"
    on_front = {tid for tid, r in by_id.items() if r["on_front"] == "True"}
    assert on_front == {"t2", "t3", "t5", "t10"}
    assert {tid: r["pareto_rank"] for tid, r in by_id.items()} == {
        "t1": "1",
        "t2": "0",
        "t3": "0",
        "t4": "1",
        "t5": "0",
        "t6": "",
        "t7": "",
        "t8": "",
        "t9": "",
        "t10": "0",
    }
    assert (by_id["t6"]["state"], by_id["t6"]["epochs"]) == ("stopped_early", "1")
    assert by_id["t7"]["state"] == "failed" and by_id["t9"]["epochs"] == "2"


def test_pareto_md_has_table_and_key_figures(report: Path) -> None:
    md = (report / "pareto.md").read_text()
    assert "## Pareto table" in md
    head = "| row | trial_id | marks | val_macro_f1 | val_worst_recall | val_ece | train_time_s"
    assert head in md
    assert "| baseline | t10 | best train_time_s, baseline | 0.6 | 0.35 | 0.08 | 30 |" in md
    # t2 − t10 = (+0.10, +0.15, −0.02, +6); t2 ties t5 on f1 and ECE: the lower trial id wins
    t2 = (
        "| front | t2 | best val_macro_f1, best val_ece | 0.7 | 0.5 | 0.06 | 36 "
        "| 0.1 | 0.15 | -0.02 | 6 |"
    )
    assert t2 in md
    for line in [
        "Reference point: val_macro_f1 = 0.535, val_worst_recall = 0.275, "
        "val_ece = 0.104, train_time_s = 39.9",
        "Hypervolume:",
        "Knee:",
        "failed: NonFiniteError: loss is nan at epoch 1",
        "completed 2 of 3 epochs",
        "non-finite or missing val_ece",
        "stopped early after 1 epoch(s)",
        "skipped unreadable line(s) [47]",
    ]:
        assert line in md


def test_summary_figures(report: Path) -> None:
    s = json.loads((report / "summary.json").read_text())
    assert s["front"] == ["t2", "t3", "t5", "t10"]
    assert s["ranks"] == {"t1": 1, "t2": 0, "t3": 0, "t4": 1, "t5": 0, "t10": 0}
    # worst candidate value moved out by 10% of the candidates' range
    assert s["reference_point"] == pytest.approx(
        {"val_macro_f1": 0.535, "val_worst_recall": 0.275, "val_ece": 0.104, "train_time_s": 39.9}
    )
    # t1 ties t10 on time but is dominated: the best is taken among front trials
    assert s["best"] == {
        "val_macro_f1": "t2",
        "val_worst_recall": "t3",
        "val_ece": "t2",
        "train_time_s": "t10",
    }
    assert s["baseline"]["trial_id"] == "t10"
    assert s["deltas"]["t3"] == pytest.approx(
        {"val_macro_f1": 0.05, "val_worst_recall": 0.20, "val_ece": -0.01, "train_time_s": 3.0}
    )
    assert s["stopped_early"] == ["t6"] and set(s["excluded"]) == {"t7", "t8", "t9"}
    assert s["knee"] in s["front"]


def test_two_objectives_hypervolume_by_hand(tmp_path: Path) -> None:
    folder = standard_run(tmp_path / "run")
    report = write_report(folder, "val_macro_f1:max,val_ece:min")
    s = json.loads((report / "summary.json").read_text())
    # t2 = t5 = (0.70, 0.06) dominate every other candidate; ref = (0.535, 0.104)
    assert s["front"] == ["t2", "t5"]
    assert s["hypervolume"] == pytest.approx((0.70 - 0.535) * (0.104 - 0.06))
    assert s["hypervolume_share"] == pytest.approx(1.0)  # one front point: it is the ideal
    assert s["knee"] == "t2"  # duplicates tie: the lower trial id
    assert (report / "front_val_macro_f1_vs_val_ece.png").is_file()


def test_given_reference_point(tmp_path: Path) -> None:
    folder = standard_run(tmp_path / "run")
    report = write_report(
        folder, ["val_macro_f1:max", "val_ece:min"], reference={"val_macro_f1": 0.5, "val_ece": 0.2}
    )
    s = json.loads((report / "summary.json").read_text())
    assert s["reference_point"] == {"val_macro_f1": 0.5, "val_ece": 0.2}
    assert s["hypervolume"] == pytest.approx(0.2 * 0.14)


def test_reference_point_from_the_search_config(tmp_path: Path) -> None:
    """report.reference in config.yaml (a search's `report.reference.<metric>=` override) is the
    point the report written after the search measures from; a metric it omits gets the rule."""
    folder = standard_run(tmp_path / "run")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["report"] = {"objectives": ["val_macro_f1:max", "val_ece:min"]}
    config["report"]["reference"] = {"val_macro_f1": 0.5, "val_ece": 0.2}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    s = json.loads((write_report(folder) / "summary.json").read_text())
    assert s["reference_point"] == {"val_macro_f1": 0.5, "val_ece": 0.2}
    assert s["hypervolume"] == pytest.approx(0.2 * 0.14)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reports", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_regenerates_report(tmp_path: Path) -> None:
    folder = standard_run(tmp_path / "run")
    done = run_cli(str(folder), "--objectives", "val_macro_f1:max,train_time_s:min")
    assert done.returncode == 0, done.stderr
    s = json.loads((folder / "report" / "summary.json").read_text())
    assert s["objectives"] == ["val_macro_f1:max", "train_time_s:min"]
    # ECE is no objective now, so t8 (ECE NaN) counts: (0.80, 36) dominates t2 = t5 = (0.70, 36);
    # t1 ties t10 on time (30) with a worse f1
    assert s["front"] == ["t3", "t8", "t10"]


def test_cli_bad_objective_is_one_line_exit_2(tmp_path: Path) -> None:
    done = run_cli(str(standard_run(tmp_path / "run")), "--objectives", "val_f1:max")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'val_f1'" in lines[0] and "val_macro_f1" in lines[0], done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--objectives", "val_macro_f1:up"], "metric:max or metric:min"),
        (["--reference", "val_ece"], "metric=number"),
        (["--epoch", "middle"], "invalid choice"),
        (["--objectives", "val_macro_f1:max", "--reference", "val_ece=0.1"], "not objectives"),
    ],
)
def test_cli_errors_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], needle: str
) -> None:
    folder = standard_run(tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        sys.exit(main([str(folder), *args]))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and needle in err[0], err


def test_cli_missing_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "record.jsonl" in err[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "either an output folder or --mlflow-uri"),
        (["run", "--mlflow-uri", "sqlite:///m.db"], "either an output folder or --mlflow-uri"),
        (["--mlflow-uri", "sqlite:///m.db"], "exactly one of --run-id and --experiment"),
        (["--mlflow-uri", "x", "--run-id", "r", "--experiment", "e"], "exactly one of"),
        (["run", "--out", "elsewhere"], "go with --mlflow-uri"),
    ],
)
def test_cli_mlflow_mode_usage_errors(
    capsys: pytest.CaptureFixture, args: list[str], needle: str
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and needle in err[0], err


def test_cli_mlflow_unknown_experiment_or_run_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["--mlflow-uri", uri, "--experiment", "elf"]) == 2  # no store yet: not created
    assert not (tmp_path / "mlflow.db").exists()
    MlflowClient(uri).search_experiments()  # an empty store
    capsys.readouterr()
    assert main(["--mlflow-uri", uri, "--experiment", "nope"]) == 2
    assert main(["--mlflow-uri", uri, "--run-id", "0123abcd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "--experiment 'nope': no such MLflow experiment" in err[0]
    assert "--run-id 0123abcd: no such MLflow run" in err[1]


def test_cli_mlflow_server_down_is_one_line_exit_2_fast(capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    assert main(["--mlflow-uri", uri, "--experiment", "elf"]) == 2
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and uri in err[0] and "not reachable" in err[0], err


def test_importance_within_branch(tmp_path: Path) -> None:
    """f1 rises with lr everywhere and, among focal trials, falls with γ: γ is judged in-branch."""
    rng = np.random.default_rng(0)
    trials = []
    for i in range(40):
        focal = i % 2 == 1
        lr = float(10 ** rng.uniform(-4, -2))
        gamma = float(rng.uniform(0.5, 5.0))
        f1 = 0.5 + 0.1 * (np.log10(lr) + 4) - (0.05 * gamma if focal else 0.0)
        params = {
            "loss.kind": "focal" if focal else "ce",
            "train.lr": lr,
            "elf.strategy": str(rng.choice(["none", "aco", "rso"])),
        }
        if focal:
            params["loss.gamma"] = gamma
        trials.append(trial(f"t{i}", params, epochs(f1, 0.5, 0.05, 10)))
    space = {
        "params": {
            k: SPACE["params"][k] for k in ["loss.kind", "loss.gamma", "elf.strategy", "train.lr"]
        }
    }
    run = load_run(write_run(tmp_path / "run", trials, space=space))
    analysis = analyse(run, ["val_macro_f1:max"])
    found = {i.branch: i for i in param_importances(analysis, run.space, searched_keys(run))}
    assert set(found) == {"", "loss.kind=focal"}
    overall, focal = found[""], found["loss.kind=focal"]
    assert "loss.gamma" not in overall.values and overall.n_trials == 40
    assert max(overall.values, key=overall.values.get) == "train.lr"
    assert focal.n_trials == 20 and "loss.gamma" in focal.values
    assert sum(focal.values.values()) == pytest.approx(1.0)
    assert focal.values["loss.gamma"] > focal.values["elf.strategy"]


def test_importance_skipped_with_note_below_four_trials(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", STANDARD_TRIALS[:3]))
    analysis = analyse(run)
    imps = param_importances(analysis, run.space, searched_keys(run))
    assert imps and all(not i.values and "need 4" in i.note for i in imps)


def test_confirmation_runs_in_the_record_make_the_answer(tmp_path: Path) -> None:
    """Hand-written confirmation runs: a candidate right on every test row beats a baseline that
    is wrong on a third of them; the answer opens pareto.md and is in summary.json."""
    labels = [0, 1, 2] * 10
    baseline = [(y + 1) % 3 if i % 3 == 0 else y for i, y in enumerate(labels)]
    runs = []
    for source, role, preds in (("t1", "baseline", baseline), ("t2", "candidate", labels)):
        f1 = f1_score(labels, preds, average="macro")
        for seed in (1, 2, 3, 4):  # the fewest seeds at which a sequence can exclude 0 (α 0.05)
            rid = f"confirm_{source}_s{seed}"
            params = {"seed": seed, "elf.strategy": "none" if role == "baseline" else "rso"}
            start = {"stage": "confirmation", "source": source, "role": role}
            runs += [
                {"event": "start", "trial_id": rid, "params": params} | start,
                {"event": "result", "trial_id": rid, "epoch": 2, "predictions": preds}
                | {"metrics": {"test_macro_f1": f1, "test_worst_recall": 0.5, "test_ece": 0.1}},
                {"event": "end", "trial_id": rid, "state": "completed", "epochs": 3},
            ]
    folder = write_run(tmp_path / "run", STANDARD_TRIALS, extra_lines=[json.dumps(e) for e in runs])
    (folder / "record.jsonl").write_text((folder / "record.jsonl").read_text() + "\n")
    (folder / "data.json").write_text(
        json.dumps({"classes": ["a", "b", "c"], "train_counts": [5, 3, 9], "test_labels": labels})
    )
    out = write_report(folder)
    figures = json.loads((out / "summary.json").read_text())["confirmation"]
    assert figures["baseline"] == "t1" and figures["metric"] == "test_macro_f1"
    (cand,) = [c for c in figures["configs"] if c["config"] == "t2"]
    assert cand["test"]["test_macro_f1"]["mean"] == 1.0
    delta = cand["vs_baseline"]["test_macro_f1"]
    want = 1.0 - f1_score(labels, baseline, average="macro")
    assert (
        delta["delta"] == pytest.approx(want) and delta["low"] > 0 and delta["verdict"] == "better"
    )
    assert figures["answer"].startswith(
        "better than plain CE on test_macro_f1: elf.strategy=rso (trial t2), 1.000"
    )
    assert (out / "pareto.md").read_text().splitlines()[2].endswith(figures["answer"])
    assert len(analyse(load_run(folder)).rows) == len(STANDARD_TRIALS)  # not search trials


def test_importance_groups_follow_nested_branches(tmp_path: Path) -> None:
    space = {
        "params": {
            "elf.strategy": {"choice": ["none", "aco"]},
            "elf.normalize": {"choice": ["none", "mean"], "when": {"elf.strategy": "aco"}},
            "elf.clip_max": {
                "choice": [None, 5.0],
                "when": {"elf.strategy": "aco", "elf.normalize": "none"},
            },
            "train.lr": {"loguniform": [1e-4, 1e-2]},
        }
    }
    trials = []
    for i in range(12):
        params = {"elf.strategy": ["none", "aco", "aco"][i % 3], "train.lr": 1e-4 * (i + 1)}
        if params["elf.strategy"] == "aco":
            params["elf.normalize"] = ["none", "mean"][i % 2]
            if params["elf.normalize"] == "none":
                params["elf.clip_max"] = [None, 5.0][i % 4 // 2]
        trials.append(trial(f"t{i}", params, epochs(0.5 + i / 100, 0.4, 0.1, 10)))
    run = load_run(write_run(tmp_path / "run", trials, space=space))
    analysis = analyse(run, ["val_macro_f1:max"])
    imps = {i.branch: i for i in param_importances(analysis, run.space, searched_keys(run))}
    assert {b: (i.n_trials, sorted(i.values)) for b, i in imps.items()} == {
        "": (12, ["elf.strategy", "train.lr"]),
        "elf.strategy=aco": (8, ["elf.normalize", "train.lr"]),
        "elf.strategy=aco & elf.normalize=none": (4, ["elf.clip_max", "train.lr"]),
    }


def test_a_constant_objective_is_flagged_as_carrying_no_information(tmp_path: Path) -> None:
    """Worst-class recall 0 in every trial (a class too small to recall) ranks nothing."""
    trials = [
        trial(f"t{i}", plain(**{"train.lr": lr}), epochs(f1, 0.0, ece, 1.0 + i))
        for i, (lr, f1, ece) in enumerate([(1e-3, 0.5, 0.2), (2e-3, 0.6, 0.1), (3e-3, 0.7, 0.3)])
    ]
    for t in trials:  # the recall is 0 at every epoch, not only at the counted one
        for row in t["epochs"]:
            row["val_worst_recall"] = 0.0
    report = write_report(write_run(tmp_path / "run", trials))
    s = json.loads((report / "summary.json").read_text())
    assert s["constant_objectives"] == {"val_worst_recall": 0.0}
    assert (
        "val_worst_recall is 0 for every trial: it carries no information"
        in (report / "pareto.md").read_text()
    )
    assert (
        json.loads((write_report(standard_run(tmp_path / "std")) / "summary.json").read_text())[
            "constant_objectives"
        ]
        == {}
    )
