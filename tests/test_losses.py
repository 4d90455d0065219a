"""Focal loss, class weights and the fused training loss against hand calculations, cross-entropy,
scikit-learn and autograd of a plain reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from trainables.errors import UserInputError
from trainables.losses.functions import (
    class_weights,
    combined_loss,
    focal_alpha,
    focal_loss,
    warn_double_correction,
)
from trainables.losses.weights import batch_normalize

GAMMAS = [0.0, 0.5, 2.0, 5.0]


def test_focal_at_known_pt_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(9)], [math.log(9), 0.0]])  # p_t = 0.9 for both targets
    target = torch.tensor([1, 0])
    loss = focal_loss(logits, target, gamma=2.0, alpha=0.25)
    by_hand = -(0.1**2) * math.log(0.9)  # (1 − p_t)^γ · −log p_t
    torch.testing.assert_close(loss, torch.tensor([0.25 * by_hand, 0.75 * by_hand]))
    torch.testing.assert_close(focal_loss(logits, target, gamma=2.0), torch.full((2,), by_hand))
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=2.0, alpha=0.25, reduction="sum"),
        torch.tensor(by_hand),
    )


def test_alpha_scalar_with_many_classes_is_an_error_and_per_class_weights() -> None:
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    plain = focal_loss(logits, target, gamma=1.0)
    with pytest.raises(ValueError, match="needs two classes"):
        focal_loss(logits, target, 1.0, alpha=0.3)  # never a silent common factor
    per_class = [0.1, 0.2, 0.3, 0.4]
    torch.testing.assert_close(
        focal_loss(logits, target, 1.0, alpha=per_class), torch.tensor(per_class)[target] * plain
    )
    with pytest.raises(ValueError, match="one per class"):
        focal_loss(logits, target, 1.0, alpha=[0.5, 0.5])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gamma_zero_is_cross_entropy(reduction: str) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=gen) * 4
    target = torch.randint(0, 5, (64,), generator=gen)
    target[::7] = -100
    expected = F.cross_entropy(logits, target, reduction=reduction)
    assert torch.equal(focal_loss(logits, target, gamma=0.0, reduction=reduction), expected)
    # the general path (α of ones) agrees too
    general = focal_loss(logits, target, gamma=0.0, alpha=[1.0] * 5, reduction=reduction)
    torch.testing.assert_close(general, expected, rtol=1e-7, atol=1e-7 * expected.abs().max())


def _focal_numpy(logits: np.ndarray, target: np.ndarray, gamma: float) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    lt = np.take_along_axis(logp, target[..., None], -1)[..., 0]
    return -((1 - np.exp(lt)) ** gamma) * lt


def _focal_torch(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """−(1 − p_t)^γ log p_t written out plainly (differentiable reference)."""
    lt = torch.log_softmax(logits, -1).gather(-1, target[:, None])[:, 0]
    return -((1 - lt.exp()) ** gamma) * lt


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_sequence_loss_is_mean_over_non_padding_tokens(gamma: float) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 3, generator=gen, dtype=torch.float64)
    target = torch.tensor([[0, 2, -100, -100], [1, 1, 1, 0], [-100] * 4])
    loss = focal_loss(logits, target, gamma=gamma)
    tokens = _focal_numpy(logits.numpy(), target.clamp_min(0).numpy(), gamma)
    expected = [tokens[0, :2].mean(), tokens[1].mean(), 0.0]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    mean = focal_loss(logits, target, gamma=gamma, reduction="mean")
    assert mean.item() == pytest.approx((expected[0] + expected[1]) / 2, rel=1e-12)


EXTREME = torch.tensor(
    [
        [1e4, -1e4, 0.0],  # p_t = 1 exactly
        [-1e4, 1e4, 1e4],  # p_t = 0 (log p_t = −2e4)
        [0.0, -70.0, -1e4],  # 1 − p_t ≈ 4e-31
        [0.0, -100.0, 1e-3],  # 1 − p_t below float32 resolution
        [1e4, 1e4 - 1, -1e4],
        [0.0, 0.0, 0.0],
    ]
)
EXTREME_TARGET = torch.tensor([0, 0, 0, 0, 1, 2])


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16-autocast"])
def test_extreme_logits_give_finite_loss_and_gradient(gamma: float, bf16: bool) -> None:
    # logits come out of a Linear layer so that autocast really runs the matmul in bfloat16
    layer = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(3))
    x = EXTREME.clone().requires_grad_()
    w, cw = torch.tensor([1.0, 0.0, 2.0, 3.0, 1.5, 0.5]), torch.tensor([1.0, 2.0, 3.0])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = layer(x)
        assert logits.dtype == (torch.bfloat16 if bf16 else torch.float32)
        alpha = [0.25, 0.5, 0.25]
        per_sample = focal_loss(logits, EXTREME_TARGET, gamma, alpha=alpha)
        fused = combined_loss(
            logits, EXTREME_TARGET, w, cw, kind="focal", gamma=gamma, alpha=alpha, batch_norm=True
        )
    assert torch.isfinite(per_sample).all() and torch.isfinite(fused)
    (per_sample.sum() + fused).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.weight.grad).all()
    assert per_sample[0] == 0  # p_t = 1: no loss
    assert per_sample[1] > 1e3  # p_t ≈ 0: loss ≈ α·2e4


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_fused_loss_gradcheck(gamma: float) -> None:
    gen = torch.Generator().manual_seed(2)
    logits = (torch.randn(12, 4, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    target = torch.randint(0, 4, (12,), generator=gen)
    w = torch.rand(12, generator=gen, dtype=torch.float64) + 0.5
    w[3] = 0.0
    cw = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return combined_loss(z, target, w, cw, kind="focal", gamma=gamma,
                             alpha=[0.1, 0.2, 0.3, 0.4], batch_norm=True)  # fmt: skip

    assert torch.autograd.gradcheck(loss, (logits,))


@pytest.mark.parametrize("kind", ["ce", "focal"])
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("classes", [2, 5])  # α: a binary scalar / one value per class
@pytest.mark.parametrize("skips", [False, True])
def test_fused_loss_matches_plain_composition(
    kind: str, batch_norm: bool, classes: int, skips: bool
) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(256, classes, generator=gen) * 2).requires_grad_()
    target = torch.randint(0, classes, (256,), generator=gen)
    w = torch.rand(256, generator=gen) * 3 + 0.1
    if skips:
        w[::10] = 0.0
    cw = torch.rand(classes, generator=gen) + 0.5
    alpha = 0.25 if classes == 2 else [0.1, 0.3, 0.2, 0.25, 0.15]
    alpha_t = torch.tensor([0.75, 0.25] if classes == 2 else alpha, dtype=torch.float64)[target]
    loss = combined_loss(logits, target, w, cw, kind=kind, gamma=2.0, alpha=alpha,
                         batch_norm=batch_norm)  # fmt: skip
    (grad,) = torch.autograd.grad(loss, logits)
    ref_logits = logits.detach().double().requires_grad_()
    omega = batch_normalize(w.double()) if batch_norm else w.double()
    per_sample = (
        F.cross_entropy(ref_logits, target, reduction="none")
        if kind == "ce"
        else alpha_t * _focal_torch(ref_logits, target, 2.0)
    )
    ref = (omega * cw.double()[target] * per_sample).mean()
    (ref_grad,) = torch.autograd.grad(ref, ref_logits)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5, atol=1e-8)


def test_fused_loss_without_weights_is_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(256, 5, generator=gen).requires_grad_()
    target = torch.randint(0, 5, (256,), generator=gen)
    ours, theirs = combined_loss(logits, target, None, None), F.cross_entropy(logits, target)
    assert torch.equal(ours, theirs)
    g1, g2 = (torch.autograd.grad(v, logits)[0] for v in (ours, theirs))
    assert torch.equal(g1, g2)
    # focal with γ = 0 is cross-entropy too, up to a common α
    focal0 = combined_loss(logits, target, None, None, kind="focal", gamma=0.0, alpha=[0.5] * 5)
    torch.testing.assert_close(focal0, 0.5 * theirs)
    # focal γ and α are ignored by kind ce; class weights scale the mean over the batch (÷ N)
    cw = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    weighted = combined_loss(logits, target, None, cw, kind="ce", gamma=3.0, alpha=0.1)
    ref = (cw[target] * F.cross_entropy(logits, target, reduction="none")).mean()
    torch.testing.assert_close(weighted, ref)


def test_fused_loss_skipped_samples_do_not_count() -> None:
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    w = torch.tensor([1.0, 0.0, 2.0, 3.0])
    base = combined_loss(logits, target, w, None, kind="focal", batch_norm=True)
    logits[1] += torch.tensor([5.0, -5.0, 0.0])
    assert combined_loss(logits, target, w, None, kind="focal", batch_norm=True) == base


def test_fused_loss_on_sequences() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, 3, generator=gen)
    target = torch.tensor([[0, 2, -100, -100], [1, 1, 1, 0], [2, -100, -100, -100]])
    w, cw = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 0.5])
    alpha = np.array([0.2, 0.5, 0.3])
    loss = combined_loss(logits, target, w, cw, kind="focal", gamma=2.0, alpha=alpha.tolist())
    tokens = _focal_numpy(logits.double().numpy(), target.clamp_min(0).numpy(), 2.0)
    tokens = tokens * (alpha * cw.double().numpy())[target.clamp_min(0).numpy()]
    valid = (target >= 0).numpy()
    per_sample = (tokens * valid).sum(1) / valid.sum(1)
    assert loss.item() == pytest.approx((per_sample * w.numpy()).mean(), rel=1e-6)


def test_focal_alpha_rules_by_hand() -> None:
    counts = [80, 15, 5]
    inv = np.array([1 / 80, 1 / 15, 1 / 5])
    np.testing.assert_allclose(focal_alpha("inverse_frequency", counts), inv / inv.sum(), rtol=1e-6)
    sq = 1 / np.sqrt(counts)
    np.testing.assert_allclose(
        focal_alpha("sqrt_inverse_frequency", counts), sq / sq.sum(), rtol=1e-6
    )
    eff = (1 - 0.99) / (1 - 0.99 ** np.array(counts))  # Cui et al. 2019
    np.testing.assert_allclose(focal_alpha("effective:0.99", counts), eff / eff.sum(), rtol=1e-6)
    assert focal_alpha([0.2, 0.3, 0.5], counts).tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert focal_alpha(None, counts) is None


def test_focal_alpha_scalar_is_for_the_minority_class() -> None:
    assert focal_alpha(0.25, [30, 70]).tolist() == [0.25, 0.75]  # class 0 is the minority
    assert focal_alpha(0.25, [70, 30]).tolist() == [0.75, 0.25]
    assert focal_alpha(0.25, [50, 50]).tolist() == [0.75, 0.25]  # a tie: class 1 (RetinaNet)


def test_focal_alpha_that_does_not_fit_the_classes_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match=r"loss.alpha=0.25 is a two-class .* 3 classes"):
        focal_alpha(0.25, [80, 15, 5])
    with pytest.raises(UserInputError, match="lists 2 values, but the data has 3 classes"):
        focal_alpha([0.5, 0.5], [80, 15, 5])
    with pytest.raises(UserInputError, match="class 'rare' has no training examples"):
        focal_alpha("inverse_frequency", [80, 0, 5], ["a", "rare", "c"])


def test_bad_arguments() -> None:
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="focal"):
        combined_loss(logits, target, None, None, kind="dice")
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, target, gamma=-1.0)
    with pytest.raises(ValueError, match="mean"):
        focal_loss(logits, target, reduction="avg")


COUNTS = [50, 30, 15, 5]


def test_balanced_class_weights_match_sklearn() -> None:
    y = np.repeat(np.arange(4), COUNTS)
    expected = compute_class_weight("balanced", classes=np.arange(4), y=y)
    np.testing.assert_allclose(class_weights(COUNTS, "balanced").numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(class_weights(torch.tensor(COUNTS), "none").numpy(), np.ones(4))


def test_effective_class_weights_match_formula() -> None:
    beta = 0.99
    raw = np.array([(1 - beta) / (1 - beta**n) for n in COUNTS])
    expected = raw * 4 / raw.sum()
    w = class_weights(COUNTS, "effective", beta=beta).numpy()
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert w.sum() == pytest.approx(4.0)
    # β close to 1: no cancellation in 1 − β^n
    w = class_weights([10**6, 10], "effective", beta=0.999999).numpy()
    raw = np.array([1 / -np.expm1(n * np.log(0.999999)) for n in (10**6, 10)])
    np.testing.assert_allclose(w, raw * 2 / raw.sum(), rtol=1e-6)


def test_cap_bounds_the_ratio() -> None:
    w = class_weights([100, 10, 1], "balanced", cap=5.0).numpy()
    np.testing.assert_allclose(w, [111 / 300, 5 * 111 / 300, 5 * 111 / 300], rtol=1e-6)
    w = class_weights([1000, 100, 10, 1], "effective", beta=0.999, cap=3.0).numpy()
    assert w.max() / w.min() == pytest.approx(3.0) and w.sum() == pytest.approx(4.0)


def test_zero_count_class_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="class 'bug' has no training examples"):
        class_weights([10, 0, 3], "balanced", class_names=["ok", "bug", "style"])
    with pytest.raises(UserInputError, match="class 2 "):
        class_weights([10, 3, 0], "effective")
    np.testing.assert_allclose(class_weights([10, 0], "none").numpy(), [1.0, 1.0])
    with pytest.raises(ValueError, match="balanced"):
        class_weights(COUNTS, "inverse")


def test_double_correction_warning() -> None:
    with pytest.warns(UserWarning, match="corrects class imbalance twice"):
        warn_double_correction(True, "balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_double_correction(True, "none")
        warn_double_correction(False, "effective")


# ---------------------------------------------------------------- the built-in kinds past focal


def _kind_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, **keys) -> torch.Tensor:
    """Per-sample loss (N,) of a registered kind, through its prepare on these targets' counts."""
    from trainables.canonical import defaults
    from trainables.losses.kinds import loss_kind

    k = loss_kind(kind)
    params = defaults() | {"loss.kind": kind} | {f"loss.{f}": v for f, v in keys.items()}
    counts = torch.bincount(target, minlength=logits.shape[1])
    context = k.prepare(params, counts, [str(c) for c in range(logits.shape[1])])
    return k.per_sample(logits, target, params, context)


