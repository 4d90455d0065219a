"""Reading the file: the header (existence, type, duplicates), the columns a spec needs, and the
CSV/TSV/Parquet read, with encoding and corrupt-file errors turned into one-line user errors."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trainables.data.table.spec import OwnershipColumn, TableSpec, label_columns
from trainables.errors import UserInputError
from trainables.params import closest


def _header(path: str) -> list[str]:
    """Column names of the file, checked for existence, readability and duplicates."""
    file = Path(path)
    if file.is_dir():
        raise UserInputError(f"{path}: is a directory; expected a CSV, TSV or Parquet file")
    if not file.is_file():
        raise UserInputError(f"table file not found: {path} (relative to {Path.cwd()})")
    reader = HEADER_READERS.get(_suffix(file))
    if reader is None:
        raise UserInputError(
            f"{path}: unsupported file type; expected one of {sorted(HEADER_READERS)}"
        )
    names = reader(file)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserInputError(f"{path}: duplicated column names {dupes}; rename them to be unique")
    return names


def _suffix(file: Path) -> str:
    return file.suffix.lower()


def _csv_header(file: Path) -> list[str]:
    delimiter = "\t" if _suffix(file) == ".tsv" else ","
    with file.open("rb") as handle:
        first = handle.readline()
    try:
        names = next(csv.reader([first.decode("utf-8-sig")], delimiter=delimiter), [])
    except UnicodeDecodeError as err:
        raise _encoding_error(file, err) from None
    if not names:
        raise UserInputError(f"{file}: the file is empty; expected a header row")
    return names


def _parquet_header(file: Path) -> list[str]:
    try:
        return list(pq.read_schema(file).names)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise UserInputError(f"{file}: not a readable Parquet file ({_one_line(err)})") from None


def _one_line(err: Exception, limit: int = 300) -> str:
    """A library's error message on one line, shortened to `limit` characters."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _encoding_error(file: Path | str, err: UnicodeDecodeError) -> UserInputError:
    return UserInputError(
        f"{file}: not valid UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
        "re-save the file as UTF-8"
    )


HEADER_READERS: dict[str, Callable[[Path], list[str]]] = {
    ".csv": _csv_header,
    ".tsv": _csv_header,
    ".parquet": _parquet_header,
    ".pq": _parquet_header,
}


def _needed_columns(
    spec: TableSpec, names: list[str], owners: list[OwnershipColumn]
) -> list[str] | None:
    """Columns to read (None: all, for features="auto"); every named column must exist."""
    wanted = [("label", c) for c in label_columns(spec)]
    if spec.text is not None:
        wanted.append(("text", spec.text))
    if spec.features != "auto":
        if isinstance(spec.features, str):
            raise UserInputError(
                f"data.features must be a list of columns or 'auto', got {spec.features!r}"
            )
        wanted += [("feature", f) for f in spec.features]
    wanted += [("log feature", f) for f in spec.log_features]
    wanted += [("ownership", o.column) for o in owners]
    for role, column in wanted:
        if column not in names:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise UserInputError(
                f"{spec.path}: no {role} column {column!r}{closest(column, names)}; "
                f"expected one of the file's columns: {shown}"
            )
    if spec.features == "auto":
        return None
    return list(dict.fromkeys(column for _, column in wanted))


def _read(path: str, names: list[str], columns: list[str] | None, text: str | None) -> pd.DataFrame:
    """The table's `columns` (None: all) of the header `names`; the text column as strings."""
    file = Path(path)
    try:
        if _suffix(file) in (".parquet", ".pq"):
            table = pq.read_table(file, columns=columns)
        else:
            table = pacsv.read_csv(
                file,
                parse_options=pacsv.ParseOptions(
                    delimiter="\t" if _suffix(file) == ".tsv" else ",", newlines_in_values=True
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=columns,
                    column_types={text: pa.string()} if text is not None else None,
                    strings_can_be_null=True,
                ),
            )
    except pa.ArrowInvalid as err:
        at = re.search(r"column #(\d+)", str(err))
        if "UTF8" in str(err) and at and int(at.group(1)) < len(names):
            raise UserInputError(
                f"{path}: column {names[int(at.group(1))]!r} is not valid UTF-8 text; "
                "re-save the file as UTF-8"
            ) from None
        raise UserInputError(f"{path}: cannot be read as a table ({_one_line(err)})") from None
    except (pa.ArrowException, OSError) as err:
        raise UserInputError(f"{path}: cannot be read as a table ({_one_line(err)})") from None
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise UserInputError(
                f"{path}: column {name!r} is not valid UTF-8 text; re-save the file as UTF-8"
            )
    return table.to_pandas()
