"""Label-quality sample weights (lq.*): cleanlab's scores from out-of-fold probabilities, the
weight rule, the loss that applies them, and the driver that computes them once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cleanlab.rank import get_label_quality_scores
from helpers import two_tasks
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from search.config import load_config
from search.driver import prepare, write_data_notes
from spaces import load_space
from spaces.pins import pin
from trainables.canonical import DataFacts, canonical
from trainables.data.dataset import Dataset
from trainables.data.label_quality import (
    MODEL,
    check_folds,
    out_of_fold_probs,
    with_label_quality,
)
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.errors import UserInputError
from trainables.losses.quality_weights import power_weights, quality_weights
from trainables.losses.trial_loss import TrialLoss, applied_weights
from trainables.losses.weights import train_weights, warmup_ramp
from trainables.params import LQ_ON, TrialParams, as_plain_ce, is_plain_ce

SPEC = SyntheticSpec(n_train=1200, n_val=300, n_test=100, reviewers=60, features=12, informative=6)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_synthetic(SPEC)


@pytest.fixture(scope="module")
def scored(data: Dataset) -> Dataset:
    return with_label_quality(data, 5, cache=None)


def independent_probs(data: Dataset, folds: int = 5) -> np.ndarray:
    """The out-of-fold probabilities as the documented recipe computes them, written out here."""
    x, y = data.train.x.double().numpy(), data.train.y.numpy()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    return cross_val_predict(
        LogisticRegression(C=1.0, max_iter=1000), x, y, cv=cv, method="predict_proba"
    )


def test_scores_are_cleanlabs_on_out_of_fold_probabilities(data: Dataset, scored: Dataset) -> None:
    probs = independent_probs(data)
    y = data.train.y.numpy()
    assert scored.train.quality.shape == (len(y), len(LQ_ON))
    for i, method in enumerate(LQ_ON):
        expected = get_label_quality_scores(y, probs, method=method)
        np.testing.assert_allclose(scored.train.quality[:, i].numpy(), expected, rtol=1e-12)
    # self_confidence is P[y] itself
    np.testing.assert_allclose(scored.train.quality[:, 0].numpy(), probs[np.arange(len(y)), y])
    assert scored.val.quality is None and scored.test.quality is None
    assert scored.meta["label_quality"] == {
        "folds": 5,
        "model": MODEL,
        "seed": 0,
        "methods": list(LQ_ON),
    }


def test_a_rows_probabilities_come_from_a_model_that_never_saw_it(data: Dataset) -> None:
    x, y = data.train.x.double().numpy(), data.train.y.numpy()
    probs = out_of_fold_probs(x, y, 4)
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=0).split(x, y)
    for fit, held in folds:
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x[fit], y[fit])
        np.testing.assert_allclose(probs[held], model.predict_proba(x[held]), rtol=1e-10)
    # in-sample probabilities flatter the labels they were fitted on
    fitted = LogisticRegression(C=1.0, max_iter=1000).fit(x, y).predict_proba(x)
    in_sample = fitted[np.arange(len(y)), y].mean()
    assert in_sample > probs[np.arange(len(y)), y].mean()


def test_validation_and_test_labels_never_reach_the_scores(data: Dataset, scored: Dataset) -> None:
    gen = torch.Generator().manual_seed(1)
    shuffled = replace(
        data,
        val=replace(data.val, y=data.val.y[torch.randperm(len(data.val), generator=gen)]),
        test=replace(data.test, y=torch.zeros_like(data.test.y)),
    )
    again = with_label_quality(shuffled, 5, cache=None)
    assert torch.equal(again.train.quality, scored.train.quality)
    # and the training labels do: one flipped label changes its own score
    y = data.train.y.clone()
    y[0] = (y[0] + 1) % len(data.classes)
    flipped = with_label_quality(replace(data, train=replace(data.train, y=y)), 5, cache=None)
    assert not torch.equal(flipped.train.quality[0], scored.train.quality[0])


def test_the_cache_gives_back_the_same_scores(data: Dataset, scored: Dataset, tmp_path) -> None:
    first = with_label_quality(data, 5, cache=tmp_path)
    (entry,) = tmp_path.glob("*.npy")
    assert torch.equal(first.train.quality, scored.train.quality)
    np.save(entry, np.full((len(data.train), len(LQ_ON)), 0.5), allow_pickle=False)  # marked
    assert bool((with_label_quality(data, 5, cache=tmp_path).train.quality == 0.5).all())
    assert len(list(tmp_path.glob("*.npy"))) == 1
    other = with_label_quality(data, 4, cache=tmp_path)  # other folds: another entry
    assert len(list(tmp_path.glob("*.npy"))) == 2 and not bool((other.train.quality == 0.5).all())


def test_flipped_labels_score_lower_on_the_synthetic_data(data: Dataset, scored: Dataset) -> None:
    """The synthetic generator keeps the clean training labels: the rows whose label it corrupted
    score lower under every method (ranked well above chance)."""
    noisy = (data.train.y != data.meta["train_clean_y"]).numpy()
    assert 0.05 < noisy.mean() < 0.5
    for i, method in enumerate(LQ_ON):
        q = scored.train.quality[:, i].numpy()
        assert q[noisy].mean() < q[~noisy].mean(), method
        assert roc_auc_score(~noisy, q) > 0.85, method  # 0.95-0.97 measured


def test_weights_follow_the_rule_by_hand() -> None:
    q = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    # κ = 2: q² = (0.04, 0.25, 1), mean 0.43
    torch.testing.assert_close(power_weights(q, 2.0), q**2 / 0.43)
    torch.testing.assert_close(power_weights(q, 1.0), q / (1.7 / 3))
    assert torch.equal(power_weights(q, 0.0), torch.ones(3, dtype=torch.float64))
    assert float(power_weights(q, 3.5).mean()) == pytest.approx(1.0)
    assert torch.equal(power_weights(torch.zeros(2), 1.0), torch.ones(2, dtype=torch.float64))
    quality = torch.stack([q, q.flip(0), q / 2], dim=1)
    torch.testing.assert_close(
        quality_weights(quality, "normalized_margin", 1.0), q.flip(0) / q.mean()
    )
    with pytest.raises(UserInputError, match="lq.method=self_confidence: the training split has"):
        quality_weights(None, "self_confidence", 1.0)


def _hand_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (F.cross_entropy(logits, y, reduction="none") * w).mean()


def test_the_trial_loss_applies_them(scored: Dataset) -> None:
    train, n = scored.train, len(scored.train)
    params = TrialParams.from_flat({"lq.method": "normalized_margin", "lq.power": 1.5})
    loss = TrialLoss(params, train, scored.classes)
    q = train.quality[:, 1]
    w = (q**1.5 / (q**1.5).mean()).float()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    step = loss.epoch(0, order)
    logits = torch.randn(n, len(scored.classes), generator=torch.Generator().manual_seed(1))
    for lo in (0, 256, n - 100):
        idx = order[lo : lo + 256]
        got = step(logits[idx], train.y[idx], lo)
        torch.testing.assert_close(got, _hand_loss(logits[idx], train.y[idx], w[idx]))
    stats = step.stats()
    assert stats["w_mean"] == pytest.approx(1.0) and stats["w_min"] == pytest.approx(float(w.min()))


def test_with_elf_the_applied_weight_is_the_product(scored: Dataset) -> None:
    """ELF's own per-epoch steps (batch norm, warm-up) act on the ELF weights alone; the
    label-quality weight multiplies what they give."""
    train, n = scored.train, len(scored.train)
    cfg = {
        "elf.strategy": "rso",
        "elf.batch_norm": True,
        "elf.warmup_frac": 0.5,
        "train.batch_size": 128,
        "train.max_epochs": 5,
        "lq.method": "self_confidence",
        "lq.power": 2.0,
    }
    params = TrialParams.from_flat(cfg)
    loss = TrialLoss(params, train, scored.classes)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(2))
    epoch = 1
    elf = applied_weights(train_weights(train, params)[0], order, 128, warmup_ramp(epoch, 5, 0.5))
    q = train.quality[:, 0]
    lq = (q**2 / (q**2).mean()).float()[order]
    step = loss.epoch(epoch, order)
    logits = torch.randn(n, len(scored.classes), generator=torch.Generator().manual_seed(3))
    idx = order[128:256]
    got = step(logits[idx], train.y[idx], 128)
    torch.testing.assert_close(got, _hand_loss(logits[idx], train.y[idx], (elf * lq)[128:256]))
    assert step.stats()["w_mean"] == pytest.approx(float((elf * lq).double().mean()), rel=1e-6)


def test_canonical_forms(scored: Dataset, data: Dataset) -> None:
    facts = DataFacts.of(scored)
    on = {"lq.method": "self_confidence", "lq.power": 2.0}
    assert canonical(on, data=facts) == on
    assert canonical({"lq.method": "self_confidence", "lq.power": 0.0}, data=facts) == {
        "lq.method": "none"
    }
    assert canonical({"lq.method": "none", "lq.power": 2.0}, data=facts) == {"lq.method": "none"}
    # without scores (none computed, or multi-task data) the lq.* keys cannot train: they go
    assert canonical(on, data=DataFacts.of(data)) == {}
    assert "no label-quality scores" in DataFacts.of(data).ignored["lq.method"]
    assert "one label column" in DataFacts.of(two_tasks(data)).ignored["lq.power"]
    with pytest.raises(UserInputError, match="lq.method: label-quality weights read one label"):
        with_label_quality(two_tasks(data), 5, cache=None)
    # plain cross-entropy, the confirmation's baseline, has no label-quality weights
    assert (
        not is_plain_ce(on) and is_plain_ce(as_plain_ce(on)) and "lq.power" not in as_plain_ce(on)
    )


def test_power_zero_trains_as_none_bit_for_bit(scored: Dataset) -> None:
    n = len(scored.train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(4))
    logits = torch.randn(n, len(scored.classes), generator=torch.Generator().manual_seed(5))
    out = []
    for cfg in ({"lq.method": "none"}, {"lq.method": "self_confidence", "lq.power": 0.0}):
        step = TrialLoss(TrialParams.from_flat(cfg), scored.train, scored.classes).epoch(0, order)
        out.append(step(logits[order[:256]], scored.train.y[order[:256]], 0))
    assert torch.equal(out[0], out[1])


def test_too_few_rows_for_the_folds_is_refused(data: Dataset) -> None:
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    check_folds(y, ("a", "b"), 3)
    with pytest.raises(UserInputError, match=r"lq.folds=4: class 'a' has 3 training row\(s\)"):
        check_folds(y, ("a", "b"), 4)
    with pytest.raises(UserInputError, match="class 'c' has 0 training"):
        check_folds(y, ("a", "b", "c"), 2)


def _space(tmp_path: Path, lq: str) -> Path:
    path = tmp_path / "lq.yaml"
    path.write_text(f"params:\n  lq.method: {lq}\n  lq.power: {{choice: [1.0, 2.0]}}\n")
    return path


def test_the_driver_computes_them_once_only_when_the_space_can_turn_them_on(tmp_path) -> None:
    args = ["data.n_train=600", "data.n_val=200", "data.n_test=100", f"lq.cache_dir={tmp_path}"]
    on = load_config([f"space={_space(tmp_path, '{choice: [none, self_confidence]}')}", *args])
    prepared = prepare(on, load_space(on.space))
    assert prepared.data.train.quality is not None and prepared.facts.ignored == {
        k: v for k, v in prepared.facts.ignored.items() if not k.startswith("lq.")
    }
    write_data_notes(tmp_path, prepared.data, [], {})
    facts = json.loads((tmp_path / "data.json").read_text())
    assert facts["label_quality"] == {"folds": 5, "model": MODEL, "seed": 0, "methods": list(LQ_ON)}
    off = load_config(["space=elf", *args])
    assert prepare(off, load_space("elf")).data.train.quality is None
    # a pin on the command line can turn them on in a space without them
    pinned = load_config(["space=elf", "lq.method=normalized_margin", *args])
    space = pin(load_space("elf"), pinned.params)
    assert prepare(pinned, space).data.train.quality is not None


def test_a_teacher_that_used_label_quality_trains_with_its_scores(data: Dataset, tmp_path) -> None:
    """distill.teacher: a confirmed best with lq.method on is re-trained with the scores its search
    computed (its lq.folds), not silently without them; the student's data gets none."""
    from search.teacher import cross_fit, with_teacher
    from trainables.objective import Objective
    from trainables.plugins import BUILT_IN

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.yaml").write_text(
        "model: {name: mlp}\ntrainable: ''\nsearch: {metric: val_macro_f1, mode: max}\n"
        f"train: {{max_epochs: 2}}\nlq: {{folds: 3, cache_dir: {tmp_path / 'cache'}}}\n"
    )
    facts = {"classes": list(data.classes), "train_counts": data.train_counts().tolist()}
    (teacher / "data.json").write_text(json.dumps(facts))
    params = {"lq.method": "self_confidence", "lq.power": 2.0, "train.batch_size": 256}
    events = [
        {"event": "start", "trial_id": "c1", "time": 0, "params": params | {"seed": 1}}
        | {"stage": "confirmation", "source": "t", "role": "candidate"},
        {"event": "result", "trial_id": "c1", "time": 0, "epoch": 1}
        | {"metrics": {"val_macro_f1": 0.5}},
        {"event": "end", "trial_id": "c1", "time": 0, "state": "completed"},
    ]
    (teacher / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    taught = with_teacher(teacher, data, BUILT_IN, 2)
    assert taught.train.quality is None and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    config = params | {"seed": 1, "train.max_epochs": 2}
    objective = Objective("val_macro_f1", "max")
    scored = with_label_quality(data, 3, cache=None)
    expected = cross_fit(config, scored, BUILT_IN, objective, 2)
    assert torch.equal(taught.train.teacher[:, 0], expected)
    assert not torch.equal(
        expected, cross_fit(config | {"lq.method": "none"}, scored, BUILT_IN, objective, 2)
    )
