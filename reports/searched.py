"""The searched parameters of a space, as the report needs them: key, optuna distribution, branch.

The space file is read and validated by `spaces.load_space` (the one parser); constants are not
searched and are left out. A parameter with a `when` condition is in a branch; its importance is
computed within the branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from spaces import ParamSpec, Space, load_space
from spaces.distributions import Choice, Constant, IntRange, LogUniform, Uniform
from spaces.fit import for_tasks

Condition = tuple[tuple[str, tuple[Any, ...]], ...]  # ((key, allowed values), ...)


@dataclass(frozen=True)
class SpaceParam:
    """One searched parameter: its dotted key, its distribution and its branch condition."""

    key: str
    dist: Choice | Uniform | LogUniform | IntRange  # Grid is a Choice
    condition: Condition = ()

    @property
    def log(self) -> bool:
        """True when the parameter is drawn on a log scale (plots use log axes for it)."""
        return isinstance(self.dist, LogUniform) or getattr(self.dist, "log", False)

    @property
    def branch(self) -> str:
        """Readable branch label, e.g. "loss.kind=focal" ("" when unconditional)."""
        return " & ".join(f"{k}={'|'.join(map(str, v))}" for k, v in self.condition)

    def active(self, params: Mapping[str, Any]) -> bool:
        """True when `params` fall in this parameter's branch."""
        return all(params.get(k) in allowed for k, allowed in self.condition)

    def distribution(self) -> BaseDistribution:
        """The optuna distribution this parameter was sampled from."""
        d = self.dist
        if isinstance(d, Choice):
            return CategoricalDistribution([categorical_value(c) for c in d.values])
        if isinstance(d, IntRange):
            return IntDistribution(d.low, d.high, step=d.step, log=d.log)
        if isinstance(d, LogUniform):
            return FloatDistribution(d.low, d.high, log=True)
        return FloatDistribution(d.low, d.high, step=d.step)


def categorical_value(value: Any) -> Any:
    """A value optuna accepts as a categorical choice (None, bool, int, float, str)."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def searched(space: Space) -> list[SpaceParam]:
    """The non-constant parameters of `space`, in the space's (dependency) order."""
    return [_param(spec) for spec in space.params.values() if not isinstance(spec.dist, Constant)]


def read_space(path: Path, tasks: tuple[str, ...] = ()) -> list[SpaceParam]:
    """The searched parameters of the space file at `path` (a UserInputError when invalid), its
    loss.<task>.* keys once per task of the data (`tasks`)."""
    return searched(for_tasks(load_space(str(path)), tasks))


def _param(spec: ParamSpec) -> SpaceParam:
    return SpaceParam(spec.key, spec.dist, spec.when)  # type: ignore[arg-type]


def narrowed(params: list[SpaceParam], left: Mapping[str, list[Any]]) -> list[SpaceParam]:
    """`params` with the values the data left each collapsed key (data.json's values_left): a key
    left with one value or none was not searched and goes."""
    out = []
    for p in params:
        if p.key not in left:
            out.append(p)
            continue
        values = tuple(tuple(v) if isinstance(v, list) else v for v in left[p.key])
        if len(values) > 1:
            out.append(SpaceParam(p.key, Choice(values), p.condition))
    return out
