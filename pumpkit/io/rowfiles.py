"""Rows written as files other programs read: CSV, JSON lines, Parquet and Arrow IPC.

What ``pumpkit cat`` writes. Each writer takes rows a batch at a time and holds no more than
one batch. Values are SQLite's storage classes (NULL, INTEGER, REAL, TEXT, BLOB), which is
also what a PostgreSQL dump's rows decode to (``pumpkit.core.pgcopy``):

======== ================================ ============================ ====================
value    CSV                              JSON lines                   Parquet / Arrow
======== ================================ ============================ ====================
NULL     an empty field                   ``null``                     null
INTEGER  decimal digits                   a number                     int64
REAL     Python's shortest round-trip     a number; NaN and +-inf as   float64
         form (``repr``)                  ``"NaN"``, ``"Infinity"``,
                                          ``"-Infinity"``
TEXT     the text, quoted when it must    a string                     string (utf8)
         be, and ``""`` when empty (so
         it is not NULL)
BLOB     ``\\x`` and hex digits            ``"\\x..."`` hex text         binary
======== ================================ ============================ ====================

An Arrow column takes the type of the values it holds (INTEGER and REAL together: float64);
a column that holds values of other storage classes together, which SQLite allows, is
written as text in CSV's form. Arrow needs the one type per column before the first batch,
so the Arrow writers are given it (``arrow_types`` finds it in a first pass over the rows).
pyarrow is an optional dependency (``pip install 'pumpkit[arrow]'``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

import msgspec

from pumpkit.errors import UsageError

__all__ = (
    "FORMATS",
    "RowWriter",
    "arrow_types",
    "csv_text",
    "open_writer",
)

FORMATS = ("csv", "jsonl", "parquet", "arrow")
#: The formats written to a file of their own, never to a terminal or pipe.
BINARY_FORMATS = ("parquet", "arrow")

Row = tuple[object, ...]


class RowWriter(Protocol):
    def write(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


def csv_text(value: object) -> str:
    """A value in CSV's text form (without quoting)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_field(value: object) -> str:
    if value is None:
        return ""
    text = csv_text(value)
    if not text or any(c in text for c in ',"\r\n') or text != text.strip(" "):
        return '"' + text.replace('"', '""') + '"'
    return text


class CsvWriter:
    """RFC 4180: a header line of the column names, then one line per row (``\\r\\n``)."""

    def __init__(self, out: TextIO, columns: Sequence[str]) -> None:
        self.out = out
        out.write(",".join(_csv_field(c) for c in columns) + "\r\n")

    def write(self, rows: Sequence[Row]) -> None:
        self.out.write("".join(",".join(map(_csv_field, r)) + "\r\n" for r in rows))

    def close(self) -> None:
        self.out.flush()


def _json_value(value: object) -> object:
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


class JsonLinesWriter:
    """One JSON object per line, its keys the column names in the table's order."""

    def __init__(self, out: TextIO, columns: Sequence[str]) -> None:
        self.out = out
        self.columns = tuple(columns)
        self._encoder = msgspec.json.Encoder()

    def write(self, rows: Sequence[Row]) -> None:
        encode = self._encoder.encode
        columns = self.columns
        lines = [
            encode(dict(zip(columns, map(_json_value, r), strict=True))).decode() for r in rows
        ]
        self.out.write("\n".join(lines) + "\n" if lines else "")

    def close(self) -> None:
        self.out.flush()


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise UsageError(
            "Parquet and Arrow files need pyarrow: pip install 'pumpkit[arrow]'"
        ) from None
    return pyarrow


#: Arrow type names, from the storage classes a column holds.
_ARROW_OF = {int: "int64", float: "float64", str: "string", bytes: "binary"}


def arrow_types(column_count: int, batches: Iterable[Sequence[Row]]) -> list[str]:
    """The Arrow type of each column from all its values: ``int64``, ``float64``,
    ``string``, ``binary``; ``string`` for a column of NULLs or of mixed storage classes."""
    seen: list[set[type]] = [set() for _ in range(column_count)]
    for rows in batches:
        for row in rows:
            for kinds, value in zip(seen, row, strict=True):
                if value is not None:
                    kinds.add(type(value))
    types = []
    for kinds in seen:
        if kinds <= {int, float} and kinds:
            types.append("float64" if float in kinds else "int64")
        elif len(kinds) == 1 and next(iter(kinds)) in _ARROW_OF:
            types.append(_ARROW_OF[next(iter(kinds))])
        else:
            types.append("string")
    return types


class ArrowWriter:
    """A Parquet file (a row group per batch) or an Arrow IPC file (a record batch each)."""

    def __init__(self, path: Path, columns: Sequence[str], types: Sequence[str], fmt: str):
        pa = _pyarrow()
        self._pa = pa
        self.types = [getattr(pa, t)() for t in types]
        self._text = [t == "string" for t in types]
        self.schema = pa.schema(
            [pa.field(name, kind) for name, kind in zip(columns, self.types, strict=True)]
        )
        if fmt == "parquet":
            self._writer = pa.parquet.ParquetWriter(str(path), self.schema)
        else:
            self._writer = pa.ipc.new_file(str(path), self.schema)
        self._fmt = fmt

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        pa = self._pa
        arrays = []
        for values, kind, text in zip(zip(*rows, strict=True), self.types, self._text, strict=True):
            if text:
                values = tuple(None if v is None else csv_text(v) for v in values)
            arrays.append(pa.array(values, type=kind))
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self._writer.close()


def open_writer(
    fmt: str,
    columns: Sequence[str],
    *,
    out: TextIO | None = None,
    path: Path | None = None,
    types: Sequence[str] = (),
) -> RowWriter:
    """A writer of ``fmt`` rows with ``columns``: text formats to ``out``, Parquet and Arrow
    to the file ``path`` (``types`` from :func:`arrow_types`)."""
    if fmt == "csv":
        assert out is not None
        return CsvWriter(out, columns)
    if fmt == "jsonl":
        assert out is not None
        return JsonLinesWriter(out, columns)
    if fmt in BINARY_FORMATS:
        assert path is not None
        return ArrowWriter(path, columns, types, fmt)
    raise UsageError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
