"""One canonical form per training configuration, so that a search can skip repeats.

`canonical(params, data=...)` first validates the config as written (`validate`: the same errors a
trial raises), then rewrites it to the representative of the configurations that train
bit-identically on this code and data.
Rules (missing keys read as their PARAMS default):
- a key that cannot affect training given the others is dropped (its `Param.when` in the
  registry, plug-ins' and loss kinds' keys included: e.g. loss.gamma unless loss.kind is focal;
  every elf.* key when elf.strategy is none: the trial then applies no weight transform at all);
- a loss kind that trains as another for its values is that kind, with the keys the rule sets
  (`LossKind.same_as`: focal with γ = 0 and α = null, label_smoothing with ε = 0,
  logit_adjustment with τ = 0, poly1 with ε = 0, gce with q = 0 and ldam with no margin, scale 1
  and no re-weighting are cross-entropy; balanced_softmax is logit_adjustment with τ = 1; sce
  with α = 1 is poly1 with ε = 4β, with α = 0 and β = 1/4 gce with q = 1; ldam's drw_frac is
  one value per epoch the re-weighting starts at);
- effective-number class weights with β = 0 are all (1 − 0^n)/(1 − 0) = 1, i.e. no class weights;
- a clip bound that moves no training weight is null: with the data, computed on the training
  weights themselves; without it, for elf.normalize none, bounds outside [e, e²] (ω = e^(1+o));
- elf.normalize mean only makes the clip bounds relative to the mean weight: without a clip bound
  it is `none`;
- a warm-up whose ramp is 0 at the first epoch and 1 from the second (warmup_frac·(E − 1) ≤ 1) is
  one configuration; with a one-epoch budget the warm-up is off.
With the data (`Dataset`, see `DataFacts`), also:
- a granularity or missing-value policy that gives the same training weights (and clipped mask)
  as another trains as the first of them in WEIGHT_ORDERS (finest granularity; default, impute,
  min, skip): e.g. a granularity whose ownership columns copy another's, every policy where no
  training sample lacks ownership, or fills that a clip bound moves to the same value;
- where no training sample lacks that ownership, elf.missing and elf.default_* are dropped;
- a class-weight cap that the weights never reach (max/min ≤ cap) is null;
- distillation with λ = 0 is none: (1 − 0)·task + 0·D; without a teacher the distill.* keys go;
- label-quality weights with lq.power κ = 0 are q^0/mean(q^0) = 1, i.e. lq.method none; without
  label-quality scores (multi-task data, or none computed) the lq.* keys go;
- multi-task data: every task's loss.<task>.kind/gamma/alpha is written out (absent ones take
  loss.kind/gamma/alpha, which then go) and the kinds' rules apply per task; single-task data
  drops task.weighting.
A None for a key that cannot be None is the inactive marker of `search.param_space` and is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from trainables.data.dataset import Dataset, Split, granularity_index
from trainables.errors import UserInputError
from trainables.losses.functions import class_weights
from trainables.losses.kinds import loss_kind
from trainables.losses.weights import check_clip_bounds, train_weights
from trainables.params import (
    ELF_ON,
    GRANULARITIES,
    PARAMS,
    TrialParams,
    closest,
    families,
    param,
    task_fields,
    task_key,
    task_of,
)

# ω = e^(1+o), o ∈ [0, 1], before normalisation; float32 rounds e and e² to within ~1e-7 of the
# exact values (either side), so a clip counts as "outside" only beyond a relative slack of 1e-6
FLOAT32_SLACK = 1e-6
ELF_MIN, ELF_MAX = math.e * (1 - FLOAT32_SLACK), math.e**2 * (1 + FLOAT32_SLACK)
SIGNALS_READ = {"aco": ("aco",), "rso": ("rso",), "avg": ("aco", "rso"), "max": ("aco", "rso")}


def defaults() -> dict[str, Any]:
    """Every trial key's default, plug-ins' registered keys included."""
    return {k: p.default for k, p in PARAMS.items()}


MAX_PASSES = 8  # each pass can only remove keys or apply a one-way rewrite; 2 suffice in practice


@dataclass
class DataFacts:
    """What of the data decides equivalences: the training split's ownership columns and labels
    (no features, so it is small enough to travel inside the searcher), the class names, and the
    keys the chosen model never reads (`trainables.models.registry.ignored_keys`), with the reason."""

    train: Split
    classes: tuple[str, ...]
    ignored: Mapping[str, str] = field(default_factory=dict)
    tasks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # multi-task data
    _cache: dict[tuple, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, data: Dataset, ignored: Mapping[str, str] | None = None) -> DataFacts:
        t = data.train
        light = Split(t.x.new_empty((len(t), 0)), t.y, t.aco, t.rso)
        ignored = dict(ignored or {})
        if not data.tasks:
            ignored.setdefault("task.weighting", "the data has one label column")
        if t.teacher is None:
            why = "no distill.teacher gives the soft labels"
            ignored |= {k: why for k in ("distill.kind", "distill.weight", "distill.temperature")}
        if t.quality is None:
            why = (
                "label-quality weights read one label column"
                if data.tasks
                else "no label-quality scores were computed for the data"
            )
            ignored |= {k: why for k in ("lq.method", "lq.power")}
        return cls(light, data.classes, ignored, dict(data.tasks))

    def counts(self) -> torch.Tensor:
        return torch.bincount(self.train.y, minlength=len(self.classes))

    def labels(self) -> list[tuple[str, torch.Tensor, tuple[str, ...]]]:
        """(task, training counts, classes) per task; ("", counts, classes) for a single task."""
        if not self.tasks:
            return [("", self.counts(), self.classes)]
        return [
            (name, torch.bincount(self.train.y[:, t], minlength=len(c)), c)
            for t, (name, c) in enumerate(self.tasks.items())
        ]

    def _memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _column(self, signal: str, granularity: str) -> torch.Tensor:
        return getattr(self.train, signal)[:, granularity_index(granularity)]

    def same_columns(self, strategy: str, a: str, b: str) -> bool:
        """True when granularities a and b hold the same training values (NaN included) of every
        signal `strategy` reads."""
        return all(
            torch.equal(self._column(s, a).nan_to_num(-1.0), self._column(s, b).nan_to_num(-1.0))
            for s in SIGNALS_READ[strategy]
        )

    def copy_of(self, strategy: str, granularity: str) -> str:
        """The finest granularity whose columns are those of `granularity` (itself if none is)."""
        return self._memo(
            ("copy", strategy, granularity),
            lambda: next(
                g
                for g in reversed(GRANULARITIES)
                if g == granularity or self.same_columns(strategy, g, granularity)
            ),
        )

    def reads_any(self, strategy: str) -> bool:
        """True when some training sample has a value of a signal `strategy` reads."""
        return self._memo(
            ("reads", strategy),
            lambda: any(
                bool(getattr(self.train, s).isfinite().any()) for s in SIGNALS_READ[strategy]
            ),
        )

    def any_missing(self, strategy: str, granularity: str) -> bool:
        """True when some training sample lacks a signal `strategy` reads at `granularity`."""
        return self._memo(
            ("missing", strategy, granularity),
            lambda: any(
                bool(self._column(s, granularity).isnan().any()) for s in SIGNALS_READ[strategy]
            ),
        )

    def clip_moves(self, values: Mapping[str, Any], bound: str) -> bool:
        """True when `bound` (elf.clip_min or elf.clip_max) moves some training weight."""

        def compute() -> bool:
            one = {"elf.clip_min": None, "elf.clip_max": None, bound: values[bound]}
            params = TrialParams.from_flat(dict(values) | one)
            return bool(train_weights(self.train, params)[1].any())

        key = tuple(
            values[k] for k in sorted(values) if k.startswith("elf.") and k != _other(bound)
        )
        return self._memo(("clip", bound, key), compute)

    def weights(self, values: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The training ELF weights and clipped mask of the complete flat config `values`."""
        key = tuple(values[k] for k in sorted(values) if k.startswith("elf."))
        return self._memo(
            ("weights", key), lambda: train_weights(self.train, TrialParams.from_flat(dict(values)))
        )

    def cap_binds(self, method: str, beta: float, cap: float) -> bool:
        """True when cw.cap changes the class weights of the training counts."""

        def compute() -> bool:
            return any(
                not torch.equal(
                    class_weights(counts, method, beta, cap, classes),
                    class_weights(counts, method, beta, None),
                )
                for _, counts, classes in self.labels()
            )

        return self._memo(("cap", method, beta, cap), compute)


