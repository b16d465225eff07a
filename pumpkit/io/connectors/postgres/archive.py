"""A PostgreSQL source's catalog joined with its schema archive (pg_dump's): every entry of
the archive becomes an object of the catalog, typed as pumpkit names it, with its SQL as
pg_restore would run it; the tables take their entries' SQL. Pure over what the tools gave."""

from __future__ import annotations

import hashlib

import msgspec

from pumpkit.core.catalog import Catalog, ObjectDef, SchemaArchive, TableDef
from pumpkit.core.selection import ARCHIVE_TYPES
from pumpkit.io.connectors.postgres.tools import EntryScripts, PgTools, TocEntry

__all__ = ("SECTIONS", "entry_object", "with_archive")

#: The sections of a schema archive, as ``pg_dump --section`` names them.
SECTIONS = ("pre-data", "post-data")
#: Kinds of entries that are objects in their own right: in TABLE mode they come along only
#: when they are one of the tables' (an entry of another kind comes with the tables it needs).
_STANDALONE = {
    "SCHEMA", "EXTENSION", "PROCEDURAL LANGUAGE", "ACCESS METHOD", "CAST", "TRANSFORM",
    "FOREIGN DATA WRAPPER", "SERVER", "USER MAPPING", "EVENT TRIGGER", "PUBLICATION",
    "SUBSCRIPTION", "BLOB", "BLOB METADATA", "DEFAULT ACL", "TYPE", "SHELL TYPE", "DOMAIN",
    "COLLATION", "CONVERSION", "FUNCTION", "PROCEDURE", "AGGREGATE", "OPERATOR",
    "OPERATOR CLASS", "OPERATOR FAMILY", "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "FOREIGN TABLE", "VIEW",
    "MATERIALIZED VIEW", "MATERIALIZED VIEW DATA", "TABLE",
}  # fmt: skip


#: Kinds of entries a table can need in order to be made (the kinds TABLE mode takes along
#: with the tables: never another table, nor what belongs to one).
_DEFINITIONS = {
    "SCHEMA", "EXTENSION", "PROCEDURAL LANGUAGE", "ACCESS METHOD", "CAST", "TRANSFORM",
    "TYPE", "SHELL TYPE", "DOMAIN", "COLLATION", "CONVERSION", "FUNCTION", "PROCEDURE",
    "AGGREGATE", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "SEQUENCE",
    "FOREIGN DATA WRAPPER", "SERVER",
}  # fmt: skip


def entry_object(entry: TocEntry, sql: str) -> ObjectDef:
    """One archive entry as a catalog object."""
    return ObjectDef(
        object_type=ARCHIVE_TYPES.get(entry.desc, "ARCHIVE_ENTRY"),
        schema=entry.schema or "",
        name=entry.own_name,
        table=entry.table or "",
        ddl=sql,
        toc_id=entry.dump_id,
        desc=entry.desc,
        section=entry.section,
        owner=entry.owner,
        dependencies=tuple(entry.dependencies or ()),
    )


def with_archive(
    catalog: Catalog,
    archive: bytes,
    toc: list[TocEntry],
    scripts: EntryScripts,
    tools: PgTools,
    *,
    chosen: bool,
) -> Catalog:
    """``catalog`` with the archive: its tables take their TABLE entries' SQL and dump ids,
    every other entry is an object (in TABLE mode, ``chosen``, only those of the tables)."""
    by_name = {(t.schema, t.name): t for t in catalog.tables}
    tables: list[TableDef] = []
    table_ids: set[int] = set()
    for entry in toc:
        table = by_name.get((entry.schema or "", entry.name)) if entry.desc == "TABLE" else None
        if table is not None:
            table_ids.add(entry.dump_id)
            tables.append(
                msgspec.structs.replace(
                    table, toc_id=entry.dump_id, ddl=scripts.entries.get(entry.dump_id, "")
                )
            )
    # Tables the archive does not define (the large objects' pseudo-table) keep their place.
    tables += [
        t
        for t in catalog.tables
        if t.toc_id is None and (t.schema, t.name) not in {(x.schema, x.name) for x in tables}
    ]
    kept = _entries_of(toc, table_ids) if chosen else [e for e in toc if e.desc != "TABLE"]
    objects = [entry_object(e, scripts.entries.get(e.dump_id, "")) for e in kept]
    record = SchemaArchive(
        tool="pg_dump",
        tool_version=".".join(str(n) for n in tools.version),
        server_version=catalog.version,
        sections=SECTIONS,
        entries=len(toc),
        sha256=hashlib.sha256(archive).hexdigest(),
        data=archive,
    )
    return msgspec.structs.replace(
        catalog, tables=tuple(tables), objects=(*objects, *catalog.objects), archive=record
    )


def _entries_of(toc: list[TocEntry], table_ids: set[int]) -> list[TocEntry]:
    """TABLE mode: the chosen tables' entries (as pg_dump's ``--table`` would take them:
    their constraints, indexes, triggers, defaults, comments, grants, owned sequences,
    partitions' attachments) and what they need to be made (their schema, the types of
    their columns, the functions of their defaults...): every entry a kept one needs, and
    every entry not of a kind that stands on its own that needs a kept one."""
    by_id = {e.dump_id: e for e in toc}
    kept = set(table_ids)
    changed = True
    while changed:
        changed = False
        for entry in toc:
            if entry.dump_id in kept:
                needed = {
                    d
                    for d in entry.dependencies or ()
                    if d in by_id and by_id[d].desc in _DEFINITIONS
                } - kept
                if needed:
                    kept |= needed
                    changed = True
            elif entry.desc not in _STANDALONE and kept.intersection(entry.dependencies or ()):
                kept.add(entry.dump_id)
                changed = True
    return [e for e in toc if e.dump_id in kept and e.desc != "TABLE"]
