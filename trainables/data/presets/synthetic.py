"""The built-in synthetic code-review data (`trainables/data/synthetic.py`) and its two controls."""

from __future__ import annotations

from trainables.data.presets.registry import Preset, register
from trainables.data.synthetic import SyntheticSpec, make_synthetic

register(
    "synthetic",
    Preset(
        "built-in code-review data; training-label noise falls with reviewer ownership",
        SyntheticSpec(),
        SyntheticSpec,
        make_synthetic,
    ),
)
register(
    "synthetic-flat",
    Preset(
        "control: same data, noise independent of experience (κ = 0) at the default mean rate",
        SyntheticSpec(noise_decay=0.0, noise_max=0.28),
        SyntheticSpec,
        make_synthetic,
    ),
)
register(
    "synthetic-clean",
    Preset(
        "control: same data with clean training labels",
        SyntheticSpec(noise_max=0.0),
        SyntheticSpec,
        make_synthetic,
    ),
)
