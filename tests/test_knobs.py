"""Every searched setting changes training, or `canonical` merges it with the one it trains like.

Trainings here are "raw" (`TrialParams.from_flat`, no canonicalisation), so the rules themselves are
on trial: a difference counts only when it is larger than a pure loss-scale change makes it (the
noise floor of AdamW's ε, measured in the same run).
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from helpers import train_with, two_tasks

from search.searcher import config_key
from spaces import list_spaces, load_space
from spaces.distributions import Constant, Uniform
from spaces.fit import fit_to_data, without
from spaces.space import Space
from trainables.canonical import DataFacts, canonical
from trainables.data.dataset import Dataset, Split
from trainables.data.label_quality import with_label_quality
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.data.table import TableSpec, load_table
from trainables.errors import UserInputError
from trainables.losses.kinds import LOSS_KINDS
from trainables.losses.kinds.plugin import load_loss_kind
from trainables.losses.weights import train_weights
from trainables.params import LQ_METHODS, PARAMS, Param, TrialParams
from trainables.trial.loop import prepare_params

TINY = SyntheticSpec(n_train=512, n_val=256, n_test=64, reviewers=40, features=12, informative=6)
# sized for the fixture: 8 batches an epoch, 6 epochs (so warm-up values 0.125 and 0.25 differ)
FIXTURE = {"train.max_epochs": 6, "train.batch_size": 64, "model.hidden": 32}
TIMING = {"epoch_time_s", "train_time_s"}
Curve = tuple[tuple[tuple[str, float], ...], ...]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_synthetic(TINY)


@pytest.fixture(scope="module")
def facts(data: Dataset) -> DataFacts:
    return DataFacts.of(data)


@pytest.fixture(scope="module")
def runs(data: Dataset) -> dict[tuple, Curve]:
    return {}


def curve(data: Dataset, cfg: dict[str, Any], cache: dict[tuple, Curve] | None = None) -> Curve:
    """Every reported number of every epoch (timings aside), training `cfg` as written."""
    key = tuple(sorted((k, str(v)) for k, v in cfg.items()))
    if cache is not None and key in cache:
        return cache[key]
    reports: list[tuple[tuple[str, float], ...]] = []
    params = TrialParams.from_flat(FIXTURE | cfg)
    train_with(params, data, lambda m, _: reports.append(_numbers(m)))
    if cache is not None:
        cache[key] = tuple(reports)
    return tuple(reports)


def _numbers(metrics: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple((k, float(metrics[k])) for k in sorted(metrics) if k not in TIMING)


def val_loss_gap(a: Curve, b: Curve) -> float:
    """max over epochs of |Δ val_loss|."""
    return max(abs(dict(x)["val_loss"] - dict(y)["val_loss"]) for x, y in zip(a, b, strict=True))


def product_curve(data: Dataset, cfg: dict[str, Any]) -> Curve:
    """What a search's trial trains for `cfg`: validated and canonicalised first."""
    reports: list[tuple[tuple[str, float], ...]] = []
    params = prepare_params(FIXTURE | cfg, data)
    train_with(params, data, lambda m, _: reports.append(_numbers(m)))
    return tuple(reports)


@pytest.fixture(scope="module")
def floor(data: Dataset, runs: dict[tuple, Curve]) -> float:
    return noise_floor(data, runs)


def noise_floor(data: Dataset, runs: dict[tuple, Curve]) -> float:
    """The val_loss gap of a pure loss-scale change (every weight clipped to 3, then to 4): what
    AdamW's ε alone makes of it."""
    at = {c: {"elf.strategy": "aco", "elf.clip_min": c, "elf.clip_max": c} for c in (3.0, 4.0)}
    gap = val_loss_gap(curve(data, at[3.0], runs), curve(data, at[4.0], runs))
    assert 0 < gap < 1e-3
    return gap


def canon(cfg: dict[str, Any], facts: DataFacts) -> dict[str, Any]:
    return canonical(FIXTURE | cfg, fill_defaults=True, data=facts)


