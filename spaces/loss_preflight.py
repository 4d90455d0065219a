"""The loss preflight: a space's corner configurations, each run forward and backward once on a
real training batch before any trial, so that a loss that cannot train is refused up front.

Corners: plain CE, then one configuration per value of each searched key (both ends of a
continuous range), its parents set to the first values that make it active, deduplicated by
`canonical`. Each gets the model as seed 0 initialises it, the first train.batch_size rows of its first epoch's
order and the weights and loss of its last epoch (the warm-up's full weights; a loss kind's
context of that epoch, e.g. LDAM's deferred re-weighting). Refused (one line naming
the keys): a loss or gradient that is not finite, or a loss over MAX_RATIO times plain CE on the
same logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from spaces.distributions import Constant, fmt
from spaces.space import Space
from trainables.canonical import DataFacts, canonical
from trainables.data.dataset import Dataset
from trainables.errors import UserInputError
from trainables.params import as_plain_ce
from trainables.plugins import Plugins
from trainables.trial.context import TrialContext
from trainables.trial.loop import prepare_params

MAX_RATIO = 100.0  # a corner whose loss exceeds plain CE's by more is refused


@dataclass(frozen=True)
class Corner:
    """One corner's figures on the batch."""

    settings: dict[str, Any]  # the keys set (canonical), plain CE: {}
    loss: float
    ratio: float  # loss / plain CE on the same logits
    grad_norm: float  # L2 norm of the loss's gradient over the model's parameters
    w_ess: float  # effective sample size share of the applied ELF weights, ESS / rows
    w_min: float
    w_max: float

    def problem(self) -> str | None:
        """Why this corner is refused, or None."""
        if not (math.isfinite(self.loss) and math.isfinite(self.grad_norm)):
            return f"the loss ({self.loss:g}) or its gradient ({self.grad_norm:g}) is not finite"
        if self.ratio > MAX_RATIO:
            return f"the loss is {self.ratio:.3g}× plain CE's (more than {MAX_RATIO:g}×)"
        return None


def corners(space: Space, facts: DataFacts) -> list[dict[str, Any]]:
    """Plain CE and one canonical config per searched value (continuous: its two ends)."""
    base = {k: s.dist.value for k, s in space.params.items() if isinstance(s.dist, Constant)}
    out = [canonical(as_plain_ce(base), data=facts)]
    seen = [canonical(out[0], fill_defaults=True, data=facts)]  # what trains alike, once
    for key, spec in space.params.items():
        dist = spec.dist
        for value in dist.finite if dist.finite is not None else (dist.low, dist.high):
            config = base | _activate(space, key) | {key: value}
            try:
                config = canonical(config, data=facts)
            except (UserInputError, *FAILURES) as e:
                raise _refused(space, config, _why(e)) from None
            full = canonical(config, fill_defaults=True, data=facts)
            if full not in seen:
                out.append(config)
                seen.append(full)
    return out


def _keys(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in config.items()) or "plain CE"


def _activate(space: Space, key: str) -> dict[str, Any]:
    """Parents of `key` set (recursively) to the first values that make it active."""
    out: dict[str, Any] = {}
    for parent, allowed in space.params[key].when:
        out |= _activate(space, parent) | {parent: allowed[0]}
    return out


def _discard(result: dict[str, Any], state: Any) -> None:
    """The sink of a context that never reports."""


Models = dict[tuple, tuple[torch.nn.Module, dict[str, torch.Tensor]]]


def measure(
    config: dict[str, Any], data: Dataset, plugins: Plugins, models: Models | None = None
) -> Corner:
    """`config`'s loss, ratio to plain CE, gradient norm and applied weights on one batch.
    `models` caches the seed-0 model per set of model.* values (a pretrained encoder loads once)."""
    data = data.without_test()
    params = prepare_params(config, data)
    ctx = TrialContext(params, data, torch.device("cpu"), _discard, plugins=plugins)
    models = {} if models is None else models
    shape = tuple(sorted((k, str(v)) for k, v in params.values.items() if k.startswith("model.")))
    if shape not in models:
        torch.manual_seed(0)
        built = ctx.build_model()
        models[shape] = built, {k: v.clone() for k, v in built.state_dict().items()}
    model, initial = models[shape]
    model.load_state_dict(initial)
    model.zero_grad(set_to_none=True)
    model.train()
    loss = ctx.loss()
    order = loss.order(torch.Generator().manual_seed(0))
    rows = order[: params["train.batch_size"]]
    step = loss.epoch(params["train.max_epochs"] - 1, order)
    split = ctx.data.train
    tokens = None if split.tokens is None else split.tokens[rows]
    torch.manual_seed(0)  # the same dropout masks for every corner
    logits = model(split.x[rows], tokens)
    value = step(logits, split.y[rows], 0)
    value.backward()
    grads = [p.grad.norm() ** 2 for p in model.parameters() if p.grad is not None]
    plain = TrialContext(
        prepare_params(as_plain_ce(config), data), data, ctx.device, _discard, plugins=plugins
    )
    reference = plain.loss().epoch(0, order)(logits.detach(), split.y[rows], 0)
    stats, value = step.stats(), float(value.detach())
    return Corner(
        dict(config),
        value,
        value / float(reference),
        float(torch.stack(grads).sum().sqrt()) if grads else 0.0,
        stats["w_ess"] / len(order),
        stats["w_min"],
        stats["w_max"],
    )


def check_corners(space: Space, data: Dataset, plugins: Plugins, facts: DataFacts) -> list[Corner]:
    """Every corner of `space` measured; a UserInputError for the first refused one."""
    measured, models = [], {}
    for config in corners(space, facts):
        try:
            corner = measure(config, data, plugins, models)
        except (UserInputError, *FAILURES) as e:
            raise _refused(space, config, _why(e)) from None
        problem = corner.problem()
        if problem is not None:
            raise _refused(space, config, f"{problem} on a training batch")
        measured.append(corner)
    return measured


FAILURES = (RuntimeError, ValueError, OverflowError)  # e.g. a bound float32 cannot hold


def _why(error: Exception) -> str:
    if isinstance(error, UserInputError):
        return str(error)
    return f"training raises {type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _refused(space: Space, config: dict[str, Any], problem: str) -> UserInputError:
    return UserInputError(
        f"{space.path}: loss preflight: {_keys(config)}: {problem}; narrow the space or drop "
        "the value"
    )


def table(measured: list[Corner]) -> str:
    """The corners as aligned text lines (the log and preflight=only print it)."""
    lines = [f"{'loss':>10} {'×CE':>7} {'|grad|':>9} {'ESS/n':>6} {'w range':>15}  settings"]
    for c in measured:
        span = f"{c.w_min:.3g}–{c.w_max:.3g}"
        figures = f"{c.loss:>10.4g} {c.ratio:>7.3g} {c.grad_norm:>9.3g} {c.w_ess:>6.3f} {span:>15}"
        lines.append(f"{figures}  {_keys(c.settings)}")
    return "\n".join(lines)
