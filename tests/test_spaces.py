"""Space files: every shipped space loads, samples within its conditions, validates its input.

Only the last test imports Ray (to sample `search.param_space` with Tune's variant generator, no
cluster); everything else is plain Python and Optuna.
"""

from __future__ import annotations

import math
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from spaces import SPACES_DIR, Space, canonical, list_spaces, load_space, relevant
from trainables.canonical import defaults, validate
from trainables.errors import UserInputError
from trainables.params import PARAMS, TrialParams

SHIPPED = ("baseline", "class_weights", "elf", "focal", "full", "imbalance", "noisy")
ELF_ON = ("aco", "rso", "avg", "max")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _active_by_hand(cfg: dict[str, Any]) -> dict[str, bool]:
    """The conditions written in the shipped files, restated independently of the loader."""
    elf_on = cfg.get("elf.strategy") in ELF_ON
    return {
        "loss.gamma": cfg.get("loss.kind") == "focal",
        "loss.alpha": cfg.get("loss.kind") == "focal",
        "elf.granularity": elf_on,
        "elf.missing": elf_on,
        "elf.batch_norm": elf_on,
        "elf.warmup_frac": elf_on,
        "elf.clip_min": elf_on,
        "elf.clip_max": elf_on,
        "cw.beta": cfg.get("cw.method") == "effective",
        "cw.cap": cfg.get("cw.method") in ("balanced", "effective"),
    }


def _sample_define_by_run(space: Space, n: int) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in space.points():
        study.enqueue_trial(point)
    configs = []

    def objective(trial: optuna.Trial) -> float:
        constants = space.define_by_run(trial)
        assert not set(constants) & set(trial.params), "a constant was also suggested"
        configs.append({**trial.params, **constants})
        return 0.0

    study.optimize(objective, n_trials=n)
    return configs


# ---------------------------------------------------------------- shipped spaces


def test_shipped_spaces_are_listed() -> None:
    assert set(SHIPPED) <= set(list_spaces())
    for name in list_spaces():
        first = (SPACES_DIR / f"{name}.yaml").read_text().splitlines()[0]
        assert first == f"# Run: python -m search.run space={name}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_and_describes(name: str) -> None:
    space = load_space(name)
    assert space.name == name and space.description
    text = space.describe()
    for key in space.params:
        assert key in text
    assert load_space(str(SPACES_DIR / f"{name}.yaml")) == space


@pytest.mark.parametrize("name", SHIPPED)
def test_define_by_run_respects_conditions(name: str) -> None:
    space = load_space(name)
    configs = _sample_define_by_run(space, 50)
    for point, cfg in zip(space.points(), configs, strict=False):
        assert point.items() <= cfg.items()  # points_to_evaluate are tried first, in order
    for cfg in configs:
        for key, active in _active_by_hand(cfg).items():
            if key in space.params:
                assert (key in cfg) == active, (key, cfg)
        for key, value in cfg.items():
            assert space.params[key].dist.contains(value), (key, value)
        assert set(cfg) == {k for k in space.params if space.is_active(k, cfg)}
        assert canonical(cfg) == cfg  # shipped spaces never draw an irrelevant key
        TrialParams.from_flat(cfg)


def test_points_come_first_and_include_baseline_and_paper_defaults() -> None:
    elf, focal = load_space("elf"), load_space("focal")
    assert elf.points_to_evaluate[0]["elf.strategy"] == "none"
    assert {"elf.strategy": "aco", "elf.granularity": "package"}.items() <= (
        elf.points_to_evaluate[1].items()
    )
    assert focal.points_to_evaluate == (
        {"loss.kind": "ce"},
        {"loss.kind": "focal", "loss.gamma": 2.0, "loss.alpha": None},
    )
    configs = _sample_define_by_run(focal, 2)
    assert configs == [{"loss.kind": "ce"}, dict(focal.points_to_evaluate[1])]


def test_define_by_run_returns_active_constants_only() -> None:
    elf = load_space("elf")
    configs = _sample_define_by_run(elf, 10)
    assert all(c["loss.kind"] == "ce" for c in configs)
    study = optuna.create_study()
    trial = study.ask()
    assert elf.define_by_run(trial) == {"loss.kind": "ce"}
    assert "loss.kind" not in trial.params