def values_of(space: Space, key: str) -> list[Any]:
    dist = space.params[key].dist
    if dist.finite is not None:
        return list(dist.finite)
    if isinstance(dist, Uniform) and dist.step is not None:
        return dist.grid_points()
    return [dist.low, dist.high]


def samples(space: Space, n: int) -> list[dict[str, Any]]:
    """The space's points, then `n` define-by-run draws (seeded)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in space.points():
        study.enqueue_trial(point)
    out: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        out.append({**space.define_by_run(trial), **trial.params})
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=len(space.points()) + n)
    return out


def changed(space: Space, base: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """`base` with `key` set to `value` and the keys that this makes inactive dropped."""
    out = base | {key: value}
    return {k: v for k, v in out.items() if k not in space.params or space.is_active(k, out)}


def bases(space: Space, key: str, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configs where `key` is active, covering every value of every other finite key once."""
    active = [c for c in pool if space.is_active(key, c)]
    chosen: list[dict[str, Any]] = active[:1]
    for other, spec in space.params.items():
        for value in (spec.dist.finite or ()) if other != key else ():
            if any(c.get(other) == value for c in chosen):
                continue
            found = next((c for c in active if c.get(other) == value), None)
            if found is not None:
                chosen.append(found)
    return chosen


SEARCHED = [
    (name, key)
    for name in list_spaces()
    for key in load_space(name).params
    if len(load_space(name).params[key].dist.finite or (0, 1)) > 1
]


@pytest.mark.parametrize(("name", "key"), SEARCHED, ids=[f"{n}:{k}" for n, k in SEARCHED])
def test_every_searched_key_changes_training_or_is_merged(
    name: str, key: str, data: Dataset, facts: DataFacts, floor: float, runs: dict
) -> None:
    space, _ = fit_to_data(load_space(name), facts)  # what the driver searches
    if key not in space.params or len(values_of(space, key)) < 2:
        return  # collapsed by the data: nothing left to search
    changes_training(space, key, data, facts, floor, runs)


TWO_TASKS = two_tasks(make_synthetic(TINY))
TAUGHT = make_synthetic(TINY)
TAUGHT = dataclasses.replace(
    TAUGHT,
    train=dataclasses.replace(
        TAUGHT.train,
        teacher=torch.randn(len(TAUGHT.train), 2, 5, generator=torch.Generator().manual_seed(0)),
    ),
)  # two random teachers: what the distill keys train towards does not matter here
# (space, the data it needs): every searched key of each changes training on that data
OWN_DATA = {"multitask": TWO_TASKS, "distill": TAUGHT}
FITTED = {n: fit_to_data(load_space(n), DataFacts.of(d))[0] for n, d in OWN_DATA.items()}
OWN_KEYS = [(n, k) for n, s in FITTED.items() for k in s.params if len(values_of(s, k)) > 1]


@pytest.fixture(scope="module")
def own_runs() -> dict[str, tuple[dict[tuple, Curve], float]]:
    """Per space of OWN_DATA: a run cache of its data and that data's loss-scale noise floor."""
    caches: dict[str, dict[tuple, Curve]] = {n: {} for n in OWN_DATA}
    return {n: (caches[n], noise_floor(d, caches[n])) for n, d in OWN_DATA.items()}


@pytest.mark.parametrize(("name", "key"), OWN_KEYS, ids=[f"{n}:{k}" for n, k in OWN_KEYS])
def test_every_key_changes_training_on_the_data_its_space_needs(
    name: str, key: str, own_runs
) -> None:
    runs, noise = own_runs[name]
    data = OWN_DATA[name]
    changes_training(FITTED[name], key, data, DataFacts.of(data), noise, runs)


