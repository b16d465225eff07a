"""The rows of a dump-file set, read offline: what ``pumpkit cat`` prints.

A set's control table is its catalog: each TABLE row holds the table's definition, each
completed TABLE_DATA row (a granule) the frames of its rows, in order. The rows are read
granule by granule and frame by frame, so memory holds one frame's rows at a time whatever
the table's size; a frame's pages of the map are let go once its rows are decoded. msgpack
frames decode alone; a PostgreSQL granule (``row_format`` ``pgcopy``) is one binary COPY
stream cut anywhere across its frames, decoded by ``pumpkit.core.pgcopy`` as an import into
SQLite decodes it, so the values are the ones such an import would store.

Granules that the export did not complete are not data (an import skips them too). Nothing
here needs a job or a job state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from pumpkit.core.catalog import TableDef
from pumpkit.core.control_table import ControlRow, FrameRef, decode_frames, table_def_of
from pumpkit.core.frame import Location
from pumpkit.core.jobplan import plan_import
from pumpkit.core.limits import ROW_CHUNK_BYTES
from pumpkit.core.pgcopy import CopyDecoder
from pumpkit.core.rowcodec import Batch, iter_rows
from pumpkit.errors import CopyFormatError, CorruptDumpError, DumpError, UsageError
from pumpkit.io.dumpset.files import existing_set_files
from pumpkit.io.dumpset.info import get_dumpfile_info
from pumpkit.io.dumpset.reader import DumpSetReader

__all__ = ("SetTable", "choose_columns", "choose_tables", "set_paths", "set_tables", "table_rows")

Row = tuple[object, ...]


@dataclass(frozen=True)
class SetTable:
    """One table of a set: its definition and the frames of each completed granule."""

    table: TableDef
    granules: tuple[tuple[FrameRef, ...], ...]

    @property
    def name(self) -> str:
        return self.table.qualified_name

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's own columns (a dumped rowid, kept for an exact import, is not one)."""
        return self.table.columns[1:] if self.table.rowid_column else self.table.columns

    @property
    def rows(self) -> int:
        return sum(f.rows for g in self.granules for f in g)


def set_paths(spec: str | os.PathLike[str]) -> list[Path]:
    """The files of the set ``spec`` names: a template (``exp%U.dmp``), or one file of the
    set, whose header names the others (they are looked for beside it)."""
    path = Path(spec)
    if "%" in path.name:
        return existing_set_files(path.parent, path.name)
    info = get_dumpfile_info(path)  # FileAccessError for a missing file
    if info.file_type != "pumpkit" or not info.set_files:
        return [path]
    named = [path.parent / Path(name).name for name in info.set_files]
    return named if path.name in {p.name for p in named} else [path, *named]


def _control_rows(reader: DumpSetReader) -> list[ControlRow]:
    where = str(reader.path_of(reader.file_numbers[0]))
    payload = reader.control_table()
    if payload is None:
        raise DumpError(
            "the dump-file set holds no control table (was its export completed?)", path=where
        )
    try:
        doc = msgspec.msgpack.decode(payload)
        return plan_import(doc["columns"], doc["rows"], now=0.0)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
        raise DumpError(f"the set's control table does not decode: {exc}", path=where) from None


def set_tables(reader: DumpSetReader) -> list[SetTable]:
    """The tables of an open (and unlocked) set, in the export's order, each with the frames
    of its completed granules in key order."""
    rows = _control_rows(reader)
    tables: dict[tuple[str, str], TableDef] = {}
    granules: dict[tuple[str, str], list[tuple[int, int, tuple[FrameRef, ...]]]] = {}
    for row in rows:
        key = (row.object_schema or "", row.object_name or "")
        if row.object_type == "TABLE":
            try:
                tables[key] = table_def_of(row)
            except msgspec.DecodeError as exc:
                raise DumpError(
                    f"table {key[1]!r}: its definition does not decode: {exc}"
                ) from None
        elif row.object_type == "TABLE_DATA":
            frames = tuple(decode_frames(row.frames))
            order = (row.granule_low or 0, row.process_order)
            granules.setdefault(key, []).append((*order, frames))
    return [
        SetTable(table, tuple(g[2] for g in sorted(granules.get(key, []))))
        for key, table in tables.items()
        if not table.partitioned
    ]


