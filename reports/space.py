"""The searched parameters of a space file, with their distributions and branch conditions.

A key under `params:` is searched when its value is a mapping naming a distribution, either as
its only distribution key (`{uniform: [0.5, 5]}`, `{choice: [ce, focal]}`) or as
`{type: uniform, low: 0.5, high: 5}`; plain scalars are constants. Nested mappings without a
distribution are read as dotted prefixes. A condition (`when`/`if`/`condition`:
`{loss.kind: focal}`) puts the parameter in a branch; its importance is computed within the
branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from trainables.errors import UserInputError

CATEGORICAL = ("choice", "grid")
NUMERIC = ("uniform", "loguniform", "int")
DISTRIBUTIONS = CATEGORICAL + NUMERIC
CONDITION_KEYS = ("when", "if", "condition", "only_if")
TYPE_KEYS = ("type", "dist", "distribution")


@dataclass(frozen=True)
class SpaceParam:
    """One searched parameter: its dotted key, distribution kind and arguments, and its branch."""

    key: str
    dist: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    condition: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # ((key, allowed values), ...)

    @property
    def branch(self) -> str:
        """Readable branch label, e.g. "loss.kind=focal" ("" when unconditional)."""
        return " & ".join(f"{k}={'|'.join(map(str, v))}" for k, v in self.condition)

    def active(self, params: Mapping[str, Any]) -> bool:
        """True when `params` fall in this parameter's branch."""
        return all(params.get(k) in allowed for k, allowed in self.condition)

    def distribution(self) -> BaseDistribution:
        """The optuna distribution this parameter was sampled from."""
        if self.dist in CATEGORICAL:
            return CategoricalDistribution([categorical_value(c) for c in self.choices])
        if self.dist == "int":
            step = int(self.step or 1)
            return IntDistribution(int(self.low), int(self.high), step=step, log=self.log)
        if self.dist == "loguniform":
            return FloatDistribution(self.low, self.high, log=True)
        return FloatDistribution(self.low, self.high, step=self.step)


def categorical_value(value: Any) -> Any:
    """A value optuna accepts as a categorical choice (None, bool, int, float, str)."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def read_space(path: Path) -> list[SpaceParam]:
    """The searched parameters of the space file at `path`, in file order."""
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserInputError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    params = (doc or {}).get("params") if isinstance(doc, Mapping) else None
    if not isinstance(params, Mapping):
        raise UserInputError(f"{path}: expected a 'params:' mapping of dotted keys")
    return [_param(key, spec, path) for key, spec in _searched(params)]


def _searched(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Mapping]]:
    out: list[tuple[str, Mapping]] = []
    for key, spec in params.items():
        if not isinstance(spec, Mapping):
            continue  # a constant
        if _kind(spec) is not None:
            out.append((f"{prefix}{key}", spec))
        else:
            out += _searched(spec, f"{prefix}{key}.")
    return out


def _kind(spec: Mapping[str, Any]) -> str | None:
    for key in TYPE_KEYS:
        if spec.get(key) in DISTRIBUTIONS:
            return spec[key]
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    return kinds[0] if len(kinds) == 1 else None


def _param(key: str, spec: Mapping[str, Any], path: Path) -> SpaceParam:
    kind = _kind(spec)
    args = spec.get(kind, spec) if kind in spec else spec
    condition = _condition(next((spec[k] for k in CONDITION_KEYS if k in spec), None), key, path)
    if kind in CATEGORICAL:
        choices = args if isinstance(args, Sequence) and not isinstance(args, str) else None
        choices = choices if choices is not None else spec.get("values", spec.get("choices"))
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise UserInputError(f"{path}: params.{key}: {kind} needs a non-empty list of values")
        return SpaceParam(key, kind, choices=tuple(choices), condition=condition)
    low, high, step = _bounds(args)
    step = step if step is not None else spec.get("step")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise UserInputError(f"{path}: params.{key}: expected low <= high, got [{low}, {high}]")
    return SpaceParam(
        key,
        kind,
        low=low,
        high=high,
        step=None if step is None else float(step),
        log=bool(spec.get("log", False)),
        condition=condition,
    )


def _bounds(args: Any) -> tuple[float, float, float | None]:
    if isinstance(args, Sequence) and not isinstance(args, str) and len(args) in (2, 3):
        step = float(args[2]) if len(args) == 3 else None
        return float(args[0]), float(args[1]), step
    if isinstance(args, Mapping) and "low" in args and "high" in args:
        step = args.get("step", args.get("q"))
        return float(args["low"]), float(args["high"]), None if step is None else float(step)
    return math.nan, math.nan, None


def _condition(raw: Any, key: str, path: Path) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        name, sep, value = raw.replace("==", "=").partition("=")
        if not sep:
            raise UserInputError(f"{path}: params.{key}: condition {raw!r}: expected key=value")
        raw = {name.strip(): yaml.safe_load(value.strip())}
    if not isinstance(raw, Mapping):
        raise UserInputError(f"{path}: params.{key}: condition: expected a mapping key: value")
    return tuple(
        (str(k), tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else (v,))
        for k, v in raw.items()
    )