def changes_training(
    space: Space, key: str, data: Dataset, facts: DataFacts, floor: float, runs: dict
) -> None:
    """Each value of `key` trains differently from the others (beyond `floor`) or canonicalises
    to the same config, over bases covering every other finite value."""
    values = values_of(space, key)
    compared = 0
    for base in bases(space, key, samples(space, 40)):
        dist = space.params[key].dist
        if dist.finite is None and not (isinstance(dist, Uniform) and dist.step):  # its two ends
            pairs = [(changed(space, base, key, values[0]), changed(space, base, key, values[-1]))]
        else:
            pairs = [(base, changed(space, base, key, v)) for v in values if v != base[key]]
        for a, b in pairs:
            if canon(a, facts) == canon(b, facts):
                continue
            gap = val_loss_gap(curve(data, a, runs), curve(data, b, runs))
            assert gap > 10 * floor, (key, a[key], b[key], base, gap, floor)
            compared += 1
    assert compared > 0, f"{space.name}: {key} never trains differently"


@pytest.fixture(scope="module")
def scored(data: Dataset) -> Dataset:
    """The fixture's data with its label-quality scores (what the driver adds for lq.*)."""
    return with_label_quality(data, 5, cache=None)


# each lq.* key: configs that differ in it alone (every pair must train differently)
LQ_KNOBS = {
    "lq.method": [{"lq.method": m} for m in LQ_METHODS],
    "lq.power": [{"lq.method": "self_confidence", "lq.power": k} for k in (0.5, 1.0, 2.0)],
    "lq.method with ELF": [
        {"elf.strategy": "rso", "elf.batch_norm": True, "lq.method": m}
        for m in ("none", "normalized_margin")
    ],
}


@pytest.mark.parametrize("knob", list(LQ_KNOBS))
def test_every_label_quality_key_changes_training(knob: str, scored: Dataset, floor: float) -> None:
    facts = DataFacts.of(scored)  # the scores do not change what the ELF clip measured (floor)
    configs = LQ_KNOBS[knob]
    for i, a in enumerate(configs):
        for b in configs[i + 1 :]:
            assert canon(a, facts) != canon(b, facts)
            gap = val_loss_gap(curve(scored, a), curve(scored, b))
            assert gap > 10 * floor, (a, b, gap, floor)
    # κ = 0 is merged into none, and trains as it bit for bit
    zero = {"lq.method": "confidence_weighted_entropy", "lq.power": 0.0}
    assert canon(zero, facts) == canon({}, facts)
    assert curve(scored, zero) == curve(scored, {})


# what the issue measured as training alike on the code before it (each pair: one key changed)
OLD_NO_OPS = {
    "alpha rule vs none, 5 classes": (
        {"loss.kind": "focal", "loss.gamma": 2.0},
        {"loss.alpha": None},
        {"loss.alpha": "inverse_frequency"},
    ),
    "normalize mean vs none, with a clip": (
        {"elf.strategy": "aco", "elf.clip_max": 1.2},
        {"elf.normalize": "none"},
        {"elf.normalize": "mean"},
    ),
    "warm-up under batch norm": (
        {"elf.strategy": "aco", "elf.batch_norm": True},
        {"elf.warmup_frac": 0.125},
        {"elf.warmup_frac": 0.5},
    ),
    "warm-up without batch norm": (
        {"elf.strategy": "aco"},
        {"elf.warmup_frac": 0.25},
        {"elf.warmup_frac": 0.5},
    ),
}


@pytest.mark.parametrize("case", list(OLD_NO_OPS))
def test_former_no_ops_now_change_training(
    case: str, data: Dataset, facts: DataFacts, floor: float, runs: dict
) -> None:
    base, a, b = OLD_NO_OPS[case]
    assert canon(base | a, facts) != canon(base | b, facts)
    gap = val_loss_gap(curve(data, base | a, runs), curve(data, base | b, runs))
    assert gap > 100 * floor, (case, gap, floor)


def test_scale_only_settings_are_merged(data: Dataset, facts: DataFacts) -> None:
    # a scalar α on five classes was one common factor: it is now refused, in and out of a search
    with pytest.raises(UserInputError, match="two-class"):
        canon({"loss.kind": "focal", "loss.alpha": 0.75}, facts)
    with pytest.raises(UserInputError, match="two-class"):
        prepare_params({"loss.kind": "focal", "loss.alpha": 0.75}, data)
    # normalise-by-mean without a clip only rescales the loss
    elf = {"elf.strategy": "rso"}
    assert canon(elf | {"elf.normalize": "mean"}, facts) == canon(elf, facts)
    # a ramp of 0 then 1 is the same for every fraction up to 1/(E − 1)
    short = [canon(elf | {"elf.warmup_frac": f}, facts) for f in (0.1, 0.15, 0.2)]
    assert short[0] == short[1] == short[2] != canon(elf, facts)
    assert curve(data, elf | {"elf.warmup_frac": 0.1}) == curve(
        data, elf | {"elf.warmup_frac": 0.2}
    )


