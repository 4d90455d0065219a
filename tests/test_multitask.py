"""Multi-task data: task weighting by hand, uncertainty weighting's gradient, per-task metrics
against scikit-learn, the per-task loss keys, tables with several label columns, the multitask
space and the confirmation's per-task bootstrap."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import scipy_row_sd, two_tasks
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score

from reports.confirmation import Config, paired_differences, task_labels
from spaces import load_space
from spaces.fit import fit_to_data
from trainables.canonical import DataFacts, canonical
from trainables.data.synthetic import SyntheticSpec, make_synthetic
from trainables.data.table import TableSpec, load_table
from trainables.errors import UserInputError
from trainables.losses.multitask import EPS, MultiTaskLoss, task_weights
from trainables.params import TrialParams, as_plain_ce, is_plain_ce
from trainables.trial.context import evaluate
from trainables.trial.loop import run_local

TINY = SyntheticSpec(n_train=512, n_val=256, n_test=128, reviewers=40, features=12, informative=6)
SHORT = {"train.max_epochs": 3, "train.batch_size": 64, "model.hidden": 32}


@pytest.fixture(scope="module")
def data():
    return two_tasks(make_synthetic(TINY))  # tasks "label" (5 classes) and "level" (3)


def blocks(data) -> list[tuple[str, slice, int]]:
    """(task, its logit columns, its class count) per task."""
    out, start = [], 0
    for name, classes in data.tasks.items():
        out.append((name, slice(start, start + len(classes)), len(classes)))
        start += len(classes)
    return out


def test_task_weights_by_hand() -> None:
    sizes, acc, f1 = (5, 3), (0.5, 0.8), (0.25, 0.6)
    w = lambda rule, a=acc, f=f1: task_weights(rule, a, f, sizes).tolist()  # noqa: E731
    assert w("uniform") == [1.0, 1.0] and w("uncertainty") == [1.0, 1.0]
    assert w("inverse_accuracy") == pytest.approx([2 * 2 / 3.25, 1.25 * 2 / 3.25])
    assert w("inverse_f1") == pytest.approx([4 * 2 / (4 + 1 / 0.6), (1 / 0.6) * 2 / (4 + 1 / 0.6)])
    hard = [math.log(5) * 0.75, math.log(3) * 0.4]
    assert w("difficulty") == pytest.approx([2 * h / sum(hard) for h in hard])
    # before the first epoch: 1 each; difficulty by class count alone
    assert w("inverse_f1", None, None) == [1.0, 1.0] == w("inverse_accuracy", None, None)
    ln = [math.log(5), math.log(3)]
    assert w("difficulty", None, None) == pytest.approx([2 * v / sum(ln) for v in ln])
    # a metric of 0 is floored at EPS, a perfect task's difficulty too
    assert w("inverse_f1", acc, (0.0, 0.5)) == pytest.approx(
        [2 * (1 / EPS) / (1 / EPS + 2), 2 * 2 / (1 / EPS + 2)]
    )
    assert w("difficulty", acc, (1.0, 0.5))[0] == pytest.approx(
        2 * math.log(5) * EPS / (math.log(5) * EPS + math.log(3) * 0.5)
    )
    for rule in ("inverse_accuracy", "inverse_f1", "difficulty"):
        assert sum(w(rule)) == pytest.approx(2.0)


def test_uncertainty_weighting_total_and_gradient_on_s(data) -> None:
    params = TrialParams.from_flat({"task.weighting": "uncertainty"})
    loss = MultiTaskLoss(params, data.train, data.tasks)
    with torch.no_grad():
        loss.log_var.copy_(torch.tensor([0.3, -0.2]))
    order = torch.arange(64)
    step = loss.epoch(0, order)
    logits = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    y = data.train.y[:64]
    total = step(logits, y, 0)
    ce = [F.cross_entropy(logits[:, b], y[:, t]) for t, (_, b, _) in enumerate(blocks(data))]
    s = [0.3, -0.2]
    want = sum(math.exp(-st) * float(L) + st for st, L in zip(s, ce, strict=True))
    assert float(total.detach()) == pytest.approx(want, rel=1e-6)
    total.backward()  # d/ds_t [exp(−s_t)·L_t + s_t] = 1 − exp(−s_t)·L_t
    grad = [1 - math.exp(-st) * float(L) for st, L in zip(s, ce, strict=True)]
    assert loss.log_var.grad.tolist() == pytest.approx(grad, rel=1e-5)
    assert loss.parameters() == [loss.log_var]


def test_epoch_stats_are_the_batches_metrics_and_drive_the_next_weights(data) -> None:
    params = TrialParams.from_flat({"task.weighting": "inverse_f1"})
    loss = MultiTaskLoss(params, data.train, data.tasks)
    order = torch.arange(len(data.train))
    step = loss.epoch(0, order)
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(len(order), 8, generator=gen)
    y = data.train.y
    losses = []
    for lo in range(0, len(order), 128):
        rows = slice(lo, lo + 128)
        step(logits[rows], y[rows], lo)
        losses.append(
            [
                F.cross_entropy(logits[rows, b], y[rows, t], reduction="sum")
                for t, (_, b, _) in enumerate(blocks(data))
            ]
        )
    stats_ = step.stats()
    f1 = []
    for t, (name, block, k) in enumerate(blocks(data)):
        pred = logits[:, block].argmax(1)
        f1.append(f1_score(y[:, t], pred, labels=range(k), average="macro", zero_division=0))
        assert stats_[f"train_{name}_macro_f1"] == pytest.approx(f1[t])
        assert stats_[f"train_{name}_accuracy"] == pytest.approx(accuracy_score(y[:, t], pred))
        mean = float(sum(b[t] for b in losses)) / len(order)
        assert stats_[f"train_{name}_loss"] == pytest.approx(mean, rel=1e-5)
        assert stats_[f"train_{name}_weight"] == 1.0  # the first epoch: no previous metrics
    assert stats_["train_label_share"] + stats_["train_level_share"] == pytest.approx(1.0)
    share = stats_["train_label_loss"] / (stats_["train_label_loss"] + stats_["train_level_loss"])
    assert stats_["train_label_share"] == pytest.approx(share)
    nxt = loss.epoch(1, order)
    want = task_weights("inverse_f1", None, f1, (5, 3))
    assert nxt.weights.tolist() == pytest.approx(want.tolist(), rel=1e-6)


def test_per_task_and_combined_metrics_match_sklearn(data) -> None:
    logits = torch.randn(len(data.val), 8, generator=torch.Generator().manual_seed(2))
    got = evaluate(logits, data.val, data, "val_")
    y = data.val.y.numpy()
    per = {}
    for t, (name, block, k) in enumerate(blocks(data)):
        pred = logits[:, block].argmax(1).numpy()
        per[name] = f1_score(y[:, t], pred, labels=range(k), average="macro", zero_division=0)
        assert got[f"val_{name}_macro_f1"] == pytest.approx(per[name])
        assert got[f"val_{name}_accuracy"] == pytest.approx(accuracy_score(y[:, t], pred))
        f1s = f1_score(y[:, t], pred, labels=range(k), average=None, zero_division=0)
        assert [got[f"val_{name}_f1_c{c}"] for c in range(k)] == pytest.approx(list(f1s))
        ce = F.cross_entropy(logits[:, block], data.val.y[:, t])
        assert got[f"val_{name}_loss"] == pytest.approx(float(ce))
    assert got["val_macro_f1"] == pytest.approx((per["label"] + per["level"]) / 2)
    with pytest.raises(UserInputError, match=r"expected float logits \(N, C\) = \(256, 8\)"):
        evaluate(logits[:, :4], data.val, data, "val_")


def test_every_weighting_trains_differently_and_reports_its_balance(data) -> None:
    finals = {}
    for rule in ("uniform", "inverse_accuracy", "inverse_f1", "difficulty", "uncertainty"):
        results = run_local(SHORT | {"task.weighting": rule}, data)
        last = results[-1]
        assert {"val_label_macro_f1", "val_level_macro_f1", "train_level_share"} <= set(last)
        assert last["val_macro_f1"] == pytest.approx(
            (last["val_label_macro_f1"] + last["val_level_macro_f1"]) / 2
        )
        if rule in ("inverse_accuracy", "inverse_f1", "difficulty"):
            prev = results[-2]
            metric = "accuracy" if rule == "inverse_accuracy" else "macro_f1"
            m = [prev[f"train_{t}_{metric}"] for t in ("label", "level")]
            want = task_weights(rule, m, m, (5, 3)).tolist()  # m stands for both metrics
            got = [last["train_label_weight"], last["train_level_weight"]]
            assert got == pytest.approx(want, rel=1e-5)
        finals[rule] = last["val_loss"]
    assert len(set(finals.values())) == 5, finals


def test_a_shared_loss_setting_is_every_tasks_own(data) -> None:
    both = {"loss.label.kind": "focal", "loss.level.kind": "focal"}
    facts = DataFacts.of(data)
    assert canonical(SHORT | {"loss.kind": "focal"}, data=facts) == canonical(
        SHORT | both, data=facts
    )
    shared = run_local(SHORT | {"loss.kind": "focal"}, data)
    own = run_local(SHORT | both, data)
    assert [r["val_loss"] for r in shared] == [r["val_loss"] for r in own]
    one = run_local(SHORT | {"loss.level.kind": "focal", "loss.level.gamma": 3.0}, data)
    plain = run_local(SHORT, data)
    assert one[-1]["val_loss"] != plain[-1]["val_loss"]
    # focal with γ = 0 and no α is CE, per task too
    zero = {"loss.level.kind": "focal", "loss.level.gamma": 0.0}
    assert canonical(SHORT | zero, data=facts) == canonical(SHORT, data=facts)
    with pytest.raises(UserInputError, match="loss.nope.kind: not a task of the data"):
        canonical({"loss.nope.kind": "focal"}, data=facts)


def test_the_new_kinds_are_per_task_and_merge_per_task(data) -> None:
    facts = DataFacts.of(data)
    plain = run_local(SHORT, data)
    smooth = {"loss.level.kind": "label_smoothing", "loss.level.smoothing": 0.2}
    one = run_local(SHORT | smooth, data)
    assert len(one) == SHORT["train.max_epochs"]
    assert one[-1]["val_loss"] != plain[-1]["val_loss"]
    # ε = 0 is CE on that task alone; Balanced Softmax is that task's logit adjustment at τ = 1
    zero = {"loss.level.kind": "label_smoothing", "loss.level.smoothing": 0.0}
    assert canonical(SHORT | zero, data=facts) == canonical(SHORT, data=facts)
    balanced = canonical(SHORT | {"loss.label.kind": "balanced_softmax"}, data=facts)
    assert balanced["loss.label.kind"] == "logit_adjustment" and balanced["loss.label.tau"] == 1.0
    assert balanced["loss.level.kind"] == "ce" and "loss.level.tau" not in balanced
    adjusted = {"loss.label.kind": "logit_adjustment", "loss.label.tau": 1.0}
    assert balanced == canonical(SHORT | adjusted, data=facts)
    a = run_local(SHORT | {"loss.label.kind": "balanced_softmax"}, data)
    b = run_local(SHORT | adjusted, data)
    assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]


def test_a_tasks_ldam_re_weights_from_its_own_epoch_through_the_shared_code(data) -> None:
    # loss.label.kind=ldam with DRW from ⌊0.5·4⌋ = 2; task level stays cross-entropy
    keys = {"loss.label.kind": "ldam", "loss.label.drw_frac": 0.5, "train.max_epochs": 4}
    loss = MultiTaskLoss(keys, data.train, data.tasks)
    order = torch.arange(64)
    logits = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    y = data.train.y[:64]
    label = [float(loss.epoch(e, order).steps[0](logits[:, :5], y[:, 0], 0)) for e in range(4)]
    level = [float(loss.epoch(e, order).steps[1](logits[:, 5:], y[:, 1], 0)) for e in range(4)]
    n = torch.bincount(data.train.y[:, 0], minlength=5).double().numpy()
    delta = 0.5 * (n.min() / n) ** 0.25  # Cao et al. 2019: Δ_k ∝ n_k^(−1/4), the largest 0.5
    yy, z = y[:, 0].numpy(), logits[:, :5].double().numpy()
    per = -F.log_softmax(torch.tensor(z - delta[yy][:, None] * np.eye(5)[yy]), 1).numpy()
    per = per[np.arange(64), yy]
    w = (1 - 0.9999) / (1 - 0.9999**n)  # effective number (Cui et al. 2019), summing to K
    w = w * 5 / w.sum()
    np.testing.assert_allclose(label, [per.mean()] * 2 + [(per * w[yy]).mean()] * 2, rtol=1e-5)
    ce = float(F.cross_entropy(logits[:, 5:], y[:, 1]))
    assert level == pytest.approx([ce] * 4, rel=1e-6)
    # per task, the fraction is written as the one of its start epoch
    facts = DataFacts.of(data)
    merged = canonical(keys | {"loss.label.drw_frac": 0.6}, data=facts)
    assert merged["loss.label.drw_frac"] == 0.5 and merged == canonical(keys, data=facts)


def test_plain_ce_baseline_of_a_multitask_config() -> None:
    config = {"loss.a.kind": "focal", "task.weighting": "uncertainty", "cw.method": "balanced"}
    assert not is_plain_ce(config)
    plain = as_plain_ce(config)
    assert is_plain_ce(plain) and plain["loss.a.kind"] == "ce"
    assert plain["task.weighting"] == "uniform"


def test_uncertainty_weighting_resumes_bit_for_bit(data) -> None:
    from helpers import train_with

    params = TrialParams.from_flat(SHORT | {"task.weighting": "uncertainty"})
    full: list = []
    train_with(params, data.without_test(), lambda m, s: full.append((m, copy.deepcopy(s))))
    state = full[0][1]
    resumed: list = []
    train_with(
        params, data.without_test(), lambda m, s: resumed.append((m, copy.deepcopy(s))), state
    )
    assert [m["val_loss"] for m, _ in resumed] == [m["val_loss"] for m, _ in full[1:]]
    assert torch.equal(
        resumed[-1][1]["state"]["loss"]["log_var"], full[-1][1]["state"]["loss"]["log_var"]
    )


def test_a_table_with_two_label_columns(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "kind": rng.choice(["Bug", "bug", "style"], size=n),
            "rating": rng.integers(0, 3, size=n),
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    data = load_table(TableSpec(str(path), label=("kind", "rating"), fold_labels=True))
    bugs = frame["kind"][frame["kind"] != "style"].value_counts()
    top = min(bugs.index, key=lambda v: (-bugs[v], v))  # the most frequent spelling wins
    assert data.tasks == {"kind": tuple(sorted([top, "style"])), "rating": ("0", "1", "2")}
    assert data.train.y.shape == (len(data.train), 2) and data.num_classes == 5
    assert any("label column 'kind'" in note for note in data.meta["label_notes"])
    kind = frame["kind"].str.casefold().to_numpy()
    rows = data.meta["rows"]["train"]
    names = [data.tasks["kind"][i].casefold() for i in data.train.y[:, 0].tolist()]
    assert names == kind[rows].tolist()
    assert data.train.y[:, 1].tolist() == frame["rating"].to_numpy()[rows].tolist()
    assert data.train_counts().tolist() == (
        [int((kind[rows] == c.casefold()).sum()) for c in data.tasks["kind"]]
        + [int((frame["rating"].to_numpy()[rows] == r).sum()) for r in range(3)]
    )
    frame.rename(columns={"rating": "user.rating"}).to_csv(path, index=False)
    with pytest.raises(UserInputError, match="task column 'user.rating' has a dot"):
        load_table(TableSpec(str(path), label=("kind", "user.rating")))


def test_the_multitask_space_searches_each_task_and_refuses_a_stranger(data, tmp_path) -> None:
    space, notes = fit_to_data(load_space("multitask"), DataFacts.of(data))
    keys = set(space.params)
    assert {"loss.label.kind", "loss.level.kind", "loss.level.gamma", "task.weighting"} <= keys
    assert space.params["loss.level.gamma"].when == (("loss.level.kind", ("focal",)),)
    assert space.points_to_evaluate[0]["loss.label.kind"] == "ce" and not notes
    single, notes = fit_to_data(load_space("multitask"), DataFacts.of(make_synthetic(TINY)))
    assert {"loss.kind", "loss.gamma", "loss.alpha"} <= set(single.params)  # the one task's loss
    assert single.params["loss.gamma"].when == (("loss.kind", ("focal",)),)
    assert "task.weighting" not in single.params
    assert any("task.weighting is not searched: the data has one label column" in n for n in notes)
    mine = tmp_path / "mine.yaml"
    mine.write_text("params:\n  loss.nope.kind: {choice: [ce, focal]}\n")
    with pytest.raises(UserInputError, match=r"mine.yaml: loss.nope.kind: not a task of the data"):
        fit_to_data(load_space(str(mine)), DataFacts.of(data))


def test_confirmation_bootstraps_each_task_and_their_mean() -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], axis=1)

    def noisy(p: float) -> np.ndarray:
        keep = rng.random((n, 2)) < p
        return np.where(keep, y, np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], 1))

    def f1(t, a, task):
        return f1_score(t, a, labels=range([2, 3][task]), average="macro", zero_division=0)

    better, worse = noisy(0.85), noisy(0.7)
    values = lambda p: {  # noqa: E731
        "test_a_macro_f1": f1(y[:, 0], p[:, 0], 0),
        "test_b_macro_f1": f1(y[:, 1], p[:, 1], 1),
        "test_macro_f1": (f1(y[:, 0], p[:, 0], 0) + f1(y[:, 1], p[:, 1], 1)) / 2,
    }
    cand = Config("c", "candidate", {}, [1], [values(better)], [better])
    base = Config("b", "baseline", {}, [1], [values(worse)], [worse])
    facts = {
        "tasks": {"a": ["0", "1"], "b": ["0", "1", "2"]},
        "train_counts": [5, 9, 4, 3, 8],
        "test_labels": y.tolist(),
    }
    labels = task_labels(facts)
    assert [(t.name, t.classes, t.minority) for t in labels] == [("a", 2, 0), ("b", 3, 1)]
    metrics = ["test_a_macro_f1", "test_b_macro_f1", "test_macro_f1"]
    got = paired_differences(cand, base, metrics, labels, 4000, (0.025, 0.05))
    z = stats.norm.ppf(1 - 0.05 / 2)
    references = {
        "test_a_macro_f1": lambda t0, t1, a0, a1, b0, b1: f1(t0, a0, 0) - f1(t0, b0, 0),
        "test_b_macro_f1": lambda t0, t1, a0, a1, b0, b1: f1(t1, a1, 1) - f1(t1, b1, 1),
        "test_macro_f1": lambda t0, t1, a0, a1, b0, b1: (
            (f1(t0, a0, 0) + f1(t1, a1, 1) - f1(t0, b0, 0) - f1(t1, b1, 1)) / 2
        ),
    }
    columns = (y[:, 0], y[:, 1], better[:, 0], better[:, 1], worse[:, 0], worse[:, 1])
    for metric, statistic in references.items():
        sd = scipy_row_sd(columns, statistic)
        delta, seeds, _ = got[metric]
        assert seeds == 1
        assert delta.estimate == pytest.approx(values(better)[metric] - values(worse)[metric])
        assert delta.rows_part == pytest.approx(z * sd, rel=0.12), metric


def test_task_metrics_are_objectives_and_the_preflight_checks_their_names(data) -> None:
    from search.config import load_config
    from trainables.objective import Objective
    from trainables.plugins import BUILT_IN
    from trainables.trial.plugin_preflight import preflight

    objectives = "[val_label_macro_f1:max,val_level_macro_f1:max]"
    cfg = load_config([f"report.objectives={objectives}", "search.metric=val_level_macro_f1"])
    assert list(cfg.report.objectives) == ["val_label_macro_f1:max", "val_level_macro_f1:max"]
    level = Objective("val_level_macro_f1", "max")
    preflight(BUILT_IN, data, level, ["val_label_macro_f1", "train_level_share"])
    with pytest.raises(UserInputError, match=r"does not report \['val_nope_macro_f1'\]"):
        preflight(BUILT_IN, data, level, ["val_nope_macro_f1"])


@pytest.mark.parametrize("rule", ["uncertainty", "difficulty"])
def test_the_example_user_loop_matches_the_built_in_on_two_tasks(data, rule) -> None:
    from trainables.plugins import Plugins

    config = SHORT | {"task.weighting": rule, "loss.level.kind": "focal", "elf.strategy": "rso"}
    drop = lambda rs: [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in rs]  # noqa: E731
    built_in = drop(run_local(config, data))
    user = drop(run_local(config, data, plugins=Plugins(trainable="examples.user_trainable:train")))
    assert user == built_in and built_in[-1]["train_label_weight"] != 1.0
