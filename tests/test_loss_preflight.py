"""The loss preflight: corners of a space measured on one batch before Ray; a planted non-finite
or oversized loss refused with the keys named (exit 2, no Ray); preflight=only; the warnings."""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from search.run import main
from spaces import load_space
from spaces.fit import fit_to_data
from spaces.loss_preflight import MAX_RATIO, check_corners, corners, measure
from trainables.canonical import DataFacts
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.errors import UserInputError
from trainables.losses.trial_loss import TrialLoss
from trainables.plugins import BUILT_IN

TINY = SyntheticSpec(n_train=512, n_val=128, n_test=64, reviewers=30, features=8, informative=4)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(TINY)


def test_corners_cover_each_value_once_with_its_parents(data) -> None:
    facts = DataFacts.of(data)
    space, _ = fit_to_data(load_space("focal"), facts)
    found = corners(space, facts)
    assert (
        found[0]
        == {"loss.kind": "ce", "elf.strategy": "none", "cw.method": "none"}
        | {"train.balanced_sampling": False}
        or found[0] == {}
    )
    kinds = [c.get("loss.kind") for c in found]
    assert "focal" in kinds
    gammas = {c.get("loss.gamma") for c in found if c.get("loss.kind") == "focal"}
    assert {0.5, 5.0} <= gammas  # both ends of the uniform range, focal switched on
    alphas = {str(c.get("loss.alpha")) for c in found if c.get("loss.kind") == "focal"}
    assert {"inverse_frequency", "sqrt_inverse_frequency", "effective:0.999"} <= alphas


def test_a_corner_measures_loss_ratio_gradient_and_weights(data) -> None:
    plain = measure({}, data, BUILT_IN)
    assert plain.ratio == pytest.approx(1.0) and plain.w_ess == pytest.approx(1.0)
    torch.manual_seed(0)  # the same model and batch by hand
    from trainables.trial.context import TrialContext
    from trainables.trial.loop import prepare_params

    ctx = TrialContext(prepare_params({}, data), data.without_test(), torch.device("cpu"), None)
    model = ctx.build_model()
    order = ctx.loss().order(torch.Generator().manual_seed(0))[:256]
    torch.manual_seed(0)  # the preflight's dropout masks
    ce = F.cross_entropy(model(data.train.x[order], None), data.train.y[order])
    ce.backward()
    norm = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    assert plain.loss == pytest.approx(float(ce), rel=1e-6)
    assert plain.grad_norm == pytest.approx(norm, rel=1e-5)
    elf = measure({"elf.strategy": "rso"}, data, BUILT_IN)
    assert math.e <= elf.w_min <= elf.w_max <= math.e**2 and elf.w_ess < 1
    assert math.e <= elf.ratio <= math.e**2  # ω = e^(1+o) scales every per-sample loss