def test_grid_size_and_grid_as_categorical() -> None:
    baseline = load_space("baseline")
    assert baseline.grid_size == 5
    assert load_space("elf").grid_size is None
    seeds = {c["seed"] for c in _sample_define_by_run(baseline, 30)}
    assert seeds == {0, 1, 2, 3, 4}


def test_readme_example_loads(tmp_path: Path) -> None:
    readme = (SPACES_DIR / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    space = load_space(str(_write(tmp_path, example, "mine.yaml")))
    assert space.grid_size == 3 and len(space.points_to_evaluate) == 2


def test_spaces_package_does_not_import_ray_and_spaces_pickle() -> None:
    code = "import sys, spaces; spaces.load_space('full'); assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=SPACES_DIR.parent)
    space = load_space("full")
    assert pickle.loads(pickle.dumps(space)) == space  # Ray checkpoints the searcher's space


def test_elf_space_is_small() -> None:
    """~16-20 trials must cover it meaningfully: few dimensions, few categorical values."""
    elf = load_space("elf")
    searched = [s for s in elf.params.values() if s.dist.finite is None or len(s.dist.finite) > 1]
    assert len(searched) <= 8
    assert all(len(s.dist.finite or ()) <= 5 for s in searched)


# ---------------------------------------------------------------- canonical


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # focal with γ = 0 and no α is CE; a partial config reads α as its default (None)
        ({"loss.kind": "focal", "loss.gamma": 0.0, "loss.alpha": None}, {"loss.kind": "ce"}),
        ({"loss.kind": "focal", "loss.gamma": 0}, {"loss.kind": "ce"}),
        (
            {"loss.kind": "focal", "loss.gamma": 0.0, "loss.alpha": 0.25},
            {"loss.kind": "focal", "loss.gamma": 0.0, "loss.alpha": 0.25},
        ),
        ({"loss.kind": "ce", "loss.gamma": 3.0, "loss.alpha": 0.5}, {"loss.kind": "ce"}),
        ({"loss.gamma": 3.0}, {}),
        # label smoothing ε = 0, logit adjustment τ = 0 and Poly-1 ε = 0 are CE
        ({"loss.kind": "label_smoothing", "loss.smoothing": 0.0}, {"loss.kind": "ce"}),
        (
            {"loss.kind": "label_smoothing", "loss.smoothing": 0.1},
            {"loss.kind": "label_smoothing", "loss.smoothing": 0.1},
        ),
        ({"loss.kind": "logit_adjustment", "loss.tau": 0}, {"loss.kind": "ce"}),
        ({"loss.kind": "poly1", "loss.epsilon": 0.0}, {"loss.kind": "ce"}),
        (
            {"loss.kind": "poly1", "loss.epsilon": -1.0},
            {"loss.kind": "poly1", "loss.epsilon": -1.0},
        ),
        # Balanced Softmax is logit adjustment at τ = 1 (τ's default; the rule sets it)
        ({"loss.kind": "balanced_softmax"}, {"loss.kind": "logit_adjustment"}),
        (
            {"loss.kind": "balanced_softmax", "loss.tau": 2.0, "loss.epsilon": 1.0},
            {"loss.kind": "logit_adjustment", "loss.tau": 1.0},
        ),
        (
            {"loss.kind": "logit_adjustment", "loss.tau": 2.0, "loss.smoothing": 0.3},
            {"loss.kind": "logit_adjustment", "loss.tau": 2.0},
        ),
        # GCE q = 0 (its limit), SCE α = 1, β = 0 and LDAM m = 0, s = 1 without DRW are CE
        ({"loss.kind": "gce", "loss.q": 0}, {"loss.kind": "ce"}),
        ({"loss.kind": "gce", "loss.q": 0.7}, {"loss.kind": "gce", "loss.q": 0.7}),
        ({"loss.kind": "sce", "loss.sce_alpha": 1, "loss.sce_beta": 0}, {"loss.kind": "ce"}),
        (
            {"loss.kind": "ldam", "loss.ldam_margin": 0, "loss.drw_frac": 1.0, "loss.q": 0.5},
            {"loss.kind": "ce"},
        ),
        # … but s ≠ 1 scales the logits: no merge
        (
            {"loss.kind": "ldam", "loss.ldam_margin": 0, "loss.ldam_scale": 2, "loss.drw_frac": 1},
            {
                "loss.kind": "ldam",
                "loss.ldam_margin": 0.0,
                "loss.ldam_scale": 2.0,
                "loss.drw_frac": 1.0,
            },
        ),
        # SCE α = 1 is Poly-1 with ε = 4β (within poly1's range); α = 0, β = 1/4 is GCE q = 1
        (
            {"loss.kind": "sce", "loss.sce_alpha": 1, "loss.sce_beta": 0.5},
            {"loss.kind": "poly1", "loss.epsilon": 2.0},
        ),
        (
            {"loss.kind": "sce", "loss.sce_alpha": 1, "loss.sce_beta": 3.0},
            {"loss.kind": "sce", "loss.sce_alpha": 1.0, "loss.sce_beta": 3.0},
        ),
        (
            {"loss.kind": "sce", "loss.sce_alpha": 0, "loss.sce_beta": 0.25},
            {"loss.kind": "gce", "loss.q": 1.0},
        ),
        # LDAM's re-weighting fraction: one per start epoch ⌊f·E⌋ (the default 0.8 where it
        # starts there too), 1 when it never starts
        (
            {"loss.kind": "ldam", "loss.drw_frac": 0.55, "train.max_epochs": 10},
            {"loss.kind": "ldam", "loss.drw_frac": 0.5, "train.max_epochs": 10},
        ),
        (
            {"loss.kind": "ldam", "loss.drw_frac": 0.85, "train.max_epochs": 10},
            {"loss.kind": "ldam", "loss.drw_frac": 0.8, "train.max_epochs": 10},
        ),
        (
            {"loss.kind": "ldam", "loss.drw_frac": 0.95, "train.max_epochs": 10},
            {"loss.kind": "ldam", "loss.drw_frac": 0.9, "train.max_epochs": 10},
        ),
        # ELF knobs do nothing without a strategy
        (
            {
                "elf.strategy": "none",
                "elf.granularity": "repository",
                "elf.normalize": "mean",
                "elf.clip_max": 5.0,
                "elf.batch_norm": True,
                "elf.warmup_frac": 0.5,
            },
            {"elf.strategy": "none"},
        ),
        # default_aco matters for aco/avg/max with missing=default; default_rso for rso/avg/max
        (
            {"elf.strategy": "rso", "elf.default_aco": 0.2, "elf.default_rso": 0.3},
            {"elf.strategy": "rso", "elf.default_rso": 0.3},
        ),
        (  # skip never reads the defaults; impute/min fall back to them on an all-NaN column
            {"elf.strategy": "avg", "elf.missing": "skip", "elf.default_aco": 0.2},
            {"elf.strategy": "avg", "elf.missing": "skip"},
        ),
        (
            {"elf.strategy": "aco", "elf.missing": "impute", "elf.default_aco": 0.2},
            {"elf.strategy": "aco", "elf.missing": "impute", "elf.default_aco": 0.2},
        ),
        # raw weights lie in [e, e²]: clips outside that range clip nothing
        (
            {"elf.strategy": "aco", "elf.clip_min": 2.0, "elf.clip_max": 8.0},
            {"elf.strategy": "aco", "elf.clip_min": None, "elf.clip_max": None},
        ),
        (  # float32 e^1 < e and e^2 > e²: clipping exactly at e or e² still moves a weight
            {"elf.strategy": "aco", "elf.clip_min": math.exp(1), "elf.clip_max": math.exp(2)},
            {"elf.strategy": "aco", "elf.clip_min": math.exp(1), "elf.clip_max": math.exp(2)},
        ),
        (
            {"elf.strategy": "aco", "elf.clip_min": 2.718, "elf.clip_max": 7.3891},
            {"elf.strategy": "aco", "elf.clip_min": None, "elf.clip_max": None},
        ),
        (
            {"elf.strategy": "aco", "elf.clip_min": 2.72, "elf.clip_max": 7.38},
            {"elf.strategy": "aco", "elf.clip_min": 2.72, "elf.clip_max": 7.38},
        ),
        (  # normalised weights have a data-dependent range: keep the clip
            {"elf.strategy": "max", "elf.normalize": "mean", "elf.clip_max": 8.0},
            {"elf.strategy": "max", "elf.normalize": "mean", "elf.clip_max": 8.0},
        ),
        # class weights
        (
            {"cw.method": "balanced", "cw.beta": 0.9, "cw.cap": 10},
            {"cw.method": "balanced", "cw.cap": 10.0},
        ),
        ({"cw.method": "none", "cw.beta": 0.9, "cw.cap": 10}, {"cw.method": "none"}),
        ({"cw.method": "effective", "cw.beta": 0.0, "cw.cap": 10}, {"cw.method": "none"}),
        # None marks an inactive key (Ray sample_from); for nullable keys None is a value
        ({"train.lr": None, "loss.gamma": None}, {}),
        (
            {"loss.kind": "focal", "loss.gamma": 2, "loss.alpha": None},
            {"loss.kind": "focal", "loss.gamma": 2.0, "loss.alpha": None},
        ),
    ],
)
def test_canonical_cases(given: dict[str, Any], expected: dict[str, Any]) -> None:
    assert canonical(given) == expected
    assert canonical(expected) == expected


