"""Named data presets: `build_dataset(preset, options)` turns `data.*` config keys into a Dataset.

Options are the keys under `data.` (a leading "data." is accepted and stripped; a "preset" key is
ignored): SyntheticSpec fields for the synthetic presets, TableSpec fields for the table presets.
Values are validated against the field types by pydantic (lax mode: "3" → 3, lists → tuples);
unknown presets and options name the closest keys.
"""

from __future__ import annotations

import functools
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from trainables.dataset import Dataset
from trainables.errors import UserInputError
from trainables.params import closest
from trainables.synthetic import SyntheticSpec, make_synthetic
from trainables.table import TableSpec, load_table

NOVA_PATH = "../shared/datasets/nova-review-comments/comments.csv"  # from the project root
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the folder of pyproject.toml
# Comment and change attributes; ids, label-like columns (manual_rating, usefulness_computed) and
# the reviewer experience/ownership columns (they drive the weights) are left out on purpose.
NOVA_FEATURES = (
    "line_number",
    "mutual_reviews",
    "review_time",
    "patchset_number",
    "code_churn",
    "file_count",
    "directory_count",
    "is_bug_fix",
    "is_new_file",
    "current_loc",
    "comment_loc",
    "cyclomatic_complexity",
    "comment_volume",
)
NOVA_LOG_FEATURES = tuple(
    f for f in NOVA_FEATURES if f not in ("is_bug_fix", "is_new_file", "comment_volume")
)
# File-level columns feed the package granularity (a file's directory is its package), project-wide
# counts the repository; the subsystem slot copies the package (nearest, ties to the finer).
NOVA_OWNERSHIP = {
    "reviewer_commit_share": {"signal": "aco", "granularity": "package", "norm": "none"},
    "prior_file_review_count": {"signal": "rso", "granularity": "package", "norm": "log_max"},
    "reviewer_coding_experience": {"signal": "aco", "granularity": "repository", "norm": "log_max"},
    "prior_review_count": {"signal": "rso", "granularity": "repository", "norm": "log_max"},
}
NOVA = TableSpec(
    path=str((PROJECT_ROOT / NOVA_PATH).resolve()),  # from any working directory
    label="comment_group",
    text="message",
    features=NOVA_FEATURES,
    ownership=NOVA_OWNERSHIP,
    log_features=NOVA_LOG_FEATURES,
)


@dataclass(frozen=True)
class Preset:
    """A named recipe: a base spec whose fields the options override, and the builder."""

    doc: str
    base: Any  # a SyntheticSpec or TableSpec, or None when required fields come from options
    spec_type: type
    build: Callable[[Any], Dataset]
    required: tuple[str, ...] = ()

    def options(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.spec_type))


PRESETS: dict[str, Preset] = {
    "synthetic": Preset(
        "built-in code-review data; training-label noise falls with reviewer ownership",
        SyntheticSpec(),
        SyntheticSpec,
        make_synthetic,
    ),
    "synthetic-flat": Preset(
        "control: same data, noise independent of experience (κ = 0) at the default mean rate",
        SyntheticSpec(noise_decay=0.0, noise_max=0.28),
        SyntheticSpec,
        make_synthetic,
    ),
    "synthetic-clean": Preset(
        "control: same data with clean training labels",
        SyntheticSpec(noise_max=0.0),
        SyntheticSpec,
        make_synthetic,
    ),
    "table": Preset(
        "your CSV/Parquet file: set data.path and data.label (data.text, features, ownership)",
        None,
        TableSpec,
        load_table,
        required=("path", "label"),
    ),
    "nova": Preset(
        f"OpenStack Nova review comments ({NOVA_PATH}), label comment_group, text message",
        NOVA,
        TableSpec,
        load_table,
    ),
    "nova-multitask": Preset(
        f"the Nova comments ({NOVA_PATH}) with two tasks: comment_group and manual_rating",
        replace(NOVA, label=("comment_group", "manual_rating")),
        TableSpec,
        load_table,
    ),
}


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
            f"data={preset}: its file is expected at {path} ({NOVA_PATH} from the project "
            f"folder {PROJECT_ROOT}); pass data.path=<the file> to read it from elsewhere"
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
    values = {name: _coerce(f"data.{name}", value, hints[name]) for name, value in options.items()}
    if recipe.base is None:
        return recipe.spec_type(**values)
    return replace(recipe.base, **values)


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """`value` validated as `hint` by pydantic (lists become tuples), or UserInputError naming `key`."""
    if isinstance(value, bool) and bool not in (hint, *typing.get_args(hint)):  # pydantic: True → 1
        raise UserInputError(f"{key}: expected {_describe(hint)}, got {value!r}")
    try:
        return _adapter(hint).validate_python(value)
    except ValidationError as e:
        raise UserInputError(_problem(key, value, hint, e)) from None


def _problem(key: str, value: Any, hint: Any, error: ValidationError) -> str:
    """Pydantic's first error in one line: where in the value (`data.ownership.share`,
    `data.mixture[1]`), the expected type in words and the value found there."""
    if error.error_count() > 1:  # no member of a union fits: the whole value is at fault
        return f"{key}: expected {_describe(hint)}, got {value!r}"
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
    return f"{key}: expected {_describe(hint)}, got {first['input']!r}"


def _describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words: `tuple[str, ...] | str` → "a list of strings or a string"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0], plural=True)}"
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
            lines.append(f"    {'data.' + key:<{width}}  {_describe(hints[key])}, {default}")
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
