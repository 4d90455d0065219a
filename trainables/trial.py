"""The trial: one loss configuration in, a trained model and one metrics report per epoch out.

`train(params, data, report)` is the training loop (no Ray; tests call it directly, and
search/trainable.py's `tune_trial` runs it under Ray Tune).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trainables.canonical import canonical
from trainables.checkpoints import FALLBACK, Restored
from trainables.dataset import Dataset, Split
from trainables.losses import class_weights, combined_loss, focal_alpha, warn_double_correction
from trainables.metrics import classification_metrics, plain_ce
from trainables.models import build_model
from trainables.nonfinite import NonFiniteError
from trainables.objective import Objective
from trainables.params import TrialParams
from trainables.weights import (
    adaptive_scale,
    batch_normalize_epoch,
    train_weights,
    warmup_ramp,
    weight_stats,
)

log = logging.getLogger(__name__)
DEFAULT_OBJECTIVE = Objective()  # val_macro_f1, max: search.metric and search.mode's defaults

Report = Callable[[dict[str, Any], dict[str, Any]], None]  # (metrics, checkpoint state) -> None
EVAL_CHUNK = 8192


def pick_device(gpu_assigned: bool) -> torch.device:
    """CUDA when a GPU was assigned and torch sees one, else CPU."""
    return (
        torch.device("cuda") if gpu_assigned and torch.cuda.is_available() else torch.device("cpu")
    )


def evaluate(
    model: torch.nn.Module, split: Split, num_classes: int, minority: int
) -> dict[str, float]:
    """Validation metrics (`val_` prefix) and plain unweighted CE, computed in chunks without grad."""
    return scores(predict(model, split), split, num_classes, minority, "val_")


def scores(
    logits: torch.Tensor, split: Split, num_classes: int, minority: int, prefix: str
) -> dict[str, float]:
    """`split`'s classification metrics and plain unweighted CE of `logits`, names prefixed."""
    metrics = classification_metrics(logits, split.y, num_classes, minority)
    out = {f"{prefix}{k}": float(v) for k, v in metrics.items()}
    out[f"{prefix}loss"] = float(plain_ce(logits, split.y))
    return out


def predict(model: torch.nn.Module, split: Split) -> torch.Tensor:
    """(N, C) float logits of `split`, in chunks, in eval mode without grad."""
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [
                model(split.x[i : i + EVAL_CHUNK], _rows(split.tokens, i, i + EVAL_CHUNK)).float()
                for i in range(0, len(split), EVAL_CHUNK)
            ]
        )


def _rows(t: torch.Tensor | None, lo: int, hi: int) -> torch.Tensor | None:
    return None if t is None else t[lo:hi]


def _epoch_order(y: torch.Tensor, balanced: bool, gen: torch.Generator) -> torch.Tensor:
    """Sample indices for one epoch: a permutation, or class-balanced draws with replacement."""
    n = y.shape[0]
    if not balanced:
        return torch.randperm(n, generator=gen, device="cpu").to(y.device)
    counts = torch.bincount(y).float()
    probs = (1.0 / counts)[y]  # (n,) each class gets equal total mass
    return torch.multinomial(probs.cpu(), n, replacement=True, generator=gen).to(y.device)


class InjectedFault(RuntimeError):
    """Raised by `fault.kind=raise` or `corrupt` (testing the harness's retries and fallbacks)."""


FAULT_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _strikes(params: TrialParams) -> bool:
    """True while `fault.marker` allows: always without one, else once (the strike creates it)."""
    marker = params["fault.marker"]
    if not marker:
        return True
    if Path(marker).exists():
        return False
    Path(marker).touch()
    return True


