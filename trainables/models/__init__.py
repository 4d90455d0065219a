"""Models: the `model=` registry and what a factory gets (`registry`), and the pretrained sentence
encoder of `model=text` (`encoder`)."""

from trainables.models.registry import MODELS, ModelInputs, ignored_keys, model_factory

__all__ = ["MODELS", "ModelInputs", "ignored_keys", "model_factory"]