# a loss kind's keys: values where kinds merge (focal γ = 0, label smoothing ε = 0, logit
# adjustment τ = 0 and, as Balanced Softmax, τ = 1, Poly-1 ε = 0, GCE q = 0, LDAM without margin,
# scale or re-weighting, SCE α = 1 as Poly-1 ε = 4β and α = 0, β = 1/4 as GCE q = 1; LDAM's
# re-weighting fractions 0.5 and 0.55 start at one epoch of the fixture's 6) and where they
# differ; a registered kind's key not listed here draws its choices, or its default and bounds.
# No SCE β = 0: with α = 0 that is the refused zero loss.
KIND_POOLS: dict[str, tuple[Any, ...]] = {
    "loss.gamma": (0.0, 2.0),
    "loss.alpha": (None, "inverse_frequency"),
    "loss.smoothing": (0.0, 0.2),
    "loss.tau": (0.0, 1.0, 2.0),
    "loss.epsilon": (0.0, 2.0),
    "loss.ldam_margin": (0.0, 0.5),
    "loss.ldam_scale": (1.0, 4.0),
    "loss.drw_frac": (0.5, 0.55, 1.0),
    "loss.q": (0.0, 0.7, 1.0),
    "loss.sce_alpha": (1.0, 0.0, 0.1),
    "loss.sce_beta": (0.25, 0.5),
}


def _pool(p: Param) -> tuple[Any, ...]:
    if p.key in KIND_POOLS:
        return KIND_POOLS[p.key]
    return p.choices or tuple(dict.fromkeys(v for v in (p.default, p.low, p.high) if v is not None))


POOLS: dict[str, tuple[Any, ...]] = {
    "loss.kind": tuple(LOSS_KINDS),
    **{k: _pool(p) for k, p in PARAMS.items() if p.when[:1] and p.when[0][0] == "loss.kind"},
    "elf.strategy": ("none", "aco", "rso", "avg", "max"),
    "elf.granularity": ("repository", "subsystem", "package"),
    "elf.missing": ("default", "impute", "min", "skip"),
    "elf.normalize": ("none", "mean"),
    "elf.clip_min": (None, 0.5, 1.0, 3.5),
    "elf.clip_max": (None, 1.2, 5.0, 9.0),
    "elf.batch_norm": (False, True),
    "elf.warmup_frac": (0.0, 0.1, 0.2, 0.5),
    "cw.method": ("none", "balanced", "effective"),
    "cw.beta": (0.0, 0.9, 0.999),
    "cw.cap": (None, 2.0, 100.0),
    "train.optimizer": ("adamw", "sgd"),
    "train.momentum": (0.0, 0.9),
    "lq.method": LQ_METHODS,
    "lq.power": (0.0, 1.0, 2.0),
}


KIND_KEYS = [(k.name, p.key) for k in LOSS_KINDS.values() for p in k.params]


@pytest.mark.parametrize(("kind", "key"), KIND_KEYS, ids=[f"{k}:{p}" for k, p in KIND_KEYS])
def test_every_loss_kinds_key_changes_training_or_is_merged(
    kind: str, key: str, data: Dataset, facts: DataFacts, floor: float, runs: dict
) -> None:
    """Under its kind (the other keys at their defaults), each two values of the key's pool
    train differently beyond the noise floor, or canonicalise alike."""
    pool = POOLS[key]
    compared = 0
    for i, a in enumerate(pool):
        for b in pool[i + 1 :]:
            x, y = {"loss.kind": kind, key: a}, {"loss.kind": kind, key: b}
            if canon(x, facts) == canon(y, facts):
                continue
            gap = val_loss_gap(curve(data, x, runs), curve(data, y, runs))
            assert gap > 10 * floor, (kind, key, a, b, gap, floor)
            compared += 1
    assert compared > 0, f"{kind}: {key} never trains differently"