def _log_softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


LOGITS = torch.randn(64, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3
TARGET = torch.tensor([0] * 30 + [1] * 20 + [2] * 8 + [3] * 4 + [4] * 2)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 0.99])
def test_label_smoothing_is_pytorchs(eps: float) -> None:
    # Szegedy et al. 2016: (1 − ε)·CE + ε·mean_k(−log p_k), PyTorch's label_smoothing
    ours = _kind_loss("label_smoothing", LOGITS, TARGET, smoothing=eps)
    theirs = F.cross_entropy(LOGITS, TARGET, label_smoothing=eps, reduction="none")
    torch.testing.assert_close(ours, theirs)
    logp = _log_softmax_np(LOGITS.numpy())
    y = TARGET.numpy()
    by_hand = (1 - eps) * -logp[np.arange(len(y)), y] + eps * -logp.mean(-1)
    np.testing.assert_allclose(ours.numpy(), by_hand, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjustment_by_numpy(tau: float) -> None:
    # Menon et al. 2021, eq. 10: −log softmax(f + τ·log π)_y, π the training prior
    ours = _kind_loss("logit_adjustment", LOGITS, TARGET, tau=tau)
    z, y = LOGITS.numpy(), TARGET.numpy()
    prior = np.bincount(y, minlength=5) / len(y)
    ref = -_log_softmax_np(z + tau * np.log(prior))[np.arange(len(y)), y]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_balanced_softmax_by_numpy_is_logit_adjustment_at_tau_one() -> None:
    # Ren et al. 2020, eq. 4: −log(n_y·e^{f_y} / Σ_k n_k·e^{f_k})
    ours = _kind_loss("balanced_softmax", LOGITS, TARGET)
    z, y = LOGITS.numpy(), TARGET.numpy()
    n = np.bincount(y, minlength=5).astype(float)
    e = n * np.exp(z - z.max(-1, keepdims=True))
    ref = -np.log(e[np.arange(len(y)), y] / e.sum(-1))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(ours, _kind_loss("logit_adjustment", LOGITS, TARGET, tau=1.0))


@pytest.mark.parametrize("kind", ["logit_adjustment", "balanced_softmax"])
def test_a_class_without_training_rows_is_refused_by_the_prior_kinds(kind: str) -> None:
    with pytest.raises(UserInputError, match=r"class '4' has no training rows") as e:
        _kind_loss(kind, LOGITS[:62], TARGET[:62])  # class 4's two rows left out
    assert "\n" not in str(e.value)
    assert _kind_loss("logit_adjustment", LOGITS[:62], TARGET[:62], tau=0.0).isfinite().all()


@pytest.mark.parametrize("eps", [-1.0, 0.0, 1.0, 10.0])
def test_poly1_by_numpy(eps: float) -> None:
    # Leng et al. 2022, eq. 3: CE + ε·(1 − p_y)
    ours = _kind_loss("poly1", LOGITS, TARGET, epsilon=eps)
    z, y = LOGITS.numpy(), TARGET.numpy()
    logp_y = _log_softmax_np(z)[np.arange(len(y)), y]
    np.testing.assert_allclose(ours.numpy(), -logp_y + eps * (1 - np.exp(logp_y)), rtol=1e-6)


@pytest.mark.parametrize(
    ("kind", "keys"),
    [
        ("label_smoothing", {"loss.smoothing": 0.0}),
        ("logit_adjustment", {"loss.tau": 0.0}),
        ("poly1", {"loss.epsilon": 0.0}),
        ("gce", {"loss.q": 0.0}),
        ("sce", {"loss.sce_alpha": 1.0, "loss.sce_beta": 0.0}),
        ("ldam", {"loss.ldam_margin": 0.0, "loss.ldam_scale": 1.0, "loss.drw_frac": 1.0}),
    ],
)
def test_the_kinds_at_zero_take_ces_path_bit_for_bit(kind: str, keys: dict) -> None:
    from trainables.canonical import defaults
    from trainables.losses.kinds import loss_kind, weighted_loss

    logits = LOGITS.float().requires_grad_()
    w, cw = torch.rand(64, generator=torch.Generator().manual_seed(1)), torch.rand(5) + 0.5
    params = defaults() | {"loss.kind": kind} | keys
    counts = torch.bincount(TARGET, minlength=5)
    context = loss_kind(kind).prepare(params, counts, list("abcde"))
    context = loss_kind(kind).at_epoch(context, params["train.max_epochs"] - 1, params)
    ours = weighted_loss(logits, TARGET, w, cw, kind=kind, params=params, context=context)
    theirs = weighted_loss(logits, TARGET, w, cw, kind="ce", params=params | {"loss.kind": "ce"})
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    ("kind", "keys"),
    [
        ("label_smoothing", {"loss.smoothing": 0.2}),
        ("logit_adjustment", {"loss.tau": 1.5}),
        ("balanced_softmax", {}),
        ("poly1", {"loss.epsilon": 2.0}),
        ("ldam", {"loss.ldam_margin": 0.5, "loss.ldam_scale": 2.0, "loss.drw_frac": 0.0}),
        ("gce", {"loss.q": 0.7}),
        ("sce", {"loss.sce_alpha": 0.1, "loss.sce_beta": 1.0}),
    ],
)
def test_the_kinds_weighted_mean_and_gradient(kind: str, keys: dict) -> None:
    from trainables.canonical import defaults
    from trainables.losses.kinds import loss_kind, weighted_loss

    params = defaults() | {"loss.kind": kind} | keys
    k = loss_kind(kind)
    context = k.prepare(params, torch.bincount(TARGET, minlength=5), list("abcde"))
    context = k.at_epoch(context, 0, params)
    w, cw = torch.rand(64, generator=torch.Generator().manual_seed(1)), torch.rand(5) + 0.5
    ours = weighted_loss(LOGITS, TARGET, w, cw, kind=kind, params=params, context=context)
    per = k.per_sample(LOGITS, TARGET, params, context)
    torch.testing.assert_close(ours, (per * w.double() * cw.double()[TARGET]).mean())
    z = LOGITS.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: weighted_loss(x, TARGET, w, cw, kind=kind, params=params, context=context), (z,)
    )