def inject_fault(params: TrialParams, loss: torch.Tensor) -> torch.Tensor:
    """In a batch of the fault epoch: raise for `raise` and `corrupt` (`tune_trial` first truncates
    the newest checkpoint), or, with fault.target=loss, multiply the loss by NaN, +inf or -inf."""
    kind = params["fault.kind"]
    if kind in FAULT_VALUES and params["fault.target"] != "loss":
        return loss
    if not _strikes(params):
        return loss
    if kind in ("raise", "corrupt"):
        raise InjectedFault(f"injected fault ({kind}) at epoch {params['fault.epoch']}")
    return loss * FAULT_VALUES[kind]


def inject_metric_fault(params: TrialParams, metrics: dict[str, Any]) -> dict[str, Any]:
    """After validating the fault epoch, with fault.target=metric: `val_ece` becomes the fault's
    value (NaN, +inf or -inf)."""
    kind = params["fault.kind"]
    if kind not in FAULT_VALUES or params["fault.target"] != "metric" or not _strikes(params):
        return metrics
    return metrics | {"val_ece": FAULT_VALUES[kind]}


def _check_finite(train_loss: float, metrics: dict[str, Any], epoch: int) -> None:
    """Raise NonFiniteError when the training loss or a validation metric is NaN or ±inf."""
    reason = None
    if not math.isfinite(train_loss):
        reason = f"non-finite training loss ({train_loss}) at epoch {epoch}"
    else:
        bad = [k for k, v in metrics.items() if k.startswith("val_") and not math.isfinite(v)]
        if bad:
            reason = f"non-finite validation metric {bad[0]} at epoch {epoch}"
    if reason is not None:
        raise NonFiniteError(reason, epoch, metrics)


def make_optimizer(parameters: Any, params: TrialParams) -> torch.optim.Optimizer:
    """The torch.optim optimizer `train.optimizer` names, at `train.lr` and `train.weight_decay`."""
    lr, decay = params["train.lr"], params["train.weight_decay"]
    if params["train.optimizer"] == "sgd":
        return torch.optim.SGD(
            parameters, lr=lr, momentum=params["train.momentum"], weight_decay=decay
        )
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay)


def prepare_params(config: dict[str, Any], data: Dataset) -> TrialParams:
    """The params a trial trains with: `config` validated as written against `data` (the errors a
    search's trial and a direct call give alike), then canonicalised (`trainables.canonical`)."""
    return TrialParams.from_flat(canonical(config, data=data))


def applied_weights(
    w: torch.Tensor, order: torch.Tensor, bn_batch: int, ramp: float
) -> torch.Tensor:
    """The ELF weights the loss applies in one epoch, in batch order: w[order], batch-normalised
    per run of `bn_batch` (0 = off), then warmed up (`adaptive_scale` at `ramp`)."""
    out = w[order]
    if bn_batch:
        out = batch_normalize_epoch(out, bn_batch)
    return adaptive_scale(out, ramp)


