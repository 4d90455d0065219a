"""The default classifier: an MLP over numeric features, joined with an EmbeddingBag over text ids."""

from __future__ import annotations

import torch
from torch import nn

from trainables.params import TrialParams


class MLPClassifier(nn.Module):
    """logits = MLP([x ; mean-bag(tokens)]); the bag is present only when the data has text."""

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


def build_model(
    num_features: int, num_classes: int, vocab_size: int, params: TrialParams
) -> MLPClassifier:
    """The default model sized from the data and the trial's `model.*` parameters."""
    return MLPClassifier(
        num_features,
        num_classes,
        vocab_size,
        hidden=params["model.hidden"],
        layers=params["model.layers"],
        dropout=params["model.dropout"],
        embed_dim=params["model.embed_dim"],
    )