# ---------------------------------------------------------------- ldam, gce, sce


def _epoch_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, epoch: int, **keys):
    """Per-sample loss (N,) of a registered kind at `epoch` (its at_epoch context)."""
    from trainables.canonical import defaults
    from trainables.losses.kinds import loss_kind

    k = loss_kind(kind)
    params = defaults() | {"loss.kind": kind} | {f"loss.{f}": v for f, v in keys.items()}
    params |= {"train.max_epochs": 10}
    counts = torch.bincount(target, minlength=logits.shape[1])
    context = k.prepare(params, counts, [str(c) for c in range(logits.shape[1])])
    return k.per_sample(logits, target, params, k.at_epoch(context, epoch, params))


def _effective_by_hand(n: np.ndarray, beta: float) -> np.ndarray:
    # Cui et al. 2019: 1 / E_n with E_n = (1 − β^n)/(1 − β), rescaled to sum to K
    w = (1 - beta) / (1 - beta**n)
    return w * len(n) / w.sum()


@pytest.mark.parametrize(("m", "s"), [(0.0, 1.0), (0.5, 1.0), (0.5, 30.0), (2.0, 4.0)])
def test_ldam_by_numpy_before_the_reweighting(m: float, s: float) -> None:
    # Cao et al. 2019: −log softmax(s·(f − Δ_y·onehot(y)))_y, Δ_k = C/n_k^(1/4), max Δ = m
    ours = _epoch_loss("ldam", LOGITS, TARGET, 0, ldam_margin=m, ldam_scale=s, drw_frac=0.5)
    z, y = LOGITS.numpy(), TARGET.numpy()
    n = np.bincount(y, minlength=5).astype(float)
    c = m * n.min() ** 0.25  # C: the rarest class (n = 2) gets the margin m
    delta = c / n**0.25
    assert delta.max() == pytest.approx(m) and (m == 0 or delta.argmax() == 4)
    shifted = z - delta[y][:, None] * np.eye(5)[y]
    ref = -_log_softmax_np(s * shifted)[np.arange(len(y)), y]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_ldam_reweights_from_the_deferred_epoch_by_the_effective_number() -> None:
    # DRW: from ⌊0.5·10⌋ = 5 on, ℓ_i·w_{y_i}, w the effective-number weights with β = 0.9999
    plain = [_epoch_loss("ldam", LOGITS, TARGET, e, drw_frac=0.5) for e in (0, 4)]
    drw = [_epoch_loss("ldam", LOGITS, TARGET, e, drw_frac=0.5) for e in (5, 9)]
    w = _effective_by_hand(np.bincount(TARGET.numpy(), minlength=5).astype(float), 0.9999)
    assert w.sum() == pytest.approx(5) and w[4] > w[0]  # the rarest class weighs most
    for before in plain:
        assert torch.equal(before, plain[0])
    for after in drw:
        np.testing.assert_allclose(after.numpy(), plain[0].numpy() * w[TARGET.numpy()], rtol=1e-6)
    # drw_frac = 1 never re-weights
    never = _epoch_loss("ldam", LOGITS, TARGET, 9, drw_frac=1.0)
    assert torch.equal(never, plain[0])


