"""Cost of the full training loss against plain cross-entropy: `python -m benchmarks loss`.

Full loss = ELF weights (normalised, clipped, adaptively scaled per epoch, batch-normalised per
batch) × class weights × focal loss (γ = 2, α = 0.25). Three comparisons at batch 256, 5 classes:
(a) a training step (MLP forward + loss + backward + AdamW), (b) the loss alone, forward + backward,
(c) a per-sample Python loop against the vectorised loss. (a) is measured twice: with all weighting
inside the loss call every step (`step_ratio_in_loss`), and as trainables.trial.loop runs it, with batch
norm and class weights folded into one per-sample vector once per epoch (`step_ratio`, the one the
≤ 1.10× target is about). (d) Each built-in kind past focal (label_smoothing, logit_adjustment,
balanced_softmax, poly1, ldam, gce, sce) alone against F.cross_entropy, forward + backward
(`loss_ratio_<kind>`; ldam at its last epoch, margins and deferred re-weighting both on).
Runs on one CPU thread for stable numbers; ratios are medians of paired ratios (see `_paired`).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import Figures
from trainables.data.dataset import Split
from trainables.losses.functions import class_weights, combined_loss, focal_alpha
from trainables.losses.kinds import LossKind, loss_kind, weighted_loss
from trainables.losses.trial_loss import applied_weights
from trainables.losses.weights import adaptive_scale, train_weights, warmup_ramp
from trainables.params import PARAMS, TrialParams

BATCH = 256
CLASSES = 5
FEATURES = 32
POOL_BATCHES = 8  # distinct batches cycled through in the step benchmark
STEP_TARGET = 1.10  # full-loss step time / cross-entropy step time
# The targets table (benchmarks.target_rows): (what, measured figure, target, met figure).
SUMMARY = [
    (
        "training step, full loss / CE, batch 256",
        "step_ratio",
        f"<= {STEP_TARGET:.2f}",
        "step_target_met",
    )
]
EPOCH, MAX_EPOCHS = 1, 12  # adaptive scaling mid warm-up
# (repeats, steps per repeat, loss-only calls per repeat, loop calls per repeat)
SIZES = {True: (3, 40, 300, 1), False: (21, 60, 500, 3)}
FULL = {
    "loss.kind": "focal",
    "loss.gamma": 2.0,
    "loss.alpha": "inverse_frequency",
    "elf.strategy": "avg",
    "elf.missing": "impute",
    "elf.normalize": "mean",
    "elf.clip_min": 0.5,
    "elf.clip_max": 2.0,
    "elf.batch_norm": True,
    "elf.warmup_frac": 0.5,
    "cw.method": "effective",
}


def _data(gen: torch.Generator) -> Split:
    n = BATCH * POOL_BATCHES
    prior = torch.tensor([0.55, 0.2, 0.12, 0.08, 0.05])
    own = torch.rand(n, 3, generator=gen)
    own[torch.rand(n, 3, generator=gen) < 0.2] = math.nan
    return Split(
        x=torch.randn(n, FEATURES, generator=gen),
        y=torch.multinomial(prior, n, replacement=True, generator=gen),
        aco=own,
        rso=torch.rand(n, 3, generator=gen),
    )


def _model(params: TrialParams) -> tuple[nn.Module, str]:
    try:
        from trainables.models.registry import ModelInputs, mlp
    except ImportError:
        net = nn.Sequential(
            nn.Linear(FEATURES, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, CLASSES),
        )
        return _Features(net), "local nn.Sequential MLP 32-128-128-5"
    return mlp(ModelInputs(FEATURES, CLASSES), params), "trainables.models.registry.mlp"


class _Features(nn.Module):
    """Adapts a plain module to the forward(x, tokens) signature of the project's models."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


