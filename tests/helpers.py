"""Constants and assertions shared by test modules (import as `from helpers import ...`)."""

import atexit
import ipaddress
import os
import shutil
import tempfile
from pathlib import Path

SMALL = {"n_train": 1500, "n_val": 600, "n_test": 300, "reviewers": 80}  # a fast synthetic dataset

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
CHROMIUM_ARGS = [  # headless, and no background traffic on a machine without network
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

_migrated: list[Path] = []  # the template store, made once per test process


def sqlite_store(folder: Path) -> str:
    """URI of a SQLite MLflow store at `folder`/mlflow.db: a copy of an empty store that MLflow
    created and migrated once per test process (a new file costs ~2 s of schema migrations)."""
    if not _migrated:
        from mlflow import MlflowClient

        root = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        MlflowClient(f"sqlite:///{root / 'mlflow.db'}").search_experiments()
        _migrated.append(root / "mlflow.db")
    path = Path(folder) / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_migrated[0], path)
    return f"sqlite:///{path}"


def read_record(path: Path) -> list[dict]:
    """The events of a record file, read directly (a cut last line skipped; no file, none)."""
    import json

    events = []
    for line in Path(path).read_text().splitlines() if Path(path).is_file() else []:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def _recorded(output_dir: Path) -> tuple[dict, dict, dict]:
    """record.jsonl read directly: ({trial: params}, {(trial, epoch): event}, {trial: end event}),
    asserting each start, result and end appears once."""
    from collections import Counter

    events = read_record(output_dir / "record.jsonl")  # a line a kill cut stays apart: skipped
    keys = Counter((e["event"], e["trial_id"], e.get("epoch")) for e in events)
    assert not [k for k, n in keys.items() if n > 1], "record.jsonl repeats events"
    starts = {e["trial_id"]: e["params"] for e in events if e["event"] == "start"}
    results = {(e["trial_id"], e["epoch"]): e for e in events if e["event"] == "result"}
    ends = {e["trial_id"]: e for e in events if e["event"] == "end"}
    assert {t for t, _ in results} | set(ends) <= set(starts), "a result or end without a start"
    return starts, results, ends


def _confirmation_runs(output_dir: Path) -> set[str]:
    """Trial ids of the record's confirmation runs (start events with stage "confirmation")."""
    events = read_record(Path(output_dir) / "record.jsonl")
    return {e["trial_id"] for e in events if e["event"] == "start" and e.get("stage")}


def _same_value(a: float, b: float) -> bool:
    import math

    return a == b or (math.isnan(a) and math.isnan(b))


def _assert_optuna(output_dir: Path, starts: dict, results: dict, ends: dict) -> None:
    import optuna
    import yaml
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    config = yaml.safe_load((output_dir / "config.yaml").read_text())
    metric, mode = config["search"]["metric"], config["search"]["mode"]
    storage = JournalStorage(JournalFileBackend(str(output_dir / "optuna.journal")))
    (name,) = optuna.get_all_study_names(storage)  # one study per output folder
    study = optuna.load_study(study_name=name, storage=storage)
    never_started = set(study.user_attrs.get("never_started", []))  # suggestions a kill cut
    trials = [t for t in study.trials if t.number not in never_started]
    for t in study.trials:
        if t.number in never_started:
            assert t.state == TrialState.FAIL and not t.intermediate_values, t.number
            assert t.user_attrs.get("ray_trial_id") not in starts, t.number
    ids = [t.user_attrs["ray_trial_id"] for t in trials if "ray_trial_id" in t.user_attrs]
    assert sorted(ids) == sorted(starts), "Optuna trials != recorded trials (once each)"
    assert all(t.state != TrialState.RUNNING for t in study.trials), "an Optuna trial left RUNNING"
    expected = {
        "completed": TrialState.COMPLETE,
        "stopped_early": TrialState.PRUNED,
        "failed": TrialState.FAIL,
        "abandoned": TrialState.FAIL,
    }
    names = study.metric_names if len(study.directions) > 1 else None  # a multi-objective study
    for trial in trials:
        tid = trial.user_attrs.get("ray_trial_id")
        if tid is None or tid not in ends:
            continue
        state = ends[tid]["state"]
        assert trial.state == expected[state], (tid, trial.state, state)
        epochs = sorted(e for t, e in results if t == tid)
        values = [results[tid, e]["metrics"][metric] for e in epochs]
        if names is not None:  # told at the best epoch by search.metric, no intermediates
            assert not trial.intermediate_values, tid
            if state == "completed":
                best = epochs[values.index(max(values) if mode == "max" else min(values))]
                row = results[tid, best]["metrics"]
                assert trial.values == [row[m] for m in names], (tid, trial.values)
            continue
        if state == "completed":
            best = max(values) if mode == "max" else min(values)
            assert trial.value == best, (tid, trial.value, best)
        reported = {e - 1: v for e, v in trial.intermediate_values.items()}  # step 1 = epoch 0
        assert reported.keys() == set(epochs), (tid, sorted(reported), epochs)
        for epoch, value in zip(epochs, values, strict=True):
            assert _same_value(reported[epoch], value), (tid, epoch)


