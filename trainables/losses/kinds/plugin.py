"""`loss=package.module:name`: a researcher's own loss kind, registered like the built-in ones.

The object the reference names is either

- a `LossKind` (full control: `prepare`, `same_as`, `fused`), registered with its per-sample
  function checked; or
- a function `fn(logits (N, C) float, target (N,) int64, params) -> ℓ (N,)`, the per-sample loss
  (`params`: the trial's flat config; on multi-task data the task's own values as loss.<field>),
  with optional attributes `name` (the value of `loss.kind`; default `fn.__name__`), `params` (its
  own keys, `trainables.params.Param`s named `loss.<field>`) and `same_as` (values → the kind it
  trains identically to, as `LossKind.same_as`). A function that needs per-trial constants from
  the training counts is written as a `LossKind` with `prepare`.

Either way the per-sample function is checked on every call to return a float (N,) tensor (a
LossKind's `fused` form, which replaces it where given, is not), and the harness applies the
sample and class weights, multi-task data and the mean over the batch as for every kind (`trainables.losses.kinds.registry.weighted_loss`). The name must be an identifier that
is not a built-in kind's. Loading again (each worker does) finds the same kind registered: a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from trainables.errors import UserInputError
from trainables.losses.kinds.registry import (
    LOSS_KINDS,
    LossKind,
    is_built_in,
    register_loss_kind,
)
from trainables.params import Param
from trainables.plugins import import_object

KEY = "loss"  # the command-line key: loss=package.module:name
NOT_READ = ("prepare", "fused")  # a function's attributes that only a LossKind carries


@dataclass(frozen=True)
class Checked:
    """A plug-in's per-sample function (with `context`: a LossKind's, else fn(logits, target,
    params)), refusing anything but a float tensor of shape (N,) with one line naming `ref`."""

    fn: Callable[..., Any]
    ref: str
    context: bool

    def __call__(
        self, logits: Tensor, target: Tensor, params: Mapping[str, Any], ctx: Any
    ) -> Tensor:
        out = (
            self.fn(logits, target, params, ctx)
            if self.context
            else self.fn(logits, target, params)
        )
        n = target.shape[0]
        if not (isinstance(out, Tensor) and out.is_floating_point() and tuple(out.shape) == (n,)):
            got = (
                f"a {out.dtype} tensor of shape {tuple(out.shape)}"
                if isinstance(out, Tensor)
                else f"a {type(out).__name__}"
            )
            raise UserInputError(
                f"{KEY}={self.ref}: returned {got} for logits of shape {tuple(logits.shape)}; "
                f"expected the per-sample losses, a float tensor of shape ({n},)"
            )
        return out


def load_loss_kind(ref: str) -> LossKind:
    """The loss kind `ref` names, registered (a value of loss.kind, its keys trial keys); a
    UserInputError naming `loss=ref` when it cannot be loaded or registered."""
    where = f"{KEY}={ref}"
    obj = import_object(ref, KEY)
    if isinstance(obj, LossKind):
        kind = replace(obj, per_sample=Checked(obj.per_sample, ref, context=True))
    elif callable(obj):
        kind = _from_function(obj, ref)
    else:
        raise UserInputError(
            f"{where}: an object of type {type(obj).__name__}, neither a "
            "trainables.losses.kinds.LossKind nor a function fn(logits, target, params) -> "
            "per-sample loss"
        )
    name = kind.name
    if not isinstance(name, str) or not name.isidentifier():
        raise UserInputError(f"{where}: its name {name!r} (loss.kind's value) is not an identifier")
    if is_built_in(name):
        raise UserInputError(
            f"{where}: its name {name!r} is a built-in loss kind's; give it another (the "
            "function's `name` attribute, or the LossKind's name)"
        )
    known = LOSS_KINDS.get(name)
    if known is not None and (known is obj or known == kind):  # loaded before, or self-registered
        return known
    if known is not None:
        raise UserInputError(f"{where}: loss kind {name!r} is already registered by other code")
    if not all(isinstance(p, Param) for p in kind.params):
        raise UserInputError(f"{where}: params must be a list of trainables.params.Param")
    try:
        register_loss_kind(kind)
    except UserInputError as e:
        raise UserInputError(f"{where}: {e}") from None
    return kind


def _from_function(fn: Callable[..., Any], ref: str) -> LossKind:
    """The LossKind of a plain per-sample function and its optional attributes."""
    where = f"{KEY}={ref}"
    for attr in NOT_READ:
        if hasattr(fn, attr):
            raise UserInputError(
                f"{where}: a function's {attr!r} is not read; write a "
                "trainables.losses.kinds.LossKind for it"
            )
    params = getattr(fn, "params", ())
    if not isinstance(params, list | tuple):
        raise UserInputError(f"{where}: params must be a list of trainables.params.Param")
    doc = (getattr(fn, "__doc__", None) or "").strip().split("\n")[0] or f"the plug-in {ref}"
    same_as = getattr(fn, "same_as", None)
    return LossKind(
        getattr(fn, "name", getattr(fn, "__name__", "")),
        doc,
        Checked(fn, ref, context=False),
        tuple(params),
        **({"same_as": same_as} if same_as is not None else {}),
    )
