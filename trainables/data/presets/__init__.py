"""Named data presets (`data=NAME`, options `data.*`): one module per family of presets, each
adding its entries with `register(name, Preset(...))`.

`build_dataset(preset, options)` builds the Dataset, `describe_presets()` is the --help text,
`PRESETS` the registry (in registration order). A new preset is a module here that calls
`register` and one import line below (docs/development.md, "Add a data preset"); a plug-in module
outside the project may call `register` too, before the data is built.
"""

from trainables.data.presets.registry import (
    PRESETS,
    PROJECT_ROOT,
    Preset,
    build_dataset,
    describe_presets,
    register,
)
from trainables.data.presets.registry import _check_shipped_file as _check_shipped_file

# The built-in presets register themselves on import, in the order --help lists them.
# isort: off
from trainables.data.presets import synthetic
from trainables.data.presets import table
from trainables.data.presets import nova

# isort: on
from trainables.data.presets.nova import NOVA, NOVA_PATH

__all__ = [
    "NOVA",
    "NOVA_PATH",
    "PRESETS",
    "PROJECT_ROOT",
    "Preset",
    "build_dataset",
    "describe_presets",
    "nova",
    "register",
    "synthetic",
    "table",
]
