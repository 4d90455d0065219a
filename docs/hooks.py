"""MkDocs hook: the reference pages, generated at build time from the code that defines the keys.

`reference/search-keys.md` lists every field of `search.config.SearchConfig` (nested sections as
dotted keys) with its default and the comment on its line, and the `data.*` options of each data
preset (`trainables.data.presets.PRESETS`); `reference/trial-keys.md` lists every entry of
`trainables.params.PARAMS`; `performance.md`'s targets table comes from each benchmark part's
`SUMMARY`. Nothing is copied by hand: a key added, removed or re-documented in the
code shows up in the next `mkdocs build`. `python docs/hooks.py OUT_DIR` writes the two pages to a
folder without MkDocs.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

PAGES = ("reference/search-keys.md", "reference/trial-keys.md")  # generated, never in the tree
TARGETS_MARK = "<!-- benchmark-targets -->"  # performance.md: replaced by the targets table
ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks/ is not installed


def field_comments(cls: type) -> dict[str, str]:
    """{field name: its source comment} for a dataclass: the comment(s) on the field's own lines
    (a field may span several) and any comment lines right above it."""
    source = inspect.getsource(cls)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    comments: dict[str, list[str]] = {}
    above: list[str] = []  # comment lines since the last field
    current: str | None = None  # the field whose logical line is being read
    previous: tokenize.TokenInfo | None = None
    body_indent: int | None = None
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if current is not None:
                comments[current].append(text)
            else:
                above.append(text)
        elif tok.type == tokenize.NEWLINE:
            current = None
        elif tok.type == tokenize.OP and tok.string == ":" and previous is not None:
            name = previous.string
            at_body = body_indent is None or previous.start[1] == body_indent
            if previous.type == tokenize.NAME and at_body and _starts_line(previous, source):
                body_indent = previous.start[1]
                current = name
                comments[name] = above
                above = []
        elif tok.type == tokenize.NAME and tok.string in ("def", "class") and body_indent:
            above = []  # a method's comments belong to no field
        if tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            previous = tok
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: " ".join(v) for k, v in comments.items() if k in names}


def _starts_line(tok: tokenize.TokenInfo, source: str) -> bool:
    line = source.splitlines()[tok.start[0] - 1]
    return line[: tok.start[1]].strip() == ""


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _code(value: Any) -> str:
    """A value as inline code for a table cell (YAML-ish: null, true, lists)."""
    if value is dataclasses.MISSING:
        return "(required)"
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, tuple):
        text = "[" + ", ".join(_plain(v) for v in value) + "]"
    elif value == "" or value == {}:
        return "(empty)"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    else:
        text = _plain(value)
    text = text.replace("|", "\\|")
    return f"`{text}`"


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def search_key_rows(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, comment) for every field of `cls`, nested dataclasses expanded."""
    from search.config import PINS

    rows = []
    notes = field_comments(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        default = _default(f)
        if dataclasses.is_dataclass(default):
            rows += search_key_rows(type(default), key + ".")
            continue
        if key == PINS:  # given as the trial keys themselves, never params=
            continue
        note = notes.get(f.name, "")
        if key == "data" and not note:  # its options are free-form, listed per preset below
            note = "the data preset (`data=NAME`) and its options (`data.*`, below)"
        rows.append((key, _code(default), note))
    return rows


def search_keys_page() -> str:
    from search.config import RENAMED, SHORTHANDS, SearchConfig
    from trainables.data.presets import PRESETS

    lines = [
        "# Search keys",
        "",
        "*Generated at build time from `search.config.SearchConfig` (each default and the comment",
        "on its line in `search/config.py`) and the data presets' spec classes; do not edit.*",
        "",
        "A search key configures the search itself (`key=value` on the command line; see",
        "[Usage](../guide/usage.md)). Keys that shape a single trial are [trial keys](trial-keys.md).",
        "",
        "| key | default | comment in the code |",
        "|---|---|---|",
    ]
    for key, default, note in search_key_rows(SearchConfig):
        lines.append(f"| `{key}` | {default} | {_cell(note)} |")
    lines += ["", "## Shorthands", ""]
    lines += [f"- `{short}=X` sets `{full}`." for short, full in SHORTHANDS.items()]
    lines += ["", "## Renamed keys (refused with a line naming their successors)", ""]
    lines += [f"- `{old}`: {new}" for old, new in RENAMED.items()]
    lines += ["", "## Data presets and their `data.*` options", ""]
    lines += [f"- `{name}`: {_cell(recipe.doc)}" for name, recipe in PRESETS.items()]
    by_type: dict[type, list[str]] = {}
    for name, recipe in PRESETS.items():
        by_type.setdefault(recipe.spec_type, []).append(name)
    for spec_type, names in by_type.items():
        notes = field_comments(spec_type)
        presets = [PRESETS[n] for n in names]
        lines += [
            "",
            f"### {', '.join(names)} (`{spec_type.__module__}.{spec_type.__name__}`)",
            "",
            "| key | " + " | ".join(f"default ({n})" for n in names) + " | comment in the code |",
            "|---|" + "---|" * len(names) + "---|",
        ]
        for f in dataclasses.fields(spec_type):
            defaults = [
                _code(getattr(p.base, f.name) if p.base is not None else _default(f))
                for p in presets
            ]
            row = f"| `data.{f.name}` | " + " | ".join(defaults)
            lines.append(row + f" | {_cell(notes.get(f.name, ''))} |")
    return "\n".join(lines) + "\n"


def _allowed(p: Any) -> str:
    if p.choices:
        return ", ".join(f"`{_plain(c)}`" for c in p.choices)
    if p.low is not None or p.high is not None:
        low = "−∞" if p.low is None else _plain(p.low)
        high = "∞" if p.high is None else _plain(p.high)
        return f"[{low}, {high}]"
    return ""


def _either(values: tuple[Any, ...]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    words = [str(v) for v in values]
    return " or ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


def trial_keys_page() -> str:
    from search.config import SET_FOR_TRIALS
    from trainables.params import PARAMS, task_fields

    lines = [
        "# Trial keys",
        "",
        "*Generated at build time from `trainables.params.PARAMS`, the one registry of trial keys;",
        "do not edit.*",
        "",
        "A trial key shapes one trial: a space file searches it, or `key=value` on the command line",
        "pins it for every trial ([Usage](../guide/usage.md)). The keys marked *search key* are set",
        "by the search config for every trial and are search keys on the command line. Plug-ins add",
        "their own through a `params` list of `trainables.params.Param`",
        "([Plug-ins](../guide/plugins.md)).",
        "",
        "| key | default | kind | allowed | doc |",
        "|---|---|---|---|---|",
    ]
    for key, p in PARAMS.items():
        doc = p.doc + (" *Search key on the command line.*" if key in SET_FOR_TRIALS else "")
        if p.when:  # Param.when: where canonical keeps the key
            held = " and ".join(f"{k} is {_either(v)}" for k, v in p.when)
            doc += f" *Matters only when {held}.*"
        lines.append(f"| `{key}` | {_code(p.default)} | {p.kind} | {_allowed(p)} | {_cell(doc)} |")
    fields = ", ".join(f"`{f}`" for f in task_fields())
    lines += [
        "",
        "## Per-task keys (multi-task data)",
        "",
        f"`loss.<task>.<field>` with field one of {fields} sets one task's copy of",
        "`loss.<field>` (same kind and bounds); a task without it takes `loss.<field>`.",
    ]
    return "\n".join(lines) + "\n"


def targets_table() -> str:
    """Every benchmark part's targets, from its module's SUMMARY (what, figure, target, met)."""
    import importlib

    if str(ROOT) not in sys.path:  # here, not at import: MkDocs restores sys.path after loading
        sys.path.insert(0, str(ROOT))
    from benchmarks import PARTS

    lines = ["| part | what | figure | target |", "|---|---|---|---|"]
    for name, module in PARTS.items():
        for what, figure, target, _met in getattr(importlib.import_module(module), "SUMMARY", []):
            lines.append(f"| `{name}` | {_cell(what)} | `{figure}` | {_cell(target)} |")
    return "\n".join(lines)


GENERATORS = {PAGES[0]: search_keys_page, PAGES[1]: trial_keys_page}


def on_files(files: Any, config: Any) -> Any:
    """MkDocs event: add the generated pages to the build (in memory; nothing is written to docs/)."""
    from mkdocs.structure.files import File

    for path, make in GENERATORS.items():
        files.append(File.generated(config, path, content=make()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: the benchmark targets table where performance.md marks it."""
    if TARGETS_MARK in markdown:
        return markdown.replace(TARGETS_MARK, targets_table())
    return markdown


def main(out: str) -> None:
    """Write the generated pages under `out` (for reading them without MkDocs)."""
    for path, make in GENERATORS.items():
        target = Path(out) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(make(), encoding="utf-8")
        print(target)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "site-reference")
