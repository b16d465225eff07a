"""The catalog of a PostgreSQL database's user schemas, read from ``pg_catalog`` inside the
export's snapshot: schemas, enums and domains, standalone sequences, tables with their
columns, defaults, identity, serial and generated columns, constraints, indexes, views in
dependency order, comments, sequence values."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from pumpkit.core.catalog import Catalog, ObjectDef, TableDef
from pumpkit.core.ddl import quote_ident
from pumpkit.core.rowcodec import PGCOPY
from pumpkit.io.connectors.postgres.common import SYSTEM_SCHEMAS, literal, qualified

__all__ = ("read_catalog",)


async def read_catalog(
    conn: asyncpg.Connection, *, tables: Sequence[str] | None, views: bool, lock: bool = True
) -> Catalog:
    """Every object of the user schemas, in the order an import creates them."""
    return await _Catalog(conn).read(tables=tables, views=views, lock=lock)


class _Catalog:
    """One reading of the catalog (inside the snapshot's transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.types: dict[int, asyncpg.Record] = {}

    async def read(self, *, tables: Sequence[str] | None, views: bool, lock: bool) -> Catalog:
        conn = self.conn
        # An empty search_path makes every name in the definitions schema-qualified (as
        # pg_dump does), so they mean the same in the target whatever its search_path.
        await conn.execute("SET LOCAL search_path = ''")
        version = str(await conn.fetchval("SHOW server_version"))
        for row in await conn.fetch(
            "SELECT t.oid, t.typname, t.typtype::text, t.typelem, t.typbasetype, t.typcategory::text,"
            " n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        ):
            self.types[row["oid"]] = row
        schemas = [
            r["nspname"]
            for r in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname <> ALL($1::text[])"
                " AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'"
                " ORDER BY nspname",
                list(SYSTEM_SCHEMAS),
            )
        ]
        rels = await conn.fetch(
            "SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.reltuples,"
            " c.reloptions, pg_relation_size(c.oid) AS bytes"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'v', 'S')"
            " AND NOT c.relispartition AND NOT EXISTS (SELECT 1 FROM pg_depend d"
            "  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"
            " ORDER BY c.oid",
            schemas,
        )
        chosen = None if tables is None else {t.casefold() for t in tables}
        table_rels = [
            r
            for r in rels
            if r["relkind"] == "r" and (chosen is None or r["relname"].casefold() in chosen)
        ]
        if lock and table_rels:
            await conn.execute(
                "LOCK TABLE "
                + ", ".join(qualified(r["nspname"], r["relname"]) for r in table_rels)
                + " IN ACCESS SHARE MODE"
            )
        table_oids = [r["oid"] for r in table_rels]
        owned = await self._owned_sequences()
        objects: list[ObjectDef] = []
        if chosen is None:
            objects += [
                ObjectDef(
                    object_type="SCHEMA",
                    schema=s,
                    name=s,
                    ddl=f"CREATE SCHEMA IF NOT EXISTS {quote_ident(s)}",
                )
                for s in schemas
                if s != "public"
            ]
            objects += await self._types(schemas)
            objects += [
                await self._sequence_def(r)
                for r in rels
                if r["relkind"] == "S" and r["oid"] not in owned
            ]
        table_defs = [await self._table(r, owned) for r in table_rels]
        # Sequence values (SCHEMA/TABLE/SEQUENCE_VALUE): owned ones with their table.
        for r in rels:
            if r["relkind"] != "S":
                continue
            owner = owned.get(r["oid"])
            if owner is None and chosen is not None:
                continue
            if owner is not None and owner[0] not in table_oids:
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
        constraints = await self._constraints(table_oids)
        objects += [c for c in constraints if c.object_type == "CONSTRAINT"]
        objects += await self._indexes(table_oids)
        objects += [c for c in constraints if c.object_type == "REF_CONSTRAINT"]
        if views and chosen is None:
            objects += await self._views([r for r in rels if r["relkind"] == "v"])
        objects += await self._comments([r["oid"] for r in rels], chosen is None)
        return Catalog(
            engine="postgresql", version=version, tables=tuple(table_defs), objects=tuple(objects)
        )

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

    async def _owned_sequences(self) -> dict[int, tuple[int, str, str, str]]:
        """sequence oid -> (table oid, table, column, 'a' identity or 'a' serial deptype)."""
        rows = await self.conn.fetch(
            "SELECT d.objid, d.refobjid, c.relname, a.attname, d.deptype::text"
            " FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
            " JOIN pg_class c ON c.oid = d.refobjid"
            " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
            " AND d.deptype IN ('a', 'i')"
        )
        return {r["objid"]: (r["refobjid"], r["relname"], r["attname"], r["deptype"]) for r in rows}

    async def _types(self, schemas: list[str]) -> list[ObjectDef]:
        out = []
        for r in await self.conn.fetch(
            "SELECT t.oid, n.nspname, t.typname, t.typtype::text, format_type(t.typbasetype,"
            " t.typtypmod) AS base, t.typnotnull, t.typdefault,"
            " (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)"
            "  FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels"
            " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname = ANY($1::text[]) AND t.typtype IN ('e', 'd')"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass"
            "  AND d.objid = t.oid AND d.deptype = 'e')"
            " ORDER BY t.typtype DESC, t.oid",
            schemas,
        ):
            name = qualified(r["nspname"], r["typname"])
            if r["typtype"] == "e":
                ddl = f"CREATE TYPE {name} AS ENUM ({r['labels'] or ''})"
            else:
                ddl = f"CREATE DOMAIN {name} AS {r['base']}"
                if r["typdefault"] is not None:
                    ddl += f" DEFAULT {r['typdefault']}"
                if r["typnotnull"]:
                    ddl += " NOT NULL"
                for c in await self.conn.fetch(
                    "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
                    " WHERE contypid = $1 ORDER BY conname",
                    r["oid"],
                ):
                    ddl += f" CONSTRAINT {quote_ident(c['conname'])} {c['def']}"
            out.append(
                ObjectDef(object_type="TYPE", schema=r["nspname"], name=r["typname"], ddl=ddl)
            )
        return out

    async def _sequence_def(self, rel: asyncpg.Record) -> ObjectDef:
        ddl = (
            f"CREATE SEQUENCE {qualified(rel['nspname'], rel['relname'])} "
            + await self._seq_options(rel["oid"], with_type=True)
        )
        return ObjectDef(
            object_type="SEQUENCE_DEF", schema=rel["nspname"], name=rel["relname"], ddl=ddl
        )

    async def _seq_options(self, oid: int, *, with_type: bool) -> str:
        s = await self.conn.fetchrow(
            "SELECT format_type(seqtypid, NULL) AS type, seqstart, seqincrement, seqmax, seqmin,"
            " seqcache, seqcycle FROM pg_sequence WHERE seqrelid = $1",
            oid,
        )
        assert s is not None
        parts = [f"AS {s['type']}"] if with_type else []
        parts += [
            f"START WITH {s['seqstart']}",
            f"INCREMENT BY {s['seqincrement']}",
            f"MINVALUE {s['seqmin']}",
            f"MAXVALUE {s['seqmax']}",
            f"CACHE {s['seqcache']}",
        ]
        if s["seqcycle"]:
            parts.append("CYCLE")
        return " ".join(parts)

    async def _table(
        self, rel: asyncpg.Record, owned: dict[int, tuple[int, str, str, str]]
    ) -> TableDef:
        conn = self.conn
        cols = await conn.fetch(
            "SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod) AS type,"
            " a.attnotnull, a.attidentity::text, a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid) AS dflt,"
            " CASE WHEN a.attcollation <> t.typcollation THEN"
            "  (SELECT quote_ident(n.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co"
            "   JOIN pg_namespace n ON n.oid = co.collnamespace WHERE co.oid = a.attcollation)"
            " END AS collation"
            " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            rel["oid"],
        )
        name = qualified(rel["nspname"], rel["relname"])
        pre: list[str] = []
        post: list[str] = []
        lines = []
        for c in cols:
            line = f"{quote_ident(c['attname'])} {c['type']}"
            if c["collation"]:
                line += f" COLLATE {c['collation']}"
            if c["attgenerated"] == "s":
                line += f" GENERATED ALWAYS AS ({c['dflt']}) STORED"
            elif c["attidentity"] in ("a", "d"):
                seq = await conn.fetchrow(
                    "SELECT s.oid, n.nspname, s.relname FROM pg_class s"
                    " JOIN pg_namespace n ON n.oid = s.relnamespace"
                    " WHERE s.oid = pg_get_serial_sequence($1, $2)::regclass",
                    name,
                    c["attname"],
                )
                assert seq is not None
                how = "ALWAYS" if c["attidentity"] == "a" else "BY DEFAULT"
                options = await self._seq_options(seq["oid"], with_type=False)
                line += (
                    f" GENERATED {how} AS IDENTITY (SEQUENCE NAME"
                    f" {qualified(seq['nspname'], seq['relname'])} {options})"
                )
            elif c["dflt"] is not None:
                line += f" DEFAULT {c['dflt']}"
            if c["attnotnull"]:
                line += " NOT NULL"
            lines.append(line)
        # Serial columns: the sequence is made with the table and owned by its column.
        for seq_oid, (table_oid, _, column, deptype) in owned.items():
            if table_oid != rel["oid"] or deptype != "a":
                continue
            seq_name = qualified(*await self._rel_name(seq_oid))
            pre.append(
                f"CREATE SEQUENCE IF NOT EXISTS {seq_name} "
                + await self._seq_options(seq_oid, with_type=True)
            )
            post.append(f"ALTER SEQUENCE {seq_name} OWNED BY {name}.{quote_ident(column)}")
        persistence = "UNLOGGED " if rel["relpersistence"] == "u" else ""
        ddl = f"CREATE {persistence}TABLE {name} (\n    " + ",\n    ".join(lines) + "\n)"
        if rel["reloptions"]:
            ddl += " WITH (" + ", ".join(rel["reloptions"]) + ")"
        statements = [*pre, ddl, *post]
        pk = await conn.fetchval(
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_constraint c,"
            " unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attnum = k.attnum"
            " WHERE c.conrelid = $1 AND c.contype = 'p' AND a.attrelid = $1",
            rel["oid"],
        )
        dumped = [c for c in cols if c["attgenerated"] != "s"]
        return TableDef(
            schema=rel["nspname"],
            name=rel["relname"],
            ddl=";\n".join(statements),
            columns=tuple(c["attname"] for c in dumped),
            column_types=tuple(c["type"] for c in dumped),
            column_kinds=tuple(self.kind(c["atttypid"]) for c in dumped),
            not_null=tuple(bool(c["attnotnull"]) for c in dumped),
            primary_key=tuple(pk or ()),
            estimated_rows=max(0, int(rel["reltuples"])),
            estimated_bytes=int(rel["bytes"]),
            row_format=PGCOPY,
        )

    async def _rel_name(self, oid: int) -> tuple[str, str]:
        row = await self.conn.fetchrow(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.oid = $1",
            oid,
        )
        assert row is not None
        return row["nspname"], row["relname"]

    async def _constraints(self, table_oids: list[int]) -> list[ObjectDef]:
        """Primary, unique, check and exclusion constraints, then foreign keys (which need
        the keys they reference)."""
        rows = await self.conn.fetch(
            "SELECT c.conname, c.contype::text, pg_get_constraintdef(c.oid) AS def, n.nspname,"
            " r.relname FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid"
            " JOIN pg_namespace n ON n.oid = r.relnamespace"
            " WHERE c.conrelid = ANY($1::oid[]) AND c.contype IN ('p', 'u', 'c', 'x', 'f')"
            " AND c.conislocal"
            " ORDER BY c.contype = 'f', c.contype <> 'p', c.oid",
            table_oids,
        )
        return [
            ObjectDef(
                object_type="REF_CONSTRAINT" if r["contype"] == "f" else "CONSTRAINT",
                schema=r["nspname"],
                name=r["conname"],
                table=r["relname"],
                ddl=f"ALTER TABLE ONLY {qualified(r['nspname'], r['relname'])}"
                f" ADD CONSTRAINT {quote_ident(r['conname'])} {r['def']}",
            )
            for r in rows
        ]

    async def _indexes(self, table_oids: list[int]) -> list[ObjectDef]:
        rows = await self.conn.fetch(
            "SELECT n.nspname, i.relname, t.relname AS tab, pg_get_indexdef(x.indexrelid) AS def"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace"
            " WHERE x.indrelid = ANY($1::oid[]) AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
            "  WHERE c.conindid = x.indexrelid AND c.contype IN ('p', 'u', 'x'))"
            " ORDER BY x.indexrelid",
            table_oids,
        )
        return [
            ObjectDef(
                object_type="INDEX",
                schema=r["nspname"],
                name=r["relname"],
                table=r["tab"],
                ddl=r["def"],
            )
            for r in rows
        ]

    async def _views(self, rels: list[asyncpg.Record]) -> list[ObjectDef]:
        """Views, each after the views it reads."""
        oids = {r["oid"]: r for r in rels}
        deps: dict[int, set[int]] = {oid: set() for oid in oids}
        for d in await self.conn.fetch(
            "SELECT DISTINCT r.ev_class AS view, d.refobjid AS uses FROM pg_rewrite r"
            " JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"
            " WHERE r.ev_class = ANY($1::oid[]) AND d.refobjid <> r.ev_class",
            list(oids),
        ):
            if d["uses"] in oids:
                deps[d["view"]].add(d["uses"])
        out: list[ObjectDef] = []
        done: set[int] = set()

        async def visit(oid: int) -> None:
            if oid in done:
                return
            done.add(oid)
            for used in sorted(deps[oid]):
                await visit(used)
            r = oids[oid]
            body = await self.conn.fetchval("SELECT pg_get_viewdef($1::oid)", oid)
            out.append(
                ObjectDef(
                    object_type="VIEW",
                    schema=r["nspname"],
                    name=r["relname"],
                    ddl=f"CREATE VIEW {qualified(r['nspname'], r['relname'])} AS\n{body.rstrip(';')}",
                )
            )

        for oid in oids:
            await visit(oid)
        return out

    async def _comments(self, rel_oids: list[int], with_types: bool) -> list[ObjectDef]:
        rows = await self.conn.fetch(
            "SELECT d.objoid, d.objsubid, d.description, c.relkind::text, n.nspname, c.relname,"
            " a.attname FROM pg_description d JOIN pg_class c ON c.oid = d.objoid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid"
            " WHERE d.classoid = 'pg_class'::regclass AND d.objoid = ANY($1::oid[])"
            " ORDER BY d.objoid, d.objsubid",
            rel_oids,
        )
        kinds = {"r": "TABLE", "v": "VIEW", "S": "SEQUENCE"}
        out = []
        for r in rows:
            name = qualified(r["nspname"], r["relname"])
            what = (
                f"COLUMN {name}.{quote_ident(r['attname'])}"
                if r["objsubid"]
                else f"{kinds[r['relkind']]} {name}"
            )
            out.append(
                ObjectDef(
                    object_type="COMMENT",
                    schema=r["nspname"],
                    name=f"{r['relname']}.{r['attname']}" if r["objsubid"] else r["relname"],
                    table=r["relname"] if r["relkind"] == "r" else "",
                    ddl=f"COMMENT ON {what} IS {literal(r['description'])}",
                )
            )
        if with_types:
            for r in await self.conn.fetch(
                "SELECT n.nspname, t.typname, d.description FROM pg_description d"
                " JOIN pg_type t ON t.oid = d.objoid JOIN pg_namespace n ON n.oid = t.typnamespace"
                " WHERE d.classoid = 'pg_type'::regclass AND t.typtype IN ('e', 'd')"
                " AND n.nspname <> ALL($1::text[]) ORDER BY t.oid",
                list(SYSTEM_SCHEMAS),
            ):
                word = "TYPE"
                out.append(
                    ObjectDef(
                        object_type="COMMENT",
                        schema=r["nspname"],
                        name=r["typname"],
                        ddl=f"COMMENT ON {word} {qualified(r['nspname'], r['typname'])}"
                        f" IS {literal(r['description'])}",
                    )
                )
        return out
