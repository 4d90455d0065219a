"""Trial keys pinned on the command line, folded into a loaded space.

A pin is a space-file entry given as an override: `train.lr=0.01` fixes the key for every trial,
`'train.lr={loguniform: [1e-4, 1e-2]}'` replaces the space's entry with that distribution. Each is
checked as a `params` entry of a space file (`check_pin`: the same rules and messages, located
`command line: KEY: RULE`); a bare list is a value for the keys whose values are lists (`loss.alpha`)
and ambiguous for the others, as in a file.

`pin(space, pins)` keeps the space's condition of a pinned key, narrows each condition on it to the
values it can still take and drops a parameter whose condition can no longer hold, with the
parameters that depend on it (`elf.strategy=none` takes every `elf.*` key it activates out). A key
the space does not have joins it unconditionally. The points to evaluate keep the values the new
space still contains where their conditions hold. What pinning did is one sentence in
`Space.notes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from spaces.distributions import Constant, Distribution, Grid, fmt
from spaces.entries import At, parse_entry
from spaces.space import ParamSpec, Space
from trainables.params import PARAMS, closest, param, task_of

AT = "command line"  # where a pin's error points (`command line: train.lr: RULE`)
TEMPLATE = "<task>"  # a space key's task part that stands for every task (spaces.fit.TASK)
LIST_VALUED = ("alpha",)  # Param kinds whose values are lists: a bare list is one value


def check_pin(key: str, entry: Any) -> Distribution:
    """The distribution a command-line pin gives trial key `key` (a Constant for a plain value);
    a UserInputError, as a space file's entry would raise, when `key` or `entry` is not valid."""
    at = At(AT, key)
    known = param(key)
    if known is None:
        at.fail(f"unknown trial key{closest(key, tuple(PARAMS))}")
    if isinstance(entry, list) and known.kind in LIST_VALUED:
        entry = {"const": entry}
    dist, when, _ = parse_entry(at, known, entry)
    if when is not None:
        at.sub("when").fail(
            "a pinned key keeps the condition the space gives it; write a space file to give it "
            "another"
        )
    return dist


def pin(space: Space, pins: Mapping[str, Any]) -> Space:
    """`space` with each pinned trial key's entry in place of the space's (see the module doc);
    `space` itself without pins. A pin that the other pins make inactive is refused."""
    if not pins:
        return space
    pinned = space
    for key, entry in pins.items():
        pinned = _pin_one(pinned, space, key, check_pin(key, entry))
    for key in pins:
        if key not in pinned.params:
            parents = ", ".join(p for p, _ in space.params[key].when)
            At(AT, key).fail(
                f"inactive under the other pins (the space makes it depend on {parents}); drop "
                "this pin or the one that deactivates it"
            )
    points = _refit(space.points_to_evaluate, pinned.params)
    note = _note(space, pinned, pins)
    return replace(pinned, points_to_evaluate=points, notes=(*pinned.notes, note))


def _pin_one(space: Space, origin: Space, key: str, dist: Distribution) -> Space:
    """`space` with `key` drawn from `dist` under its condition in `origin` (the file's space)."""
    at = At(AT, key)
    _check_template(at, space, key)
    old = space.params.get(key) or origin.params.get(key)
    spec = ParamSpec(key, dist, old.when if old else (), old.description if old else "")
    if spec.when and isinstance(dist, Grid):
        at.fail(
            "a grid parameter cannot have a condition (Ray expands grids unconditionally) and "
            f"the space makes {key} conditional; use choice"
        )
    return replace(space, params=_pruned(space.params | {key: spec}))


def _check_template(at: At, space: Space, key: str) -> None:
    """A pin of one task's loss key where the space searches it for every task is refused."""
    found = task_of(key)
    if found is None or found[0] == TEMPLATE:
        return
    template = f"loss.{TEMPLATE}.{found[1]}"
    if template in space.params:
        at.fail(
            f"the space searches {template} (one per task of the data); pin {template} for "
            f"every task, or write a space file that sets {key}"
        )


def _pruned(params: Mapping[str, ParamSpec]) -> dict[str, ParamSpec]:
    """`params` (parents first) with each condition cut to the values its parent can still take; a
    parameter whose condition can no longer hold goes, and with it those that depend on it."""
    out: dict[str, ParamSpec] = {}
    for key, spec in params.items():
        when = []
        for parent, allowed in spec.when:
            finite = out[parent].dist.finite if parent in out else ()
            if finite is None:
                At(AT, parent).fail(
                    f"{key} is conditioned on {parent}, and conditions need a choice, grid or "
                    f"constant parent, not {out[parent].dist}; pin {parent} to a value or a choice"
                )
            when.append((parent, tuple(v for v in allowed if v in finite)))
        if all(allowed for _, allowed in when):
            out[key] = replace(spec, when=tuple(when))
    return out


def _refit(
    points: tuple[dict[str, Any], ...], params: Mapping[str, ParamSpec]
) -> tuple[dict[str, Any], ...]:
    """Each point with the values of searched `params` it still fits, where their conditions hold
    (constants need no value: every trial has them); empty and repeated points go."""
    out: list[dict[str, Any]] = []
    for point in points:
        known: dict[str, Any] = {}  # the active values so far, constants included
        kept: dict[str, Any] = {}
        for key, spec in params.items():
            if not all(p in known and known[p] in allowed for p, allowed in spec.when):
                continue
            if isinstance(spec.dist, Constant):
                known[key] = spec.dist.value
            elif key in point and spec.dist.contains(point[key]):
                known[key] = kept[key] = point[key]
        if kept and kept not in out:
            out.append(kept)
    return tuple(out)


def _note(before: Space, after: Space, pins: Mapping[str, Any]) -> str:
    """One sentence: what each pin replaced, which parameters left, what is still searched."""
    said = []
    for key in pins:
        dist = after.params[key].dist
        now = f"{key}={fmt(dist.value)}" if isinstance(dist, Constant) else f"{key} {dist}"
        old = before.params.get(key)
        said.append(f"{now} ({'was ' + str(old.dist) if old else 'not in the space'})")
    text = f"pinned on the command line for every trial: {', '.join(said)}"
    gone = [k for k in before.params if k not in after.params]
    if gone:
        text += f"; inactive under the pins, so not searched: {', '.join(gone)}"
    searched = after.searched
    if not searched:
        return f"{text}; nothing is left to search: one configuration"
    return f"{text}; space {after.name} searches {', '.join(searched)}"