def test_ldams_re_weighting_switches_at_its_epoch_in_a_trial_loss() -> None:
    from trainables.data.synthetic import SyntheticSpec, make_synthetic
    from trainables.losses.trial_loss import TrialLoss

    data = make_synthetic(SyntheticSpec(n_train=300, n_val=60, n_test=30, reviewers=20))
    params = {"loss.kind": "ldam", "loss.drw_frac": 0.4, "train.max_epochs": 5}  # from epoch 2
    loss = TrialLoss(params, data.train, data.classes)
    y = data.train.y[:64]
    logits = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    order = torch.arange(len(data.train))
    got = [float(loss.epoch(e, order)(logits, y, 0)) for e in range(5)]
    n = np.bincount(data.train.y.numpy(), minlength=5).astype(float)
    delta = 0.5 * (n.min() / n) ** 0.25
    yy, z = y.numpy(), logits.double().numpy()
    per = -_log_softmax_np(z - delta[yy][:, None] * np.eye(5)[yy])[np.arange(64), yy]
    weighted = (per * _effective_by_hand(n, 0.9999)[yy]).mean()
    np.testing.assert_allclose(got, [per.mean()] * 2 + [weighted] * 3, rtol=1e-5)


def test_ldam_refuses_a_class_without_training_rows_in_one_line() -> None:
    with pytest.raises(
        UserInputError, match=r"loss.kind=ldam: class '4' has no training rows"
    ) as e:
        _epoch_loss("ldam", LOGITS[:62], TARGET[:62], 0)
    assert "\n" not in str(e.value)
    with pytest.raises(UserInputError, match="no training rows"):  # the re-weighting alone
        _epoch_loss("ldam", LOGITS[:62], TARGET[:62], 0, ldam_margin=0.0, drw_frac=0.5)
    kept = _epoch_loss("ldam", LOGITS[:62], TARGET[:62], 9, ldam_margin=0.0, drw_frac=1.0)
    assert kept.isfinite().all()


