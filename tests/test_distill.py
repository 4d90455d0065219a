"""Distillation: KL and JSD against hand computations and scipy, their symmetry, zero and T²
scale, extreme logits; the trial's combined loss; the teacher of a finished search."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr, softmax

from search.teacher import best_confirmed, cross_fit, fold_of, train_teacher
from trainables.canonical import DataFacts, canonical
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.errors import UserInputError
from trainables.losses.distill import distill_term, divergence, ensemble_log_p
from trainables.losses.trial_loss import TrialLoss
from trainables.objective import Objective
from trainables.params import TrialParams
from trainables.plugins import BUILT_IN

TINY = SyntheticSpec(n_train=256, n_val=128, n_test=64, reviewers=30, features=8, informative=4)


def logs(z: np.ndarray, t: float = 1.0) -> torch.Tensor:
    return torch.log_softmax(torch.tensor(z) / t, -1)


def test_kl_and_jsd_against_hand_and_scipy() -> None:
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.2, 0.5, 0.3])
    teacher, student = torch.tensor(np.log(p))[None], torch.tensor(np.log(q))[None]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))  # by hand
    assert float(divergence("kl", teacher, student, 1.0)) == pytest.approx(kl, rel=1e-6)
    assert float(divergence("kl", teacher, student, 1.0)) == pytest.approx(rel_entr(p, q).sum())
    m = (p + q) / 2
    hand = 0.5 * sum(p * np.log(p / m)) + 0.5 * sum(q * np.log(q / m))
    jsd = float(divergence("jsd", teacher, student, 1.0))
    assert jsd == pytest.approx(hand, rel=1e-6)
    assert jsd == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-6)  # scipy: natural log, squared
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 6)) * 3, rng.normal(size=(50, 6)) * 3
    t = 2.5
    got = divergence("jsd", logs(a, t), torch.tensor(b), t).numpy()
    want = jensenshannon(softmax(a / t, 1), softmax(b / t, 1), axis=1) ** 2
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # symmetric, ≤ ln 2, zero at equal distributions (KL too)
    back = divergence("jsd", logs(b, t), torch.tensor(a), t).numpy()
    np.testing.assert_allclose(got, back, rtol=1e-5)
    assert got.max() <= math.log(2)
    for kind in ("kl", "jsd"):
        same = divergence(kind, logs(a, t), torch.tensor(a), t)
        assert float(same.abs().max()) < 1e-6


def test_the_t_squared_factor_keeps_the_gradient_scale() -> None:
    """∂(T²·mean KL)/∂z = T·(q − p)/N exactly; for large T, q − p ≈ (z_s − z_t)/(C·T) (centred
    logits), so T²·D's gradient does not shrink with T (Hinton et al. 2015)."""
    rng = np.random.default_rng(1)
    teacher, student = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    grads = {}
    for t in (1.0, 10.0, 40.0):
        z = torch.tensor(student, requires_grad=True)
        distill_term("kl", logs(teacher, t), z, t).backward()
        grads[t] = z.grad.clone()
        q, p = softmax(student / t, 1), softmax(teacher / t, 1)
        np.testing.assert_allclose(
            grads[t].numpy(), t * (q - p) / 4, rtol=1e-5, atol=1e-6
        )  # float32
    zc, tc = student - student.mean(1, keepdims=True), teacher - teacher.mean(1, keepdims=True)
    np.testing.assert_allclose(grads[40.0].numpy(), (zc - tc) / 5 / 4, rtol=0.05, atol=1e-3)
    assert float(grads[40.0].norm() / grads[10.0].norm()) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["kl", "jsd"])
def test_extreme_logits_stay_finite(kind, dtype) -> None:
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=dtype, requires_grad=True)
    teacher = torch.log_softmax(torch.tensor([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]]), -1)
    loss = distill_term(kind, teacher, z, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    if kind == "jsd":  # disjoint one-hot distributions: JSD = ln 2
        assert float(loss) == pytest.approx(math.log(2), rel=1e-3)


def test_sequence_logits_average_over_the_real_tokens() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    got = float(distill_term("jsd", logs(a, 2.0), torch.tensor(b), 2.0, mask))
    d = jensenshannon(softmax(a / 2, -1), softmax(b / 2, -1), axis=-1) ** 2
    assert got == pytest.approx(4 * d[mask.numpy()].mean(), rel=1e-5)


def test_the_ensemble_averages_probabilities() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3, 6, 4))
    got = ensemble_log_p(torch.tensor(z), 2.0).exp().numpy()
    np.testing.assert_allclose(got, softmax(z / 2, -1).mean(0), rtol=1e-6)


@pytest.fixture(scope="module")
def data():
    d = make_synthetic(TINY)
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(len(d.train), 2, d.num_classes, generator=gen) * 2
    return replace(d, train=replace(d.train, teacher=teacher))


def test_the_trial_loss_mixes_task_and_distillation(data) -> None:
    import torch.nn.functional as F

    config = {"distill.kind": "jsd", "distill.weight": 0.3, "distill.temperature": 3.0}
    loss = TrialLoss(config, data.train, data.classes)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))
    step = loss.epoch(0, order)
    logits = torch.randn(32, data.num_classes, generator=torch.Generator().manual_seed(2))
    idx = order[8:40]
    got = float(step(logits, data.train.y[idx], 8))
    p = softmax(data.train.teacher[idx].numpy() / 3, -1).mean(1)
    q = softmax(logits.numpy() / 3, -1)
    term = 9 * (jensenshannon(p, q, axis=1) ** 2).mean()
    task = float(F.cross_entropy(logits, data.train.y[idx]))
    assert got == pytest.approx(0.7 * task + 0.3 * term, rel=1e-5)
    with pytest.raises(UserInputError, match="distill.teacher=<"):
        TrialLoss(config, replace(data.train, teacher=None), data.classes)


