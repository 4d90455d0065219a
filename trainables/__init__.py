"""Everything one trial needs (no Ray, MLflow or plotting); importing it registers the built-in
loss kinds (`trainables.loss_kinds`)."""

from trainables import loss_kinds  # noqa: F401
