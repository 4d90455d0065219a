"""Metrics: the one metric table (`table`: names, directions, confusion-matrix forms) and the
per-epoch scores computed from logits (`scores`: ECE, entropy, the fitted temperature)."""

from trainables.metrics.table import METRICS, Metric

__all__ = ["METRICS", "Metric"]
