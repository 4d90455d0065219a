"""The trial's parameters: every key a trial understands, its default, type and allowed values.

This registry is the single source of truth for trial keys: the space compiler rejects keys that are
not here, and `TrialParams.from_flat` validates a flat `{dotted.key: value}` config against it. Each
key says when it can change training (`Param.when`), which `trainables.canonical` reads. `loss.kind`'s
choices and the loss kinds' own keys (loss.gamma, …) come from `trainables.losses.kinds`, which
registers the built-in kinds when `trainables` is imported.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

GRANULARITIES = ("repository", "subsystem", "package")
ALPHA_RULES = ("inverse_frequency", "sqrt_inverse_frequency")  # and "effective:<beta>"
STRATEGIES = ("none", "aco", "rso", "avg", "max")
MISSING_POLICIES = ("default", "impute", "min", "skip")
OPTIMIZERS = ("adamw", "sgd")
DISTILL_KINDS = ("none", "kl", "jsd")
WEIGHTINGS = ("uniform", "inverse_accuracy", "inverse_f1", "difficulty", "uncertainty")
ELF_ON = tuple(s for s in STRATEGIES if s != "none")
FILLS = ("default", "impute", "min")  # missing policies that can read elf.default_aco/rso
WITH_ELF = (("elf.strategy", ELF_ON),)  # every elf.* key but the strategy: with ELF only
WITH_DISTILL = (("distill.kind", DISTILL_KINDS[1:]),)
# cleanlab's label-quality scores (cleanlab.rank.get_label_quality_scores methods); none: off
LQ_METHODS = ("none", "self_confidence", "normalized_margin", "confidence_weighted_entropy")
LQ_ON = LQ_METHODS[1:]  # the order of the columns of Split.quality
WITH_LQ = (("lq.method", LQ_ON),)

When = tuple[tuple[str, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class Param:
    """One trial parameter: `kind` is float, int, bool, str (one of `choices`), text (any string),
    float_or_none or alpha (see `_check_alpha`).

    `when` says when the key can affect training: ((parent, values), ...), every parent set to one
    of its values (and itself relevant); empty: always. `trainables.canonical` drops a key whose
    `when` does not hold, so two configs that differ only there are one configuration."""

    key: str
    default: Any
    kind: str
    doc: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    when: When = ()

    def check(self, value: Any) -> Any:
        """Return `value` coerced to this parameter's type, or raise ValueError saying what was expected."""
        if self.kind == "float_or_none" and value is None:
            return None
        if self.kind == "alpha":
            return _check_alpha(self, value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.key}: expected true or false, got {value!r}")
            return value
        if self.kind == "text":
            if not isinstance(value, str):
                raise ValueError(f"{self.key}: expected a string, got {value!r}")
            return value
        if self.kind == "str":
            if value not in (self.choices or ()):
                raise ValueError(
                    f"{self.key}: expected one of {list(self.choices or ())}, got {value!r}"
                )
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            expected = {
                "int": "an integer",
                "float": "a number",
                "float_or_none": "a number or null",
            }
            raise ValueError(f"{self.key}: expected {expected[self.kind]}, got {value!r}")
        if self.kind == "int":
            if int(value) != value:
                raise ValueError(f"{self.key}: expected an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ValueError(
                f"{self.key}: expected a value in [{self.low}, {self.high}], got {value!r}"
            )
        return value


def _check_alpha(param: Param, value: Any) -> Any:
    """Focal α as written: null, a number in [0, 1], a rule name, or a list of per-class values."""
    if value is None:
        return None
    if isinstance(value, str):
        beta = value.removeprefix("effective:")
        if value in ALPHA_RULES or (beta != value and _is_beta(beta)):
            return value
    elif isinstance(value, list | tuple):
        ok = len(value) >= 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value
        )
        if ok and any(v > 0 for v in value):
            return tuple(float(v) for v in value)
    elif isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ValueError(
        f"{param.key}: expected null, a number in [0, 1] (two classes), one of "
        f"{list(ALPHA_RULES)}, effective:<beta> with 0 < beta < 1, or a list of per-class values "
        f">= 0, got {value!r}"
    )


