"""Shared fixtures: a small synthetic dataset, and one real local Ray per test module."""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL

from trainables.synthetic import SyntheticSpec, make_synthetic

torch.set_num_threads(1)  # as in a Ray trial with 1 CPU; 2 threads thrash on a loaded 2-core box


@pytest.fixture(scope="session")
def small_data():
    """A small synthetic dataset (fast to train on; same every time)."""
    return make_synthetic(SyntheticSpec(**SMALL))


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray per test module: 2 CPUs, no dashboard, bound to 127.0.0.1."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
