"""docs/development.md's "Add a model" example, run: the page's module, imported as a
`model=package.module:factory` plug-in, registers its key (in `--help`, pinnable), trains a trial
through the built-in loop and trains differently when its key changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from search.run import usage
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.params import PARAMS
from trainables.plugins import Plugins
from trainables.trial import load_trainable, run_local

PAGE = Path(__file__).resolve().parents[1] / "docs" / "development.md"
MODEL = Plugins(model="linear_model:factory")
TINY = SyntheticSpec(n_train=256, n_val=128, n_test=64, reviewers=30, features=8, informative=4)


@pytest.fixture
def linear_model(tmp_path, monkeypatch):
    """The page's module in a temporary folder on sys.path; its key unregistered afterwards."""
    section = PAGE.read_text().split("\n## Add a model\n", 1)[1].split("\n## ", 1)[0]
    (module,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (tmp_path / "linear_model.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    PARAMS.pop("model.bias", None)


def test_a_model_plugin_registers_its_key_and_trains(linear_model):
    assert "model.bias" not in PARAMS
    load_trainable(MODEL)
    assert PARAMS["model.bias"].default is True
    assert re.search(r"model\.bias +default: True +linear_model: learn a bias\.", usage())
    data = make_synthetic(TINY)
    config = {"train.max_epochs": 3, "elf.strategy": "none"}
    with_bias = run_local(config, data, plugins=MODEL)
    without = run_local(config | {"model.bias": False}, data, plugins=MODEL)
    assert [r["epoch"] for r in with_bias] == [0, 1, 2]
    assert {"val_macro_f1", "val_loss", "val_ece"} <= set(with_bias[-1])
    assert with_bias[-1]["val_loss"] != without[-1]["val_loss"]