def test_canonical_distillation_rules(data) -> None:
    facts = DataFacts.of(data)
    off = canonical({"distill.kind": "kl", "distill.weight": 0.0}, fill_defaults=True, data=facts)
    assert off == canonical({}, fill_defaults=True, data=facts)
    on = canonical({"distill.kind": "kl", "distill.temperature": 4.0}, data=facts)
    assert on == {"distill.kind": "kl", "distill.temperature": 4.0}
    assert canonical({"distill.kind": "none", "distill.temperature": 4.0}, data=facts) == {
        "distill.kind": "none"
    }
    plain = DataFacts.of(make_synthetic(TINY))  # no teacher: the keys are never read
    assert "distill.kind" in plain.ignored


def test_a_teacher_never_sees_validation_or_test_labels(data) -> None:
    config = {"train.max_epochs": 3, "train.batch_size": 64, "seed": 1}
    plain = replace(data, train=replace(data.train, teacher=None))
    first = cross_fit(config, plain, BUILT_IN, Objective(), 3)
    flip = lambda s: replace(s, y=(s.y + 1) % data.num_classes)  # noqa: E731
    shuffled = replace(plain, val=flip(plain.val), test=flip(plain.test))
    assert torch.equal(first, cross_fit(config, shuffled, BUILT_IN, Objective(), 3))
    assert first.shape == (len(data.train), data.num_classes)


def test_each_row_is_predicted_by_teachers_that_never_fitted_it(data) -> None:
    config = {"train.max_epochs": 3, "train.batch_size": 64, "seed": 1}
    plain = replace(data, train=replace(data.train, teacher=None))
    folds = fold_of(plain.train.y, 3, 1)
    for k in range(3):  # class-stratified: every class in every fold, sizes within one per class
        counts = torch.bincount(plain.train.y[folds == k], minlength=data.num_classes)
        full = torch.bincount(plain.train.y, minlength=data.num_classes)
        assert ((counts - full / 3).abs() <= 1).all()
    before = cross_fit(config, plain, BUILT_IN, Objective(), 3)
    train = plain.train
    for k in range(3):  # fold k is predicted by a model fitted on the other folds only
        held, fit = (folds == k).nonzero().squeeze(1), (folds != k).nonzero().squeeze(1)
        flipped = replace(train.rows(held), y=(train.y[held] + 1) % data.num_classes)
        model_k = train_teacher(config, plain, train.rows(fit), flipped)  # its labels unread
        assert torch.equal(before[held], model_k)
    in_sample = cross_fit(config, plain, BUILT_IN, Objective(), 1)  # the literal form
    assert not torch.equal(in_sample, before)


def test_the_teacher_is_the_best_mean_validation_configuration(tmp_path) -> None:
    events = []
    for source, values in (("a", [0.5, 0.7]), ("b", [0.65, 0.64]), ("c", [0.9])):
        for seed, v in enumerate(values, start=1):
            rid = f"confirm_{source}_s{seed}"
            params = {"train.lr": 0.01 if source == "b" else 0.002, "seed": seed}
            events += [
                {"event": "start", "trial_id": rid, "time": 0, "params": params}
                | {"stage": "confirmation", "source": source, "role": "candidate"},
                {"event": "result", "trial_id": rid, "time": 0, "epoch": 3}
                | {"metrics": {"val_macro_f1": v}},
                {"event": "end", "trial_id": rid, "time": 0}
                | {"state": "completed" if source != "c" else "failed"},
            ]
    (tmp_path / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    params, seeds = best_confirmed(tmp_path, Objective("val_macro_f1", "max"))
    assert params == {"train.lr": 0.01} and seeds == [1, 2]  # b: 0.645 > a: 0.6; c failed
    params, _ = best_confirmed(tmp_path, Objective("val_macro_f1", "min"))
    assert params == {"train.lr": 0.002}


def test_distilled_and_plain_training_differ(data) -> None:
    from trainables.trial.loop import run_local

    short = {"train.max_epochs": 2, "train.batch_size": 64}
    plain = run_local(short, data)
    for kind in ("kl", "jsd"):
        distilled = run_local(short | {"distill.kind": kind}, data)
        assert distilled[-1]["val_loss"] != plain[-1]["val_loss"]
    assert TrialParams.from_flat({})["distill.kind"] == "none"


def test_a_teacher_folder_of_other_data_or_none_is_refused(data, tmp_path) -> None:
    from search.teacher import with_teacher

    with pytest.raises(UserInputError, match="not a search output folder"):
        with_teacher(tmp_path, data, BUILT_IN, 5)
    (tmp_path / "config.yaml").write_text("model: {name: mlp}\ntrainable: ''\n")
    (tmp_path / "data.json").write_text(json.dumps({"classes": ["a", "b"], "train_counts": [1, 2]}))
    with pytest.raises(UserInputError, match=r"it trained on other data \(classes \['a', 'b'\]"):
        with_teacher(tmp_path, data, BUILT_IN, 5)
    facts = {"classes": list(data.classes), "train_counts": data.train_counts().tolist()}
    (tmp_path / "data.json").write_text(json.dumps(facts))
    (tmp_path / "config.yaml").write_text("model: {name: text}\ntrainable: ''\n")
    with pytest.raises(UserInputError, match="it trained model=text trainable=built-in"):
        with_teacher(tmp_path, data, BUILT_IN, 5)