@pytest.mark.parametrize("q", [0.0, 1e-7, 0.1, 0.7, 1.0])
def test_gce_by_numpy(q: float) -> None:
    # Zhang & Sabuncu 2018: (1 − p_y^q)/q, and its limit −log p_y at q = 0
    ours = _epoch_loss("gce", LOGITS, TARGET, 0, q=q)
    z, y = LOGITS.numpy(), TARGET.numpy()
    logp_y = _log_softmax_np(z)[np.arange(len(y)), y]
    ref = -logp_y if q == 0 else (1 - np.exp(logp_y) ** q) / q
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6, atol=1e-7)
    if q == 1.0:  # 1 − p_y, MAE over the one-hot target halved
        p = np.exp(_log_softmax_np(z))
        mae = np.abs(p - np.eye(5)[y]).sum(-1)
        np.testing.assert_allclose(ours.numpy(), mae / 2, rtol=1e-6, atol=1e-9)
    if q == 1e-7:  # next to the limit
        np.testing.assert_allclose(ours.numpy(), -logp_y, rtol=1e-5)


@pytest.mark.parametrize(("alpha", "beta"), [(0.1, 1.0), (6.0, 0.1), (0.0, 2.0), (1.0, 0.0)])
def test_sce_by_numpy(alpha: float, beta: float) -> None:
    # Wang et al. 2019: α·CE + β·RCE, RCE = −Σ_k p_k log q_k with log 0 := A = −4
    ours = _epoch_loss("sce", LOGITS, TARGET, 0, sce_alpha=alpha, sce_beta=beta)
    z, y = LOGITS.numpy(), TARGET.numpy()
    p = np.exp(_log_softmax_np(z))
    log_q = np.where(np.eye(5)[y] == 1, 0.0, -4.0)  # log of the one-hot label, 0 clamped
    rce = -(p * log_q).sum(-1)
    ref = alpha * -np.log(p[np.arange(len(y)), y]) + beta * rce
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6, atol=1e-9)


