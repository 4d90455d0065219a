"""The loss-kind registry: one `LossKind` per value of `loss.kind`, and the functions that add one.

A kind declares its per-sample function, its own trial keys (`loss.<field>` Params: relevant only
under this kind, per task on multi-task data) and, optionally, what it needs from the training
counts (`prepare`), the kind it trains identically to for some values (`same_as`, a canonical
rule: a kind name, or the name and that kind's loss.<field> values), a faster fused form of the
weighted mean (`fused`) and what changes of the context from epoch to epoch (`at_epoch`: LDAM's
deferred re-weighting). `register_loss_kind` keeps
`trainables.params.PARAMS` in step: `loss.kind`'s choices and the kinds' keys with their `when`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from trainables.errors import UserInputError
from trainables.losses.weights import batch_normalize
from trainables.params import PARAMS, Param, closest

# (logits (N, C) float, target (N,), the trial's flat params, prepare's context) -> loss (N,)
PerSample = Callable[[Tensor, Tensor, Mapping[str, Any], Any], Tensor]
# (logits, target, sample_w (N,) | None, class_w (C,) | None, params, context, batch_norm) -> scalar
Fused = Callable[
    [Tensor, Tensor, Tensor | None, Tensor | None, Mapping[str, Any], Any, bool], Tensor
]


def _no_context(params: Mapping[str, Any], counts: Tensor, classes: Sequence[str]) -> None:
    return None


# a kind's name, or (name, {loss.<field>: value}) when the other kind needs its keys set too
SameAs = str | tuple[str, Mapping[str, Any]] | None


def _distinct(values: Mapping[str, Any]) -> SameAs:
    return None


def _every_epoch(context: Any, epoch: int, params: Mapping[str, Any]) -> Any:
    return context


@dataclass(frozen=True)
class LossKind:
    """One loss kind: `loss.kind=<name>`.

    - `per_sample(logits, target, params, context)`: ℓ (N,) for logits (N, C) and class ids (N,);
      `params` is the trial's flat config (on multi-task data with the task's own loss.<field>
      values as loss.<field>), `context` what `prepare` returned.
    - `params`: the kind's own keys, each `loss.<field>`; two kinds may share one (declared
      alike). Their `when` gets `loss.kind` in the kinds that declare them.
    - `prepare(params, counts, classes)`: the per-trial constants from the training counts (K,),
      e.g. focal's α vector; raises UserInputError for values the data cannot take (a search
      refuses them before any trial).
    - `same_as(values)`: the kind that trains bit-identically for these loss.* values (the
      kind's view: loss.kind, the loss.<field> keys and train.max_epochs), or None; `canonical`
      merges them. Either its name (focal → "ce"), or (name, {loss.<field>: value, …}) when the
      other kind's keys must be set too (balanced_softmax → ("logit_adjustment", {"loss.tau":
      1.0})); the name may be the kind's own, to set a representative value (ldam's drw_frac).
    - `fused`: the weighted mean over the batch in fewer ops (must equal the generic form).
    - `at_epoch(context, epoch, params)`: the context of epoch `epoch` (from 0), given what
      `prepare` returned; identity by default. `TrialLoss.epoch` calls it for every kind, built
      in or registered, and so does multi-task data through each task's TrialLoss.
    """

    name: str
    doc: str
    per_sample: PerSample
    params: tuple[Param, ...] = ()
    prepare: Callable[[Mapping[str, Any], Tensor, Sequence[str]], Any] = _no_context
    same_as: Callable[[Mapping[str, Any]], SameAs] = _distinct
    fused: Fused | None = None
    at_epoch: Callable[[Any, int, Mapping[str, Any]], Any] = _every_epoch


LOSS_KINDS: dict[str, LossKind] = {}
_BUILT_IN: set[str] = set()  # never unregistered: the kinds of trainables.losses.kinds


def register_loss_kind(kind: LossKind, built_in: bool = False) -> None:
    """Make `kind` a value of `loss.kind`, with its keys among the trial keys (again: a no-op);
    a UserInputError for a taken name or a key declared otherwise before. `built_in`: one of
    trainables.losses.kinds' own, which cannot be unregistered."""
    if LOSS_KINDS.get(kind.name) is kind:
        return
    if kind.name in LOSS_KINDS:
        raise UserInputError(f"loss kind {kind.name!r} is already registered")
    if not kind.name.isidentifier():
        raise UserInputError(f"loss kind {kind.name!r}: a name is a Python identifier")
    for p in kind.params:
        field = p.key.removeprefix("loss.")
        if field == p.key or "." in field or field == "kind" or not field.isidentifier():
            raise UserInputError(
                f"loss kind {kind.name}: its key {p.key!r} must be loss.<field> (not loss.kind)"
            )
        known = _declared().get(p.key)
        if known is not None and replace(known, when=()) != replace(p, when=()):
            raise UserInputError(f"loss kind {kind.name}: {p.key} is declared otherwise by a kind")
        try:
            p.check(p.default)
        except ValueError as e:
            raise UserInputError(f"loss kind {kind.name}: the default of {e}") from None
    LOSS_KINDS[kind.name] = kind
    if built_in:
        _BUILT_IN.add(kind.name)
    _sync()


