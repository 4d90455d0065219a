"""Shared fixtures: a small synthetic dataset, and one real local Ray per test module."""

from __future__ import annotations

import pytest
import torch
from helpers import SMALL

from search.cluster import keep_local
from trainables.data.synthetic import SyntheticSpec, make_synthetic

keep_local("")  # before any test imports Ray: every local Ray here on 127.0.0.1, as the CLI's
torch.set_num_threads(1)  # as in a Ray trial with 1 CPU; 2 threads thrash on a loaded 2-core box


@pytest.fixture(scope="session")
def small_data():
    """A small synthetic dataset (fast to train on; same every time)."""
    return make_synthetic(SyntheticSpec(**SMALL))


def start_local_ray(ray, **resources) -> None:
    """A fresh local Ray (never another cluster on this machine), servers on 127.0.0.1 only."""
    ray.init(address="local", include_dashboard=False, log_to_driver=False, **resources)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray per test module: 2 CPUs, no dashboard, bound to 127.0.0.1."""
    ray = pytest.importorskip("ray")
    start_local_ray(ray, num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _trial_keys():
    """Plug-ins register their keys and loss= kinds in the process-wide registries; each test
    starts without them."""
    from trainables.losses.kinds import LOSS_KINDS, unregister_loss_kind
    from trainables.params import PARAMS

    saved, kinds = dict(PARAMS), set(LOSS_KINDS)
    yield
    for name in set(LOSS_KINDS) - kinds:
        unregister_loss_kind(name)
    PARAMS.clear()
    PARAMS.update(saved)