def test_sce_refuses_a_zero_loss() -> None:
    with pytest.raises(UserInputError, match="sce_alpha and loss.sce_beta are both 0"):
        _epoch_loss("sce", LOGITS, TARGET, 0, sce_alpha=0.0, sce_beta=0.0)


@pytest.mark.parametrize(
    ("sce", "other"),
    [
        (
            {"loss.sce_alpha": 1.0, "loss.sce_beta": 0.5},
            {"loss.kind": "poly1", "loss.epsilon": 2.0},
        ),
        ({"loss.sce_alpha": 0.0, "loss.sce_beta": 0.25}, {"loss.kind": "gce", "loss.q": 1.0}),
    ],
)
def test_sce_merges_train_as_the_other_kind_bit_for_bit(sce: dict, other: dict) -> None:
    from trainables.canonical import canonical, defaults
    from trainables.losses.kinds import weighted_loss

    assert canonical({"loss.kind": "sce"} | sce) == other
    w, cw = torch.rand(64, generator=torch.Generator().manual_seed(1)), torch.rand(5) + 0.5
    grads = []
    for keys in ({"loss.kind": "sce"} | sce, other):
        logits = LOGITS.float().requires_grad_()
        params = defaults() | keys
        loss = weighted_loss(logits, TARGET, w, cw, kind=keys["loss.kind"], params=params)
        loss.backward()
        grads.append((loss.detach(), logits.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    # and the per-sample formulas agree
    z = LOGITS
    a = _epoch_loss("sce", z, TARGET, 0, **{k[5:]: v for k, v in sce.items()})
    b = _epoch_loss(
        other["loss.kind"], z, TARGET, 0, **{k[5:]: v for k, v in other.items() if k != "loss.kind"}
    )
    torch.testing.assert_close(a, b)
