"""A space fitted to the data a search trains on: checked against it, and pruned to what it can tell
apart, before the search starts.

`fit_to_data(space, facts)` refuses a point or a focal α the data cannot take (one line naming the
space file) and collapses values that train like another one on this data: a granularity whose
ownership columns copy another's, and missing-ownership policies where no training sample lacks
ownership; and drops a strategy whose only signal the data never has (its weights would be one
constant). Each collapse comes back as one sentence for the log and the report; data without any
ownership drops the whole ELF family in one sentence that says what the space reduced to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from spaces.distributions import Choice, Constant, Grid
from spaces.space import ParamSpec, Space
from trainables.canonical import DataFacts, defaults, unknown_task, validate
from trainables.errors import UserInputError
from trainables.losses.kinds import LOSS_KINDS
from trainables.params import ELF_ON, param, task_key

TASK = "<task>"  # in a space key: one key per task of the data (loss.<task>.kind, …)


def fit_to_data(space: Space, facts: DataFacts) -> tuple[Space, list[str]]:
    """(the space without the values the data cannot tell apart, one note per collapse)."""
    space, notes = for_tasks(space, tuple(facts.tasks)), []
    check_against(space, facts)
    for key, why in facts.ignored.items():
        if key in space.params:
            space = unsearched(space, key)
            notes.append(f"{key} is not searched: {why}, so it trains as its default")
    unreal = [s for s in _values(space, "elf.strategy") if s in ELF_ON and not facts.reads_any(s)]
    if unreal and not any(facts.reads_any(s) for s in ELF_ON):  # the whole family: one line
        space = without(space, "elf.strategy", unreal)
        return space, [*notes, f"this data has no ownership columns: {reduced_to(space)}"]
    if unreal:
        space = without(space, "elf.strategy", unreal)
        notes += [
            f"elf.strategy={s} is not searched: no training sample has {s} ownership, so its "
            f"weights would be one constant (a loss scale, which AdamW ignores)"
            for s in unreal
        ]
    strategies = [s for s in _values(space, "elf.strategy") if s in ELF_ON]
    if not strategies:
        return space, notes
    granularities = _values(space, "elf.granularity")
    copies = {}
    for g in granularities:
        reps = {facts.copy_of(s, g) for s in strategies}
        if len(reps) == 1 and (rep := reps.pop()) != g and rep in granularities:
            copies[g] = rep
            notes.append(
                f"elf.granularity={g} is not searched: on this data its ownership columns are "
                f"copies of {rep}'s, so it trains as {rep}"
            )
    space = collapse(space, "elf.granularity", copies)
    kept = [g for g in granularities if g not in copies]
    policies = _values(space, "elf.missing")
    never = not any(facts.any_missing(s, g) for s in strategies for g in kept)
    if len(policies) > 1 and never:
        space = collapse(space, "elf.missing", {p: policies[0] for p in policies[1:]})
        notes.append(
            f"elf.missing is not searched ({', '.join(policies[1:])} dropped): no training sample "
            f"lacks the ownership the strategies read, so no policy ever applies"
        )
    return space, notes


def reduced_to(space: Space) -> str:
    """What `space` still searches, in words: 'the elf space searches train.lr only'."""
    if not space.searched:
        return f"the {space.name} space searches nothing: every trial trains one configuration"
    return f"the {space.name} space searches {', '.join(space.searched)} only"


def for_tasks(space: Space, tasks: tuple[str, ...]) -> Space:
    """`space` with each key that names TASK (loss.<task>.kind, …) searched once per task of the
    data, in its conditions and points too; on single-task data it is the loss.* key itself."""
    templated = [k for k in space.params if TASK in k]
    if not templated:
        return space

    def each(key: str) -> list[str]:
        if TASK not in key:
            return [key]
        return [key.replace(TASK, t) for t in tasks] if tasks else [key.replace(f".{TASK}", "")]

    clash = [n for k in templated for n in each(k) if n in space.params]
    if clash:
        raise UserInputError(f"{space.path}: {clash[0]} is searched twice (also as a <task> key)")
    for key, spec in space.params.items():
        parent = next((p for p, _ in spec.when if TASK in p and TASK not in key), None)
        if parent is not None:
            raise UserInputError(f"{space.path}: {key}: a condition on {parent} needs a <task> key")
    params = {}
    for key, spec in space.params.items():
        for t, name in enumerate(each(key)):
            when = tuple((p if TASK not in p else each(p)[t], allowed) for p, allowed in spec.when)
            params[name] = ParamSpec(name, spec.dist, when, spec.description)
    points = tuple(
        {name: v for k, v in point.items() for name in each(k)}
        for point in space.points_to_evaluate
    )
    return replace(space, params=params, points_to_evaluate=points)


def double_correction(space: Space) -> str | None:
    """One sentence when the space can pair class-balanced sampling with class weights (the
    imbalance corrected twice in those trials), else None."""
    methods = [m for m in _values(space, "cw.method") if m != "none"]
    if True not in _values(space, "train.balanced_sampling") or not methods:
        return None
    return (
        f"{space.name}: trials that pair train.balanced_sampling=true with cw.method in "
        f"{methods} correct class imbalance twice; they are searched (and measured) as written"
    )


def values_left(before: Space, after: Space) -> dict[str, list[Any]]:
    """For each parameter whose distribution fitting changed: the values it can still take ([]
    when it went), as data.json records them for the report."""
    return {
        k: list(after.params[k].dist.finite) if k in after.params else []
        for k, spec in before.params.items()
        if k not in after.params or after.params[k].dist != spec.dist
    }


def check_against(space: Space, facts: DataFacts) -> None:
    """Raise UserInputError naming the space file for a point, or a value of a loss kind's key,
    that the data cannot take (its kind's `prepare` refuses it: e.g. a two-class focal α on five
    classes); only the kinds the space's loss.kind (a task's own) can take are asked."""
    problem = unknown_task(space.params, facts)
    if problem:
        raise UserInputError(f"{space.path}: {problem}")
    base = defaults()
    for name, counts, classes in facts.labels():
        kind_key = task_key(name, "kind") if name else "loss.kind"
        searched = _values(space, kind_key if kind_key in space.params else "loss.kind")
        for kind in (k for k in LOSS_KINDS.values() if k.name in searched):
            for p in kind.params:
                own = task_key(name, p.key.removeprefix("loss."))
                key = own if name and own in space.params else p.key
                for value in _values(space, key):
                    try:
                        kind.prepare(base | {p.key: value}, counts, classes)
                    except UserInputError as e:
                        where = f" (task {name})" if name else ""
                        raise UserInputError(f"{space.path}: {key}{where}: {e}") from None
    for i, point in enumerate(space.points_to_evaluate):
        try:
            validate(point, facts)
        except UserInputError as e:
            raise UserInputError(f"{space.path}: points_to_evaluate.{i}: {e}") from None


def takes_any(space: Space, key: str, values: tuple[Any, ...]) -> bool:
    """True when `key` can take one of `values` in `space` (its default where it is not set)."""
    return any(v in values for v in _values(space, key))


def _values(space: Space, key: str) -> list[Any]:
    """The finite values `key` takes in `space` (its default when the space does not set it)."""
    spec = space.params.get(key)
    if spec is None:
        return [param(key).default]
    return list(spec.dist.finite or ())


def collapse(space: Space, key: str, mapping: dict[Any, Any]) -> Space:
    """`space` with each value of `key` in `mapping` replaced by its target: dropped from the
    distribution (a single value left becomes a constant), the conditions and the points."""
    if not mapping or key not in space.params:
        return space
    spec = space.params[key]
    values = tuple(v for v in spec.dist.finite if v not in mapping)
    if isinstance(spec.dist, Grid):
        dist: Any = Grid(values)
    elif isinstance(spec.dist, Choice) and len(values) > 1:
        dist = Choice(values)
    else:
        dist = Constant(values[0])
    params = {}
    for k, p in space.params.items():
        when = tuple(
            (parent, _unique(mapping.get(v, v) for v in allowed) if parent == key else allowed)
            for parent, allowed in p.when
        )
        params[k] = ParamSpec(k, dist if k == key else p.dist, when, p.description)
    points: list[dict[str, Any]] = []
    for point in space.points_to_evaluate:
        moved = {k: mapping.get(v, v) if k == key else v for k, v in point.items()}
        if moved not in points:
            points.append(moved)
    return replace(space, params=params, points_to_evaluate=tuple(points))


def _unique(values: Any) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def unsearched(space: Space, key: str) -> Space:
    """`space` without `key` (the trials take its default): gone from the parameters, the
    conditions (a condition on it holds for its default only) and the points."""
    default = param(key).default
    params = {}
    for k, p in space.params.items():
        if k == key:
            continue
        when = tuple((parent, allowed) for parent, allowed in p.when if parent != key)
        if all(default in allowed for parent, allowed in p.when if parent == key):
            params[k] = ParamSpec(k, p.dist, when, p.description)
    points: list[dict[str, Any]] = []
    for point in space.points_to_evaluate:
        kept = {k: v for k, v in point.items() if k in params}
        if kept not in points:
            points.append(kept)
    return replace(space, params=params, points_to_evaluate=tuple(points))


def without(space: Space, key: str, dropped: list[Any]) -> Space:
    """`space` where `key` never takes a value in `dropped`: the values leave its distribution, the
    conditions and the points that set them; a parameter whose condition can no longer hold goes
    (with the parameters conditioned on it). Raises UserInputError when no value is left."""
    spec = space.params[key]
    values = tuple(v for v in spec.dist.finite if v not in dropped)
    if not values:
        raise UserInputError(f"{space.path}: {key}: the data supports none of {list(dropped)}")
    dist: Any = Grid(values) if isinstance(spec.dist, Grid) else Choice(values)
    params = {key: ParamSpec(key, dist if len(values) > 1 else Constant(values[0]), spec.when,
                             spec.description)}  # fmt: skip
    for k, p in space.params.items():
        if k == key:
            continue
        when = tuple(
            (parent, tuple(v for v in allowed if v not in dropped) if parent == key else allowed)
            for parent, allowed in p.when
        )
        if all(allowed and (parent in params) for parent, allowed in when):
            params[k] = ParamSpec(k, p.dist, when, p.description)
    params = {k: params[k] for k in space.params if k in params}
    points = tuple(
        {k: v for k, v in point.items() if k in params}
        for point in space.points_to_evaluate
        if point.get(key) not in dropped
    )
    return replace(space, params=params, points_to_evaluate=points)
