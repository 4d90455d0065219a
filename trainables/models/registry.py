"""The models a trial can train: a registry of factories, `model=` names one (or `pkg.mod:factory`).

A factory is `factory(inputs: ModelInputs, params: Mapping[str, Any]) -> nn.Module`; the module is
called as `model(x, tokens)` with x (N, F) float features and tokens (N, L) int64 ids (0 = padding)
or None, and returns float logits (N, C) (multi-task data: (N, Σ C_t), the tasks' blocks side by
side, `ModelInputs.task_sizes`). It may declare its own trial keys (`trainables.plugins`),
`param_groups()` (torch.optim parameter groups) and `eval_batch_size` (rows per prediction pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainables.errors import UserInputError
from trainables.plugins import is_reference, load_object


@dataclass(frozen=True)
class ModelInputs:
    """What a factory sizes its model from: the data's feature width, class count (multi-task: the
    sum over tasks), text-id vocabulary (0: no text column), (model=text, finetune) the sentence
    encoder's name, and for multi-task data each task's class count (the logits' blocks, in
    order; () for a single task)."""

    num_features: int
    num_classes: int
    vocab_size: int = 0
    encoder: str = ""
    task_sizes: tuple[int, ...] = ()


Factory = Callable[[ModelInputs, Mapping[str, Any]], nn.Module]


class MLPClassifier(nn.Module):
    """logits = head(body([x ; mean-bag(tokens)])); the bag is present only when the data has
    text. For multi-task data the head's rows for each task's classes are that task's linear head
    over the shared body."""

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        vocab_size: int = 0,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.1,
        embed_dim: int = 32,
    ) -> None:
        super().__init__()
        self.bag = (
            nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=0)
            if vocab_size
            else None
        )
        width = num_features + (embed_dim if vocab_size else 0)
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        # x: (N, F), tokens: (N, L) with 0 = padding -> logits (N, C)
        if self.bag is not None and tokens is not None:
            x = torch.cat([x, self.bag(tokens)], dim=1)
        return self.head(self.body(x))


def mlp(inputs: ModelInputs, params: Mapping[str, Any]) -> MLPClassifier:
    """The default model sized from the data and the trial's `model.*` keys."""
    return MLPClassifier(
        inputs.num_features,
        inputs.num_classes,
        inputs.vocab_size,
        hidden=params["model.hidden"],
        layers=params["model.layers"],
        dropout=params["model.dropout"],
        embed_dim=params["model.embed_dim"],
    )


def text(inputs: ModelInputs, params: Mapping[str, Any]) -> nn.Module:
    """model=text: frozen, the MLP head over the precomputed sentence embeddings (the features);
    finetune, the sentence encoder itself under a linear head."""
    if not inputs.encoder:
        if inputs.vocab_size:  # hashed text ids: the texts were never embedded
            raise UserInputError(
                "model=text: the data still has text ids; embed it first "
                "(trainables.models.encoder.embed_frozen, as the driver does) or set the encoder"
            )
        return mlp(inputs, params)
    from trainables.models.encoder import EncoderClassifier

    return EncoderClassifier(inputs.encoder, inputs.num_features, inputs.num_classes, params)


MODELS: dict[str, Factory] = {"mlp": mlp, "text": text}


def ignored_keys(model: str, encoder: str, vocab_size: int) -> dict[str, str]:
    """The built-in model.* keys that `model=` (with `encoder` for model=text finetune, on data
    with `vocab_size` text ids) never reads, each with the reason; none for a user's factory,
    which may read any key."""
    if is_reference(model):
        return {}
    if model == "text" and encoder:
        why = "model=text mode=finetune trains the encoder under a linear head"
        return {k: why for k in ("model.hidden", "model.layers", "model.embed_dim")}
    out = {"model.encoder_lr": "only model=text mode=finetune trains an encoder"}
    if not vocab_size:
        out["model.embed_dim"] = "the data has no text ids for the MLP's EmbeddingBag"
    return out


def model_factory(name: str) -> Factory:
    """The factory `model=name` names: a registry entry or an imported `pkg.mod:factory`."""
    if is_reference(name):
        return load_object(name, "model")
    if name not in MODELS:
        raise UserInputError(
            f"model={name}: expected one of {sorted(MODELS)} or package.module:factory"
        )
    return MODELS[name]
