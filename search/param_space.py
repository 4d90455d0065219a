"""Compile a Space into a Ray Tune `param_space` for a space with a grid (BasicVariantGenerator).

Unconditional parameters become Tune domains (choice, uniform, loguniform, randint, grid_search) or
plain constants. A conditional parameter becomes `tune.sample_from`: its function reads the parents
from the config Tune passes it, raises Tune's RecursiveDependencyError while a parent is still a
domain (Tune resolves the others and calls it again), and yields None when its condition does not
hold. `spaces.canonical` drops those Nones (and any other inactive key) before a trial runs.

`sample_from` does not receive Tune's random_state, so a conditional value is drawn from numpy's
global generator: only the grid and the unconditional draws follow search.seed. Random search runs
through Optuna instead (search/searcher.py), which seeds every draw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.search.sample import Domain
from ray.tune.search.variant_generator import RecursiveDependencyError

from spaces.distributions import Choice, Constant, Grid, IntRange, LogUniform, Uniform
from spaces.space import Space


def _uniform(d: Uniform) -> Any:
    return tune.uniform(d.low, d.high) if d.step is None else tune.choice(d.grid_points())


def _int(d: IntRange) -> Any:
    if d.log:
        return tune.lograndint(d.low, d.high + 1)  # upper bound exclusive
    if d.step == 1:
        return tune.randint(d.low, d.high + 1)  # upper bound exclusive
    return tune.choice(list(range(d.low, d.high + 1, d.step)))  # same support as Optuna's step


TO_RAY: dict[type, Callable[[Any], Any]] = {
    Choice: lambda d: tune.choice(list(d.values)),
    Grid: lambda d: tune.grid_search(list(d.values)),
    Uniform: _uniform,
    LogUniform: lambda d: tune.loguniform(d.low, d.high),
    IntRange: _int,
    Constant: lambda d: d.value,
}


def _read(config: Mapping[str, Any], key: str) -> Any:
    """`config[key]` once Tune has resolved it; RecursiveDependencyError (Tune retries) before."""
    value = config[key]
    if isinstance(value, Domain) or (isinstance(value, dict) and "grid_search" in value):
        raise RecursiveDependencyError(f"{key} is not resolved yet")
    return value


@dataclass(frozen=True)
class _WhenActive:
    """sample_from body: draw `domain` when `key`'s condition holds in the spec, else None."""

    space: Space
    key: str
    domain: Any

    def __call__(self, spec: Mapping[str, Any]) -> Any:
        config = spec.get("config", spec)  # Tune passes its experiment spec
        values = {p: _read(config, p) for p in self.space.ancestors(self.key)}
        if not self.space.is_active(self.key, values):
            return None
        return self.domain.sample() if isinstance(self.domain, Domain) else self.domain


def to_param_space(space: Space) -> dict[str, Any]:
    """A flat Ray Tune param_space for `space`; inactive conditional parameters resolve to None."""
    out = {}
    for key, spec in space.params.items():
        domain = TO_RAY[type(spec.dist)](spec.dist)
        out[key] = tune.sample_from(_WhenActive(space, key, domain)) if spec.when else domain
    return out
