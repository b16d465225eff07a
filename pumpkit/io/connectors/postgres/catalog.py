"""What pumpkit itself reads of a PostgreSQL database's catalog, inside the export's snapshot:
the tables whose rows it moves (and how each column's values are encoded), the sequences'
values, the large objects. Everything else a schema holds (and the tables' definitions) is
pg_dump's business: ``pumpkit.io.connectors.postgres.source`` takes it as an archive.

Tables are every ordinary table of the user schemas (``relkind`` r), leaf partitions and
inheritance children included, and every partitioned table (``relkind`` p: no rows of its
own, but its columns, so that an engine without partitions can make it and put its leaves'
rows there); never an extension's member tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from pumpkit.core.catalog import Catalog, ObjectDef, TableDef
from pumpkit.core.rowcodec import PGCOPY
from pumpkit.io.connectors.postgres.common import SYSTEM_SCHEMAS, qualified

__all__ = ("LARGE_OBJECTS", "read_catalog", "user_schemas")

#: The pseudo-table of a database's large objects: one row (oid, bytes) per object.
LARGE_OBJECTS = "pg_largeobject"


async def user_schemas(conn: asyncpg.Connection) -> list[str]:
    return [
        r["nspname"]
        for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname <> ALL($1::text[])"
            " AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'"
            " ORDER BY nspname",
            list(SYSTEM_SCHEMAS),
        )
    ]


async def read_catalog(
    conn: asyncpg.Connection, *, tables: Sequence[str] | None, lock: bool = True
) -> Catalog:
    """The tables, sequence values and large objects of the user schemas (``tables``: only
    those, with their partitions and sequences). ``lock`` takes ACCESS SHARE on the tables so
    that no DDL changes them while the export runs (as pg_dump)."""
    return await _Catalog(conn).read(tables=tables, lock=lock)


class _Catalog:
    """One reading of the catalog (inside the snapshot's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.types: dict[int, asyncpg.Record] = {}

    async def read(self, *, tables: Sequence[str] | None, lock: bool) -> Catalog:
        conn = self.conn
        await conn.execute("SET LOCAL search_path = ''")
        version = str(await conn.fetchval("SHOW server_version"))
        for row in await conn.fetch(
            "SELECT t.oid, t.typname, t.typtype::text, t.typelem, t.typbasetype,"
            " t.typcategory::text, n.nspname FROM pg_type t"
            " JOIN pg_namespace n ON n.oid = t.typnamespace"
        ):
            self.types[row["oid"]] = row
        schemas = await user_schemas(conn)
        rels = await conn.fetch(
            "SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.reltuples,"
            " pg_relation_size(c.oid) AS bytes, c.relispartition,"
            " CASE WHEN c.relispartition THEN (SELECT ARRAY[rn.nspname::text, r.relname::text]"
            "  FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace"
            "  WHERE r.oid = pg_partition_root(c.oid)) END AS root,"
            " ARRAY(SELECT pn.nspname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            "  JOIN pg_namespace pn ON pn.oid = p.relnamespace"
            "  WHERE i.inhrelid = c.oid AND NOT c.relispartition ORDER BY i.inhseqno) AS parent_schemas,"
            " ARRAY(SELECT p.relname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            "  WHERE i.inhrelid = c.oid AND NOT c.relispartition ORDER BY i.inhseqno) AS parent_names"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'S')"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d"
            "  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"
            " ORDER BY c.oid",
            schemas,
        )
        chosen = await self._chosen(tables, rels)
        table_rels = [r for r in rels if r["relkind"] in ("r", "p") and r["oid"] in chosen]
        if lock and table_rels:
            await conn.execute(
                "LOCK TABLE "
                + ", ".join(qualified(r["nspname"], r["relname"]) for r in table_rels)
                + " IN ACCESS SHARE MODE"
            )
        table_defs = [await self._table(r) for r in table_rels]
        owned = await self._owned_sequences()
        objects: list[ObjectDef] = []
        for r in rels:
            if r["relkind"] != "S":
                continue
            owner = owned.get(r["oid"])
            if (owner is None and tables is not None) or (owner and owner[0] not in chosen):
                continue
            row = await conn.fetchrow(
                f"SELECT last_value, is_called FROM {qualified(r['nspname'], r['relname'])}"
            )
            assert row is not None
            objects.append(
                ObjectDef(
                    object_type="SEQUENCE",
                    schema=r["nspname"],
                    name=r["relname"],
                    table=owner[1] if owner else "",
                    value=int(row["last_value"]) if row["is_called"] else None,
                )
            )
        if tables is None:
            large = await self._large_objects()
            if large is not None:
                table_defs.append(large)
        return Catalog(
            engine="postgresql", version=version, tables=tuple(table_defs), objects=tuple(objects)
        )

    async def _chosen(
        self, tables: Sequence[str] | None, rels: Sequence[asyncpg.Record]
    ) -> set[int]:
        """The oids of the tables a job moves: all, or those named with their partitions."""
        candidates = [r for r in rels if r["relkind"] in ("r", "p")]
        if tables is None:
            return {r["oid"] for r in candidates}
        wanted = {t.casefold() for t in tables}
        named = {
            r["oid"]
            for r in candidates
            if r["relname"].casefold() in wanted
            or f"{r['nspname']}.{r['relname']}".casefold() in wanted
        }
        if not named:
            return set()
        rows = await self.conn.fetch(
            "SELECT DISTINCT t.relid::oid AS relid FROM unnest($1::oid[]) AS n(oid),"
            " LATERAL pg_partition_tree(n.oid) AS t",
            list(named),
        )
        return named | {r["relid"] for r in rows}

    # -- kinds of column values (for a reader that decodes the COPY stream)

    def kind(self, oid: int) -> str:
        t = self.types[oid]
        if t["typtype"] == "d":
            return self.kind(t["typbasetype"])
        if t["typtype"] == "e":
            return "enum"
        if t["typcategory"] == "A" and t["typelem"]:
            return "_" + self.kind(t["typelem"])
        return str(t["typname"])

    async def _owned_sequences(self) -> dict[int, tuple[int, str]]:
        """sequence oid -> (table oid, table) of serial and identity sequences."""
        rows = await self.conn.fetch(
            "SELECT d.objid, d.refobjid, c.relname FROM pg_depend d"
            " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
            " JOIN pg_class c ON c.oid = d.refobjid"
            " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
            " AND d.deptype IN ('a', 'i')"
        )
        return {r["objid"]: (r["refobjid"], r["relname"]) for r in rows}

    async def _table(self, rel: asyncpg.Record) -> TableDef:
        conn = self.conn
        cols = await conn.fetch(
            "SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) AS type,"
            " a.attnotnull, a.attgenerated::text"
            " FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0"
            " AND NOT a.attisdropped ORDER BY a.attnum",
            rel["oid"],
        )
        pk = await conn.fetchval(
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_constraint c,"
            " unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attnum = k.attnum"
            " WHERE c.conrelid = $1 AND c.contype = 'p' AND a.attrelid = $1",
            rel["oid"],
        )
        # Generated columns are never dumped: the target computes them.
        dumped = [c for c in cols if c["attgenerated"] != "s"]
        partitioned = rel["relkind"] == "p"
        return TableDef(
            schema=rel["nspname"],
            name=rel["relname"],
            ddl="",  # the archive's (pumpkit.io.connectors.postgres.source)
            columns=tuple(c["attname"] for c in dumped),
            column_types=tuple(c["type"] for c in dumped),
            column_kinds=tuple(self.kind(c["atttypid"]) for c in dumped),
            not_null=tuple(bool(c["attnotnull"]) for c in dumped),
            primary_key=tuple(pk or ()),
            estimated_rows=0 if partitioned else max(0, int(rel["reltuples"])),
            estimated_bytes=0 if partitioned else int(rel["bytes"]),
            row_format=PGCOPY,
            partitioned=partitioned,
            partition_root=(rel["root"][0], rel["root"][1]) if rel["root"] else None,
            inherits=tuple(
                zip(rel["parent_schemas"] or (), rel["parent_names"] or (), strict=True)
            ),
        )

    async def _large_objects(self) -> TableDef | None:
        """The large objects as a pseudo-table of (oid, bytes), when there are any."""
        row = await self.conn.fetchrow(
            "SELECT count(*) AS n, pg_relation_size('pg_catalog.pg_largeobject') AS bytes"
            " FROM pg_largeobject_metadata"
        )
        if row is None or not row["n"]:
            return None
        return TableDef(
            schema="pg_catalog",
            name=LARGE_OBJECTS,
            ddl="",
            columns=("loid", "data"),
            column_types=("oid", "bytea"),
            column_kinds=("oid", "bytea"),
            not_null=(True, True),
            primary_key=("loid",),
            estimated_rows=int(row["n"]),
            estimated_bytes=int(row["bytes"]),
            row_format=PGCOPY,
            data_kind="large_objects",
        )
