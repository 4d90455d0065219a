"""Ray Client (`cluster.address=ray://host:10001`): the whole driver runs on the cluster's head node.

Under Ray Client, Ray Tune moves its loop (searcher, scheduler, callbacks) into an actor on the head
while the client keeps the output folder, the Optuna journal and the MLflow parent run: two machines,
two filesystems. Running the driver itself in a task on the head keeps all of it on one machine, as
with `ray job submit`; the client ships this project's code (runtime_env py_modules) and waits for
the outcome. What runs there is the caller's: `search.driver.run_on_head` passes the driver to
`on_head`, so this package never imports the driver (no import circle).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
CLIENT_SCHEME = "ray://"
DISTRIBUTION = "loss-search"  # pyproject.toml's project name


def is_client(address: str) -> bool:
    """True for a Ray Client address (ray://host:port)."""
    return address.startswith(CLIENT_SCHEME)


def project_packages() -> tuple[str, ...]:
    """The top-level packages this project installs: pyproject.toml's package list as the
    installed distribution records it (top_level.txt), so a package added there ships too."""
    from importlib.metadata import PackageNotFoundError, distribution

    from trainables.errors import UserInputError

    try:
        listed = distribution(DISTRIBUTION).read_text("top_level.txt") or ""
    except PackageNotFoundError:
        listed = ""
    if not listed.split():
        raise UserInputError(
            f"Ray Client: the {DISTRIBUTION} package is not installed here, so its packages "
            "cannot be shipped to the head; run bash setup.sh (pip install -e .)"
        )
    return tuple(sorted(set(listed.split())))


def client_runtime_env() -> dict[str, Any]:
    """This checkout's packages, so the head runs the client's version of the code."""
    return {
        "py_modules": [
            str(Path(importlib.import_module(name).__file__).parent) for name in project_packages()
        ]
    }


def in_client_process() -> bool:
    """True in the process that joined through Ray Client (not in a task on the cluster)."""
    import ray

    return ray.util.client.ray.is_connected()


def on_head(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a task pinned to the head node (the client server's node); its result here.

    The task takes no CPU (the driver waits on trials) and is not retried: a lost head is a lost
    driver, continued with resume=. Ctrl-C here cancels the task (KeyboardInterrupt there).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = ray.get_runtime_context().get_node_id()  # under Ray Client: the client server's node
    task = ray.remote(
        num_cpus=0,
        max_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False),
    )(fn)
    ref = task.remote(*args)
    try:
        return ray.get(ref)
    except KeyboardInterrupt:
        ray.cancel(ref)
        raise
