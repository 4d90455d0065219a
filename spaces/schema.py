"""Load a space file and validate it against the trial's PARAMS registry: the file's structure,
conditions between parameters, dependency order and points_to_evaluate (entries: `entries.py`);
`to_text` writes a Space back as such a file.

Every error is a UserInputError of the form `FILE[:LINE]: KEY: RULE` (one line).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from spaces.distributions import (
    Choice,
    Constant,
    Distribution,
    Grid,
    IntRange,
    LogUniform,
    Uniform,
    fmt,
    fmt_list,
)
from spaces.entries import At, check_value, line_of, parse_entry
from spaces.safe_yaml import read_checked_yaml
from spaces.space import Condition, ParamSpec, Space
from trainables.errors import UserInputError
from trainables.params import PARAMS, closest, param

SPACES_DIR = Path(__file__).resolve().parent
TOP_LEVEL = ("description", "params", "points_to_evaluate")


# ---------------------------------------------------------------- conditions


def _condition(at: At, key: str, raw: Any, dists: dict[str, Distribution]) -> Condition:
    if not isinstance(raw, dict) or not raw:
        at.fail(f"when needs a mapping {{parameter: value or [values]}}, got {raw!r}")
    out = []
    for parent, allowed in raw.items():
        here = at.sub(str(parent), line_of(raw, parent))
        if parent == key:
            here.fail("a parameter cannot be conditioned on itself")
        if parent not in dists:
            known = (
                "is a trial key this space does not define: add it to params"
                if param(str(parent)) is not None
                else f"is not a parameter{closest(str(parent), tuple(dists))}"
            )
            here.fail(f"condition on undefined parameter {parent!r}: it {known}")
        finite = dists[parent].finite
        if finite is None:
            here.fail(
                f"condition on {parent}, which is {dists[parent]}; "
                "conditions need a choice, grid or constant parent"
            )
        values = allowed if isinstance(allowed, list) else [allowed]
        if not values:
            here.fail("needs at least one value")
        checked = tuple(check_value(here, param(parent), v) for v in values)
        for v in checked:
            if v not in finite:
                here.fail(
                    f"condition on a value {parent} cannot take: {fmt(v)} is not in "
                    f"{fmt_list(finite)}"
                )
        out.append((parent, checked))
    return tuple(out)


def _dependency_order(at: At, specs: dict[str, ParamSpec], raw: Any) -> dict[str, ParamSpec]:
    """`specs` reordered so that parents come before children (file order otherwise); no cycles."""
    order: dict[str, ParamSpec] = {}
    visiting: list[str] = []

    def visit(key: str) -> None:
        if key in order:
            return
        if key in visiting:
            cycle = " -> ".join([*visiting[visiting.index(key) :], key])
            at.sub(key, line_of(raw, key)).fail(f"conditions form a cycle: {cycle}")
        visiting.append(key)
        for parent, _ in specs[key].when:
            visit(parent)
        visiting.pop()
        order[key] = specs[key]

    for key in specs:
        visit(key)
    return order


# ---------------------------------------------------------------- file


def _params(at: At, raw: Any) -> dict[str, ParamSpec]:
    if not isinstance(raw, dict) or not raw:
        at.fail(f"expected a non-empty mapping of trial keys to distributions, got {raw!r}")
    parsed: dict[str, tuple[Distribution, Any, str]] = {}
    for key, entry in raw.items():
        here = at.sub(str(key), line_of(raw, key))
        known = param(key) if isinstance(key, str) else None
        if known is None:
            here.fail(f"unknown trial key{closest(str(key), tuple(PARAMS))}")
        parsed[key] = parse_entry(here, known, entry)
    dists = {k: d for k, (d, _, _) in parsed.items()}
    specs = {}
    for key, (dist, when, description) in parsed.items():
        here = at.sub(key, line_of(raw, key))
        cond = () if when is None else _condition(here.sub("when"), key, when, dists)
        if cond and isinstance(dist, Grid):
            here.fail(
                "a grid parameter cannot have a condition (Ray expands grids "
                "unconditionally); use choice"
            )
        specs[key] = ParamSpec(key, dist, cond, description)
    return _dependency_order(at, specs, raw)


def _point(at: At, raw: Any, specs: dict[str, ParamSpec]) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        at.fail(f"a point is a non-empty mapping {{trial key: value}}, got {raw!r}")
    point = {}
    for key, value in raw.items():
        here = at.sub(str(key), line_of(raw, key))
        if key not in specs:
            known = (
                "is a trial key this space does not search"
                if param(str(key)) is not None
                else (f"is not a parameter of this space{closest(str(key), tuple(specs))}")
            )
            here.fail(f"unknown point key: it {known}")
        value = check_value(here, param(key), value)
        if not specs[key].dist.contains(value):
            here.fail(f"{fmt(value)} lies outside the distribution {specs[key].dist}")
        point[key] = value
    fixed = {k: s.dist.value for k, s in specs.items() if isinstance(s.dist, Constant)}
    known = {k: v for k, v in fixed.items() if not specs[k].when} | point
    for key in point:
        for parent, allowed in specs[key].when:
            here = at.sub(key, line_of(raw, key))
            if parent not in known:
                here.fail(f"depends on {parent}: set {parent} in the point too")
            if known[parent] not in allowed:
                here.fail(
                    f"is inactive when {parent}={fmt(known[parent])} (active for "
                    f"{fmt_list(allowed)}); drop it from the point"
                )
    return point


def parse_space(data: Any, path: Path, shown: str) -> Space:
    """Validate parsed YAML `data` from `path` into a Space."""
    at = At(shown, "file")
    if data is None:
        at.fail(f"the file is empty; expected a mapping with keys {', '.join(TOP_LEVEL)}")
    if not isinstance(data, dict):
        at.fail(f"expected a mapping with keys {', '.join(TOP_LEVEL)}, got {type(data).__name__}")
    for key in data:
        if key not in TOP_LEVEL:
            At(shown, str(key), line_of(data, key)).fail(
                f"unknown top-level key{closest(str(key), TOP_LEVEL)}; "
                f"expected {', '.join(TOP_LEVEL)}"
            )
    if "params" not in data:
        At(shown, "params").fail("the required top-level key is missing")
    description = data.get("description", "")
    if not isinstance(description, str):
        At(shown, "description", line_of(data, "description")).fail("expected text")
    specs = _params(At(shown, "params", line_of(data, "params")), data["params"])
    raw_points = data.get("points_to_evaluate") or []
    points_at = At(shown, "points_to_evaluate", line_of(data, "points_to_evaluate"))
    if not isinstance(raw_points, list):
        points_at.fail(f"expected a list of points, got {raw_points!r}")
    points = tuple(_point(points_at.sub(str(i)), p, specs) for i, p in enumerate(raw_points))
    return Space(path.stem, path, description.strip(), specs, points)


def list_spaces() -> list[str]:
    """Names of the space files shipped in spaces/ (usable as `space=NAME`)."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def _locate(name_or_path: str) -> Path:
    as_path = Path(name_or_path)
    if as_path.suffix in (".yaml", ".yml") or len(as_path.parts) > 1:
        return as_path
    path = SPACES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UserInputError(
            f"space: unknown space {name_or_path!r}{closest(name_or_path, list_spaces())}; "
            f"shipped spaces: {', '.join(list_spaces())} (or give a path to a .yaml file)"
        )
    return path


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_space(name_or_path: str) -> Space:
    """Load and validate a space: a name in spaces/ (`elf`) or a path to a YAML file."""
    path = _locate(str(name_or_path))
    shown = _shown(path)
    if not path.is_file():
        raise UserInputError(f"{shown}: space file not found")
    return parse_space(read_checked_yaml(path, shown), path.resolve(), shown)


