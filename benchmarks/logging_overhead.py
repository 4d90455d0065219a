"""Cost of MLflow tracking: `python -m benchmarks logging`.

The same search (the harness part's fixed workload: N identical trials of about 0.5 s, FIFO, the
most results per second of any trial length) with MLflow on (SQLite, as by default) and off, back to
back in each repeat with the order alternated. Figures are medians over repeats:

    overhead = wall_on / wall_off − 1          (target ≤ 2 %)
    driver_cpu_share = (driver CPU s on − off) / wall_on

The second is steadier on a loaded machine: it is the CPU MLflow's callback, writer thread, report
upload and Pareto tags take from the driver process, against the search's wall time.
"""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

from benchmarks import Figures
from benchmarks.harness import (
    Run,
    Workload,
    median,
    paired,
    ray_session,
    run_ours,
    size_for,
    sqlite_uri,
    warm_up,
)

TARGET = 0.02
# The targets table (benchmarks.target_rows): (what, measured figure, target, met figure).
SUMMARY = [("MLflow on vs off, extra wall time", "overhead", f"<= {TARGET:g}", "target_met")]
TRIAL_S = 0.5
# (trials, epochs, repeats)
SIZES = {True: (2, 2, 1), False: (32, 12, 3)}


def _cpu_s() -> float:
    """CPU seconds (user + system) this process, all its threads, has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(work: Workload, out: Path, uri: str | None) -> tuple[Run, float]:
    cpu0 = _cpu_s()
    result = run_ours(work, out, uri)
    return result, _cpu_s() - cpu0


def run(quick: bool) -> Figures:
    """MLflow on against off for the same search; see the module docstring."""
    trials, epochs, repeats = SIZES[quick]
    with tempfile.TemporaryDirectory(prefix="bench-logging-") as tmp, ray_session():
        root = Path(tmp)
        uri = sqlite_uri(root / "mlflow.db")
        if not quick:
            warm_up(root, uri)
        work = Workload(trials, epochs, size_for(TRIAL_S, epochs))
        rounds = paired(
            {
                "on": lambda r: _timed(work, root / f"on-{r}", uri),
                "off": lambda r: _timed(work, root / f"off-{r}", None),
            },
            repeats,
        )
    on = [row["on"] for row in rounds]
    off = [row["off"] for row in rounds]
    overhead = median([a[0].wall_s / b[0].wall_s - 1 for a, b in zip(on, off, strict=True)])
    share = median([(a[1] - b[1]) / a[0].wall_s for a, b in zip(on, off, strict=True)])
    return {
        "trials": trials,
        "epochs": epochs,
        "rows": work.rows,
        "repeats": repeats,
        "results_per_search": on[-1][0].epochs,
        "wall_on_s": median([a[0].wall_s for a in on]),
        "wall_off_s": median([b[0].wall_s for b in off]),
        "tail_on_s": median([a[0].tail_s for a in on]),
        "tail_off_s": median([b[0].tail_s for b in off]),
        "driver_cpu_on_s": median([a[1] for a in on]),
        "driver_cpu_off_s": median([b[1] for b in off]),
        "overhead": overhead,
        "driver_cpu_share": share,
        "target": TARGET,
        "target_met": overhead <= TARGET,
    }
