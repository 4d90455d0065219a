"""Search spaces: YAML files of trial keys → distributions, validated and compiled for Optuna.

`load_space("elf")` reads spaces/elf.yaml (or any path), validates it against the trial's PARAMS and
returns a `Space` whose `define_by_run` feeds the Optuna searcher (search/searcher.py); `canonical` (from
`trainables.canonical`, which owns the training semantics) collapses equivalent configurations and
`spaces.fit` fits a space to the data. Ray compilation is in `search.param_space`: this package
never imports Ray.
"""

from spaces.schema import SPACES_DIR, list_spaces, load_space, parse_space
from spaces.space import ParamSpec, Space
from trainables.canonical import canonical, relevant

__all__ = [
    "SPACES_DIR",
    "ParamSpec",
    "Space",
    "canonical",
    "list_spaces",
    "load_space",
    "parse_space",
    "relevant",
]
