"""Plug-ins (issue 16): the public loss API, `model=` factories and `trainable=` functions.

The built-in trainable and examples/user_trainable.py (its own loop on the public API) report the
same numbers bit for bit; a user factory and a user trainable are each searched end to end (ASHA,
MLflow, the report, the confirmation stage); every bad plug-in fails before Ray with one line.
"""

from __future__ import annotations

import csv
import json
import textwrap

import pytest
from helpers import SMALL, read_record, sqlite_store
from mlflow import MlflowClient

import search.driver
from search.config import load_config
from search.run import main
from spaces import load_space
from trainables.plugins import Plugins
from trainables.trial.loop import load_trainable, run_local

USER_MODEL = "examples.user_model:factory"
USER_TRAINABLE = "examples.user_trainable:train"
TIMING = ("epoch_time_s", "train_time_s")
CONFIGS = [
    {"train.max_epochs": 3},
    {
        "train.max_epochs": 3,
        **{"elf.strategy": "rso", "elf.batch_norm": True, "elf.warmup_frac": 0.5},
        **{"elf.clip_max": 7.0, "cw.method": "balanced", "loss.kind": "focal", "loss.gamma": 1.5},
        **{"loss.alpha": "inverse_frequency", "train.balanced_sampling": True},
    },
]


def _numbers(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in results]


@pytest.mark.filterwarnings("ignore:train.balanced_sampling=true with cw.method")
@pytest.mark.parametrize("config", CONFIGS, ids=["plain", "everything"])
def test_a_user_loop_on_the_public_api_matches_the_built_in_bit_for_bit(small_data, config):
    built_in = _numbers(run_local(config, small_data))
    user = _numbers(run_local(config, small_data, plugins=Plugins(trainable=USER_TRAINABLE)))
    assert user == built_in and len(built_in) == 3
    if "elf.strategy" in config:  # the weights did vary: the loss API applied them
        assert built_in[-1]["w_std"] > 0


@pytest.mark.filterwarnings("ignore:train.balanced_sampling=true with cw.method")
def test_a_user_trainable_resumes_from_its_checkpoint_as_if_never_stopped(small_data):
    """The harness hands back what the trainable saved (`ctx.checkpoint`, `ctx.start_epoch`)."""
    import copy

    import torch

    from trainables.trial.context import TrialContext
    from trainables.trial.loop import prepare_params

    user = Plugins(trainable=USER_TRAINABLE)
    function = load_trainable(user)
    params = prepare_params(CONFIGS[1] | {"train.max_epochs": 4}, small_data)

    def trial(restored=None) -> list[tuple[dict, dict]]:
        out: list[tuple[dict, dict]] = []
        sink = lambda m, s: out.append((m, copy.deepcopy(s)))  # noqa: E731
        function(TrialContext(params, small_data, torch.device("cpu"), sink, restored=restored))
        return out

    full = trial()
    resumed = trial(restored=full[1][1])  # the checkpoint after epoch 1
    assert [m["epoch"] for m, _ in resumed] == [2, 3]
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMING}  # noqa: E731
    assert [drop(m) for m, _ in resumed] == [drop(m) for m, _ in full[2:]]


def test_a_user_factory_gets_its_declared_keys_validated(small_data):
    factory = Plugins(model=USER_MODEL)
    out = run_local(
        {"train.max_epochs": 1, "model.width": 8, "model.blocks": 1}, small_data, plugins=factory
    )
    assert 0 <= out[0]["val_macro_f1"] <= 1
    with pytest.raises(Exception, match=r"model.width: expected a value in \[4"):
        run_local({"model.width": 2}, small_data, plugins=factory)


def run_search(tmp_path, *extra: str):
    cfg = load_config(
        [
            f"output_dir={tmp_path / 'out'}",
            f"mlflow.tracking_uri={sqlite_store(tmp_path)}",
            "mlflow.experiment=plugins",
            "train.max_epochs=3",
            "scheduler.grace_period=1",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
            *extra,
        ]
    )
    load_trainable(cfg.plugins)
    return cfg, search.driver.run(cfg, load_space(cfg.space))


