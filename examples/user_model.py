"""A user model for `model=examples.user_model:factory`: a residual MLP over the features.

    python -m search.run space=examples/user_model.yaml model=examples.user_model:factory

The factory receives the data's sizes and the trial's params (its own `model.width` and
`model.blocks` among them, declared in `factory.params`) and returns logits (N, C).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from trainables.models.registry import ModelInputs
from trainables.params import Param


class ResidualMLP(nn.Module):
    """logits = head(x + Σ blocks), each block LayerNorm → Linear → GELU → Linear."""

    def __init__(self, num_features: int, num_classes: int, width: int, blocks: int) -> None:
        super().__init__()
        self.inp = nn.Linear(num_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
            )
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        # x: (N, F); tokens unused -> logits (N, C)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def factory(inputs: ModelInputs, params: Mapping[str, Any]) -> nn.Module:
    return ResidualMLP(
        inputs.num_features, inputs.num_classes, params["model.width"], params["model.blocks"]
    )


factory.params = [
    Param("model.width", 64, "int", "Width of the residual stream.", low=4, high=1024),
    Param("model.blocks", 2, "int", "Residual blocks.", low=1, high=8),
]
