"""The distributions a space file can give a parameter: plain data with an Optuna suggest.

Each type knows how to suggest itself on an Optuna trial (define-by-run), whether it contains a
value (for points_to_evaluate) and how to print itself. The Ray compilation lives in
`search/param_space.py` so that this package never imports Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

STEP_TOLERANCE = 1e-9  # relative slack when checking that a float lies on a step grid


def fmt(value: Any) -> str:
    """A value as YAML would spell it: null, true/false, 0.001, text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return fmt_list(value)
    return str(value)


def fmt_list(values: tuple[Any, ...] | list[Any]) -> str:
    return "[" + ", ".join(fmt(v) for v in values) + "]"


@dataclass(frozen=True)
class Choice:
    """One of `values`, drawn uniformly (categorical in Optuna)."""

    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """A categorical over the values; a list value (e.g. per-class α) is offered by its text,
        since Optuna's categoricals hold only None, bool, int, float and str."""
        if not any(isinstance(v, tuple) for v in self.values):
            return trial.suggest_categorical(name, list(self.values))
        labels = [fmt(v) if isinstance(v, tuple) else v for v in self.values]
        return self.values[labels.index(trial.suggest_categorical(name, labels))]

    def contains(self, value: Any) -> bool:
        return value in self.values

    @property
    def finite(self) -> tuple[Any, ...] | None:
        return self.values

    def __str__(self) -> str:
        return f"choice {fmt_list(self.values)}"


@dataclass(frozen=True)
class Grid(Choice):
    """Every one of `values` (Ray grid_search); a categorical in define-by-run."""

    def __str__(self) -> str:
        return f"grid {fmt_list(self.values)}"


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]; with `step`, uniform on low, low + step, …, high."""

    low: float
    high: float
    step: float | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step)

    def contains(self, value: Any) -> bool:
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return abs(k - round(k)) <= STEP_TOLERANCE * max(1.0, abs(k))

    def grid_points(self) -> list[float]:
        """low, low + step, …, high (only with a step)."""
        n = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(n + 1)]

    @property
    def finite(self) -> tuple[Any, ...] | None:
        return None

    def __str__(self) -> str:
        step = f" step {fmt(self.step)}" if self.step is not None else ""
        return f"uniform [{fmt(self.low)}, {fmt(self.high)}]{step}"


@dataclass(frozen=True)
class LogUniform:
    """log(x) uniform on [log low, log high], low > 0."""

    low: float
    high: float

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def contains(self, value: Any) -> bool:
        return self.low <= value <= self.high

    @property
    def finite(self) -> tuple[Any, ...] | None:
        return None

    def __str__(self) -> str:
        return f"loguniform [{fmt(self.low)}, {fmt(self.high)}]"


@dataclass(frozen=True)
class IntRange:
    """An integer in low, low + step, …, high (both ends included); `log` draws log-uniformly."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    @property
    def finite(self) -> tuple[Any, ...] | None:
        return None

    def __str__(self) -> str:
        extra = (f" step {self.step}" if self.step != 1 else "") + (" log" if self.log else "")
        return f"int [{self.low}, {self.high}]{extra}"


@dataclass(frozen=True)
class Constant:
    """A fixed value: never suggested, returned as a constant by define-by-run."""

    value: Any

    def contains(self, value: Any) -> bool:
        return value == self.value

    @property
    def finite(self) -> tuple[Any, ...] | None:
        return (self.value,)

    def __str__(self) -> str:
        return f"= {fmt(self.value)}"


Distribution = Choice | Grid | Uniform | LogUniform | IntRange | Constant


def is_finite_number(value: Any) -> bool:
    """True for an int or float (not a bool) that is not NaN or ±inf."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