def _per_call_us(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def _paired(
    a: Callable[[], None], b: Callable[[], None], calls: int, repeats: int, calls_b: int = 0
) -> tuple[float, float, float]:
    """Median µs per call of a and of b, and the median of the paired ratios b/a.

    Each repeat times a and b back to back (alternating which goes first), so a change in the
    machine's load between repeats hits both sides of a ratio; one untimed warm-up repeat first.
    b makes `calls_b` calls per repeat when given, else `calls`.
    """
    calls_b = calls_b or calls
    _per_call_us(a, calls), _per_call_us(b, calls_b)
    pairs = []
    for r in range(repeats):
        if r % 2:
            tb, ta = _per_call_us(b, calls_b), _per_call_us(a, calls)
        else:
            ta, tb = _per_call_us(a, calls), _per_call_us(b, calls_b)
        pairs.append((ta, tb))
    return (
        statistics.median(ta for ta, _ in pairs),
        statistics.median(tb for _, tb in pairs),
        statistics.median(tb / ta for ta, tb in pairs),
    )


def _naive_full_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    w: torch.Tensor,
    cw: torch.Tensor,
    alpha: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """The full loss written sample by sample: the reference the vectorised loss must match."""
    n = len(w)
    values = [float(v) for v in w]
    kept = [v for v in values if v > 0]
    mean = sum(kept) / len(kept)
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / len(kept))
    total = logits.new_zeros(())
    for i in range(n):
        y = int(target[i])
        logp = torch.log_softmax(logits[i], dim=0)[y]
        a = float(alpha[y])
        omega = 1.25 + 0.75 * math.tanh((values[i] - mean) / (std + 1e-8)) if values[i] > 0 else 0
        total = total + omega * float(cw[y]) * -a * (1 - logp.exp()) ** gamma * logp
    return total / n


