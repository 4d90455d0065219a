"""`loss=package.module:name` (issue 30): a researcher's own loss as a plug-in loss kind.

examples/user_loss.py (the Taylor cross-entropy) against numpy; the harness weighs it as every
kind; the kind and its key are trial keys (per task too); loss= pins loss.kind where the space does
not search it; resume refuses a changed loss=; a search through a real local Ray trains, logs,
reports and confirms it. Bad plug-ins: tests/test_bad_input.py; its key changes training:
tests/test_knobs.py.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from helpers import SMALL, read_record, sqlite_store
from mlflow import MlflowClient
from sklearn.utils.class_weight import compute_class_weight

import search.driver
from examples.user_loss import taylor_ce
from search.outputs import prepare_output
from search.run import main, resolve
from trainables.canonical import canonical
from trainables.data.dataset import Split
from trainables.errors import UserInputError
from trainables.losses.kinds import LOSS_KINDS
from trainables.losses.kinds.plugin import load_loss_kind
from trainables.losses.trial_loss import TrialLoss
from trainables.params import PARAMS, TrialParams, param
from trainables.plugins import Plugins
from trainables.trial.loop import run_local

REF = "examples.user_loss:taylor_ce"
SPACE = "examples/user_loss.yaml"


def numpy_taylor(logits: np.ndarray, target: np.ndarray, order: int) -> np.ndarray:
    """Σ_{k=1}^{t} (1 − p_y)^k / k, p the softmax, in float64 (Feng et al. 2020, eq. 5)."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    q = 1.0 - p[np.arange(len(target)), target]
    return sum(q**k / k for k in range(1, order + 1))


@pytest.mark.parametrize("order", [1, 2, 5])
def test_the_example_is_the_taylor_cross_entropy(order: int) -> None:
    gen = torch.Generator().manual_seed(order)
    logits = torch.randn(40, 4, generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, 4, (40,), generator=gen)
    got = taylor_ce(logits, target, {"loss.taylor_order": order})
    want = numpy_taylor(logits.numpy(), target.numpy(), order)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    if order == 1:  # t = 1: 1 − p_y, half the mean absolute error of the one-hot target
        mae = np.abs(logits.softmax(-1).numpy() - np.eye(4)[target.numpy()]).sum(axis=1)
        np.testing.assert_allclose(got.numpy(), mae / 2, rtol=1e-12)


def test_the_harness_weighs_a_plugin_kind_as_every_kind() -> None:
    """TrialLoss with balanced class weights: mean over the batch of cw[y_i]·ℓ_i, cw as
    scikit-learn computes it, ℓ the plug-in's own function."""
    kind = load_loss_kind(REF)
    assert kind.name == "taylor_ce" and LOSS_KINDS["taylor_ce"] is kind
    gen = torch.Generator().manual_seed(0)
    y = torch.tensor([0] * 30 + [1] * 6 + [2] * 12)
    nan = torch.full((len(y), 3), float("nan"))
    split = Split(torch.randn(len(y), 3, generator=gen), y, nan, nan)
    config = {"loss.kind": "taylor_ce", "loss.taylor_order": 3, "cw.method": "balanced"}
    loss = TrialLoss(config, split, ["a", "b", "c"])
    logits = torch.randn(len(y), 3, generator=gen)
    got = loss.epoch(0, torch.arange(len(y)))(logits, y, 0)
    cw = compute_class_weight("balanced", classes=np.arange(3), y=y.numpy())
    ell = numpy_taylor(logits.double().numpy(), y.numpy(), 3)
    assert float(got) == pytest.approx(float(np.mean(cw[y.numpy()] * ell)), rel=1e-5)