def test_a_planted_non_finite_configuration_is_refused_before_ray(tmp_path, capsys) -> None:
    space = tmp_path / "planted.yaml"
    space.write_text(
        "params:\n  elf.strategy: {choice: [none, aco]}\n"
        "  elf.clip_min: {choice: [null, 3.0e+38], when: {elf.strategy: aco}}\n"
    )
    assert main([f"space={space}", f"output_dir={tmp_path / 'out'}", "verbose=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {space}: loss preflight: elf.strategy=aco, elf.clip_min=3e+38: the loss (inf) or "
        "its gradient (inf) is not finite on a training batch; narrow the space or drop the value"
    )
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    assert not (tmp_path / "out").exists()


def test_a_loss_far_above_plain_ce_is_refused(data, tmp_path) -> None:
    space = tmp_path / "big.yaml"
    space.write_text("params:\n  elf.strategy: aco\n  elf.clip_min: {choice: [null, 5000.0]}\n")
    facts = DataFacts.of(data)
    fitted, _ = fit_to_data(load_space(str(space)), facts)
    with pytest.raises(
        UserInputError,
        match=rf"elf.clip_min=5000: the loss is .*× plain CE's \(more than {MAX_RATIO:g}×\)",
    ):
        check_corners(fitted, data, BUILT_IN, facts)


def test_preflight_only_prints_the_corners_and_starts_nothing(capsys) -> None:
    assert main(["space=focal", "preflight=only", "verbose=0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "loss",
        "×CE",
        "|grad|",
        "ESS/n",
        "w",
        "range",
        "settings",
    ]
    assert "loss.kind=focal, loss.gamma=5" in out
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


def test_probabilities_where_logits_are_expected_warn_once(data) -> None:
    loss = TrialLoss({}, data.train, data.classes)
    order = torch.arange(64)
    step = loss.epoch(0, order)
    probs = torch.rand(64, data.num_classes).softmax(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step(probs, data.train.y[:64], 0)
        step(probs, data.train.y[:64], 0)
    said = [w for w in caught if "returned probabilities" in str(w.message)]
    assert len(said) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrialLoss({}, data.train, data.classes).epoch(0, order)(
            torch.randn(64, 5), data.train.y[:64], 0
        )


def test_a_bound_float32_cannot_hold_is_refused_in_one_line(data, tmp_path) -> None:
    space = tmp_path / "huge.yaml"
    space.write_text("params:\n  elf.strategy: aco\n  elf.clip_min: {choice: [null, 1.0e+39]}\n")
    facts = DataFacts.of(data)
    fitted, _ = fit_to_data(load_space(str(space)), facts)
    with pytest.raises(UserInputError, match="elf.clip_min=1e[+]39: training raises RuntimeError"):
        check_corners(fitted, data, BUILT_IN, facts)


KINDS_SPACE = (
    "params:\n  loss.kind: {choice: [ce, ldam, gce, sce]}\n"
    "  loss.ldam_margin: {uniform: [0.0, 1.0], when: {loss.kind: ldam}}\n"
    "  loss.ldam_scale: {uniform: [1.0, 30.0], when: {loss.kind: ldam}}\n"
    "  loss.drw_frac: {uniform: [0.0, 1.0], when: {loss.kind: ldam}}\n"
    "  loss.q: {uniform: [0.0, 1.0], when: {loss.kind: gce}}\n"
    "  loss.sce_alpha: {uniform: [0.0, 6.0], when: {loss.kind: sce}}\n"
    "  loss.sce_beta: {uniform: [0.1, 1.0], when: {loss.kind: sce}}\n"
)


def test_the_corners_of_ldam_gce_and_sce_are_measured(data, tmp_path) -> None:
    space = tmp_path / "kinds.yaml"
    space.write_text(KINDS_SPACE)
    facts = DataFacts.of(data)
    fitted, _ = fit_to_data(load_space(str(space)), facts)
    measured = {
        tuple(sorted(c.settings.items())): c for c in check_corners(fitted, data, BUILT_IN, facts)
    }
    ldam = [dict(k) for k in measured if dict(k).get("loss.kind") == "ldam"]
    assert {d.get("loss.ldam_scale") for d in ldam} >= {30.0}
    assert {d.get("loss.drw_frac") for d in ldam} >= {0.0, 1.0}
    assert {"loss.kind": "gce", "loss.q": 1.0} in [dict(k) for k in measured]  # q = 0 is CE
    sce = [dict(k) for k in measured if dict(k).get("loss.kind") == "sce"]
    assert {d.get("loss.sce_alpha") for d in sce} >= {0.0, 6.0}
    # gce at q = 1 is 1 − p_y: below CE's −log p_y on every row, so below it on the batch
    gce = measured[(("loss.kind", "gce"), ("loss.q", 1.0))]
    assert 0 < gce.ratio < 1


def test_ldam_on_a_class_without_training_rows_is_refused_in_one_line(data, tmp_path) -> None:
    y = data.train.y.clone()
    y[y == 4] = 3
    empty = dataclasses.replace(data, train=dataclasses.replace(data.train, y=y))
    space = tmp_path / "kinds.yaml"
    space.write_text(KINDS_SPACE)
    facts = DataFacts.of(empty)
    fitted, _ = fit_to_data(load_space(str(space)), facts)
    with pytest.raises(UserInputError) as refused:
        check_corners(fitted, empty, BUILT_IN, facts)
    said = str(refused.value)
    assert "\n" not in said
    assert said.startswith(f"{space}: loss preflight: loss.kind=ldam: loss.kind=ldam: class ")
    assert "has no training rows" in said and said.endswith("narrow the space or drop the value")
    # a space without a kind that needs every class is not refused for the others' defaults
    fit_to_data(load_space("elf"), facts)
    # a value list is refused by the space's fit already, naming the key
    space.write_text("params:\n  loss.kind: ldam\n  loss.ldam_margin: {choice: [0.0, 0.5]}\n")
    with pytest.raises(UserInputError, match=rf"^{space}: loss.ldam_margin: loss.kind=ldam: class"):
        fit_to_data(load_space(str(space)), facts)