def _assert_ray(output_dir: Path, results: dict, ends: dict) -> None:
    """Ray's experiment state: each recorded trial once but the abandoned (Ray replaced them),
    ERROR exactly where the record says failed, and the last recorded epoch as its last result."""
    import logging

    from ray.tune import ExperimentAnalysis

    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    trials = ExperimentAnalysis(str(output_dir / "tune")).trials
    ids = [t.trial_id for t in trials]
    live = [t for t, e in ends.items() if e["state"] != "abandoned"]
    assert sorted(ids) == sorted(live), ("Ray's trials != recorded trials", sorted(ids), ends)
    for trial in trials:
        state = ends[trial.trial_id]["state"]
        assert (trial.status == "ERROR") == (state == "failed"), (trial.trial_id, trial.status)
        last = max((e for t, e in results if t == trial.trial_id), default=None)
        if state != "failed":
            assert (trial.last_result or {}).get("epoch") == last, trial.trial_id


def _assert_mlflow(output_dir: Path, uri: str, starts: dict, results: dict, ends: dict) -> None:
    from collections import Counter

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    folder = str(output_dir.resolve())
    runs = client.search_runs(experiments, f"tags.`search.output_dir` = '{folder}'")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = client.search_runs(
        experiments, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=5000
    )
    ids = [r.data.tags.get("ray.trial_id") for r in children]
    assert sorted(ids) == sorted(starts), "MLflow child runs != recorded trials (once each)"
    status = {"completed": "FINISHED", "stopped_early": "FINISHED", "failed": "FAILED"}
    for run in children:
        tid = run.data.tags["ray.trial_id"]
        assert run.info.status != "RUNNING", tid
        if tid in ends and ends[tid]["state"] in status:
            assert run.info.status == status[ends[tid]["state"]], (tid, run.info.status)
        mine = {e: results[t, e]["metrics"] for t, e in results if t == tid}
        for key in sorted({k for metrics in mine.values() for k in metrics}):
            history = client.get_metric_history(run.info.run_id, key)
            steps = Counter(m.step for m in history)
            logged = {e for e, metrics in mine.items() if key in metrics}
            assert set(steps) == logged and set(steps.values()) <= {1}, (tid, key, steps)
            for m in history:
                assert _same_value(m.value, mine[m.step][key]), (tid, key, m.step)


def assert_nothing_lost(output_dir: Path, tracking_uri: str | None = None) -> None:
    """Every result in record.jsonl is in each store exactly once and nothing extra is there: Ray's
    experiment state (once every trial ended), the Optuna journal (when the search used Optuna) and
    MLflow (when `tracking_uri`), each read directly, not through the product's readers."""
    output_dir = Path(output_dir)
    starts, results, ends = _recorded(output_dir)
    assert starts, f"{output_dir}: nothing recorded"
    searched = set(starts) - _confirmation_runs(output_dir)  # Ray and Optuna know these only

    def only(d: dict) -> dict:
        return {k: v for k, v in d.items() if (k[0] if isinstance(k, tuple) else k) in searched}

    if (output_dir / "tune").is_dir() and set(ends) >= searched:  # a search that finished
        _assert_ray(output_dir, only(results), only(ends))
    if (output_dir / "optuna.journal").is_file():
        _assert_optuna(output_dir, only(starts), only(results), only(ends))
    if tracking_uri is not None:
        _assert_mlflow(output_dir, tracking_uri, starts, results, ends)


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it (from /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    family, grew = {pid}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in family} - family
        family |= new
        grew = bool(new)
    return family


def listening(pids: set[int]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of the TCP sockets in LISTEN state that `pids` hold."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    out = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                hexaddr = cols[1].split(":")[0]
                words = [bytes.fromhex(hexaddr[i : i + 8])[::-1] for i in range(0, width, 8)]
                out.append(ipaddress.ip_address(b"".join(words)))
    return out


def loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def scipy_row_sd(columns: tuple, statistic) -> float:
    """The standard error of `statistic` over rows resampled together (paired) from `columns`:
    scipy.stats.bootstrap, the independent reference of the confirmation's row bootstrap."""
    from scipy import stats

    return stats.bootstrap(
        columns,
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=600,
        method="percentile",
        random_state=0,
    ).standard_error


def train_with(params, data, sink, state=None, objective=None) -> None:
    """The built-in trainable on CPU in this process: `sink(result, checkpoint | None)` per epoch;
    `state` (a checkpoint it passed) resumes after that checkpoint's epoch."""
    import torch

    from trainables.objective import DEFAULT_OBJECTIVE
    from trainables.trial.context import TrialContext
    from trainables.trial.loop import train

    objective = objective or DEFAULT_OBJECTIVE
    train(
        TrialContext(params, data, torch.device("cpu"), sink, objective=objective, restored=state)
    )


def two_tasks(data):
    """`data` (single-task) with a second, three-class task from its first two features:
    [x0 > 0] + [x1 > 0.5], so that both tasks can be learned from x."""
    from dataclasses import replace

    import torch

    first = "label"
    second = ("low", "mid", "high")

    def split(s):
        y2 = (s.x[:, 0] > 0).long() + (s.x[:, 1] > 0.5).long()
        return replace(s, y=torch.stack([s.y, y2], dim=1))

    tasks = {first: tuple(data.classes), "level": second}
    classes = tuple(f"{t}:{c}" for t, cs in tasks.items() for c in cs)
    parts = {k: split(getattr(data, k)) for k in ("train", "val", "test")}
    return replace(data, **parts, classes=classes, tasks=tasks)