def is_built_in(name: str) -> bool:
    """`name` is a kind of trainables.losses.kinds (not a user's)."""
    return name in _BUILT_IN


def unregister_loss_kind(name: str) -> None:
    """Undo `register_loss_kind` for `name` (its keys go when no other kind declares them)."""
    if is_built_in(name):
        raise UserInputError(f"loss kind {name!r} is built in")
    if LOSS_KINDS.pop(name, None) is not None:
        _sync()


def loss_kind(name: str) -> LossKind:
    """The registered kind `name`; a ValueError listing the registry's kinds otherwise."""
    kind = LOSS_KINDS.get(name)
    if kind is None:
        raise ValueError(
            f"unknown loss kind {name!r}{closest(name, tuple(LOSS_KINDS))}: expected one of "
            f"{list(LOSS_KINDS)}"
        )
    return kind


def weighted_loss(
    logits: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    *,
    kind: str,
    params: Mapping[str, Any],
    context: Any = None,
    batch_norm: bool = False,
) -> Tensor:
    """Scalar mean over the batch of ω_i·cw[y_i]·ℓ_i, ℓ the kind's per-sample loss (its fused
    form where it has one); ω batch_normalize'd first when batch_norm; weights get no gradient."""
    k = loss_kind(kind)
    if k.fused is not None:
        return k.fused(logits, target, sample_w, class_w, params, context, batch_norm)
    return weighted_mean(
        k.per_sample(logits, target, params, context), target, sample_w, class_w, batch_norm
    )


def weighted_mean(
    loss: Tensor,
    target: Tensor,
    sample_w: Tensor | None,
    class_w: Tensor | None,
    batch_norm: bool = False,
) -> Tensor:
    """Scalar mean over the batch of ω_i·cw[y_i]·ℓ_i for per-sample losses ℓ (N,): the generic
    form of `weighted_loss` (a kind's `fused` may fall back to it)."""
    if class_w is not None:
        loss = loss * class_w.to(loss.device, loss.dtype)[target]
    if sample_w is not None:
        omega = sample_w.detach().to(loss.device, loss.dtype)
        loss = loss * (batch_normalize(omega) if batch_norm else omega)
    return loss.mean()


def _declared() -> dict[str, Param]:
    """Every kind's keys, the first declaration of each."""
    out: dict[str, Param] = {}
    for kind in LOSS_KINDS.values():
        for p in kind.params:
            out.setdefault(p.key, p)
    return out


def _sync() -> None:
    """PARAMS with loss.kind's choices and, right after it, every kind's keys relevant under the
    kinds that declare them (the dict is updated in place: modules hold it by reference)."""
    block = {"loss.kind": replace(PARAMS["loss.kind"], choices=tuple(LOSS_KINDS))}
    for key, p in _declared().items():
        users = tuple(k.name for k in LOSS_KINDS.values() if any(q.key == key for q in k.params))
        other = tuple((parent, v) for parent, v in p.when if parent != "loss.kind")
        block[key] = replace(p, when=(("loss.kind", users), *other))
    items = list(PARAMS.items())
    at = [k for k, _ in items].index("loss.kind")
    rest = [(k, p) for k, p in items[at:] if not (k.startswith("loss.") and k.count(".") == 1)]
    PARAMS.clear()
    PARAMS.update([*items[:at], *block.items(), *rest])
