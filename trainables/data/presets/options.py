"""The `data.*` options' values: checked against a spec field's type hint by pydantic (lax mode:
"3" → 3, lists → tuples), and type hints in words for --help and for errors."""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from trainables.errors import UserInputError


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def coerce(key: str, value: Any, hint: Any) -> Any:
    """`value` validated as `hint` by pydantic (lists become tuples), or UserInputError naming `key`."""
    if isinstance(value, bool) and bool not in (hint, *typing.get_args(hint)):  # pydantic: True → 1
        raise UserInputError(f"{key}: expected {describe_type(hint)}, got {value!r}")
    try:
        return _adapter(hint).validate_python(value)
    except ValidationError as e:
        raise UserInputError(_problem(key, value, hint, e)) from None


def _problem(key: str, value: Any, hint: Any, error: ValidationError) -> str:
    """Pydantic's first error in one line: where in the value (`data.ownership.share`,
    `data.mixture[1]`), the expected type in words and the value found there."""
    if error.error_count() > 1:  # no member of a union fits: the whole value is at fault
        return f"{key}: expected {describe_type(hint)}, got {value!r}"
    first = error.errors()[0]
    loc, bad_key = first["loc"], first["loc"][-1:] == ("[key]",)
    if bad_key or first["type"] == "missing":  # a mapping's key, or a list too short
        loc = loc[: -2 if bad_key else -1]
    for step in loc:
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple:
            key, hint = f"{key}[{step}]", args[0] if args[-1] is Ellipsis else args[step]
        else:
            key, hint = f"{key}.{step}", args[1]
    if bad_key:
        key, hint = f"{key} key", typing.get_args(hint)[0]
    return f"{key}: expected {describe_type(hint)}, got {first['input']!r}"


def describe_type(hint: Any, plural: bool = False) -> str:
    """A type hint in words: `tuple[str, ...] | str` → "a list of strings or a string"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a, plural) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe_type(args[0], plural=True)}"
        return f"{'lists' if plural else 'a list'} of {len(args)} values"
    if origin in (Mapping, dict):
        return "mappings" if plural else "a mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    names = TYPE_NAMES.get(hint)
    if names is None:
        return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return names[plural]


TYPE_NAMES: dict[Any, tuple[str, str]] = {  # (singular, plural)
    bool: ("true or false", "true or false values"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    type(None): ("null", "nulls"),
}
