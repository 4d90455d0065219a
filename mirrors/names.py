"""Keys and values MLflow accepts: the sanitising rule for names and the truncation rule for values.

Rule for every param, metric and tag key (MLflow rejects the rest, see
`mlflow.utils.validation.validate_param_and_metric_name` and `path_not_unique`):

1. every character other than ASCII letters, digits, `_`, `-`, `.`, space and `/` becomes `_`
   (the colon too, so that names are the same on every OS);
2. the name is read as a `/`-separated path: empty and `.` pieces are dropped and a `..` piece, or a
   leading `..`, becomes `__`, so the name never resolves to another name;
3. an empty result becomes `_`;
4. a name longer than 250 characters keeps its first 241 and ends with `_` plus the first 8 hex
   digits of the SHA-1 of the original name; so does a later name colliding with an earlier one.

Values: params longer than 6000 characters and tags longer than 8000 are cut to the limit and end
with `...[truncated]`; the tracker keeps the full text of a truncated param as an artifact.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

TRUNCATION_MARK = "...[truncated]"
_HASH_DIGITS = 8
_BAD_CHARACTER = re.compile(r"[^A-Za-z0-9_\-. /]")


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:_HASH_DIGITS]


def _with_digest(name: str, original: str) -> str:
    """`name` cut to fit the key limit with `_<sha1 of original>` appended."""
    return f"{name[: MAX_ENTITY_KEY_LENGTH - _HASH_DIGITS - 1]}_{_digest(original)}"


@functools.lru_cache(maxsize=4096)  # called for every metric of every result
def sanitize_key(name: object) -> str:
    """The MLflow-valid key for `name` by rules 1-4 of the module docstring (idempotent)."""
    original = str(name)
    text = _BAD_CHARACTER.sub("_", original)
    pieces = ["__" if p == ".." else p for p in text.split("/") if p not in ("", ".")]
    text = "/".join(pieces)
    if text.startswith(".."):
        text = "__" + text[2:]
    text = text or "_"
    return text if len(text) <= MAX_ENTITY_KEY_LENGTH else _with_digest(text, original)


def sanitize_keys(names: Iterable[object]) -> dict[str, str]:
    """{original: sanitised}, all distinct (a later collision gets a digest suffix)."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        original = str(name)
        if original in mapping:
            continue
        key = sanitize_key(original)
        if key in taken:
            key = _with_digest(key, original)
        mapping[original] = key
        taken.add(key)
    return mapping


def truncate(value: str, limit: int) -> tuple[str, bool]:
    """(`value` cut to `limit` characters ending in TRUNCATION_MARK, whether it was cut)."""
    if len(value) <= limit:
        return value, False
    return value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK, True


def param_value(value: object) -> tuple[str, bool]:
    """The string MLflow stores for a param value, truncated to MAX_PARAM_VAL_LENGTH."""
    return truncate(str(value), MAX_PARAM_VAL_LENGTH)


def tag_value(value: object) -> str:
    """The string MLflow stores for a tag value, truncated to MAX_TAG_VAL_LENGTH."""
    return truncate(str(value), MAX_TAG_VAL_LENGTH)[0]


def flatten_params(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted MLflow param names: {"a": {"b": 1}} -> {"a.b": 1}; flat input
    unchanged; an empty mapping has no value to log and leaves no key."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
        else:
            flat[name] = value
    return flat
