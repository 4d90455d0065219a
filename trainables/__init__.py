"""Everything one trial needs (no Ray, MLflow or plotting); importing it registers the built-in
loss kinds (`trainables.losses.kinds`)."""

from trainables.losses import kinds  # noqa: F401
