"""A job's selection applied to what it moves: the catalog an export plans from, the control
rows an import replays, the names remaps give, and REMAP_DATA's functions over batches.

The decisions themselves are pure (``pumpkit.core.selection``, ``pumpkit.core.ddl``); this
module reads them out of the control table and applies them to catalog objects and rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from pumpkit.core import ddl
from pumpkit.core.catalog import Catalog, ObjectDef, TableDef
from pumpkit.core.control_table import ControlRow, FilterEntry, table_def_of
from pumpkit.core.selection import Candidate, Selection, build_selection

__all__ = (
    "filter_entries",
    "job_selection",
    "remap_object",
    "remap_table",
    "select_catalog",
    "select_rows",
)


def filter_entries(filters: Iterable[FilterEntry]) -> list[tuple[str, object, str | None]]:
    """The stored filter calls ``(KIND:NAME, value, target)`` in the order they were made."""
    return [(f.name, f.value, f.target) for f in sorted(filters, key=lambda f: f.seq)]


def job_selection(filters: Iterable[FilterEntry], parameters: dict[str, Any]) -> Selection:
    return build_selection(filter_entries(filters), content=str(parameters.get("CONTENT") or "ALL"))


# --- export: the catalog ----------------------------------------------------------------------


def _root(table: TableDef) -> str:
    """The name filters see a table by: a partition is its partitioned table's, as Data
    Pump's filters see a table with its partitions."""
    return table.partition_root[1] if table.partition_root is not None else table.name


def select_catalog(catalog: Catalog, selection: Selection) -> tuple[Catalog, set[str]]:
    """The catalog without what the selection leaves out, and the tables whose rows move."""
    roots = {t.name: _root(t) for t in catalog.tables}
    candidates = [Candidate("TABLE", t.schema, _root(t), _root(t)) for t in catalog.tables]
    candidates += [Candidate("TABLE_DATA", t.schema, _root(t), _root(t)) for t in catalog.tables]
    candidates += [
        Candidate(o.object_type, o.schema, o.name, roots.get(o.table, o.table))
        for o in catalog.objects
    ]
    keep = selection.keeps(candidates)
    n = len(catalog.tables)
    tables = tuple(t for t, k in zip(catalog.tables, keep[:n], strict=True) if k)
    with_rows = {t.name for t, k in zip(catalog.tables, keep[n : 2 * n], strict=True) if k}
    objects = tuple(o for o, k in zip(catalog.objects, keep[2 * n :], strict=True) if k)
    # Data without its table cannot be: CONTENT=DATA_ONLY still records the definitions that
    # describe the rows (an import creates a missing table from them).
    kept = {t.name for t in tables}
    tables = tables + tuple(t for t in catalog.tables if t.name in with_rows and t.name not in kept)
    return msgspec.structs.replace(catalog, tables=tables, objects=objects), with_rows


# --- import: the control rows -----------------------------------------------------------------


def select_rows(rows: Sequence[ControlRow], selection: Selection) -> list[ControlRow]:
    """The import's control rows the selection keeps (a TABLE row stays when its data does:
    it describes the rows, even when CONTENT=DATA_ONLY leaves its DDL alone)."""
    roots = {r.object_name or "": _root(table_def_of(r)) for r in rows if r.object_type == "TABLE"}

    def seen_as(r: ControlRow) -> tuple[str, str]:
        if r.object_type in ("TABLE", "TABLE_DATA"):
            root = roots.get(r.object_name or "", r.object_name or "")
            return root, root
        table = r.base_object_name or ""
        return r.object_name or "", roots.get(table, table)

    candidates = [Candidate(r.object_type, r.object_schema or "main", *seen_as(r)) for r in rows]
    keep = selection.keeps(candidates)
    with_rows = {
        r.object_name
        for r, k in zip(rows, keep, strict=True)
        if k and r.object_type == "TABLE_DATA"
    }
    # The schema archive goes along whatever the filters: it holds what the kept rows name.
    return [
        r
        for r, k in zip(rows, keep, strict=True)
        if k
        or (r.object_type == "TABLE" and r.object_name in with_rows)
        or r.object_type == "PG_SCHEMA"
    ]


# --- remaps -----------------------------------------------------------------------------------


def remap_table(table: TableDef, selection: Selection) -> TableDef:
    """The table under its REMAP_TABLE/REMAP_SCHEMA name, its DDL rewritten to match (and
    without storage clauses under OMIT_STORAGE)."""
    new = selection.remapped_table(table.name)
    sql = table.ddl
    if table.toc_id is not None:
        # An archive's definition: the target rewrites it (through its own SQL's parser).
        return msgspec.structs.replace(
            table, name=new, schema=selection.remapped_schema(table.schema)
        )
    if new != table.name:
        sql = ddl.rename_created(sql, new)
    if selection.transform("OMIT_STORAGE"):
        sql = ddl.omit_storage(sql)
    return msgspec.structs.replace(
        table,
        name=new,
        schema=selection.remapped_schema(table.schema),
        ddl=sql,
        without_rowid=table.without_rowid and not selection.transform("OMIT_STORAGE"),
    )


def remap_object(obj: ObjectDef, selection: Selection) -> ObjectDef:
    """An index, trigger or sequence value follows its remapped table; with RENAME_INDEXES (on
    by default) an index or trigger is renamed with it, so that both copies can live in one
    database: the old table name in its name becomes the new one, else it gets the new name
    as a prefix."""
    schema = selection.remapped_schema(obj.schema)
    if not obj.table or obj.object_type == "VIEW":
        return msgspec.structs.replace(obj, schema=schema)
    new_table = selection.remapped_table(obj.table)
    if new_table == obj.table:
        return msgspec.structs.replace(obj, schema=schema)
    if obj.toc_id is not None or (obj.object_type == "SEQUENCE" and obj.name != obj.table):
        # An archive's definition (the target rewrites it through its own SQL's parser), or
        # a sequence of its own name (PostgreSQL's): only the table it belongs to changes.
        return msgspec.structs.replace(obj, schema=schema, table=new_table)
    name, sql = obj.name, obj.ddl
    if obj.object_type == "SEQUENCE":
        name = new_table
    elif sql:
        sql = ddl.retarget_on(sql, new_table)
        if selection.transform("RENAME_INDEXES", 1):
            name = _renamed(obj.name, obj.table, new_table)
            sql = ddl.rename_created(sql, name)
    return msgspec.structs.replace(obj, schema=schema, table=new_table, name=name, ddl=sql)


def _renamed(name: str, old_table: str, new_table: str) -> str:
    at = name.casefold().find(old_table.casefold())
    if at >= 0:
        return name[:at] + new_table + name[at + len(old_table) :]
    return f"{new_table}_{name}"