def test_clip_collapse_bounds_hold_in_float32() -> None:
    """Every float32 raw weight e^(1+o), o in [0, 1], lies strictly inside the collapse bounds."""
    import torch

    from trainables.canonical import ELF_MAX, ELF_MIN

    w = torch.exp(1 + torch.linspace(0, 1, 1001))  # float32, as in trainables.losses.weights
    assert float(w.min()) > ELF_MIN and float(w.max()) < ELF_MAX
    assert ELF_MIN > 2.718 and ELF_MAX < 7.3891


def test_canonical_fill_defaults_equates_equivalent_configs() -> None:
    full = canonical({}, fill_defaults=True)
    assert set(full) == {k for k in PARAMS if relevant(k, defaults())}
    assert "loss.gamma" not in full and "elf.granularity" not in full and "cw.beta" not in full
    same = [
        {"elf.strategy": "aco", "elf.clip_max": 100.0},
        {"elf.strategy": "aco", "elf.clip_max": None, "loss.gamma": 4.0},
        {"elf.strategy": "aco"},
    ]
    assert len({str(canonical(c, fill_defaults=True)) for c in same}) == 1
    assert canonical({"seed": 1}, fill_defaults=True) != full


def test_canonical_is_idempotent_on_random_configs() -> None:
    pools = {
        k: p.choices or {"bool": (False, True)}.get(p.kind) or (p.default, p.low, p.high, None)
        for k, p in PARAMS.items()
    }
    pools["loss.gamma"] = (0.0, 2.0)
    pools["elf.clip_min"] = (None, 1.0, 3.0, 8.0)
    pools["elf.clip_max"] = (None, 1.0, 5.0, 8.0)
    pools["cw.beta"] = (0.0, 0.99)
    pools["loss.alpha"] = (None, 0.25, "inverse_frequency", "effective:0.99", (0.2, 0.3, 0.5))
    rng = random.Random(0)
    for _ in range(500):
        keys = rng.sample(list(PARAMS), rng.randint(0, len(PARAMS)))
        cfg = {}
        for key in keys:
            value = rng.choice(pools[key])
            if value is not None or PARAMS[key].kind == "float_or_none" or rng.random() < 0.2:
                cfg[key] = value
        try:
            TrialParams.from_flat(
                {k: v for k, v in cfg.items() if v is not None or PARAMS[k].kind == "float_or_none"}
            )
            validate(cfg)
        except ValueError:  # UserInputError included: invalid as written (tested on its own)
            continue
        for fill in (False, True):
            once = canonical(cfg, fill_defaults=fill)
            assert canonical(once, fill_defaults=fill) == once
            assert set(once) <= set(cfg) or fill
            TrialParams.from_flat(once)


