"""AdamW with torch.optim.AdamW's update and state-dict layout, without torch.optim.

torch.optim wraps its methods in `torch._disable_dynamo`, whose first call imports torch._dynamo
(1.5 s of CPU in every fresh trial worker). The update, per parameter p with gradient g, step t:
  p ← p·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
  p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
done with torch._foreach ops (one kernel per op for all parameters).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class AdamW:
    """Decoupled-weight-decay Adam over one parameter group; checkpoints load in either direction
    with torch.optim.AdamW (same `state_dict` keys)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.steps = [0] * len(self.params)  # per parameter, as torch's (only stepped with a grad)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop every gradient (torch's default, `set_to_none=True`)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (as torch's: no step for the rest)."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        m, v = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live]
        (beta1, beta2), lr = self.betas, self.lr
        for i in live:
            self.steps[i] += 1
        steps = [self.steps[i] for i in live]
        torch._foreach_mul_(params, 1 - lr * self.weight_decay)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5 for t in steps])
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, m, denom, [-lr / (1 - beta1**t) for t in steps])

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.AdamW's layout: per-index state and one param group."""
        state = {
            i: {"step": torch.tensor(float(t)), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
            for i, (t, m, v) in enumerate(
                zip(self.steps, self.exp_avg, self.exp_avg_sq, strict=True)
            )
            if t
        }
        group = {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": False,
            "maximize": False,
            "params": list(range(len(self.params))),
        }
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Moments and step counts from `state_dict()` (ours or torch.optim.AdamW's)."""
        (group,) = saved["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(
                f"optimizer state has {len(group['params'])} parameters, the model {len(self.params)}"
            )
        state = saved["state"]
        for i, p in enumerate(self.params):
            s = state.get(i)
            if s is None:  # never stepped: fresh moments
                self.steps[i], self.exp_avg[i], self.exp_avg_sq[i] = (
                    0,
                    p.new_zeros(p.shape),
                    p.new_zeros(p.shape),
                )
                continue
            self.steps[i] = int(s["step"])
            self.exp_avg[i], self.exp_avg_sq[i] = (
                s["exp_avg"].to(p).clone(),
                s["exp_avg_sq"].to(p).clone(),
            )
