"""A user trainable for `trainable=examples.user_trainable:train`: its own loop, the harness's loss.

    python -m search.run space=elf trainable=examples.user_trainable:train

It trains what `model=` chooses with AdamW on the loss the trial config describes (ELF weights,
class weights, focal; per-task losses and task weighting on multi-task data: `ctx.loss()`), and
reports each epoch with the model, so the harness computes the validation metrics, keeps the best
epoch and checkpoints. Seeded as the built-in
loop is, it reports the same numbers bit for bit on CPU with train.optimizer=adamw (the built-in
also steps SGD, follows a model's param_groups() and autocasts to bf16 on CUDA).
"""

from __future__ import annotations

import torch

from trainables.trial.context import TrialContext


def train(ctx: TrialContext) -> None:
    p = ctx.params
    torch.manual_seed(p["seed"])
    gen = torch.Generator().manual_seed(p["seed"])
    data = ctx.data.train.to(ctx.device)
    model = ctx.build_model()
    loss = ctx.loss(data)
    groups = [{"params": list(model.parameters())}]
    if loss.parameters():  # multi-task uncertainty weighting learns s_t (no weight decay)
        groups.append({"params": loss.parameters(), "weight_decay": 0.0})
    optim = torch.optim.AdamW(groups, lr=p["train.lr"], weight_decay=p["train.weight_decay"])
    if ctx.checkpoint is not None:  # a restored trial: pick up where its checkpoint left off
        model.load_state_dict(ctx.checkpoint["model"])
        loss.load(ctx.checkpoint["loss"])
        optim.load_state_dict(ctx.checkpoint["optim"])
        gen.set_state(ctx.checkpoint["gen"])
        torch.set_rng_state(ctx.checkpoint["torch_rng"])
    size = p["train.batch_size"]
    for epoch in range(ctx.start_epoch, p["train.max_epochs"]):
        order = loss.order(gen)  # shuffled, or class-balanced with train.balanced_sampling
        step = loss.epoch(epoch, order)  # this epoch's sample weights, in batch order
        model.train()
        total = torch.zeros((), device=ctx.device)
        for lo in range(0, len(order), size):
            idx = order[lo : lo + size]
            tokens = None if data.tokens is None else data.tokens[idx]
            batch = step(model(data.x[idx], tokens), data.y[idx], lo)
            optim.zero_grad()
            batch.backward()
            optim.step()
            total += batch.detach() * len(idx)
        state = {
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "gen": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "loss": loss.state(),
        }
        metrics = {"train_loss": float(total) / len(order)} | step.stats()
        ctx.report(metrics, model=model, checkpoint=state)
