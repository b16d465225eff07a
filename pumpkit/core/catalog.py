"""The catalog: what a database holds that a job moves, as it travels in a dump.

The catalog types are msgspec structs because they travel: into METADATA frames of the dump
and into the control table, so an import (perhaps years later, perhaps into another engine)
knows every object without asking the source again. Pure data: no engine is named here.
"""

from __future__ import annotations

import msgspec

__all__ = ("Catalog", "ObjectDef", "SchemaArchive", "TableDef")


class TableDef(msgspec.Struct, frozen=True, kw_only=True):
    """A table: its DDL as the source stores it and the columns each dumped row holds.

    ``columns`` are the values of a dumped row, in order. When ``rowid_column`` is set, the
    first value is the row's rowid, read and restored through that alias (``rowid``,
    ``_rowid_`` or ``oid``), so a copy keeps rowids even without an INTEGER PRIMARY KEY.
    Generated columns are never dumped: the target computes them.
    """

    schema: str
    name: str
    ddl: str
    columns: tuple[str, ...]
    rowid_column: str | None = None
    key_alias: str | None = None  # an unshadowed rowid alias for range scans; None: one granule
    without_rowid: bool = False
    primary_key: tuple[str, ...] = ()
    estimated_rows: int = 0
    estimated_bytes: int = 0
    object_type: str = "TABLE"
    # Since format 1.2 (PostgreSQL sources). The declared type of each dumped column as the
    # source writes it; the base type each value is encoded as (``pg_type.typname``, ``enum``,
    # ``_`` + the element's for arrays); whether it is NOT NULL. Empty: a SQLite source.
    column_types: tuple[str, ...] = ()
    column_kinds: tuple[str, ...] = ()
    not_null: tuple[bool, ...] = ()
    #: How the TABLE_DATA frames hold the rows: ``msgpack`` (an array of row arrays per
    #: frame) or ``pgcopy`` (a granule's frames, concatenated, are one PostgreSQL binary
    #: COPY stream). See formats/dumpfile.md.
    row_format: str = "msgpack"
    # Since format 1.3 (PostgreSQL sources with a schema archive). The table's entry in the
    # archive (its DDL is the archive's); whether it is a partitioned table (no rows of its
    # own: they are in its leaf partitions); the partitioned table at the root of the tree a
    # partition belongs to (an engine without partitions puts its rows there); the tables it
    # inherits from.
    toc_id: int | None = None
    partitioned: bool = False
    partition_root: tuple[str, str] | None = None  # (schema, name)
    inherits: tuple[tuple[str, str], ...] = ()
    #: What the rows are: ``table`` (a table's own rows) or ``large_objects`` (PostgreSQL's
    #: large objects: one row of (oid, bytes) each).
    data_kind: str = "table"

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


class ObjectDef(msgspec.Struct, frozen=True, kw_only=True):
    """Any other object: INDEX, VIEW, TRIGGER (DDL), SEQUENCE (a value), PRAGMA (a setting),
    and, for a source with a schema archive (PostgreSQL: pg_dump's), every entry of the
    archive: ``toc_id`` names it there, ``desc`` is the archive's own type for it (pg_dump's:
    ``FUNCTION``, ``FK CONSTRAINT``, ``MATERIALIZED VIEW DATA``...), ``section`` is
    ``pre-data`` (made before the rows) or ``post-data`` (after them), ``ddl`` its SQL as the
    archive's tool writes it."""

    object_type: str
    schema: str
    name: str
    table: str = ""
    ddl: str = ""
    value: int | None = None
    toc_id: int | None = None
    desc: str | None = None
    section: str | None = None
    owner: str | None = None
    dependencies: tuple[int, ...] = ()


class SchemaArchive(msgspec.Struct, frozen=True, kw_only=True):
    """A source's schema as its own tool archived it (PostgreSQL: ``pg_dump --format=custom``
    of pre-data and post-data), kept whole in the dump set: ``data`` is the archive, the rest
    what pumpkit records about it (formats/dumpfile.md, encoding PG_ARCHIVE)."""

    tool: str
    tool_version: str
    server_version: str
    sections: tuple[str, ...]
    entries: int
    sha256: str
    data: bytes = b""

    def info(self) -> SchemaArchive:
        """The record without the bytes (what the control table keeps once they are in the
        set)."""
        return msgspec.structs.replace(self, data=b"")


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a job moves, in source order."""

    engine: str
    version: str
    tables: tuple[TableDef, ...] = ()
    objects: tuple[ObjectDef, ...] = ()
    archive: SchemaArchive | None = None