def test_canonical_rejects_unknown_keys() -> None:
    with pytest.raises(UserInputError, match=r"train\.lrr.*did you mean: train\.lr"):
        canonical({"train.lrr": 0.1})


# ---------------------------------------------------------------- validation errors


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(UserInputError) as info:
        load_space(str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


P = "params:\n"
INVALID = {
    "malformed": (P + "  loss.kind: [ce\n", [":3:", "malformed YAML"]),
    "tab": (P + "\tloss.kind: ce\n", [":2:", "tab in indentation"]),
    "duplicate": (
        P + "  train.lr: {loguniform: [1.0e-3, 1.0e-2]}\n  train.lr: 0.01\n",
        [":3:", "duplicate key 'train.lr'", "first at line 2"],
    ),
    "duplicate nested": (
        P + "  loss.gamma:\n    uniform: [0.5, 2.0]\n    uniform: [1.0, 3.0]\n",
        [":4:", "duplicate key 'uniform'"],
    ),
    "alias": (
        "x: &v [1.0e-3, 1.0e-2]\n" + P + "  train.lr: {loguniform: *v}\n",
        [":1:", "anchors and aliases"],
    ),
    "unknown distribution": (
        P + "  loss.gamma: {normal: [0, 1]}\n",
        [":2:", "params.loss.gamma", "unknown distribution 'normal'", "choice, grid"],
    ),
    "low >= high": (
        P + "  loss.gamma: {uniform: [2.0, 1.0]}\n",
        ["params.loss.gamma", "uniform needs low < high"],
    ),
    "low == high": (P + "  model.hidden: {int: [64, 64]}\n", ["params.model.hidden", "low < high"]),
    "loguniform low 0": (
        P + "  loss.gamma: {loguniform: [0, 2.0]}\n",
        ["params.loss.gamma", "loguniform needs low > 0"],
    ),
    "empty choice": (
        P + "  elf.strategy: {choice: []}\n",
        ["params.elf.strategy", "choice needs a non-empty list"],
    ),
    "duplicate choice": (P + "  elf.strategy: {choice: [aco, aco]}\n", ["lists aco twice"]),
    "unknown key": (
        P + "  train.learning_rate: {loguniform: [1.0e-3, 1.0e-2]}\n",
        ["params.train.learning_rate", "unknown trial key", "did you mean:", "train.lr,"],
    ),
    "out of bounds": (
        P + "  model.dropout: {uniform: [0.0, 0.95]}\n",
        ["params.model.dropout", "expected a value in [0, 0.9], got 0.95"],
    ),
    "not an allowed choice": (
        P + "  elf.strategy: {choice: [aco, bogus]}\n",
        ["params.elf.strategy", "expected one of", "'bogus'"],
    ),
    "wrong type": (P + "  elf.batch_norm: {choice: [true, 1]}\n", ["expected true or false"]),
    "nan": (P + "  loss.gamma: .nan\n", ["params.loss.gamma", "finite"]),
    "int for float kind": (
        P + "  train.lr: {int: [1, 2]}\n",
        ["params.train.lr", "int applies to int parameters; train.lr is float"],
    ),
    "int from string": (
        P + "  model.hidden: {int: [1e2, 200]}\n",
        ["params.model.hidden", "YAML read it as a string"],
    ),
    "int step": (
        P + "  model.hidden: {int: [32, 100], step: 32}\n",
        ["params.model.hidden.step", "multiple of step"],
    ),
    "option not taken": (
        P + "  train.lr: {loguniform: [1.0e-3, 1.0e-2], step: 1.0e-3}\n",
        ["params.train.lr.step", "loguniform does not take step"],
    ),
    "unknown field": (
        P + "  loss.gamma:\n    uniform: [0.5, 2.0]\n    wen: {loss.kind: focal}\n",
        [":4:", "params.loss.gamma.wen", "unknown field", "did you mean: when"],
    ),
    "bare list": (P + "  elf.strategy: [aco, rso]\n", ["params.elf.strategy", "{choice: [...]}"]),
    "condition on undefined": (
        P + "  loss.gamma: {uniform: [0.5, 2.0], when: {loss.kind: focal}}\n",
        ["params.loss.gamma.when.loss.kind", "condition on undefined parameter 'loss.kind'"],
    ),
    "condition on unknown": (
        P + "  loss.kind: {choice: [ce, focal]}\n"
        "  loss.gamma: {uniform: [0.5, 2.0], when: {loss.knd: focal}}\n",
        ["condition on undefined parameter 'loss.knd'", "did you mean: loss.kind"],
    ),
    "condition on impossible value": (
        P + "  elf.strategy: {choice: [none, rso]}\n"
        "  elf.granularity: {choice: [package], when: {elf.strategy: aco}}\n",
        ["params.elf.granularity.when.elf.strategy", "cannot take: aco is not in [none, rso]"],
    ),
    "condition on invalid value": (
        P + "  loss.kind: {choice: [ce, focal]}\n"
        "  loss.gamma: {uniform: [0.5, 2.0], when: {loss.kind: hinge}}\n",
        ["params.loss.gamma.when.loss.kind", "expected one of ['ce', 'focal', 'label_smoothing'"],
    ),
    "condition on continuous": (
        P + "  loss.gamma: {uniform: [0.5, 2.0]}\n"
        "  loss.alpha: {choice: [0.25], when: {loss.gamma: 1.0}}\n",
        [
            "params.loss.alpha.when.loss.gamma",
            "which is uniform [0.5, 2]; conditions need a choice",
        ],
    ),
    "cycle": (
        P + "  loss.kind: {choice: [ce, focal], when: {cw.method: none}}\n"
        "  cw.method: {choice: [none, balanced], when: {loss.kind: ce}}\n",
        [":2:", "conditions form a cycle: loss.kind -> cw.method -> loss.kind"],
    ),
    "conditional grid": (
        P + "  loss.kind: {choice: [ce, focal]}\n  seed: {grid: [0, 1], when: {loss.kind: ce}}\n",
        ["params.seed", "a grid parameter cannot have a condition"],
    ),
    "unknown top-level": (
        "param:\n  loss.kind: ce\n",
        [":1:", "param", "unknown top-level key", "did you mean: params"],
    ),
    "no params": ("description: nothing\n", ["params: the required top-level key is missing"]),
    "empty file": ("", ["file: the file is empty"]),
    "point unknown key": (
        P + "  train.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
        "points_to_evaluate:\n  - {train.lrr: 0.003}\n",
        ["points_to_evaluate.0.train.lrr", "unknown point key", "did you mean: train.lr"],
    ),
    "point key not searched": (
        P + "  train.lr: {loguniform: [1.0e-3, 1.0e-2]}\npoints_to_evaluate:\n  - {seed: 3}\n",
        ["points_to_evaluate.0.seed", "a trial key this space does not search"],
    ),
    "point outside distribution": (
        P + "  train.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
        "points_to_evaluate:\n  - {train.lr: 0.5}\n",
        ["points_to_evaluate.0.train.lr", "outside the distribution loguniform"],
    ),
    "point without parent": (
        P + "  loss.kind: {choice: [ce, focal]}\n"
        "  loss.gamma: {uniform: [0.5, 2.0], when: {loss.kind: focal}}\n"
        "points_to_evaluate:\n  - {loss.gamma: 1.0}\n",
        ["points_to_evaluate.0.loss.gamma", "set loss.kind in the point too"],
    ),
    "point with inactive key": (
        P + "  loss.kind: {choice: [ce, focal]}\n"
        "  loss.gamma: {uniform: [0.5, 2.0], when: {loss.kind: focal}}\n"
        "points_to_evaluate:\n  - {loss.kind: ce, loss.gamma: 1.0}\n",
        ["points_to_evaluate.0.loss.gamma", "inactive when loss.kind=ce"],
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_validation_errors_name_file_key_and_rule(tmp_path: Path, case: str) -> None:
    text, fragments = INVALID[case]
    message = _error(_write(tmp_path, text))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_alias_bomb_is_rejected_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}] " for i in range(1, 30)]
    message = _error(_write(tmp_path, "\n".join(lines) + "\n" + P + "  loss.kind: ce\n"))
    assert "anchors and aliases" in message


def test_oversized_file_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, P + "  loss.kind: ce\n" + "#" * (1 << 20) + "\n")
    assert "at most 1048576 bytes" in _error(path)


