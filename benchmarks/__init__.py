"""Micro-benchmarks, run with `python -m benchmarks [PART ...] [--quick] [--json PATH]`.

Each part is a module with `run(quick: bool) -> dict[str, float | int | bool | str]`. To add one,
write the module and add a line to PARTS; modules are imported only when their part runs.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

Figures = dict[str, Any]

PARTS: dict[str, str] = {
    "loss": "benchmarks.loss",  # full training loss vs plain cross-entropy
    "harness": "benchmarks.harness",  # harness efficiency vs plain Ray Tune defaults
    "logging": "benchmarks.logging_overhead",  # MLflow on vs off
    "search": "benchmarks.search_efficiency",  # ASHA + TPE vs FIFO + random
    "front": "benchmarks.front_search",  # front hypervolume: MOTPE + MOASHA vs ASHA + TPE vs FIFO
    "data": "benchmarks.data_path",  # synthetic build, 1M-row table load
    "gpu": "benchmarks.gpu",  # trials/hour at gpu_per_trial 1 … 0.125 (CUDA only)
    "verdict": "benchmarks.verdict",  # the confirmation's coverage, error rates, power and cost
}


def load(name: str) -> Callable[[bool], Figures]:
    """The `run` function of part `name`; unknown names list the registry."""
    if name not in PARTS:
        raise ValueError(f"unknown benchmark part {name!r}: expected one of {list(PARTS)}")
    return importlib.import_module(PARTS[name]).run


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, OS, Python, torch and Ray."""
    import ray
    import torch

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "ray": ray.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def target_rows(name: str, figures: Figures) -> list[tuple[str, str, Any, str, Any]]:
    """(part, what, measured, target, met) for part `name`, from its module's SUMMARY; absent
    figures (a skipped or quick run) are None."""
    summary = getattr(importlib.import_module(PARTS[name]), "SUMMARY", [])
    return [
        (name, what, figures.get(value), target, figures.get(met))
        for what, value, target, met in summary
    ]