# ---------------------------------------------------------------- writing


def _listed(value: Any) -> Any:
    """`value` as YAML holds it: tuples (per-class α, a condition's values) as lists."""
    return [_listed(v) for v in value] if isinstance(value, tuple | list) else value


def _uniform_entry(d: Uniform) -> dict[str, Any]:
    return {"uniform": [d.low, d.high]} | ({"step": d.step} if d.step is not None else {})


def _int_entry(d: IntRange) -> dict[str, Any]:
    return (
        {"int": [d.low, d.high]}
        | ({"step": d.step} if d.step != 1 else {})
        | ({"log": True} if d.log else {})
    )


ENTRIES: dict[type, Callable[[Any], dict[str, Any]]] = {  # the inverse of entries.PARSERS
    Choice: lambda d: {"choice": _listed(d.values)},
    Grid: lambda d: {"grid": _listed(d.values)},
    Uniform: _uniform_entry,
    LogUniform: lambda d: {"loguniform": [d.low, d.high]},
    IntRange: _int_entry,
    Constant: lambda d: {"const": _listed(d.value)},
}


def to_text(space: Space, comment: str) -> str:
    """A space file for `space` (a `# comment` line first) that `load_space` reads back to the same
    parameters, conditions, descriptions and points; the name is the file's."""
    params = {}
    for key, spec in space.params.items():
        entry = ENTRIES[type(spec.dist)](spec.dist)
        if spec.when:
            entry["when"] = {parent: _listed(allowed) for parent, allowed in spec.when}
        if spec.description:
            entry["description"] = spec.description
        params[key] = entry
    data: dict[str, Any] = {"description": space.description, "params": params}
    if space.points_to_evaluate:
        data["points_to_evaluate"] = [_listed_point(p) for p in space.points_to_evaluate]
    body = yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None
    )
    return f"# {comment}\n{body}"


def _listed_point(point: dict[str, Any]) -> dict[str, Any]:
    return {k: _listed(v) for k, v in point.items()}
