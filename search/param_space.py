"""Compile a Space into a Ray Tune `param_space` for random or grid search (BasicVariantGenerator).

Unconditional parameters become Tune domains (choice, uniform, loguniform, randint, grid_search) or
plain constants. A conditional parameter becomes `tune.sample_from`: Tune resolves it after its
parents (it retries while a parent is unresolved) and it yields None when its condition does not
hold. `spaces.canonical` drops those Nones (and any other inactive key) before a trial runs.

Two Ray facts this relies on (ray 2.60, `tune/search/variant_generator.py`, `sample.py`): the
function receives the whole experiment spec wrapped in `_UnresolvedAccessGuard`, whose attribute
access raises RecursiveDependencyError while a value is still a domain; and `sample_from` does not
receive Tune's random_state, so a conditional value is drawn from numpy's global generator.
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


def _read(mapping: Mapping[str, Any], key: str) -> Any:
    """`mapping[key]` through Tune's access guard; RecursiveDependencyError while unresolved."""
    try:
        value = getattr(mapping, key)  # the guard checks resolution on attribute access
    except AttributeError:
        value = mapping[key]
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
        config = _read(spec, "config") if "config" in spec else spec
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
