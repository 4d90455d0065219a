"""Losses: the per-sample loss kinds (`kinds`, a registry), the fused training loss and class
weights (`functions`), ELF sample weights (`weights`), the loss a trial's config describes
(`trial_loss`), its multi-task form (`multitask`) and distillation (`distill`)."""

from trainables.losses.functions import class_weights, combined_loss, focal_alpha, focal_loss

__all__ = ["class_weights", "combined_loss", "focal_alpha", "focal_loss"]