# pairs of one configuration by a loss kind's rule (the draws above rarely meet them)
KIND_MERGES = {
    "ldam without margin, scale or re-weighting is ce": (
        {"loss.kind": "ldam", "loss.ldam_margin": 0.0, "loss.drw_frac": 1.0},
        {"loss.kind": "ce"},
    ),
    "ldam's re-weighting from epoch 3 of 6": (
        {"loss.kind": "ldam", "loss.drw_frac": 0.5},
        {"loss.kind": "ldam", "loss.drw_frac": 0.55},
    ),
    "gce at q = 0 is ce": ({"loss.kind": "gce", "loss.q": 0.0}, {"loss.kind": "ce"}),
    "sce at α = 1 is poly1 with ε = 4β": (
        {"loss.kind": "sce", "loss.sce_alpha": 1.0, "loss.sce_beta": 0.5},
        {"loss.kind": "poly1", "loss.epsilon": 2.0},
    ),
    "sce at α = 0, β = 1/4 is gce at q = 1": (
        {"loss.kind": "sce", "loss.sce_alpha": 0.0, "loss.sce_beta": 0.25},
        {"loss.kind": "gce", "loss.q": 1.0},
    ),
    "sce at α = 1, β = 0 is ce": (
        {"loss.kind": "sce", "loss.sce_alpha": 1.0, "loss.sce_beta": 0.0},
        {"loss.kind": "ce"},
    ),
}


@pytest.mark.parametrize("case", list(KIND_MERGES))
def test_a_loss_kinds_merge_trains_bit_for_bit_alike(
    case: str, data: Dataset, facts: DataFacts
) -> None:
    a, b = KIND_MERGES[case]
    assert canon(a, facts) == canon(b, facts)
    assert curve(data, a) == curve(data, b)  # raw: each through its own kind's code


def clips_everything(facts: DataFacts, cfg: dict[str, Any]) -> bool:
    """True when the clip bounds move every kept training weight: the ELF weights are then one
    constant whatever the strategy, a degenerate setting `canonical` does not try to merge."""
    params = TrialParams.from_flat(FIXTURE | cfg)
    if params["elf.strategy"] == "none":
        return False
    w, clipped = train_weights(facts.train, params)
    return bool(clipped[w > 0].all())


