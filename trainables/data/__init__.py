"""Data: the `Split`/`Dataset` containers, the synthetic world, tables and their text, and the named
presets (`data=NAME`) that build them."""

from trainables.data.dataset import Dataset, Split

__all__ = ["Dataset", "Split"]