def _other(bound: str) -> str:
    return "elf.clip_max" if bound == "elf.clip_min" else "elf.clip_min"


NEEDS_MISSING = ("elf.missing", "elf.default_aco", "elf.default_rso")


def _nothing_missing(values: Mapping[str, Any], facts: DataFacts) -> bool:
    strategy = values["elf.strategy"]
    return strategy in ELF_ON and not facts.any_missing(strategy, values["elf.granularity"])


def relevant(key: str, values: Mapping[str, Any], facts: DataFacts | None = None) -> bool:
    """True when `key` can affect training given the complete flat config `values` (and data)."""
    if facts is not None and key in facts.ignored:
        return False
    task = task_of(key)
    if task is not None and task[1] != "kind":  # a task's γ, α, …: under its own kind
        kind = values.get(task_key(task[0], "kind"), values["loss.kind"])
        return all(
            (kind if parent == "loss.kind" else values[parent]) in allowed
            for parent, allowed in PARAMS[f"loss.{task[1]}"].when
        )
    if facts is not None and key in NEEDS_MISSING and _nothing_missing(values, facts):
        return False
    known = param(key)
    return all(
        values[parent] in allowed and relevant(parent, values, facts)
        for parent, allowed in (known.when if known is not None else ())
    )


Rule = Callable[[Mapping[str, Any], DataFacts | None], dict[str, Any]]


