"""The data path: `python -m benchmarks data`.

1. Synthetic data: seconds to build the default preset, against one warm trial on it (12 epochs,
   one thread): the share of a trial the build costs; and seconds per million rows built.
2. A table of `ROWS` rows (label, a ~10-word text, 13 numeric features, 2 ownership columns) written
   as CSV, then loaded and encoded by `trainables.data.table.load_table` in a fresh subprocess, side by
   side with a subprocess that imports the same modules and only reads the file with
   `pyarrow.csv.read_csv` (the floor). Each child reports its own seconds and peak RSS (VmHWM in
   /proc/self/status: the whole process, Python and torch included; not ru_maxrss, which Linux
   carries over from the forking parent).
   Targets for 1,000,000 rows: load < 30 s, peak RSS < 4 GiB. Medians over repeats.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks import Figures

TARGET_S = 30.0
TARGET_RSS_GIB = 4.0
# The targets table (benchmarks.target_rows): (what, measured figure, target, met figure).
SUMMARY = [
    (
        "1M-row table: load s, peak GiB",
        "load_s",
        f"< {TARGET_S:g} s, < {TARGET_RSS_GIB:g} GiB",
        "target_met",
    )
]
FEATURES = tuple(f"f{i}" for i in range(13))
OWNERSHIP = {
    "commit_share": {"signal": "aco", "granularity": "package", "norm": "none"},
    "review_count": {"signal": "rso", "granularity": "repository", "norm": "log_max"},
}
CLASS_PRIOR = (0.55, 0.2, 0.12, 0.08, 0.05)
VOCAB = 5000  # distinct words in the generated texts
WORDS_PER_TEXT = (4, 16)  # uniform range of words per text
# (table rows, synthetic rows, repeats)
SIZES = {True: (50_000, 100_000, 1), False: (1_000_000, 1_000_000, 3)}

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import pyarrow.csv as pacsv
from trainables.data.table import TableSpec, load_table
def status_mib(key):
    line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
    return int(line.split()[1]) / 2**10
rss0 = status_mib("VmRSS")
t1 = time.perf_counter()
if sys.argv[1] == "load":
    spec = TableSpec(**json.loads(sys.argv[3]))
    data = load_table(spec)
    rows = len(data.train) + len(data.val) + len(data.test)
else:
    rows = pacsv.read_csv(sys.argv[2]).num_rows
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "s": t2 - t1, "rss_after_import_mib": rss0,
                  "peak_rss_mib": status_mib("VmHWM"), "rows": rows}))
"""


def write_table(path: Path, rows: int, seed: int = 0) -> Path:
    """A CSV of `rows` review-comment-like rows: label, message, f0..f12, ownership, some NaN."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:x}" for i in range(VOCAB)])
    label = rng.choice(len(CLASS_PRIOR), size=rows, p=CLASS_PRIOR)
    lengths = rng.integers(*WORDS_PER_TEXT, size=rows)
    words = vocab[rng.zipf(1.3, size=int(lengths.sum())) % VOCAB]
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    flat = words.tolist()
    text = [" ".join(flat[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    columns = {"comment_group": pa.array(label), "message": pa.array(text)}
    for i, name in enumerate(FEATURES):
        x = rng.normal(label * 0.3 * (i % 3), 1.0, size=rows)
        x[rng.random(rows) < 0.02] = np.nan
        columns[name] = pa.array(x)
    share = rng.beta(1.0, 5.0, size=rows)
    share[rng.random(rows) < 0.1] = np.nan
    columns["commit_share"] = pa.array(share)
    columns["review_count"] = pa.array(rng.poisson(20, size=rows).astype(float))
    pacsv.write_csv(pa.table(columns), path)
    return path


def _spec(path: Path) -> dict:
    return {
        "path": str(path),
        "label": "comment_group",
        "text": "message",
        "features": list(FEATURES),
        "ownership": OWNERSHIP,
    }


def _child(mode: str, path: Path) -> dict[str, float]:
    """Run the load (or plain read) in a fresh interpreter; its own timings and peak RSS."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path), json.dumps(_spec(path))],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _synthetic(rows: int) -> Figures:
    from benchmarks.harness import Workload, warm_trial_s
    from trainables.data.presets import build_dataset

    build_dataset("synthetic")  # warm-up
    t0 = time.perf_counter()
    build_dataset("synthetic")
    default_s = time.perf_counter() - t0
    trial_s = warm_trial_s(Workload(1, 12, 6000))
    t0 = time.perf_counter()
    build_dataset("synthetic", {"n_train": rows})
    large_s = time.perf_counter() - t0
    return {
        "synthetic_default_build_s": default_s,
        "synthetic_default_trial_s": trial_s,
        "synthetic_build_share_of_trial": default_s / trial_s,
        "synthetic_rows": rows,
        "synthetic_build_s": large_s,
        "synthetic_s_per_million_rows": large_s / rows * 1e6,
    }


def run(quick: bool) -> Figures:
    """Synthetic build and table load figures; see the module docstring."""
    table_rows, synthetic_rows, repeats = SIZES[quick]
    figures = _synthetic(synthetic_rows)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        path = Path(tmp) / "comments.csv"
        t0 = time.perf_counter()
        write_table(path, table_rows)
        figures |= {
            "table_rows": table_rows,
            "table_mib": path.stat().st_size / 2**20,
            "table_write_s": time.perf_counter() - t0,
        }
        loads, reads = [], []
        for r in range(repeats):
            pair = [("load", loads), ("read", reads)]
            for mode, into in pair if r % 2 == 0 else pair[::-1]:
                into.append(_child(mode, path))
    med = {
        side: {k: statistics.median(x[k] for x in runs) for k in runs[0]}
        for side, runs in (("load", loads), ("read", reads))
    }
    load, read = med["load"], med["read"]
    return figures | {
        "repeats": repeats,
        "load_s": load["s"],
        "read_s": read["s"],
        "load_vs_read": load["s"] / read["s"],
        "load_peak_rss_mib": load["peak_rss_mib"],
        "read_peak_rss_mib": read["peak_rss_mib"],
        "rss_after_import_mib": load["rss_after_import_mib"],
        "load_peak_vs_read_peak": load["peak_rss_mib"] / read["peak_rss_mib"],
        "load_rows": int(load["rows"]),
        "target_s": TARGET_S,
        "target_rss_gib": TARGET_RSS_GIB,
        "target_met": load["s"] < TARGET_S and load["peak_rss_mib"] / 2**10 < TARGET_RSS_GIB,
    }