def run(quick: bool) -> Figures:
    """Figures of the three comparisons; µs per call are medians over the repeats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool) -> Figures:
    repeats, steps, loss_calls, loop_calls = SIZES[quick]
    gen = torch.Generator().manual_seed(0)
    params = TrialParams.from_flat(FULL)
    train = _data(gen)
    w_train, _ = train_weights(train, params)
    counts = torch.bincount(train.y, minlength=CLASSES)
    cw = class_weights(counts, params["cw.method"])
    ramp = warmup_ramp(EPOCH, MAX_EPOCHS, params["elf.warmup_frac"])
    kw = {
        "kind": params["loss.kind"],
        "gamma": params["loss.gamma"],
        "alpha": focal_alpha(params["loss.alpha"], counts),
        "batch_norm": params["elf.batch_norm"],
    }
    torch.manual_seed(0)
    model_ce, model_name = _model(params)
    model_full = copy.deepcopy(model_ce)
    opt_ce = torch.optim.AdamW(model_ce.parameters(), lr=1e-3)  # the trials' optimizer
    opt_full = torch.optim.AdamW(model_full.parameters(), lr=1e-3)
    batches = [slice(i * BATCH, (i + 1) * BATCH) for i in range(POOL_BATCHES)]
    count = {"ce": 0, "full": 0}
    epoch_w = [w_train]

    def step(name: str, model: nn.Module, opt: torch.optim.Optimizer, loss_fn) -> None:
        rows = batches[count[name] % POOL_BATCHES]
        count[name] += 1
        logits = model(train.x[rows], None)  # (B, C)
        loss = loss_fn(logits, rows)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def ce_step() -> None:
        step("ce", model_ce, opt_ce, lambda logits, rows: F.cross_entropy(logits, train.y[rows]))

    def full_step() -> None:
        if count["full"] % steps == 0:  # a timed repeat stands for an epoch
            epoch_w[0] = adaptive_scale(w_train, ramp)
        step(
            "full",
            model_full,
            opt_full,
            lambda logits, rows: combined_loss(logits, train.y[rows], epoch_w[0][rows], cw, **kw),
        )

    order = torch.arange(len(train))

    def epoch_bn_step() -> (
        None
    ):  # as trainables.trial.loop runs it: per-epoch weight vector ω·cw[y]
        if count["full"] % steps == 0:
            epoch_w[0] = applied_weights(w_train, order, BATCH, ramp) * cw[train.y[order]]
        step(
            "full",
            model_full,
            opt_full,
            lambda logits, rows: combined_loss(
                logits, train.y[rows], epoch_w[0][rows], None, **{**kw, "batch_norm": False}
            ),
        )

    step_ce, step_in_loss, in_loss_ratio = _paired(ce_step, full_step, steps, repeats)
    count["full"] = 0
    _, step_full, step_ratio = _paired(ce_step, epoch_bn_step, steps, repeats)

    rows = batches[0]
    y = train.y[rows]
    w = adaptive_scale(w_train, ramp)[rows]
    logits = torch.randn(BATCH, CLASSES, generator=gen).requires_grad_()

    def loss_ce() -> None:
        logits.grad = None
        F.cross_entropy(logits, y).backward()

    def loss_full() -> None:
        logits.grad = None
        combined_loss(logits, y, w, cw, **kw).backward()

    def loss_naive() -> None:
        logits.grad = None
        _naive_full_loss(logits, y, w, cw, kw["alpha"], kw["gamma"]).backward()

    only_ce, only_full, loss_ratio = _paired(loss_ce, loss_full, loss_calls, repeats)
    vectorised, naive, speedup = _paired(loss_full, loss_naive, loss_calls, repeats, loop_calls)
    per_kind = _kinds_against_ce(loss_ce, logits, y, loss_calls, repeats)
    loop_value = _naive_full_loss(logits, y, w, cw, kw["alpha"], kw["gamma"]).item()
    diff = abs(loop_value - combined_loss(logits, y, w, cw, **kw).item())
    return {
        "timing": "1 CPU thread (torch.set_num_threads(1)); medians of paired repeats",
        "threads": torch.get_num_threads(),
        "batch": BATCH,
        "classes": CLASSES,
        "repeats": repeats,
        "model": model_name,
        "step_ce_us": step_ce,
        "step_full_us": step_full,
        "step_ratio": step_ratio,
        "step_target": STEP_TARGET,
        "step_target_met": step_ratio <= STEP_TARGET,
        "step_full_in_loss_us": step_in_loss,
        "step_ratio_in_loss": in_loss_ratio,
        "loss_ce_us": only_ce,
        "loss_full_us": only_full,
        "loss_ratio": loss_ratio,
        "loop_naive_us": naive,
        "loop_vectorised_us": vectorised,
        "loop_speedup": speedup,
        "loop_abs_diff": diff,
        **per_kind,
    }


# the loss kinds timed alone (forward + backward, no weights) against F.cross_entropy
KIND_TIMED = {
    "label_smoothing": {"loss.smoothing": 0.1},
    "logit_adjustment": {"loss.tau": 1.0},
    "balanced_softmax": {},
    "poly1": {"loss.epsilon": 1.0},
    "ldam": {"loss.ldam_margin": 0.5, "loss.ldam_scale": 30.0, "loss.drw_frac": 0.8},
    "gce": {"loss.q": 0.7},
    "sce": {"loss.sce_alpha": 0.1, "loss.sce_beta": 1.0},
}


def _kinds_against_ce(
    loss_ce: Callable[[], None], logits: torch.Tensor, y: torch.Tensor, calls: int, repeats: int
) -> dict[str, float]:
    """`loss_<kind>_us` and `loss_ratio_<kind>` (kind / CE, paired) per kind of KIND_TIMED."""
    out: dict[str, float] = {}
    counts = torch.bincount(y, minlength=CLASSES)
    for name, keys in KIND_TIMED.items():
        kind = loss_kind(name)
        params = {k: p.default for k, p in PARAMS.items()} | {"loss.kind": name} | keys
        context = kind.prepare(params, counts, [str(c) for c in range(CLASSES)])
        context = kind.at_epoch(context, params["train.max_epochs"] - 1, params)  # the last

        def step(kind: LossKind = kind, params: dict = params, context: object = context) -> None:
            logits.grad = None
            weighted_loss(
                logits, y, None, None, kind=kind.name, params=params, context=context
            ).backward()

        _, out[f"loss_{name}_us"], out[f"loss_ratio_{name}"] = _paired(
            loss_ce, step, calls, repeats
        )
    return out
