"""The data preset registry: `register(name, Preset(...))` adds one, `build_dataset(preset, options)`
turns `data.*` config keys into a Dataset, `describe_presets()` is their --help text.

Options are the keys under `data.` (a leading "data." is accepted and stripped; a "preset" key is
ignored): SyntheticSpec fields for the synthetic presets, TableSpec fields for the table presets.
Values are validated against the field types (`options.coerce`: pydantic, lax mode: "3" → 3, lists
→ tuples); unknown presets and options name the closest keys.
"""

from __future__ import annotations

import textwrap
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from trainables.data.dataset import Dataset
from trainables.data.presets.options import coerce, describe_type
from trainables.errors import UserInputError
from trainables.params import closest

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # the folder of pyproject.toml


@dataclass(frozen=True)
class Preset:
    """A named recipe: a base spec whose fields the options override, and the builder."""

    doc: str
    base: Any  # a SyntheticSpec or TableSpec, or None when required fields come from options
    spec_type: type
    build: Callable[[Any], Dataset]
    required: tuple[str, ...] = ()
    shipped: str | None = None  # the preset's own data file, relative to PROJECT_ROOT

    def options(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.spec_type))


PRESETS: dict[str, Preset] = {}  # filled by register(), in import order (--help lists them so)


def register(name: str, preset: Preset) -> Preset:
    """Add `preset` to the registry under `name` (the value of `data=`); a name is taken once."""
    if name in PRESETS:
        raise ValueError(f"data preset {name!r} is registered twice")
    PRESETS[name] = preset
    return preset


def build_dataset(preset: str, options: Mapping[str, Any] | None = None) -> Dataset:
    """The Dataset of `preset` with its spec fields overridden by `options` (the data.* keys)."""
    if preset not in PRESETS:
        raise UserInputError(
            f"data.preset: unknown preset {preset!r}{closest(preset, tuple(PRESETS))}; "
            f"expected one of {list(PRESETS)}"
        )
    recipe = PRESETS[preset]
    given = _strip(options or {})
    spec = _spec(recipe, given)
    _check_shipped_file(preset, recipe, given)
    data = recipe.build(spec)
    data.meta["preset"] = preset
    return data


def _check_shipped_file(preset: str, recipe: Preset, given: Mapping[str, Any]) -> None:
    """A preset's own data file (not data.path) that is not where the preset expects it: one line
    saying where that is and how to read the file from elsewhere."""
    path = getattr(recipe.base, "path", None)
    if path and "path" not in given and not Path(path).is_file():
        raise UserInputError(
            f"data={preset}: its file is expected at {path} ({recipe.shipped or path} from the "
            f"project folder {PROJECT_ROOT}); pass data.path=<the file> to read it from elsewhere"
        )


def _strip(options: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in options.items():
        name = key.removeprefix("data.")
        if name != "preset":
            out[name] = value
    return out


def _spec(recipe: Preset, options: dict[str, Any]) -> Any:
    names = recipe.options()
    hints = typing.get_type_hints(recipe.spec_type)
    for name in options:
        if name not in names:
            raise UserInputError(
                f"data.{name}: unknown option{closest(name, names)}; expected one of {list(names)}"
            )
    missing = [n for n in recipe.required if n not in options]
    if missing:
        raise UserInputError(f"data: the preset needs {', '.join('data.' + n for n in missing)}")
    values = {name: coerce(f"data.{name}", value, hints[name]) for name, value in options.items()}
    if recipe.base is None:
        return recipe.spec_type(**values)
    return replace(recipe.base, **values)


def describe_presets() -> str:
    """For --help: each preset with what it is, then the data.* options of its spec type (type in
    words and default; a later preset of the same type lists only the defaults it changes)."""
    by_type: dict[type, list[str]] = {}
    for name, recipe in PRESETS.items():
        by_type.setdefault(recipe.spec_type, []).append(name)
    lines = []
    for spec_type, names in by_type.items():
        first = _defaults(PRESETS[names[0]])
        for name in names:
            changed = {k: v for k, v in _defaults(PRESETS[name]).items() if v != first[k]}
            note = ", ".join(f"{k}={_short(v)}" for k, v in changed.items())
            line = f"{name}: {PRESETS[name].doc}" + (f" [defaults: {note}]" if note else "")
            lines += textwrap.wrap(line, 96, subsequent_indent="    ", break_on_hyphens=False)
        hints = typing.get_type_hints(spec_type)
        width = max(len(f.name) for f in fields(spec_type)) + len("data.")
        for key, value in first.items():
            default = "required" if value is REQUIRED else f"default {_short(value)}"
            lines.append(f"    {'data.' + key:<{width}}  {describe_type(hints[key])}, {default}")
    return "\n".join(lines)


REQUIRED = object()  # marks a spec field without a default in `_defaults`


def _defaults(recipe: Preset) -> dict[str, Any]:
    """Each option of `recipe` with the value it takes when not given (REQUIRED if none)."""
    out = {}
    for f in fields(recipe.spec_type):
        if recipe.base is not None:
            out[f.name] = getattr(recipe.base, f.name)
        elif f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = REQUIRED
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else "(see README)"