def _same_kind(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    """Each loss kind (and each task's) that trains as another kind for its values is that kind."""
    out = {}
    for prefix in ["loss.", *{f"loss.{t[0]}." for k in v if (t := task_of(k))}]:
        own = {f"loss.{f}": v.get(prefix + f) for f in task_fields()}
        own["train.max_epochs"] = v["train.max_epochs"]  # for an epoch-dependent rule
        if own["loss.kind"] is None:
            continue
        other = loss_kind(own["loss.kind"]).same_as(own)
        if other is None:
            continue
        name, keys = (other, {}) if isinstance(other, str) else other
        out[prefix + "kind"] = name
        out |= {prefix + key.removeprefix("loss."): value for key, value in keys.items()}
    return out


def _distill_off(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    return (
        {"distill.kind": "none"} if v["distill.kind"] != "none" and v["distill.weight"] == 0 else {}
    )


def _quality_power_zero(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    return {"lq.method": "none"} if v["lq.method"] != "none" and v["lq.power"] == 0 else {}


def _effective_beta_zero(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    return {"cw.method": "none"} if v["cw.method"] == "effective" and v["cw.beta"] == 0 else {}


def _cap_never_binds(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    if facts is None or v["cw.method"] == "none" or v["cw.cap"] is None:
        return {}
    return {} if facts.cap_binds(v["cw.method"], v["cw.beta"], v["cw.cap"]) else {"cw.cap": None}


# where these keys give the same training weights, the first value in this order represents them
WEIGHT_ORDERS = {
    "elf.granularity": tuple(reversed(GRANULARITIES)),
    "elf.missing": ("default", "impute", "min", "skip"),
}


def _same_weights(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    if facts is None or v["elf.strategy"] == "none":
        return {}
    mine = facts.weights(v)
    for key, order in WEIGHT_ORDERS.items():
        for candidate in order[: order.index(v[key])]:
            theirs = facts.weights(dict(v) | {key: candidate})
            if all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True)):
                return {key: candidate}
    return {}


def _clip_moves_nothing(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    if v["elf.strategy"] == "none":
        return {}
    out: dict[str, Any] = {}
    for bound in ("elf.clip_min", "elf.clip_max"):
        if v[bound] is None:
            continue
        if facts is not None:
            if not facts.clip_moves(v, bound):
                out[bound] = None
        elif v["elf.normalize"] == "none":
            outside = v[bound] <= ELF_MIN if bound == "elf.clip_min" else v[bound] >= ELF_MAX
            if outside:
                out[bound] = None
    return out


def _scale_only_normalize(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    unclipped = v["elf.clip_min"] is None and v["elf.clip_max"] is None
    return {"elf.normalize": "none"} if v["elf.normalize"] == "mean" and unclipped else {}


def _warmup_one_step(v: Mapping[str, Any], facts: DataFacts | None) -> dict[str, Any]:
    epochs, frac = v["train.max_epochs"], v["elf.warmup_frac"]
    if frac == 0:
        return {}
    if epochs == 1:
        return {"elf.warmup_frac": 0.0}
    if frac * (epochs - 1) > 1:
        return {}
    shortest = 1 / (epochs - 1)  # the representative: ramp 0, then 1
    return {
        "elf.warmup_frac": shortest if shortest * (epochs - 1) <= 1 else math.nextafter(shortest, 0)
    }


REWRITES: tuple[Rule, ...] = (
    _same_kind,
    _distill_off,
    _quality_power_zero,
    _effective_beta_zero,
    _cap_never_binds,
    _same_weights,
    _clip_moves_nothing,
    _scale_only_normalize,
    _warmup_one_step,
)


def _checked(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        known = param(key)
        if known is None:
            hint = closest(key, tuple(PARAMS))
            raise UserInputError(f"unknown trial key {key!r}{hint}")
        if value is None and known.kind not in ("float_or_none", "alpha"):
            continue
        if isinstance(value, float) and math.isnan(value):
            raise UserInputError(f"{key}: expected a number, got nan")
        try:
            out[key] = known.check(value)
        except ValueError as e:
            raise UserInputError(str(e)) from e
    return out


def validate(params: Mapping[str, Any], facts: DataFacts | None = None) -> dict[str, Any]:
    """The checked flat config as written (absent keys stay absent), or the UserInputError a trial
    raises for it: a bad value, clip_min above clip_max, and with the data what a loss kind's
    `prepare` refuses (a focal α that does not fit its classes) or class weights for a class
    without training rows."""
    out = _checked(params)
    v = defaults() | out
    check_clip_bounds(v["elf.clip_min"], v["elf.clip_max"])
    if facts is None:
        return out
    problem = unknown_task(out, facts)
    if problem:
        raise UserInputError(problem)
    for name, counts, classes in facts.labels():
        own = v | {f"loss.{f}": v.get(task_key(name, f), v[f"loss.{f}"]) for f in task_fields()}
        where = f"task {name}: " if name else ""
        try:
            loss_kind(own["loss.kind"]).prepare(own, counts, classes)
            if v["cw.method"] != "none":
                class_weights(counts, v["cw.method"], v["cw.beta"], v["cw.cap"], classes)
        except UserInputError as e:
            raise UserInputError(f"{where}{e}") from None
    return out


def unknown_task(keys: Iterable[str], facts: DataFacts) -> str | None:
    """Why the first loss.<task>.* key of `keys` that names no task of the data is refused."""
    unknown = [k for k in keys if (t := task_of(k)) and t[0] not in facts.tasks]
    if not unknown:
        return None
    tasks = ", ".join(facts.tasks) or "none: the data has one label column"
    return f"{unknown[0]}: not a task of the data (its tasks: {tasks})"


def per_task(params: Mapping[str, Any], tasks: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with every task's loss.<task>.* written out (absent: loss.*) and loss.* gone."""
    v = defaults() | dict(params)
    fields = task_fields()
    own = {task_key(t, f): v.get(task_key(t, f), v[f"loss.{f}"]) for t in tasks for f in fields}
    shared = tuple(f"loss.{f}" for f in fields)
    return {k: x for k, x in params.items() if k not in shared} | own


def canonical(
    params: Mapping[str, Any],
    fill_defaults: bool = False,
    data: Dataset | DataFacts | None = None,
) -> dict[str, Any]:
    """The canonical form of a full or partial flat config (idempotent; keeps the input's order),
    after `validate`. With `data` (a Dataset or its DataFacts, reused across calls) the data's
    rules apply too.

    With `fill_defaults`, missing keys are filled first, so that two configs are equivalent exactly
    when their canonical forms are equal; without it, absent keys stay absent.
    """
    facts = DataFacts.of(data) if isinstance(data, Dataset) else data
    out = validate(params, facts)
    if fill_defaults:
        out = {k: out.get(k, d) for k, d in defaults().items()} | out
    if facts is not None and facts.tasks:
        out = per_task(out, facts.tasks)
    for _ in range(MAX_PASSES):
        full = defaults() | out
        updates = {k: v for rule in REWRITES for k, v in rule(full, facts).items() if full[k] != v}
        full |= updates
        kept = {k: full[k] for k in out | updates if relevant(k, full, facts)}
        if kept == out:
            return out
        out = kept
    return out


def family_of(params: Mapping[str, Any]) -> tuple[str, ...]:
    """`trainables.params.families` of `params`' canonical form (data-free rules): a configuration
    that trains as another kind does (sce at α = 1 as poly1, balanced_softmax as logit adjustment
    at τ = 1) or without weights (lq.power = 0) is in the family it trains as. Params this
    process cannot read (a plug-in's keys where it is not imported, an old record's): as written."""
    try:
        return families(canonical(params))
    except (UserInputError, ValueError):
        return families(params)