def _is_beta(text: str) -> bool:
    try:
        return 0 < float(text) < 1
    except ValueError:
        return False


def _p(key: str, default: Any, kind: str, doc: str, **kw: Any) -> Param:
    return Param(key, default, kind, doc, **kw)


PARAMS: dict[str, Param] = {
    p.key: p
    for p in [
        _p("seed", 0, "int", "Seed for model init, batching and sampling.", low=0),
        # Loss
        # its choices and the loss.<field> keys after it: the kinds of trainables.losses.kinds
        _p("loss.kind", "ce", "str", "Per-sample loss (trainables.losses.kinds).", choices=()),
        _p(
            "task.weighting",
            "uniform",
            "str",
            "Multi-task data: how the tasks' losses are weighed (trainables.losses.multitask).",
            choices=WEIGHTINGS,
        ),
        # Experience-aware (ELF) sample weights
        _p(
            "elf.strategy",
            "none",
            "str",
            "ω = e^(1+o) with o = aco, rso, their mean or max.",
            choices=STRATEGIES,
        ),
        _p(
            "elf.granularity",
            "package",
            "str",
            "Ownership granularity.",
            choices=GRANULARITIES,
            when=WITH_ELF,
        ),
        _p(
            "elf.missing",
            "default",
            "str",
            "Policy for missing ownership.",
            choices=MISSING_POLICIES,
            when=WITH_ELF,
        ),
        _p(
            "elf.default_aco",
            0.05,
            "float",
            "aco used by missing=default.",
            low=0,
            high=1,
            when=(("elf.strategy", ("aco", "avg", "max")), ("elf.missing", FILLS)),
        ),
        _p(
            "elf.default_rso",
            0.10,
            "float",
            "rso used by missing=default.",
            low=0,
            high=1,
            when=(("elf.strategy", ("rso", "avg", "max")), ("elf.missing", FILLS)),
        ),
        _p(
            "elf.normalize",
            "none",
            "str",
            "mean: elf.clip_min/clip_max are multiples of the mean training weight (the weights "
            "keep their scale); without a clip bound it changes nothing.",
            choices=("none", "mean"),
            when=WITH_ELF,
        ),
        _p(
            "elf.clip_min",
            None,
            "float_or_none",
            "Lower clip of weights (none: no clip).",
            low=0,
            when=WITH_ELF,
        ),
        _p(
            "elf.clip_max",
            None,
            "float_or_none",
            "Upper clip of weights (none: no clip).",
            low=0,
            when=WITH_ELF,
        ),
        _p(
            "elf.batch_norm",
            False,
            "bool",
            "Per-batch 1.25 + 0.75·tanh((w − mean)/(std + 1e-8)), before the warm-up.",
            when=WITH_ELF,
        ),
        _p(
            "elf.warmup_frac",
            0.0,
            "float",
            "Curriculum warm-up: the applied weights move from their mean to themselves over the "
            "first warmup_frac·(max_epochs − 1) epochs (0: no warm-up).",
            low=0,
            high=1,
            when=WITH_ELF,
        ),
        # Label-quality sample weights (trainables.losses.quality_weights), ELF's competitor
        _p(
            "lq.method",
            "none",
            "str",
            "cleanlab label-quality score q of each training label, from out-of-fold predicted "
            "probabilities (trainables.data.label_quality); none: no label-quality weights.",
            choices=LQ_METHODS,
        ),
        _p(
            "lq.power",
            1.0,
            "float",
            "κ: ω = q^κ / mean over the training split of q^κ (0: uniform, i.e. lq.method none).",
            low=0,
            high=16,
            when=WITH_LQ,
        ),
        # Distillation (needs distill.teacher)
        _p(
            "distill.kind",
            "none",
            "str",
            "Distillation term: none, KL(teacher_T ‖ student_T) or their Jensen–Shannon divergence.",
            choices=DISTILL_KINDS,
        ),
        _p(
            "distill.weight",
            0.5,
            "float",
            "λ: loss = (1 − λ)·task loss + λ·T²·D (distill.kind not none).",
            low=0,
            high=1,
            when=WITH_DISTILL,
        ),
        _p(
            "distill.temperature",
            2.0,
            "float",
            "T: both distributions are softmax(logits / T) in the distillation term.",
            low=0.05,
            high=100,
            when=WITH_DISTILL,
        ),
        # Class weights
        _p("cw.method", "none", "str", "Class weights.", choices=("none", "balanced", "effective")),
        _p(
            "cw.beta",
            0.999,
            "float",
            "β of the effective number of samples.",
            low=0,
            high=0.999999,
            when=(("cw.method", ("effective",)),),
        ),
        _p(
            "cw.cap",
            None,
            "float_or_none",
            "Bound on max/min class weight ratio.",
            low=1,
            when=(("cw.method", ("balanced", "effective")),),
        ),
        # Training
        _p("train.balanced_sampling", False, "bool", "Sample training batches class-balanced."),
        _p(
            "train.optimizer",
            "adamw",
            "str",
            "torch.optim.AdamW (invariant to a constant loss scale, up to ε) or torch.optim.SGD "
            "with momentum (where the loss scale acts as a learning rate).",
            choices=OPTIMIZERS,
        ),
        _p("train.lr", 3e-3, "float", "Learning rate.", low=1e-7, high=1.0),
        _p(
            "train.weight_decay",
            1e-4,
            "float",
            "Weight decay (AdamW: decoupled; SGD: L2 added to the gradient).",
            low=0,
            high=1.0,
        ),
        _p(
            "train.momentum",
            0.9,
            "float",
            "SGD momentum (sgd only).",
            low=0,
            high=0.999,
            when=(("train.optimizer", ("sgd",)),),
        ),
        _p("train.batch_size", 256, "int", "Training batch size.", low=1),
        _p("train.max_epochs", 12, "int", "Epoch budget (ASHA's max_t).", low=1),
        _p(
            "train.checkpoint_every_s",
            5.0,
            "float",
            "Least seconds between two checkpoints of a trial under Ray (0: every epoch).",
            low=0,
        ),
        # Model
        _p("model.hidden", 128, "int", "Hidden width of the MLP.", low=1),
        _p("model.layers", 2, "int", "Hidden layers of the MLP.", low=1, high=8),
        _p("model.dropout", 0.1, "float", "Dropout probability.", low=0, high=0.9),
        _p("model.embed_dim", 32, "int", "EmbeddingBag width for text ids.", low=1),
        _p(
            "model.encoder_lr",
            2e-5,
            "float",
            "Learning rate of the sentence encoder (model=text mode=finetune; the head: train.lr).",
            low=1e-8,
            high=1.0,
        ),
    ]
}