def _children(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("plugins")
    return client.search_runs([exp.experiment_id])


@pytest.mark.slow
def test_a_user_model_is_searched_with_asha_into_mlflow_and_the_report(ray_local, tmp_path):
    cfg, outcome = run_search(
        tmp_path,
        "space=examples/user_model.yaml",
        f"model={USER_MODEL}",
        "search.num_samples=5",
        "confirm.max_seeds=0",
    )
    assert outcome.counts.get("completed", 0) + outcome.counts.get("stopped_early", 0) == 5
    starts = [e for e in read_record(outcome.output_dir / "record.jsonl") if e["event"] == "start"]
    widths = {e["params"]["model.width"] for e in starts}
    assert widths <= {32, 64, 128} and len(widths) > 1
    runs = _children(outcome.tracking_uri)
    trials = [r for r in runs if "ray.trial_id" in r.data.tags]
    assert len(trials) == 5 and all("model.width" in r.data.params for r in trials)
    parent = next(
        r for r in runs if "ray.trial_id" not in r.data.tags and "stage" not in r.data.tags
    )
    assert parent.data.params["model.name"] == USER_MODEL
    with (outcome.report_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {int(r["model.width"]) for r in rows} == widths


@pytest.mark.slow
def test_a_user_trainable_is_searched_and_confirmed(ray_local, tmp_path):
    cfg, outcome = run_search(
        tmp_path,
        "space=baseline",
        f"trainable={USER_TRAINABLE}",
        "search.num_samples=3",
        "confirm.min_seeds=1",
        "confirm.max_seeds=1",
        "confirm.top_k=1",
        "confirm.front=false",
    )
    events = read_record(outcome.output_dir / "record.jsonl")
    ends = [e for e in events if e["event"] == "end" and e.get("stage") != "confirmation"]
    confirmed = [e for e in events if e["event"] == "result" and "predictions" in e]
    assert confirmed and all(len(e["predictions"]) == SMALL["n_test"] for e in confirmed)
    assert all("test_macro_f1" in e["metrics"] for e in confirmed)
    summary = json.loads((outcome.report_dir / "summary.json").read_text())
    assert summary["confirmation"]["answer"]
    assert len(ends) >= 3


# ------------------------------------------------------------------ bad plug-ins, before Ray

BAD = {
    "model_unimportable": (
        {},
        ["model=nosuch_pkg.mod:factory"],
        ("model=nosuch_pkg.mod:factory", "cannot import nosuch_pkg.mod", "ModuleNotFoundError"),
    ),
    "trainable_import_error": (
        {"broken_import": "import nosuch_dependency\n"},
        ["trainable=broken_import:train"],
        ("cannot import broken_import", "No module named 'nosuch_dependency'"),
    ),
    "trainable_not_found": (
        {"no_function": "def other(ctx):\n    pass\n"},
        ["trainable=no_function:train"],
        ("trainable=no_function:train", "train in no_function is not found"),
    ),
    "reference_without_colon": (
        {},
        ["trainable=examples.user_trainable"],
        ("trainable=examples.user_trainable", "expected package.module:function"),
    ),
    "model_wrong_shape": (
        {
            "wrong_shape": """
            from torch import nn

            def factory(inputs, params):
                return _Wide(inputs.num_features, inputs.num_classes + 1)

            class _Wide(nn.Linear):
                def forward(self, x, tokens=None):
                    return super().forward(x)
            """
        },
        ["model=wrong_shape:factory"],
        (
            "preflight of model=wrong_shape:factory",
            "shape (64, 6)",
            "(N, C) = (64, 5)",
        ),
    ),
    "model_integer_output": (
        {
            "ints": """
            from torch import nn

            def factory(inputs, params):
                return _Ints(inputs.num_features, inputs.num_classes)

            class _Ints(nn.Linear):
                def forward(self, x, tokens=None):
                    return super().forward(x).round().long()
            """
        },
        ["model=ints:factory"],
        ("preflight of model=ints:factory", "torch.int64 logits", "expected float logits"),
    ),
    "trainable_never_reports": (
        {"silent": "def train(ctx):\n    pass\n"},
        ["trainable=silent:train"],
        ("trainable=silent:train", "returned without calling ctx.report"),
    ),
    "trainable_without_the_search_metric": (
        {"no_metric": "def train(ctx):\n    ctx.report({'train_loss': 1.0})\n"},
        ["trainable=no_metric:train"],
        ("without search.metric 'val_macro_f1'", "pass model= to ctx.report"),
    ),
    "trainable_without_an_objective": (
        {"one_metric": "def train(ctx):\n    ctx.report({'val_macro_f1': 0.5})\n"},
        ["trainable=one_metric:train"],
        ("does not report ['val_worst_recall', 'val_ece'] (report.objectives)",),
    ),
    "checkpoint_not_restorable": (
        {
            "numpy_state": """
            import numpy as np

            def train(ctx):
                ctx.report({"val_macro_f1": 0.5, "val_worst_recall": 0.1, "val_ece": 0.2},
                           checkpoint={"rng": np.random.default_rng(0)})
            """
        },
        ["trainable=numpy_state:train"],
        ("the checkpoint passed to ctx.report cannot be restored", "tensors and plain values"),
    ),
    "trainable_raises": (
        {"raises": "def train(ctx):\n    raise ValueError('boom at step 3')\n"},
        ["trainable=raises:train"],
        ("preflight of model=mlp trainable=raises:train", "ValueError: boom at step 3"),
    ),
    "declared_default_out_of_bounds": (
        {
            "bad_default": """
            from trainables.params import Param
            from trainables.models.registry import mlp as factory

            factory.params = [Param("model.width", 0, "int", "Width.", low=1)]
            """
        },
        ["model=bad_default:factory"],
        ("model=bad_default:factory", "the default of model.width: expected a value in [1"),
    ),
    "declared_key_clashes": (
        {
            "clash": """
            from trainables.params import Param

            def train(ctx):
                pass

            train.params = [Param("train.lr", 1.0, "float", "Mine.")]
            """
        },
        ["trainable=clash:train"],
        ("trainable=clash:train", "declares 'train.lr', which is already a trial key"),
    ),
    "text_without_a_text_column": (
        {},
        ["model=text"],
        ("model=text needs a text column: data.text=<column>",),
    ),
    "unknown_model_name": (
        {},
        ["model=bert"],
        ("model=bert", "expected one of ['mlp', 'text'] or package.module:factory"),
    ),
}


@pytest.fixture
def no_ray(tmp_path, monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("the plug-in passed the preflight and the CLI went on to start Ray")

    monkeypatch.setattr(search.driver, "connect", tripwire)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    (tmp_path / "plugins").mkdir()
    return tmp_path


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_plugin_is_one_line_before_ray(name, no_ray, capsys):
    modules, args, fragments = BAD[name]
    for module, code in modules.items():
        (no_ray / "plugins" / f"{module}.py").write_text(textwrap.dedent(code))
    out = no_ray / "out"
    code = main([*args, f"output_dir={out}", "mlflow.enabled=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], f"{fragment!r} not in {err[0]!r}"
    assert not out.exists()  # and the tripwire saw no Ray start
