"""GPU sharing: `python -m benchmarks gpu` (skipped, with a message, where CUDA is absent).

The harness part's fixed workload (N identical trials, FIFO) through `search.driver.run` with
resources.gpu_per_trial = 1, 0.5, 0.25, 0.125 on one GPU: trials per hour at each fraction, the
GPU's mean utilisation and the peak memory it held, and the peak memory of one trial's process
(per-process `used_memory` from nvidia-smi, CUDA context included; with actor reuse a process runs
its slot's trials one after another). Each repeat runs every fraction, the order rotated; medians.

    sharing_gain = trials/hour at 0.125 / trials/hour at 1      (target ≥ 4)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks import Figures
from benchmarks.harness import Workload, median, paired, ray_session, run_ours, warm_up

FRACTIONS = (1.0, 0.5, 0.25, 0.125)
TARGET = 4.0
# The targets table (benchmarks.target_rows): (what, measured figure, target, met figure).
SUMMARY = [
    ("trials/h at 0.125 GPU / at 1", "sharing_gain_0.125_vs_1", f">= {TARGET:g}", "target_met")
]
POLL_S = 0.5
# (fractions, trials, epochs, training rows, repeats)
SIZES = {True: ((1.0, 0.5), 4, 2, 6000, 1), False: (FRACTIONS, 16, 6, 30000, 3)}
SMI_GPU = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
SMI_APPS = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]


@dataclass
class GpuSampler:
    """Polls nvidia-smi every `interval_s` in a thread: GPU 0's utilisation and memory, and the
    memory of each process on it."""

    interval_s: float = POLL_S
    util: list[float] = field(default_factory=list)
    memory_mib: list[float] = field(default_factory=list)
    process_mib: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        gpu = _smi(SMI_GPU)
        if gpu:
            util, memory = gpu[0][:2]
            if _number(util):  # "[N/A]" on MIG slices
                self.util.append(float(util))
            self.memory_mib.append(float(memory))
        for pid, used in (row[:2] for row in _smi(SMI_APPS)):
            self.process_mib[pid] = max(self.process_mib.get(pid, 0.0), float(used))

    def summary(self) -> dict[str, float | None]:
        return {
            "util_mean": sum(self.util) / len(self.util) if self.util else None,
            "memory_peak_mib": max(self.memory_mib, default=None),
            "process_peak_mib": max(self.process_mib.values(), default=None),
        }


def _smi(query: list[str]) -> list[list[str]]:
    """Rows of an nvidia-smi CSV query (GPU 0 first); [] when it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, *query], capture_output=True, text=True, timeout=10, check=True)
    except (subprocess.SubprocessError, OSError):
        return []
    rows = [[x.strip() for x in line.split(",")] for line in out.stdout.splitlines()]
    return [r for r in rows if len(r) >= 2 and _number(r[1])]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cpu_per_trial(fraction: float, cpus: float, gpus: float) -> float:
    """CPUs per trial so that CPUs never limit the gpus / fraction concurrent trials (≤ 1)."""
    return round(min(1.0, cpus * fraction / gpus), 2)


def _one(work: Workload, fraction: float, cpus: float, gpus: float, out: Path) -> dict[str, Any]:
    overrides = (
        f"resources.gpu_per_trial={fraction}",
        f"resources.cpu_per_trial={cpu_per_trial(fraction, cpus, gpus)}",
    )
    with GpuSampler() as sampler:
        result = run_ours(work, out, None, overrides)
    return {"trials_per_hour": result.trials / result.wall_s * 3600, **sampler.summary()}


def run(quick: bool) -> Figures:
    """Trials per hour, utilisation and memory per GPU fraction; skipped without CUDA."""
    if not torch.cuda.is_available():
        message = "skipped: no CUDA device (torch.cuda.is_available() is False)"
        print(f"gpu: {message}")
        return {"skipped": message}
    fractions, trials, epochs, rows, repeats = SIZES[quick]
    work = Workload(trials, epochs, rows)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp, ray_session() as info:
        root = Path(tmp)
        if not quick:
            warm_up(root, None)
        cpus, gpus = info["slots"], info["gpus"]
        sides = {
            f"{f:g}": (lambda r, f=f: _one(work, f, cpus, gpus, root / f"gpu-{f:g}-{r}"))
            for f in fractions
        }
        rounds = paired(sides, repeats)
    figures: Figures = {
        "gpu": torch.cuda.get_device_name(0),
        "gpus": gpus,
        "cpus": cpus,
        "trials": trials,
        "epochs": epochs,
        "rows": rows,
        "repeats": repeats,
    }
    for name in sides:
        for key in ("trials_per_hour", "util_mean", "memory_peak_mib", "process_peak_mib"):
            values = [row[name][key] for row in rounds if row[name][key] is not None]
            figures[f"gpu{name}_{key}"] = median(values) if values else None
    low, high = f"{fractions[0]:g}", f"{fractions[-1]:g}"
    gain = median([row[high]["trials_per_hour"] / row[low]["trials_per_hour"] for row in rounds])
    figures[f"sharing_gain_{high}_vs_{low}"] = gain
    if fractions[-1] == FRACTIONS[-1] and fractions[0] == FRACTIONS[0]:
        figures["target"] = TARGET
        figures["target_met"] = gain >= TARGET
    return figures
