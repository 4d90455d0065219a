"""User code by reference: `package.module:name` imported where it runs, its own keys registered.

`model=`, `trainable=` and `loss=` name such code (a loss is registered as a loss kind,
`trainables.losses.kinds.plugin`). A model factory or a trainable may declare the trial keys it reads as an attribute `params`, a
sequence of `trainables.params.Param`; they are validated, searched and logged like the built-in
keys. The module must be importable where trials run: the current directory and PYTHONPATH are,
locally; on a cluster it must be installed on every node (or shipped with Ray's runtime_env).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainables.errors import UserInputError
from trainables.params import PARAMS, Param

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # model=text's sentence encoder
Trainable = Callable[[Any], None]  # function(ctx: trainables.trial.context.TrialContext) -> None


def is_reference(name: str) -> bool:
    """True for a `package.module:name` reference (registry names have no colon)."""
    return ":" in name


def load_object(ref: str, key: str) -> Callable[..., Any]:
    """The callable `ref` = `package.module:name` names, with its declared `params` registered;
    a UserInputError naming `key` when it cannot be imported or is not callable."""
    obj = import_object(ref, key)
    if not callable(obj):
        module_name, _, attr = ref.partition(":")
        raise UserInputError(
            f"{key}={ref}: {attr} in {module_name} is a {type(obj).__name__}, not callable"
        )
    register(getattr(obj, "params", ()), f"{key}={ref}")
    return obj


def import_object(ref: str, key: str) -> Any:
    """The object `ref` = `package.module:name` names; a UserInputError naming `key` when the
    reference is malformed, the module cannot be imported or does not hold the name."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise UserInputError(f"{key}={ref}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module: any import-time error is theirs to see
        raise UserInputError(
            f"{key}={ref}: cannot import {module_name} ({type(e).__name__}: {e}); it must be "
            "importable from the current directory or PYTHONPATH"
        ) from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise UserInputError(f"{key}={ref}: {attr} in {module_name} is not found")
    return obj


def register(params: Any, owner: str) -> None:
    """Add a plug-in's declared Params to the trial-key registry (again: a no-op)."""
    if not isinstance(params, list | tuple) or not all(isinstance(p, Param) for p in params):
        raise UserInputError(f"{owner}: params must be a list of trainables.params.Param")
    for p in params:
        known = PARAMS.get(p.key)
        if known is not None and known != p:
            raise UserInputError(f"{owner}: declares {p.key!r}, which is already a trial key")
        try:
            p.check(p.default)  # a default outside its own bounds is the plug-in's bug, said now
        except ValueError as e:
            raise UserInputError(f"{owner}: the default of {e}") from None
        PARAMS[p.key] = p


@dataclass(frozen=True)
class Plugins:
    """What trains a trial: `model=` (a registry name or pkg.mod:factory), `trainable=` (empty:
    the built-in loop), for model=text finetune the sentence encoder's name, and `loss=` (empty:
    the built-in loss kinds only; else pkg.mod:name, a loss kind registered in every process that
    builds a loss). Plain data: `trainables.trial.loop.load_trainable` imports them (this module
    imports neither the models, the losses nor the trial loop, so they can import it)."""

    model: str = "mlp"
    trainable: str = ""
    encoder: str = ""
    loss: str = ""


BUILT_IN = Plugins()  # the MLP trained by the built-in loop