# The plain cross-entropy recipe (the search's baseline): no loss reshaping, weights or sampling.
PLAIN_CE = {
    "loss.kind": "ce",
    "elf.strategy": "none",
    "cw.method": "none",
    "train.balanced_sampling": False,
    "task.weighting": "uniform",
    "distill.kind": "none",
    "lq.method": "none",
}
# The family of the configurations that depart from PLAIN_CE at each of its keys; loss.kind's are
# named for their kind (focal, ldam, …: each loss kind is a family of its own).
FAMILY_OF = {
    "elf.strategy": "elf",
    "cw.method": "cw",
    "train.balanced_sampling": "balanced_sampling",
    "task.weighting": "task_weighting",
    "distill.kind": "distill",
    "lq.method": "lq",
}


def is_plain_ce(params: Mapping[str, Any]) -> bool:
    """True when flat `params` train with unweighted, unsampled cross-entropy (absent: defaults),
    every task's loss.<task>.kind included."""
    plain = all(params.get(k, PARAMS[k].default) == v for k, v in PLAIN_CE.items())
    return plain and all(params[k] == "ce" for k in _task_kinds(params))


def families(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The families `params` belongs to: its loss kind (and each task's) other than ce, and
    FAMILY_OF's name of every other PLAIN_CE key it departs from; () for plain CE."""
    kinds = [params.get("loss.kind", "ce"), *(params[k] for k in _task_kinds(params))]
    out = dict.fromkeys(k for k in kinds if k != "ce")
    for key, family in FAMILY_OF.items():
        if params.get(key, PARAMS[key].default) != PLAIN_CE[key]:
            out[family] = None
    return tuple(out)


def pair_of(text: str) -> tuple[str, str]:
    """confirm.versus's `a:b` as (a, b) (b empty without a colon)."""
    a, _, b = str(text).partition(":")
    return a, b


def family_names() -> tuple[str, ...]:
    """Every family name: the registered loss kinds but ce, then FAMILY_OF's."""
    return (*(k for k in PARAMS["loss.kind"].choices if k != "ce"), *FAMILY_OF.values())


def as_plain_ce(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with the plain cross-entropy recipe (every loss.<task>.kind ce) and without the
    loss kinds' settings (loss.gamma, …), distillation and label-quality settings it no longer
    reads."""
    kinds = tuple(f"loss.{f}" for f in task_fields() if f != "kind")
    unread = (*kinds, "distill.weight", "distill.temperature", "lq.power")
    focal = [k for k in params if k in unread or task_of(k)]
    kept = {k: v for k, v in params.items() if k not in focal}
    return kept | PLAIN_CE | dict.fromkeys(_task_kinds(params), "ce")


def _task_kinds(params: Mapping[str, Any]) -> list[str]:
    """The loss.<task>.kind keys of `params`."""
    return [k for k in params if (task_of(k) or ("", ""))[1] == "kind"]


def task_fields() -> tuple[str, ...]:
    """The fields a task can set for itself as loss.<task>.<field> (multi-task data): kind and
    every registered loss kind's loss.<field> keys (gamma, alpha, …)."""
    return tuple(k[5:] for k in PARAMS if k.startswith("loss.") and k.count(".") == 1)


def task_key(task: str, name: str) -> str:
    """The key of task `task`'s own loss setting `name` (kind, gamma, alpha, …)."""
    return f"loss.{task}.{name}"


def task_of(key: str) -> tuple[str, str] | None:
    """(task, field) of a loss.<task>.<field> key, else None."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "loss" and parts[1] and f"loss.{parts[2]}" in PARAMS:
        return parts[1], parts[2]
    return None


def param(key: str) -> Param | None:
    """The registered parameter `key`, or for loss.<task>.<field> one task's copy of loss.<field>
    (absent, the task takes loss.<field>); None for an unknown key."""
    if key in PARAMS:
        return PARAMS[key]
    found = task_of(key)
    if found is None:
        return None
    base = PARAMS[f"loss.{found[1]}"]
    return replace(base, key=key, doc=f"Task {found[0]} only (else loss.{found[1]}): {base.doc}")


def task_params(params: TrialParams, task: str) -> TrialParams:
    """`params` with task `task`'s own loss.<task>.* values as loss.kind, loss.gamma, …"""
    keys = {f"loss.{f}": task_key(task, f) for f in task_fields()}
    own = {k: params.values[t] for k, t in keys.items() if t in params.values}
    return TrialParams(params.values | own)


def closest(name: str, names: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean: a, b?)' suffix naming the closest valid names, or ''."""
    near = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(near)}?)" if near else ""


@dataclass(frozen=True)
class TrialParams:
    """A validated, complete flat trial config: every key of PARAMS with a checked value."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> TrialParams:
        """Validate `flat` (unknown keys are an error) and fill defaults for missing keys."""
        values = {k: p.default for k, p in PARAMS.items()}
        for key, value in flat.items():
            known = param(key)
            if known is None:
                raise ValueError(f"unknown trial parameter {key!r}{closest(key, tuple(PARAMS))}")
            values[key] = known.check(value)
        return cls(values)