def random_configs(facts: DataFacts, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Configs drawn key by key from small pools (so that many are equivalent): valid ones whose
    weights are not all clipped."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        cfg = {k: rng.choice(v) for k, v in POOLS.items() if rng.random() < 0.8}
        low, high = cfg.get("elf.clip_min"), cfg.get("elf.clip_max")
        if low is not None and high is not None and low > high:
            continue
        if not clips_everything(facts, cfg):
            out.append(cfg)
    return out


def test_canonical_equal_trains_alike_and_different_is_not_merged(scored: Dataset) -> None:
    data, facts = scored, DataFacts.of(scored)  # with label-quality scores: lq.* keys train
    groups: dict[str, list[dict[str, Any]]] = {}
    for cfg in random_configs(facts, 300):
        groups.setdefault(config_key(FIXTURE | cfg, facts), []).append(cfg)
    assert not any(k.startswith("invalid") for k in groups)
    merged = [g for g in groups.values() if len(g) > 1]
    assert len(merged) >= 15 and len(groups) >= 60  # the draw exercises both sides
    representatives: dict[Curve, str] = {}
    for key, group in groups.items():
        first = curve(data, group[0])
        for cfg in group[1:]:
            assert curve(data, cfg) == first, (group[0], cfg)
        # a search's trial trains every member as the representative, bit for bit
        assert product_curve(data, group[0]) == product_curve(data, group[-1])
        assert first not in representatives, (key, representatives.get(first))
        representatives[first] = key


def nova_like(data: Dataset) -> Dataset:
    """`data` with subsystem ownership a copy of package ownership and none missing (as in nova)."""

    def fix(split: Split) -> Split:
        aco, rso = (t.nan_to_num(0.3).clone() for t in (split.aco, split.rso))
        aco[:, 1], rso[:, 1] = aco[:, 2], rso[:, 2]
        return dataclasses.replace(split, aco=aco, rso=rso)

    return dataclasses.replace(data, train=fix(data.train), val=fix(data.val), test=fix(data.test))


def test_granularity_copies_and_missing_policies_are_collapsed(data: Dataset) -> None:
    nova = nova_like(data)
    facts = DataFacts.of(nova)
    sub = {"elf.strategy": "avg", "elf.granularity": "subsystem", "elf.missing": "impute"}
    assert canon(sub, facts) == canon(sub | {"elf.granularity": "package"}, facts)
    assert canon(sub, facts) == canon(sub | {"elf.missing": "skip"}, facts)
    assert canon(sub, facts) != canon(sub | {"elf.granularity": "repository"}, facts)
    assert curve(nova, sub) == curve(nova, sub | {"elf.granularity": "package"})
    assert curve(nova, sub) == curve(nova, sub | {"elf.missing": "skip"})
    space, notes = fit_to_data(load_space("elf"), facts)
    assert space.params["elf.granularity"].dist.finite == ("repository", "package")
    assert space.params["elf.missing"].dist.finite == ("default",)
    assert len(notes) == 2 and "copies of package's" in notes[0] and "elf.missing" in notes[1]
    # the same space on data with distinct columns and missing ownership is left as it is
    assert fit_to_data(load_space("elf"), DataFacts.of(data)) == (load_space("elf"), [])


def test_table_with_a_partial_ownership_mapping(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame(
        {
            "label": rng.choice(["a", "b", "c"], n),
            "f": rng.normal(size=n),
            "own": rng.uniform(size=n),
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    mapping = {"own": {"signal": "aco", "granularity": "package"}}
    table = load_table(TableSpec(path=str(path), label="label", features=("f",), ownership=mapping))
    facts = DataFacts.of(table)
    assert {facts.copy_of("aco", g) for g in ("repository", "subsystem")} == {"package"}
    space, notes = fit_to_data(load_space("elf"), facts)
    assert space.params["elf.granularity"].dist.finite == ("package",)
    # rso is never mapped: rso alone would be one constant weight, so it is not searched; avg and
    # max read it as missing, so the missing policy still applies to them
    assert space.params["elf.strategy"].dist.finite == ("none", "aco", "avg", "max")
    assert notes[0].startswith("elf.strategy=rso is not searched: no training sample has rso")
    assert facts.any_missing("avg", "package") and not facts.any_missing("aco", "package")
    assert len(space.params["elf.missing"].dist.finite) == 2
    assert len(notes) == 3


def test_dropping_a_value_removes_what_only_it_enabled(tmp_path: Path, facts: DataFacts) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "params:\n  elf.strategy: {choice: [none, rso]}\n"
        "  elf.missing: {choice: [default, skip], when: {elf.strategy: rso}}\n"
        "  elf.default_rso: {choice: [0.1, 0.5], when: {elf.missing: default}}\n"
        "  train.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
        "points_to_evaluate:\n  - {elf.strategy: rso, elf.missing: skip}\n"
        "  - {elf.strategy: none, train.lr: 3.0e-3}\n"
    )
    space = without(load_space(str(path)), "elf.strategy", ["rso"])
    assert list(space.params) == ["elf.strategy", "train.lr"]
    assert space.params["elf.strategy"].dist == Constant("none")
    assert space.points_to_evaluate == ({"elf.strategy": "none", "train.lr": 3.0e-3},)
    with pytest.raises(UserInputError, match="s.yaml: elf.strategy: the data supports none of"):
        without(space, "elf.strategy", ["none"])


def test_invalid_as_written_fails_alike_in_and_out_of_a_search(data: Dataset) -> None:
    crossed = {"elf.strategy": "aco", "elf.clip_min": 2.0, "elf.clip_max": 1.0}
    with pytest.raises(UserInputError) as outside:
        train_weights(data.train, TrialParams.from_flat(crossed))
    with pytest.raises(UserInputError) as inside:
        prepare_params(crossed, data)  # what tune_trial runs first
    assert (
        str(inside.value)
        == str(outside.value)
        == ("elf.clip_min (2) must not exceed elf.clip_max (1)")
    )
    assert config_key(crossed) == f"invalid: {inside.value}"  # never merged with a valid config
    # β = 0 used to become "no class weights" before the zero-count check could refuse it
    y = data.train.y.clone()
    y[y == 4] = 3
    empty = dataclasses.replace(data, train=dataclasses.replace(data.train, y=y))
    beta0 = {"cw.method": "effective", "cw.beta": 0.0}
    with pytest.raises(UserInputError, match="no training examples") as refused:
        prepare_params(beta0, empty)
    assert config_key(beta0, DataFacts.of(empty)) == f"invalid: {refused.value}"
    assert canonical(beta0) == {"cw.method": "none"}  # without the data the rule alone applies


def test_a_space_point_the_data_cannot_take_is_refused_before_the_search(
    tmp_path: Path, facts: DataFacts
) -> None:
    path = tmp_path / "two_class.yaml"
    path.write_text("params:\n  loss.kind: focal\n  loss.alpha: {choice: [null, 0.25]}\n")
    with pytest.raises(
        UserInputError, match=r"two_class.yaml: loss.alpha: loss.alpha=0.25 is a two"
    ):
        fit_to_data(load_space(str(path)), facts)


def test_weight_stats_describe_the_applied_weights(data: Dataset) -> None:
    reports: list[dict[str, Any]] = []
    cfg = {"elf.strategy": "aco", "elf.warmup_frac": 0.4, "elf.missing": "skip"}
    params = TrialParams.from_flat(FIXTURE | cfg)
    train_with(params, data, lambda m, _: reports.append(m))
    raw = train_weights(data.train, params)[0].double().numpy()
    kept = raw[raw > 0]
    # epoch 0: ramp 0, every kept sample at the mean weight; skipped ones stay 0
    first = reports[0]
    assert first["w_max"] == pytest.approx(kept.mean(), rel=1e-6)
    assert first["w_min"] == 0 and first["w_mean"] == pytest.approx(kept.sum() / raw.size, rel=1e-6)
    # from epoch 2 on (ramp 1: 0.4·5 = 2 epochs of warm-up) the stats are those of the weights
    last = reports[-1]
    assert last["w_max"] == pytest.approx(raw.max(), rel=1e-6)
    assert last["w_std"] == pytest.approx(raw.std(), rel=1e-5)
    # batch norm maps every weight into 1.25 ± 0.75; before it they are e^(1+o) ≥ e
    bn: list[dict[str, Any]] = []
    normed = TrialParams.from_flat(FIXTURE | {"elf.strategy": "aco", "elf.batch_norm": True})
    train_with(normed, data, lambda m, _: bn.append(m))
    assert all(m["w_min"] > 0.5 and m["w_max"] < 2.0 for m in bn) and kept.min() > math.e - 1e-6


def test_sgd_sees_the_loss_scale_that_adamw_ignores(
    data: Dataset, facts: DataFacts, floor: float
) -> None:
    at = {
        c: {"train.optimizer": "sgd", "elf.strategy": "aco", "elf.clip_min": c, "elf.clip_max": c}
        for c in (3.0, 4.0)
    }
    assert val_loss_gap(curve(data, at[3.0]), curve(data, at[4.0])) > 100 * floor
    assert canon({"train.momentum": 0.5}, facts) == canon({}, facts)  # AdamW has no momentum key
    sgd = {"train.optimizer": "sgd"}
    assert canon(sgd | {"train.momentum": 0.5}, facts) != canon(sgd, facts)


def test_model_keys_the_model_never_reads_are_not_searched(tmp_path: Path, data: Dataset) -> None:
    """model.embed_dim without text ids and model.encoder_lr for the MLP train bit-identically
    (measured), so the data's fit drops them from a space and canonical merges them; with a text
    column the bag's width trains differently and stays."""
    from trainables.models.registry import ignored_keys

    assert curve(data, {"model.embed_dim": 8}) == curve(data, {"model.embed_dim": 64})
    assert curve(data, {"model.encoder_lr": 1e-6}) == curve(data, {"model.encoder_lr": 0.5})
    ignored = ignored_keys("mlp", "", data.vocab_size)
    assert set(ignored) == {"model.embed_dim", "model.encoder_lr"}
    facts = DataFacts.of(data, ignored)
    path = tmp_path / "model.yaml"
    path.write_text(
        "params:\n  model.embed_dim: {choice: [8, 64]}\n  model.encoder_lr: {loguniform: "
        "[1.0e-6, 1.0e-3]}\n  model.dropout: {choice: [0.0, 0.3]}\n"
    )
    space, notes = fit_to_data(load_space(str(path)), facts)
    assert set(space.params) == {"model.dropout"}
    assert any(n.startswith("model.embed_dim is not searched: the data has no text") for n in notes)
    assert canon({"model.embed_dim": 8}, facts) == canon({"model.embed_dim": 64}, facts)
    assert canon({"model.dropout": 0.0}, facts) != canon({"model.dropout": 0.3}, facts)

    frame = pd.DataFrame(
        {
            "a": np.random.default_rng(0).normal(size=120),
            "msg": [f"{['typo', 'leak', 'name'][i % 3]} in line {i}" for i in range(120)],
            "label": [["x", "y", "z"][i % 3] for i in range(120)],
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    text = load_table(TableSpec(path=str(tmp_path / "t.csv"), label="label", text="msg"))
    assert "model.embed_dim" not in ignored_keys("mlp", "", text.vocab_size)
    assert curve(text, {"model.embed_dim": 8}) != curve(text, {"model.embed_dim": 64})
    assert set(ignored_keys("examples.user_model:factory", "", 0)) == set()  # a factory: any key


def test_a_space_that_corrects_imbalance_twice_is_said_once(facts: DataFacts) -> None:
    from spaces.fit import double_correction

    said = double_correction(fit_to_data(load_space("class_weights"), facts)[0])
    assert (
        said and "train.balanced_sampling=true with cw.method in ['balanced', 'effective']" in said
    )
    assert double_correction(load_space("elf")) is None
    assert double_correction(load_space("baseline")) is None


@pytest.mark.parametrize("key", ["loss.kind", "loss.taylor_order"])
def test_a_loss_plugins_searched_keys_change_training(
    key: str, data: Dataset, facts: DataFacts, floor: float, runs: dict
) -> None:
    """loss=examples.user_loss:taylor_ce: its kind and its own key pass the check every built-in
    searched key does, over examples/user_loss.yaml (the conftest unregisters the kind after)."""
    load_loss_kind("examples.user_loss:taylor_ce")
    space, _ = fit_to_data(load_space("examples/user_loss.yaml"), facts)
    changes_training(space, key, data, facts, floor, runs)


def test_a_loss_plugin_key_that_changes_nothing_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: Dataset, facts: DataFacts, floor: float
) -> None:
    """A plug-in kind's key its function never reads: the same check fails on it."""
    (tmp_path / "idle_loss.py").write_text(
        "from trainables.params import Param\n\n\n"
        "def idle(logits, target, params):\n"
        "    return -logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)\n\n\n"
        "idle.params = [Param('loss.idle_knob', 1.0, 'float', 'Read by nothing.', low=0, high=2)]\n"
    )
    (tmp_path / "idle.yaml").write_text(
        "params:\n  loss.kind: idle\n  loss.idle_knob: {uniform: [0.5, 1.5]}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    load_loss_kind("idle_loss:idle")
    space, _ = fit_to_data(load_space(str(tmp_path / "idle.yaml")), facts)
    with pytest.raises(AssertionError, match="loss.idle_knob"):
        changes_training(space, "loss.idle_knob", data, facts, floor, {})
