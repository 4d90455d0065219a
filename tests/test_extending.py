"""The worked examples of docs/development.md, run as written: "Add a loss kind" registers NCE+MAE
(apl, Ma et al. 2020) from a module of its own, and the kind computes the paper's formula, is in
`--help`, is searched by a space and trains differently from cross-entropy; its registration is
undone afterwards. A plug-in's key says when it matters
(`Param.when`) and `canonical` reads it."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import optuna
import pytest
import torch

from search.run import usage
from spaces import load_space
from spaces.fit import fit_to_data
from spaces.loss_preflight import check_corners
from trainables.canonical import DataFacts, canonical
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.losses.kinds import BUILT_IN_KINDS, LOSS_KINDS, unregister_loss_kind
from trainables.params import PARAMS, Param
from trainables.plugins import Plugins, register
from trainables.trial.loop import run_local

DOC = Path(__file__).resolve().parents[1] / "docs" / "development.md"
TINY = SyntheticSpec(n_train=512, n_val=256, n_test=64, reviewers=40, features=12, informative=6)
SHORT = {"train.max_epochs": 3, "train.batch_size": 64, "model.hidden": 32}


def example(section: str) -> str:
    """The first python block of `section` in docs/development.md."""
    text = DOC.read_text(encoding="utf-8").split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.fixture
def apl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The doc's NCE+MAE module, saved as apl.py and imported (registering it); unregistered
    and forgotten afterwards."""
    (tmp_path / "apl.py").write_text(example("Add a loss kind"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("apl")
    finally:
        sys.modules.pop("apl", None)
        unregister_loss_kind("apl")
    assert "apl" not in LOSS_KINDS and "loss.apl_beta" not in PARAMS
    assert PARAMS["loss.kind"].choices == BUILT_IN_KINDS


def test_the_example_kind_is_the_papers_formula(apl: ModuleType) -> None:
    # Ma et al. 2020: NCE = −log p_y / Σ_k −log p_k, MAE = Σ_k |onehot_k − p_k|, APL = NCE + β·MAE
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, 4, (32,), generator=gen)
    ours = apl.per_sample(logits, target, {"loss.apl_beta": 0.5}, None).numpy()
    z = logits.numpy()
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    rows = np.arange(32)
    nce = -logp[rows, target.numpy()] / -logp.sum(1)
    mae = np.abs(np.eye(4)[target.numpy()] - np.exp(logp)).sum(1)
    np.testing.assert_allclose(ours, nce + 0.5 * mae, rtol=1e-10)


def test_a_registered_loss_kind_is_in_help_searched_and_trains_differently(
    apl: ModuleType, tmp_path: Path
) -> None:
    # --help lists the kind among loss.kind's values and its key
    shown = usage()
    assert re.search(r"loss\.kind .*One of: " + ", ".join(BUILT_IN_KINDS) + r", apl\.", shown)
    assert re.search(r"loss\.apl_beta +default: 1\.0 +APL weight", shown)
    fields = "kind, gamma, alpha, smoothing, tau, epsilon, ldam_margin, ldam_scale, drw_frac, q"
    assert f"{fields}, sce_alpha, sce_beta, apl_beta of one task" in shown

    # a space searches it (compiled and sampled define-by-run), its key only under its kind
    path = tmp_path / "apl.yaml"
    path.write_text(
        "params:\n"
        "  loss.kind: {choice: [ce, apl]}\n"
        "  loss.apl_beta: {uniform: [0.5, 2.0], when: {loss.kind: apl}}\n",
        encoding="utf-8",
    )
    space = load_space(str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(12):
        trial = study.ask()
        space.define_by_run(trial)
        drawn.append(trial.params)
        study.tell(trial, 0.0)
    assert {d["loss.kind"] for d in drawn} == {"ce", "apl"}
    assert all(("loss.apl_beta" in d) == (d["loss.kind"] == "apl") for d in drawn)
    assert canonical({"loss.kind": "ce", "loss.apl_beta": 0.5}) == {"loss.kind": "ce"}
    assert canonical({"loss.kind": "apl", "loss.apl_beta": 0.5}) == {
        "loss.kind": "apl",
        "loss.apl_beta": 0.5,
    }

    # the loss preflight measures a corner of it on a training batch
    data = make_synthetic(TINY)
    plugins = Plugins(trainable="apl:train")
    facts = DataFacts.of(data)
    measured = check_corners(fit_to_data(space, facts)[0], data, plugins, facts)
    assert {c.settings.get("loss.kind") for c in measured} >= {"apl"}

    # it trains, differently from ce, through the plug-in route the doc gives
    ce = run_local(SHORT | {"loss.kind": "ce"}, data, plugins=plugins)
    apl_run = run_local(SHORT | {"loss.kind": "apl", "loss.apl_beta": 1.0}, data, plugins=plugins)
    assert len(apl_run) == SHORT["train.max_epochs"]
    gaps = [abs(a["val_loss"] - b["val_loss"]) for a, b in zip(ce, apl_run, strict=True)]
    assert max(gaps) > 1e-3, gaps


def test_a_plugin_keys_when_is_read_by_canonical() -> None:
    deep = Param("model.skip", True, "bool", "Skip connections.", when=(("model.layers", (3, 4)),))
    register([deep], "model=test")
    try:
        assert canonical({"model.layers": 2, "model.skip": False}) == {"model.layers": 2}
        kept = {"model.layers": 3, "model.skip": False}
        assert canonical(kept) == kept
    finally:
        PARAMS.pop("model.skip")