def test_unknown_space_name_suggests_close_names() -> None:
    with pytest.raises(UserInputError, match=r"unknown space 'elff'.*did you mean: elf"):
        load_space("elff")


def test_missing_file(tmp_path: Path) -> None:
    assert "space file not found" in _error(tmp_path / "nope.yaml")


def test_numeric_strings_are_coerced_for_float_params(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        P + "  train.lr: {loguniform: [1e-4, 1e-2]}\n"  # YAML 1.1 reads these as strings
        "  model.dropout: '0.2'\n"
        "  loss.kind: focal\n"
        "  loss.alpha: {choice: [none, 2.5e-1]}\n"
        "points_to_evaluate:\n  - {train.lr: 3e-3, loss.alpha: null}\n",
    )
    space = load_space(str(path))
    lr = space.params["train.lr"].dist
    assert (lr.low, lr.high) == (1e-4, 1e-2)
    assert space.params["model.dropout"].dist.value == 0.2
    assert space.params["loss.alpha"].dist.values == (None, 0.25)
    assert space.points_to_evaluate == ({"train.lr": 3e-3, "loss.alpha": None},)


def test_dependency_order_and_custom_distributions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "description: order\n"
        + P
        + "  loss.gamma: {uniform: [0.5, 2.0], when: {loss.kind: focal}}\n"
        "  model.hidden: {int: [32, 128], step: 32}\n"
        "  model.layers: {int: [1, 8], log: true}\n"
        "  elf.warmup_frac: {uniform: [0.0, 0.5], step: 0.25}\n"
        "  loss.kind: {choice: [ce, focal]}\n",
    )
    space = load_space(str(path))
    assert list(space.params).index("loss.kind") < list(space.params).index("loss.gamma")
    for cfg in _sample_define_by_run(space, 40):
        assert cfg["model.hidden"] in (32, 64, 96, 128)
        assert 1 <= cfg["model.layers"] <= 8
        assert cfg["elf.warmup_frac"] in (0.0, 0.25, 0.5)
        assert ("loss.gamma" in cfg) == (cfg["loss.kind"] == "focal")


