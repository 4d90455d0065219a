"""The user's own CSV or Parquet file (`trainables/data/table/`): data.path and data.label required."""

from __future__ import annotations

from trainables.data.presets.registry import Preset, register
from trainables.data.table import TableSpec, load_table

register(
    "table",
    Preset(
        "your CSV/Parquet file: set data.path and data.label (data.text, features, ownership)",
        None,
        TableSpec,
        load_table,
        required=("path", "label"),
    ),
)