def test_the_kind_and_its_key_are_trial_keys_per_task_too() -> None:
    load_loss_kind(REF)
    assert load_loss_kind(REF) is LOSS_KINDS["taylor_ce"]  # again (a worker's load): a no-op
    assert "taylor_ce" in PARAMS["loss.kind"].choices
    assert PARAMS["loss.taylor_order"].when == (("loss.kind", ("taylor_ce",)),)
    assert "taylor_ce" in param("loss.first.kind").choices
    assert param("loss.first.taylor_order").high == 12
    assert TrialParams.from_flat({"loss.kind": "taylor_ce"})["loss.taylor_order"] == 2
    with pytest.raises(ValueError, match=r"loss.taylor_order: expected a value in \[1, 12\]"):
        TrialParams.from_flat({"loss.kind": "taylor_ce", "loss.taylor_order": 20})


def _args(tmp_path, *extra: str) -> list[str]:
    return [f"output_dir={tmp_path / 'out'}", "mlflow.enabled=false", f"loss={REF}", *extra]


def test_loss_pins_loss_kind_where_the_space_does_not_search_it(tmp_path) -> None:
    cfg, space = resolve(_args(tmp_path, "space=elf"), {})
    assert cfg.params == {"loss.kind": "taylor_ce"} and cfg.loss == REF
    assert space.params["loss.kind"].dist.value == "taylor_ce"
    assert space.notes == (
        f"loss={REF}: every trial trains loss.kind=taylor_ce (the space's loss.kind=ce gives way)",
    )
    cfg, space = resolve(_args(tmp_path, f"space={SPACE}"), {})  # it searches loss.kind: as is
    assert cfg.params == {} and space.params["loss.kind"].dist.finite == ("ce", "taylor_ce")


def test_resume_accepts_the_same_loss_and_refuses_another(tmp_path, monkeypatch, capsys) -> None:
    cfg, space = resolve(_args(tmp_path, "space=elf"), {})
    prepare_output(cfg, space)  # what a started search leaves: marker, config.yaml, space.yaml
    again, resumed = resolve([f"resume={cfg.output_dir}"], {})
    assert again.loss == REF and resumed.params["loss.kind"].dist.value == "taylor_ce"
    (tmp_path / "mae_loss.py").write_text(
        "def mae(logits, target, params):\n"
        "    return 1 - logits.softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main([f"resume={cfg.output_dir}", "loss=mae_loss:mae"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: resume={cfg.output_dir}: loss cannot change on resume (saved ")
    assert f"'{REF}', given 'mae_loss:mae'" in err


@pytest.mark.slow
def test_a_loss_plugin_is_searched_logged_reported_and_confirmed(ray_local, tmp_path) -> None:
    cfg, space = resolve(
        [
            f"space={SPACE}",
            f"loss={REF}",
            f"output_dir={tmp_path / 'out'}",
            f"mlflow.tracking_uri={sqlite_store(tmp_path)}",
            "mlflow.experiment=loss_plugin",
            "train.max_epochs=3",
            "scheduler.grace_period=1",
            "search.num_samples=4",
            "confirm.min_seeds=1",
            "confirm.max_seeds=1",
            "confirm.top_k=4",
            "confirm.front=false",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
        ],
        {},
    )
    outcome = search.driver.run(cfg, space)
    events = read_record(outcome.output_dir / "record.jsonl")
    starts = [e for e in events if e["event"] == "start" and e.get("stage") != "confirmation"]
    assert len(starts) == 4
    taylor = [e["params"] for e in starts if e["params"]["loss.kind"] == "taylor_ce"]
    assert taylor and all(1 <= p["loss.taylor_order"] <= 6 for p in taylor)
    ran = [e for e in events if e["event"] == "start" and e.get("stage") == "confirmation"]
    mine = {e["trial_id"] for e in ran if e["params"]["loss.kind"] == "taylor_ce"}
    confirmed = [e for e in events if e["event"] == "result" and e["trial_id"] in mine]
    assert mine and len(confirmed) == len(mine)
    assert all(len(e["predictions"]) == SMALL["n_test"] for e in confirmed)
    runs = MlflowClient(outcome.tracking_uri).search_runs(
        [MlflowClient(outcome.tracking_uri).get_experiment_by_name("loss_plugin").experiment_id]
    )
    parent = next(
        r for r in runs if "ray.trial_id" not in r.data.tags and "stage" not in r.data.tags
    )
    assert parent.data.params["loss"] == REF  # which loss code ran
    trials = [r for r in runs if "ray.trial_id" in r.data.tags]
    assert {r.data.params["loss.kind"] for r in trials} <= {"ce", "taylor_ce"}
    assert any(r.data.params.get("loss.taylor_order") for r in trials)
    with (outcome.report_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["loss.kind"] for r in rows} == {e["params"]["loss.kind"] for e in starts}