def choose_tables(tables: Sequence[SetTable], names: Sequence[str]) -> list[SetTable]:
    """The tables ``names`` name (``t`` or ``schema.t``), in the order given; all when none is
    given. Raises ``UsageError`` naming an unknown one and the set's tables."""
    if not names:
        return list(tables)
    chosen: list[SetTable] = []
    for name in names:
        found = [t for t in tables if name in (t.name, t.table.name)]
        if not found:
            known = ", ".join(t.name for t in tables) or "none"
            raise UsageError(f"the set has no table {name!r} (its tables: {known})")
        chosen.extend(t for t in found if t not in chosen)
    return chosen


def choose_columns(table: SetTable, names: Sequence[str] | None) -> list[int]:
    """Positions (in the table's own columns) of ``names``; all when None. Raises
    ``UsageError`` naming an unknown column and the table's columns."""
    columns = table.columns
    if not names:
        return list(range(len(columns)))
    positions = []
    for name in names:
        if name not in columns:
            raise UsageError(
                f"table {table.name} has no column {name!r} (its columns: {', '.join(columns)})"
            )
        positions.append(columns.index(name))
    return positions


def table_rows(
    reader: DumpSetReader,
    table: SetTable,
    *,
    positions: Sequence[int] | None = None,
    limit: int | None = None,
) -> Iterator[list[Row]]:
    """The table's rows, one frame's worth at a time (at most ``limit`` in all), each row its
    values at ``positions`` of the table's own columns. Raises ``CorruptDumpError`` naming
    the file and offset of a frame whose rows do not decode."""
    skip = 1 if table.table.rowid_column else 0
    picked = None if positions is None else [p + skip for p in positions]
    left = limit
    for granule in table.granules:
        copy = _copy_decoder(table) if table.table.row_format == "pgcopy" else None
        for ref in granule:
            for chunk in _frame_rows(reader, table, ref, copy):
                rows = chunk
                if picked is not None:
                    rows = [tuple(r[p] for p in picked) for r in rows]
                elif skip:
                    rows = [tuple(r[skip:]) for r in rows]
                if left is not None:
                    rows = rows[:left]
                    left -= len(rows)
                if rows:
                    yield rows
                if left == 0:
                    return
        if copy is not None:
            try:
                copy.finish()
            except CopyFormatError as exc:
                raise DumpError(f"a granule of table {table.name}: {exc}") from None


def _copy_decoder(table: SetTable) -> CopyDecoder:
    try:
        return CopyDecoder(table.table.column_kinds, table.table.columns)
    except (CopyFormatError, ValueError) as exc:
        raise DumpError(f"the rows of table {table.name} cannot be read: {exc}") from None


def _frame_rows(
    reader: DumpSetReader, table: SetTable, ref: FrameRef, copy: CopyDecoder | None
) -> Iterator[list[Row]]:
    """The rows of one frame, a chunk at a time (``pumpkit.core.limits``: what a frame
    decodes to stays near its size whatever it holds)."""
    location = Location(ref.fileid, ref.position, ref.length)
    payload = reader.read(location)
    path = str(reader.path_of(ref.fileid))
    try:
        if copy is not None:
            view = memoryview(payload).cast("B")
            for start in range(0, view.nbytes, ROW_CHUNK_BYTES):
                try:
                    yield copy.feed(view[start : start + ROW_CHUNK_BYTES])
                except CopyFormatError as exc:
                    raise CorruptDumpError(
                        f"rows of table {table.name} do not decode: {exc}",
                        path=path,
                        offset=ref.position,
                    ) from None
            del view
            return
        batch = Batch(payload, ref.rows, path, ref.position)
        chunks = iter_rows(batch, table=table.name, columns=len(table.table.columns))
        if ref.rows > 1:
            yield from chunks
            return
        # One row (a big one, as often as not): its frame's bytes go before it is rendered,
        # which may take twice its size again (hex text).
        rows = [row for chunk in chunks for row in chunk]
    finally:
        del payload
        reader.release(location)
    del batch, chunks
    yield rows
