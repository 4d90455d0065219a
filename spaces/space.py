"""A validated search space: parameters in dependency order, their conditions, points to try first.

`Space.define_by_run` is the Optuna define-by-run function the searcher calls per trial: it suggests
the active non-constant parameters and returns the active constants.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spaces.distributions import Constant, Distribution, Grid, fmt, fmt_list

if TYPE_CHECKING:
    import optuna

Condition = tuple[tuple[str, tuple[Any, ...]], ...]  # ((parent key, allowed values), ...): all hold


@dataclass(frozen=True)
class ParamSpec:
    """One searched trial key: its distribution and the condition under which it is active."""

    key: str
    dist: Distribution
    when: Condition = ()
    description: str = ""


@dataclass(frozen=True)
class Space:
    """A search space loaded from a YAML file; `params` lists parents before their children.

    `notes`: what loading changed in the file's space (the command line's pins, `spaces.pins`;
    one trial when nothing is left to search), one sentence each, said once when the search starts
    and listed by `describe`.
    """

    name: str
    path: Path
    description: str
    params: dict[str, ParamSpec]
    points_to_evaluate: tuple[dict[str, Any], ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def searched(self) -> tuple[str, ...]:
        """The parameters a trial draws (every one but the constants); () for one configuration."""
        return tuple(k for k, s in self.params.items() if not isinstance(s.dist, Constant))

    def is_active(self, key: str, values: Mapping[str, Any]) -> bool:
        """True when each condition of `key` holds in `values` and each parent is active itself."""
        return all(
            parent in values and values[parent] in allowed and self.is_active(parent, values)
            for parent, allowed in self.params[key].when
        )

    def ancestors(self, key: str) -> tuple[str, ...]:
        """The keys `key`'s activity depends on, transitively, parents before children."""
        seen: dict[str, None] = {}
        for parent, _ in self.params[key].when:
            seen |= dict.fromkeys(self.ancestors(parent))
            seen[parent] = None
        return tuple(seen)

    def define_by_run(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest the active parameters on `trial`, parents first; return the active constants.

        Grid parameters are suggested as categoricals. Inactive parameters are neither suggested
        nor returned, so the trial falls back to their defaults.
        """
        values: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for key, spec in self.params.items():
            if not self.is_active(key, values):
                continue
            if isinstance(spec.dist, Constant):
                values[key] = constants[key] = spec.dist.value
            else:
                values[key] = spec.dist.suggest(trial, key)
        return constants

    @property
    def grid_size(self) -> int | None:
        """The number of grid combinations (product of grid lengths); None without a grid."""
        sizes = [len(s.dist.values) for s in self.params.values() if isinstance(s.dist, Grid)]
        return math.prod(sizes) if sizes else None

    def points(self) -> list[dict[str, Any]]:
        """Fresh copies of points_to_evaluate (Ray's searchers pop from the list they are given)."""
        return [dict(p) for p in self.points_to_evaluate]

    def describe(self) -> str:
        """A readable listing: parameters with distribution and condition, grid size, points."""
        width = max((len(k) for k in self.params), default=0)
        lines = [f"space {self.name} ({self.path})"]
        if self.description:
            lines += textwrap.wrap(
                self.description,
                98,
                initial_indent="  ",
                subsequent_indent="  ",
            )
        lines.append("parameters:")
        for key, spec in self.params.items():
            when = f"  when {_fmt_condition(spec.when)}" if spec.when else ""
            lines.append(f"  {key:<{width}}  {spec.dist}{when}")
        if self.grid_size is not None:
            grid = [k for k, s in self.params.items() if isinstance(s.dist, Grid)]
            lines.append(f"grid: {self.grid_size} combinations of {', '.join(grid)}")
        if self.points_to_evaluate:
            lines.append("points_to_evaluate (tried first, in order):")
            for i, point in enumerate(self.points_to_evaluate, 1):
                lines.append(f"  {i}. " + ", ".join(f"{k}={fmt(v)}" for k, v in point.items()))
        for note in self.notes:
            lines += textwrap.wrap(note, 98, initial_indent="note: ", subsequent_indent="  ")
        return "\n".join(lines)


def _fmt_condition(when: Condition) -> str:
    return " and ".join(
        f"{k}={fmt(v[0])}" if len(v) == 1 else f"{k} in {fmt_list(v)}" for k, v in when
    )