def test_a_functions_same_as_is_merged_by_canonical(tmp_path, monkeypatch) -> None:
    """(1 − m)·CE + m·(1 − p_y) with same_as "ce" at m = 0: canonical trains that as ce."""
    (tmp_path / "mixed_loss.py").write_text(
        "from trainables.params import Param\n\n\n"
        "def mixed(logits, target, params):\n"
        "    m = params['loss.mix']\n"
        "    log_p = logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)\n"
        "    return (1 - m) * -log_p + m * (1 - log_p.exp())\n\n\n"
        "mixed.params = [Param('loss.mix', 0.5, 'float', 'MAE share.', low=0, high=1)]\n"
        "mixed.same_as = lambda values: 'ce' if values['loss.mix'] == 0 else None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kind = load_loss_kind("mixed_loss:mixed")
    assert canonical({"loss.kind": "mixed", "loss.mix": 0.0}) == canonical({"loss.kind": "ce"})
    assert canonical({"loss.kind": "mixed", "loss.mix": 0.3})["loss.kind"] == "mixed"
    logits, target = (
        torch.randn(16, 3, generator=torch.Generator().manual_seed(1)),
        torch.arange(16) % 3,
    )
    at_zero = kind.per_sample(logits, target, {"loss.mix": 0.0}, None)
    want = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(at_zero, want)


def test_a_loss_kind_object_is_registered_with_its_prepare(tmp_path, monkeypatch, small_data):
    """A LossKind plug-in: its prepare's context reaches its per-sample function, run_local
    (the trials' path) loads it through Plugins(loss=), and its name is loss.kind's value."""
    (tmp_path / "prior_loss.py").write_text(
        "from trainables.losses.kinds import LossKind\n\n\n"
        "def per_sample(logits, target, params, prior):\n"
        "    return -(logits + prior.log()).log_softmax(-1).gather(-1, target[:, None])[:, 0]\n\n\n"
        "def prepare(params, counts, classes):\n"
        "    return counts.float() / counts.sum()\n\n\n"
        "KIND = LossKind('prior_shift', 'CE on logits + log prior', per_sample, prepare=prepare)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = run_local(
        {"loss.kind": "prior_shift", "train.max_epochs": 1},
        small_data,
        plugins=Plugins(loss="prior_loss:KIND"),
    )
    assert LOSS_KINDS["prior_shift"].prepare.__module__ == "prior_loss"
    assert out[0]["train_loss"] > 0 and 0 <= out[0]["val_macro_f1"] <= 1
    # the same as logit adjustment at τ = 1 (Menon et al. 2021): one more, independent path
    logits, target = (
        torch.randn(8, 5, generator=torch.Generator().manual_seed(2)),
        torch.arange(8) % 5,
    )
    counts = small_data.train_counts()
    mine = LOSS_KINDS["prior_shift"]
    prior = mine.prepare({}, counts, small_data.classes)
    want = torch.nn.functional.cross_entropy(
        logits + torch.log(counts / counts.sum()), target, reduction="none"
    )
    torch.testing.assert_close(mine.per_sample(logits, target, {}, prior), want.float())


def test_a_function_with_a_prepare_is_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "half_loss.py").write_text(
        "def f(logits, target, params):\n    return logits[:, 0]\n\n\n"
        "f.prepare = lambda params, counts, classes: None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        UserInputError, match="loss=half_loss:f: a function's 'prepare' is not read"
    ):
        load_loss_kind("half_loss:f")
