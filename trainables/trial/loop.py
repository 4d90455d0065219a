"""The built-in trainable: the `model=` choice trained by AdamW or SGD on the config's loss.

`train(ctx)` is a trainable like any user's (`trainables.trial.context`): it uses only the public API,
the config's loss (`TrialLoss`) and `ctx.report`, with no Ray; search/tune_trial.py runs it (or a
user's) under Ray Tune, and `run_local` runs it in this process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from trainables.canonical import canonical
from trainables.data.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.losses.kinds.plugin import load_loss_kind
from trainables.models.registry import model_factory
from trainables.objective import DEFAULT_OBJECTIVE, Objective
from trainables.params import TrialParams
from trainables.plugins import BUILT_IN, Plugins, Trainable, load_object
from trainables.trial.context import ResultSink, TrialContext


def pick_device(gpu_assigned: bool) -> torch.device:
    """CUDA when a GPU was assigned and torch sees one, else CPU."""
    return (
        torch.device("cuda") if gpu_assigned and torch.cuda.is_available() else torch.device("cpu")
    )


def make_optimizer(
    model: torch.nn.Module, params: TrialParams, extra: Sequence[torch.Tensor] = ()
) -> torch.optim.Optimizer:
    """The torch.optim optimizer `train.optimizer` names, at `train.lr` and `train.weight_decay`,
    over the model's `param_groups()` where it has them (e.g. its own lr for an encoder), and
    `extra` tensors (a loss's own, e.g. uncertainty weighting's s_t) at train.lr without decay."""
    groups = getattr(model, "param_groups", None)
    parameters = list(groups() if callable(groups) else model.parameters())
    if extra:
        if parameters and not isinstance(parameters[0], dict):
            parameters = [{"params": parameters}]
        parameters.append({"params": list(extra), "weight_decay": 0.0})
    lr, decay = params["train.lr"], params["train.weight_decay"]
    if params["train.optimizer"] == "sgd":
        return torch.optim.SGD(
            parameters, lr=lr, momentum=params["train.momentum"], weight_decay=decay
        )
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=decay)


def load_trainable(plugins: Plugins) -> Trainable:
    """Import the plug-ins of `plugins`, registering their declared keys and the loss= kind (a
    UserInputError if one fails); the trainable function (the built-in `train` when none is named)."""
    model_factory(plugins.model)
    if plugins.loss:
        load_loss_kind(plugins.loss)
    return load_object(plugins.trainable, "trainable") if plugins.trainable else train


def prepare_params(config: dict[str, Any], data: Dataset) -> TrialParams:
    """The params a trial trains with: `config` validated as written against `data` (the errors a
    search's trial and a direct call give alike), then canonicalised (`trainables.canonical`)."""
    return TrialParams.from_flat(canonical(config, data=data))


def train(ctx: TrialContext) -> None:
    """Train `train.max_epochs` epochs from `ctx.start_epoch`, reporting each with the model
    (validation metrics), train_loss, the w_* of the applied weights and a checkpoint."""
    params, device = ctx.params, ctx.device
    torch.manual_seed(params["seed"])
    gen = torch.Generator().manual_seed(params["seed"])
    split = ctx.data.train.to(device)
    model = ctx.build_model()
    loss_of = ctx.loss(split)
    optim = make_optimizer(model, params, loss_of.parameters())
    if ctx.checkpoint is not None:
        model.load_state_dict(ctx.checkpoint["model"])
        loss_of.load(ctx.checkpoint.get("loss", {}))
        optim.load_state_dict(ctx.checkpoint["optim"])
        gen.set_state(ctx.checkpoint["gen"])
        torch.set_rng_state(ctx.checkpoint["torch_rng"])
    bs = params["train.batch_size"]
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for epoch in range(ctx.start_epoch, params["train.max_epochs"]):
        order = loss_of.order(gen)
        step = loss_of.epoch(epoch, order)
        model.train()
        total = torch.zeros((), device=device)
        for lo in range(0, order.shape[0], bs):
            idx = order[lo : lo + bs]
            with amp:
                logits = model(split.x[idx], None if split.tokens is None else split.tokens[idx])
            loss = step(logits, split.y[idx], lo)
            optim.zero_grad()
            loss.backward()
            optim.step()
            total += loss.detach() * idx.shape[0]
        state = {
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "gen": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "loss": loss_of.state(),
        }
        metrics = {"train_loss": float(total) / order.shape[0]} | step.stats()
        ctx.report(metrics, model=model, checkpoint=state)


def run_local(
    config: dict[str, Any],
    data: Dataset,
    *,
    plugins: Plugins = BUILT_IN,
    objective: Objective = DEFAULT_OBJECTIVE,
    device: torch.device | None = None,
    sink: ResultSink | None = None,
) -> list[dict[str, Any]]:
    """Run a trainable (`plugins.trainable`, default the built-in) on `config` in this process,
    without Ray and without `data`'s test split; the per-epoch results (each also to `sink`)."""
    function = load_trainable(plugins)
    results: list[dict[str, Any]] = []

    def keep(result: dict[str, Any], state: dict[str, Any] | None) -> None:
        results.append(result)
        if sink is not None:
            sink(result, state)

    ctx = TrialContext(
        prepare_params(config, data),
        data.without_test(),
        device or torch.device("cpu"),
        keep,
        plugins=plugins,
        objective=objective,
    )
    function(ctx)
    return results


def predict_best(
    config: dict[str, Any],
    data: Dataset,
    predict: Split,
    *,
    plugins: Plugins = BUILT_IN,
    objective: Objective = DEFAULT_OBJECTIVE,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Run a trainable on `config` over `data` (its test split never read) and return the logits
    of `predict` by the model it reported at its best `objective` epoch, with the per-epoch
    results. Raises UserInputError when that epoch was reported without a model."""
    function = load_trainable(plugins)
    history: list[dict[str, Any]] = []
    ctx = TrialContext(
        prepare_params(dict(config), data),
        data.without_test(),
        device or torch.device("cpu"),
        lambda result, state: history.append(result),
        plugins=plugins,
        objective=objective,
        test=predict,
    )
    function(ctx)
    if ctx.best_test_logits is None:
        raise UserInputError(
            "the trainable reported its best validation epoch without model=: nothing to predict"
        )
    return ctx.best_test_logits, history