def train(
    params: TrialParams,
    data: Dataset,
    report: Report,
    device: torch.device,
    state: dict[str, Any] | None = None,
    objective: Objective = DEFAULT_OBJECTIVE,
) -> None:
    """Train `params.train.max_epochs` epochs, calling `report(metrics, state)` after each one;
    the metrics include `objective.best_key` (the best value so far) and `best_epoch`.

    `state` (a checkpoint written by an earlier call) resumes after its epoch. Raises NonFiniteError
    when the loss or a metric is not finite, naming the epoch.
    """
    torch.manual_seed(params["seed"])
    gen = torch.Generator().manual_seed(params["seed"])
    train_split, val = data.train.to(device), data.val.to(device)
    counts = data.train_counts()
    minority = int(torch.argmin(counts))
    model = build_model(data.num_features, data.num_classes, data.vocab_size, params).to(device)
    optim = make_optimizer(model.parameters(), params)
    elf_on = params["elf.strategy"] != "none"  # no ELF: no weight transforms either (exact CE)
    base_w = clipped = None
    if elf_on:
        base_w, clipped = (t.to(device) for t in train_weights(data.train, params))
    warn_double_correction(params["train.balanced_sampling"], params["cw.method"])
    cw = None  # None takes the loss's exact, cheapest unweighted path
    if params["cw.method"] != "none":
        cw = class_weights(
            counts, params["cw.method"], params["cw.beta"], params["cw.cap"], data.classes
        )
        cw = None if bool((cw == 1).all()) else cw.to(device)  # all ones: the exact CE path
    alpha = None
    if params["loss.kind"] == "focal":
        alpha = focal_alpha(params["loss.alpha"], counts, data.classes)
    start, best, best_epoch, train_time = 0, None, -1, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        start, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        train_time = state["train_time_s"]
    max_epochs, bs = params["train.max_epochs"], params["train.batch_size"]
    bn_batch = bs if elf_on and params["elf.batch_norm"] else 0
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for epoch in range(start, max_epochs):
        t0 = time.perf_counter()
        faulty = params["fault.kind"] != "none" and epoch == params["fault.epoch"]
        order = _epoch_order(train_split.y, params["train.balanced_sampling"], gen)
        elf_w = None
        if elf_on:
            ramp = warmup_ramp(epoch, max_epochs, params["elf.warmup_frac"])
            elf_w = applied_weights(base_w, order, bn_batch, ramp)
        batch_w = elf_w
        if cw is not None:
            cwy = cw[train_split.y[order]]
            batch_w = cwy if elf_w is None else elf_w * cwy
        model.train()
        total = torch.zeros((), device=device)
        for i in range(0, order.shape[0], bs):
            idx = order[i : i + bs]
            with amp:
                logits = model(train_split.x[idx], _rows_at(train_split.tokens, idx))
            loss = combined_loss(
                logits.float(),
                train_split.y[idx],
                None if batch_w is None else batch_w[i : i + bs],
                None,
                kind=params["loss.kind"],
                gamma=params["loss.gamma"],
                alpha=alpha,
            )
            if faulty:
                loss = inject_fault(params, loss)
            optim.zero_grad()
            loss.backward()
            optim.step()
            total += loss.detach() * idx.shape[0]
        train_loss = float(total) / order.shape[0]
        metrics = evaluate(model, val, data.num_classes, minority)
        if faulty:
            metrics = inject_metric_fault(params, metrics)
        metrics |= _weight_stats(elf_w, clipped, order)
        epoch_time = time.perf_counter() - t0
        metrics |= {"epoch": epoch, "train_loss": train_loss, "epoch_time_s": epoch_time}
        _check_finite(train_loss, metrics, epoch)
        train_time += epoch_time
        metrics["train_time_s"] = train_time
        if objective.better(metrics[objective.metric], best):
            best, best_epoch = metrics[objective.metric], epoch
        metrics |= {objective.best_key: best, "best_epoch": best_epoch}
        ckpt = {
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "gen": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "best": best,
            "best_epoch": best_epoch,
            "train_time_s": train_time,
        }
        report(metrics, ckpt)


def _weight_stats(
    applied: torch.Tensor | None, clipped: torch.Tensor | None, order: torch.Tensor
) -> dict[str, float]:
    """w_* of the ELF weights the loss applied this epoch (all 1 without ELF)."""
    if applied is None:
        ones = torch.ones(order.shape[0])
        return weight_stats(ones, torch.zeros(order.shape[0], dtype=torch.bool))
    return weight_stats(applied, clipped[order])


def _rows_at(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


def restore_metrics(restored: Restored | None) -> dict[str, Any]:
    """Reported with every epoch after a restore: from which epoch, how many newer checkpoints
    were unusable, and (after a fallback) the one-line note naming them and why."""
    if restored is None:
        return {}
    out: dict[str, Any] = {
        "restored_from_epoch": restored.epoch,
        "checkpoints_skipped": len(restored.skipped),
    }
    if restored.skipped:
        out[FALLBACK] = restored.note()
    return out