# ---------------------------------------------------------------- Ray param_space


def _check_ray_config(space: Space, cfg: dict[str, Any]) -> None:
    """Inactive keys are None, active ones lie in their distribution; canonical() agrees."""
    if space.path.parent == SPACES_DIR:
        for key, active in _active_by_hand(cfg).items():
            if key in space.params and not active:
                assert cfg[key] is None, (key, cfg)
    for key, value in cfg.items():
        active = space.is_active(key, cfg)
        assert space.params[key].dist.contains(value) if active else value is None, (key, cfg)
    active_only = {k: v for k, v in cfg.items() if space.is_active(k, cfg)}
    assert canonical(cfg, fill_defaults=True) == canonical(active_only, fill_defaults=True)
    TrialParams.from_flat(canonical(cfg))


def test_param_space_samples_respect_conditions(tmp_path: Path) -> None:
    """Tune's variant generator (no cluster) resolves sample_from after the parents."""
    from ray.tune.search.variant_generator import generate_variants

    from search.param_space import to_param_space

    baseline = load_space("baseline")
    grid = [s["config"] for _, s in generate_variants({"config": to_param_space(baseline)})]
    assert [c["seed"] for c in grid] == [0, 1, 2, 3, 4]
    custom = _write(
        tmp_path,
        P + "  model.hidden: {int: [32, 128], step: 32}\n"
        "  model.layers: {int: [1, 3]}\n"
        "  elf.warmup_frac: {uniform: [0.0, 0.5], step: 0.25}\n",
    )
    spaces = [load_space(n) for n in ("elf", "focal", "class_weights", "full", str(custom))]
    assert pickle.loads(pickle.dumps(to_param_space(spaces[3])))  # Tune pickles param_space
    for space in spaces:
        compiled = to_param_space(space)
        for order in (compiled, dict(reversed(compiled.items()))):  # children before parents too
            for seed in range(40):
                for _, spec in generate_variants({"config": order}, random_state=seed):
                    _check_ray_config(space, spec["config"])
