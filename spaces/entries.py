"""Values and distributions of one `params` entry, checked against the entry's trial Param.

Errors go through `At.fail` as `FILE[:LINE]: KEY: RULE`. Numeric strings are coerced for float
parameters (YAML 1.1 reads `1e-5` without a dot as a string) and `none` is read as null for
parameters that accept null; everything else must already have the right type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from spaces.distributions import (
    STEP_TOLERANCE,
    Choice,
    Constant,
    Distribution,
    Grid,
    IntRange,
    LogUniform,
    Uniform,
    fmt,
    is_finite_number,
)
from trainables.errors import UserInputError
from trainables.params import Param, closest

FLOAT_KINDS = ("float", "float_or_none")
NULLABLE_KINDS = ("float_or_none", "alpha")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class At:
    """Where an error is: the file as shown to the user, the dotted location and the line."""

    shown: str
    where: str
    line: int | None = None

    def fail(self, rule: str) -> NoReturn:
        loc = f"{self.shown}:{self.line}" if self.line else self.shown
        raise UserInputError(f"{loc}: {self.where}: {rule}")

    def sub(self, name: str, line: int | None = None) -> At:
        return At(self.shown, f"{self.where}.{name}", line or self.line)


# ---------------------------------------------------------------- values


def line_of(mapping: Any, key: Any) -> int | None:
    """The YAML line of `key` in `mapping` when the loader recorded it."""
    return getattr(mapping, "lines", {}).get(key)


def _coerce(param: Param, raw: Any) -> Any:
    """Numeric strings become floats for float parameters; 'none' becomes null where allowed."""
    if isinstance(raw, str) and param.kind in (*FLOAT_KINDS, *NULLABLE_KINDS):
        text = raw.strip()
        if _NUMBER.fullmatch(text):
            return float(text)
        if param.kind in NULLABLE_KINDS and text.lower() in ("none", "null"):
            return None
    return raw


def check_value(at: At, param: Param, raw: Any) -> Any:
    """`raw` coerced and checked against `param` (type, choices, bounds, finiteness)."""
    value = _coerce(param, raw)
    if isinstance(value, float) and not is_finite_number(value):
        at.fail(f"expected a finite number, got {fmt(value)}")
    try:
        return param.check(value)
    except ValueError as e:
        at.fail(str(e).removeprefix(f"{param.key}: ") + _string_hint(raw))


def _number(at: At, param: Param, raw: Any) -> float | int:
    value = _coerce(param, raw)
    if not is_finite_number(value):
        at.fail(f"expected a finite number, got {raw!r}{_string_hint(raw)}")
    return value


def _string_hint(raw: Any) -> str:
    if isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()):
        return " (YAML read it as a string; an integer parameter needs digits only, e.g. 100)"
    return ""


# ---------------------------------------------------------------- distributions


def _bounds(at: At, param: Param, name: str, arg: Any) -> tuple[Any, Any]:
    if not isinstance(arg, list) or len(arg) != 2:
        at.fail(f"{name} takes [low, high], got {arg!r}")
    low, high = (_number(at, param, v) for v in arg)
    if low >= high:
        at.fail(f"{name} needs low < high, got [{fmt(low)}, {fmt(high)}] (for one value write it)")
    return low, high


def _need_kind(at: At, param: Param, name: str, kinds: tuple[str, ...]) -> None:
    if param.kind not in kinds:
        at.fail(f"{name} applies to {' or '.join(kinds)} parameters; {param.key} is {param.kind}")


def _step(at: At, raw: Any, low: float, high: float) -> float:
    if not is_finite_number(raw) or raw <= 0:
        at.fail(f"step must be a number > 0, got {raw!r}")
    n = (high - low) / raw
    if abs(n - round(n)) > STEP_TOLERANCE * max(1.0, n):
        at.fail(f"high - low must be a multiple of step, got [{fmt(low)}, {fmt(high)}] step {raw}")
    return raw


def _uniform(at: At, param: Param, arg: Any, opts: dict[str, Any]) -> Uniform:
    _need_kind(at, param, "uniform", FLOAT_KINDS)
    low, high = _bounds(at, param, "uniform", arg)
    step = None
    if "step" in opts:
        step = _step(at.sub("step"), _coerce(param, opts["step"]), low, high)
    return Uniform(check_value(at, param, low), check_value(at, param, high), step)


def _loguniform(at: At, param: Param, arg: Any, opts: dict[str, Any]) -> LogUniform:
    _need_kind(at, param, "loguniform", FLOAT_KINDS)
    low, high = _bounds(at, param, "loguniform", arg)
    if low <= 0:
        at.fail(f"loguniform needs low > 0, got low={fmt(low)} (use uniform to include 0)")
    return LogUniform(check_value(at, param, low), check_value(at, param, high))


def _int(at: At, param: Param, arg: Any, opts: dict[str, Any]) -> IntRange:
    _need_kind(at, param, "int", ("int",))
    low, high = (check_value(at, param, v) for v in _bounds(at, param, "int", arg))
    step, log = opts.get("step", 1), opts.get("log", False)
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        at.sub("step").fail(f"step of an int distribution must be an integer >= 1, got {step!r}")
    if (high - low) % step:
        at.sub("step").fail(f"high - low must be a multiple of step, got [{low}, {high}], {step}")
    if not isinstance(log, bool):
        at.sub("log").fail(f"log must be true or false, got {log!r}")
    if log and (step != 1 or low < 1):
        at.sub("log").fail(f"log needs step 1 and low >= 1, got low={low} step={step}")
    return IntRange(low, high, step, log)


def _values(at: At, param: Param, name: str, arg: Any) -> tuple[Any, ...]:
    if not isinstance(arg, list) or not arg:
        at.fail(f"{name} needs a non-empty list of values, got {arg!r}")
    values = tuple(check_value(at, param, v) for v in arg)
    for i, v in enumerate(values):
        if v in values[:i]:
            at.fail(f"{name} lists {fmt(v)} twice (duplicates bias the draw)")
    return values


def _choice(at: At, param: Param, arg: Any, opts: dict[str, Any]) -> Choice:
    return Choice(_values(at, param, "choice", arg))


def _grid(at: At, param: Param, arg: Any, opts: dict[str, Any]) -> Grid:
    return Grid(_values(at, param, "grid", arg))


def _const(at: At, param: Param, arg: Any, opts: dict[str, Any]) -> Constant:
    return Constant(check_value(at, param, arg))


Parser = Callable[[At, Param, Any, dict[str, Any]], Distribution]
PARSERS: dict[str, Parser] = {
    "choice": _choice,
    "grid": _grid,
    "uniform": _uniform,
    "loguniform": _loguniform,
    "int": _int,
    "const": _const,
}
OPTIONS: dict[str, tuple[str, ...]] = {"uniform": ("step",), "int": ("step", "log")}
FIELDS = ("when", "description", "step", "log")


def parse_entry(at: At, param: Param, entry: Any) -> tuple[Distribution, Any, str]:
    """(distribution, raw condition, description) of one `params` entry."""
    if isinstance(entry, list):
        at.fail("a bare list is ambiguous: write {choice: [...]} or {grid: [...]}")
    if not isinstance(entry, dict):
        return Constant(check_value(at, param, entry)), None, ""
    names = [k for k in entry if k in PARSERS]
    unknown = [k for k in entry if k not in PARSERS and k not in FIELDS]
    if not names:
        got = f"unknown distribution {unknown[0]!r}" if unknown else "no distribution"
        at.fail(
            f"{got}{closest(str(unknown[0]), tuple(PARSERS)) if unknown else ''}; "
            f"expected one of {', '.join(PARSERS)}"
        )
    if len(names) > 1:
        at.fail(f"gives {len(names)} distributions ({', '.join(names)}); give exactly one")
    name = names[0]
    opts = OPTIONS.get(name, ())
    if unknown:
        at.sub(str(unknown[0]), line_of(entry, unknown[0])).fail(
            f"unknown field{closest(str(unknown[0]), (*PARSERS, *FIELDS))}; "
            f"expected {name} and optionally {', '.join(('when', 'description', *opts))}"
        )
    for opt in ("step", "log"):
        if opt in entry and opt not in opts:
            at.sub(opt).fail(f"{name} does not take {opt}")
    description = entry.get("description", "")
    if not isinstance(description, str):
        at.sub("description").fail(f"expected text, got {description!r}")
    given = {k: entry[k] for k in opts if k in entry}
    return PARSERS[name](at, param, entry[name], given), entry.get("when"), description
