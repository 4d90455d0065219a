"""Loss kinds: the values of `loss.kind`, one module each, in one registry.

    from trainables.losses.kinds import LossKind, register_loss_kind
    register_loss_kind(LossKind("apl", "…", per_sample, params=(BETA,)))

`trainables.losses.trial_loss` computes a trial's loss through the registry, `trainables.canonical`
reads the kinds' keys' relevance and their `same_as` rules, and `--help`, the docs and the
space compiler see the keys in `trainables.params.PARAMS`. Built in: `ce`, `focal`,
`label_smoothing`, `logit_adjustment`, `balanced_softmax`, `poly1`, `ldam`, `gce`, `sce`
(docs/guide/losses.md).
"""

from trainables.losses.kinds.balanced_softmax import BALANCED_SOFTMAX
from trainables.losses.kinds.ce import CE
from trainables.losses.kinds.focal import FOCAL
from trainables.losses.kinds.gce import GCE
from trainables.losses.kinds.label_smoothing import LABEL_SMOOTHING
from trainables.losses.kinds.ldam import LDAM
from trainables.losses.kinds.logit_adjustment import LOGIT_ADJUSTMENT
from trainables.losses.kinds.poly1 import POLY1
from trainables.losses.kinds.registry import (
    LOSS_KINDS,
    LossKind,
    loss_kind,
    register_loss_kind,
    unregister_loss_kind,
    weighted_loss,
    weighted_mean,
)
from trainables.losses.kinds.sce import SCE

# the built-in kinds, one module each: a new one is its module and one entry here
BUILT_IN = (CE, FOCAL, LABEL_SMOOTHING, LOGIT_ADJUSTMENT, BALANCED_SOFTMAX, POLY1, LDAM, GCE, SCE)
BUILT_IN_KINDS = tuple(kind.name for kind in BUILT_IN)
for _kind in BUILT_IN:
    register_loss_kind(_kind, built_in=True)

__all__ = [
    "BUILT_IN_KINDS",
    "LOSS_KINDS",
    "LossKind",
    "loss_kind",
    "register_loss_kind",
    "unregister_loss_kind",
    "weighted_loss",
    "weighted_mean",
]
