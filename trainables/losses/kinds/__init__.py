"""Loss kinds: the values of `loss.kind`, one module each, in one registry.

    from trainables.losses.kinds import LossKind, register_loss_kind
    register_loss_kind(LossKind("poly1", "…", per_sample, params=(EPSILON,)))

`trainables.losses.trial_loss` computes a trial's loss through the registry, `trainables.canonical`
reads the kinds' keys' relevance and their `same_as` rules, and `--help`, the docs and the
space compiler see the keys in `trainables.params.PARAMS`. Built in: `ce`, `focal`.
"""

from trainables.losses.kinds.ce import CE
from trainables.losses.kinds.focal import FOCAL
from trainables.losses.kinds.registry import (
    LOSS_KINDS,
    LossKind,
    loss_kind,
    register_loss_kind,
    unregister_loss_kind,
    weighted_loss,
)

for _kind in (CE, FOCAL):
    register_loss_kind(_kind)

__all__ = [
    "LOSS_KINDS",
    "LossKind",
    "loss_kind",
    "register_loss_kind",
    "unregister_loss_kind",
    "weighted_loss",
]
