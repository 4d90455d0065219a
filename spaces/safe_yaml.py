"""Read a small YAML file defensively: size cap, no tabs, no duplicate keys, no anchors or aliases,
no tags beyond YAML's own (so no `!!python/...` objects).

`yaml.safe_load` silently keeps the last of two equal keys and expands aliases (a "billion laughs"
file of a few hundred bytes can expand to gigabytes); this loader rejects both, and remembers the
line of every mapping key so that later validation errors can point at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainables.errors import UserInputError

MAX_BYTES = 1 << 20  # a space file is a few dozen lines; anything over 1 MiB is a mistake


class LineMap(dict):
    """A YAML mapping that also records the 1-based line of each key in `lines`."""

    lines: dict[Any, int]

    def __init__(self) -> None:
        super().__init__()
        self.lines = {}


class _RuleError(yaml.MarkedYAMLError):
    """Well-formed YAML that breaks one of this loader's rules (duplicates, aliases)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases and duplicate keys, and builds LineMaps."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _RuleError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> LineMap:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        mapping = LineMap()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, got {key!r}", key_node.start_mark
                )
            if key in mapping:
                raise _RuleError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {mapping.lines[key]}); "
                    "YAML would silently keep only the last one",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
            mapping.lines[key] = line
        return mapping

    def construct_yaml_map(self, node: yaml.Node) -> Any:
        data = LineMap()
        yield data
        value = self.construct_mapping(node)
        data.update(value)
        data.lines = value.lines

    def construct_undefined(self, node: yaml.Node) -> Any:
        raise _RuleError(
            None,
            None,
            f"tag {node.tag!r} is not allowed; a space file holds plain YAML values only",
            node.start_mark,
        )


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor(None, _Loader.construct_undefined)


def read_checked_yaml(path: Path, shown: str) -> Any:
    """Parse the YAML file at `path`; errors name it as `shown` with a line number."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise UserInputError(f"{shown}: cannot read the space file ({e.strerror})") from e
    if size > MAX_BYTES:
        raise UserInputError(
            f"{shown}: file is {size} bytes; a space file must be at most {MAX_BYTES} bytes (1 MiB)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserInputError(f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    return parse_yaml(text, shown)


def parse_yaml(text: str, shown: str, lines: bool = True) -> Any:
    """Parse YAML `text` (a file's, or with `lines` False one override's value) by this loader's
    rules; errors name it as `shown`, with the line number when `lines`."""
    _reject_tabs(text, shown)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{shown}:{mark.line + 1}" if lines and mark is not None else shown
        context = f" ({e.context})" if e.context else ""
        kind = "" if isinstance(e, _RuleError) else "malformed YAML: "
        raise UserInputError(f"{where}: {kind}{e.problem}{context}") from e
    except yaml.YAMLError as e:
        raise UserInputError(f"{shown}: malformed YAML: {e}") from e


def _reject_tabs(text: str, shown: str) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            raise UserInputError(
                f"{shown}:{number}: tab in indentation; YAML indents with spaces only"
            )
