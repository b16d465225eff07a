"""PostgreSQL as a target: the DDL in dependency order, granules loaded exactly once over
several connections, and TPump-style loads with their restart log in the target.

A PostgreSQL dump's definitions are schema-qualified (its catalog was read with an empty
search_path) and run so. Each granule is one transaction on a loader connection of its own:
a PostgreSQL dump's frames go to ``COPY ... FROM STDIN (FORMAT binary)`` as they are
(decompressed, decrypted, never decoded); a SQLite dump's rows are decoded, converted to the
columns' PostgreSQL types (``pumpkit.core.typemap``) and sent with
``copy_records_to_table``; the granule's completion marker is inserted in the same
transaction, so a restart after a crash loads each granule exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from pumpkit.core.catalog import ObjectDef, TableDef
from pumpkit.core.ddl import quote_ident
from pumpkit.core.plancheck import ImportPlan
from pumpkit.core.rowcodec import PGCOPY, iter_rows
from pumpkit.core.translate import name_map, translate_index, translate_view
from pumpkit.core.typemap import pg_table, pg_type_of_sqlite, row_converter, to_pg_value
from pumpkit.errors import (
    ConnectorError,
    DumpError,
    JobStopped,
    RetryableError,
    TranslationError,
)
from pumpkit.io.connectors.base import (
    MADE,
    Batch,
    GranuleLoaders,
    ImportOptions,
    LoadRequest,
    Outcome,
    RecordLoad,
    RowPipe,
    Target,
)
from pumpkit.io.connectors.postgres.common import MARKER_TABLE, connect, literal, qualified
from pumpkit.io.connectors.postgres.source import database_identity
from pumpkit.io.connectors.postgres.statements import remap_sql
from pumpkit.io.connectors.postgres.tools import (
    PgTools,
    TocEntry,
    entry_scripts,
    read_toc,
    restore,
    tools_for,
)
from pumpkit.io.connectors.sqlite.common import ERROR_TABLE, MAX_RECORD, RESTART_LOG, describe_table

__all__ = ("PgTarget", "pg_schema")

# SQLSTATE classes of a failure of the database itself (retried): connection exceptions,
# insufficient resources, operator intervention, system errors; and lock and
# serialization failures.
_RETRYABLE_CLASSES = ("08", "53", "57", "58")
_RETRYABLE_STATES = ("40001", "40P01", "55P03")


def pg_schema(table: TableDef) -> str:
    """Where a table goes in PostgreSQL: its own schema, or ``public`` for SQLite's ``main``."""
    return "public" if table.schema in ("main", "") else table.schema


async def _set_role(conn: asyncpg.Connection, role: str) -> None:
    try:
        await conn.execute(f"SET ROLE {quote_ident(role)}")
    except asyncpg.PostgresError as exc:
        raise ConnectorError(f"cannot import as role {role!r}: {exc}") from None


def _session_settings(prolog: str) -> str:
    """The SET statements of pg_restore's script prolog (an empty search_path, and so on)."""
    return "\n".join(
        line
        for line in prolog.splitlines()
        if line.startswith(("SET ", "SELECT pg_catalog.set_config"))
    )


def _exists_message(message: str) -> bool:
    """Whether pg_restore's message says the object is there already (after a restart)."""
    return "already exists" in message or "multiple primary keys" in message


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncpg.InterfaceError | ConnectionError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in _RETRYABLE_CLASSES or state in _RETRYABLE_STATES


class PgTarget(Target):
    """A PostgreSQL database to import or load into: one connection for DDL and markers;
    loader connections for the granules. Open with :meth:`open`."""

    engine = "postgresql"
    # A table's indexes and constraints (not its foreign keys: they need other tables) are
    # built by pg_restore as soon as its rows are in, over their own connections.
    early_objects = frozenset({"INDEX", "CONSTRAINT"})

    def __init__(self, url: str, conn: asyncpg.Connection, source_engine: str) -> None:
        self.url = url
        self.conn = conn
        self.source_engine = source_engine
        #: For a SQLite source: each table's PostgreSQL column types (the converters' key).
        self.column_types: dict[str, list[str]] = {}
        self.options = ImportOptions()
        self.tools: PgTools | None = None
        self.toc: list[TocEntry] | None = None
        #: For a SQLite source: the dump's names as SQLite spells them (by casefold), and
        #: the columns PostgreSQL holds as boolean.
        self.names: dict[str, tuple[str, ...]] = {}
        self.booleans: frozenset[str] = frozenset()

    async def plan_objects(
        self, tables: Sequence[TableDef], objects: Sequence[ObjectDef]
    ) -> list[ObjectDef]:
        """From a SQLite dump: each table's FOREIGN KEYs (made after all the rows: a table's
        rows may load before those they reference), and for a table keyed by its rowid whose
        dump has no AUTOINCREMENT counter, its identity set past the highest key."""
        if self.source_engine != "sqlite":
            return []
        self.names = name_map(
            [t.name for t in tables], [t.columns for t in tables], [o.name for o in objects]
        )
        self.booleans = frozenset(
            c.name.casefold()
            for t in tables
            for c in describe_table(t.ddl, t.name)[0]
            if pg_type_of_sqlite(c.declared) == "boolean"
        )
        counted = {o.table for o in objects if o.object_type == "SEQUENCE"}
        added: list[ObjectDef] = []
        for table in tables:
            try:
                made = self._pg_table(table)
            except ConnectorError:
                continue  # its CREATE TABLE fails the same way when it is made, and says so
            added.extend(
                ObjectDef(
                    object_type="REF_CONSTRAINT",
                    schema=table.schema,
                    name=name,
                    table=table.name,
                    ddl=sql,
                )
                for name, sql in made.foreign_keys
            )
            if "GENERATED BY DEFAULT AS IDENTITY" in made.create and table.name not in counted:
                added.append(
                    ObjectDef(
                        object_type="SEQUENCE", schema=table.schema, name=table.name,
                        table=table.name,
                    )
                )  # fmt: skip
        return added

    def _pg_table(self, table: TableDef) -> Any:
        columns, uniques = describe_table(table.ddl, table.name)
        try:
            return pg_table(
                qualified(pg_schema(table), table.name),
                table.name,
                columns,
                uniques,
                table.ddl,
                self.names or None,
            )
        except TranslationError as exc:
            raise ConnectorError(str(exc), table=table.name) from None

    async def declare(self, plan: ImportPlan, named: ImportPlan, options: ImportOptions) -> None:
        """Keep the dump's archive and how to restore it; with a role, this connection (and
        every loader's) runs as that role from here on. Raises ``ConnectorError`` naming the
        package to install when the archive needs pg_restore and it is missing or older than
        the server."""
        self.options = options
        if options.role is not None:
            await _set_role(self.conn, options.role)
        if options.archive is not None and not self.cross:
            self.tools = await tools_for(self.url)
            self.toc = await read_toc(options.archive, tools=self.tools)

    @classmethod
    async def open(cls, url: str, source_engine: str) -> PgTarget:
        return cls(url, await connect(url), source_engine)

    @property
    def cross(self) -> bool:
        return self.source_engine != self.engine

    async def close(self) -> None:
        await self.conn.close()

    async def fingerprint(self) -> str:
        return await database_identity(self.conn)

    def schema_of(self, table: TableDef) -> str:
        return "public" if self.cross else pg_schema(table)

    # -- objects

    async def _existing(self, wanted: list[tuple[str, str]]) -> list[tuple[str, str]]:
        present = {
            (r["nspname"], r["relname"])
            for r in await self.conn.fetch(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
            )
        }
        return [t for t in wanted if t in present]

    async def existing_tables(self, tables: list[TableDef]) -> list[str]:
        # The large objects' pseudo-table is not a table of the target (its name is the
        # system catalog's): their rows always go in.
        ordinary = [t for t in tables if t.data_kind != "large_objects"]
        present = await self._existing([(self.load_schema(t), t.name) for t in ordinary])
        return [name for _, name in present]

    async def table_exists(self, table: TableDef) -> bool:
        if table.data_kind == "large_objects":
            return False
        return bool(await self._existing([(self.load_schema(table), table.name)]))

    async def _object_exists(self, object_type: str, schema: str, name: str) -> bool:
        if object_type in ("TABLE", "VIEW", "INDEX", "SEQUENCE", "SEQUENCE_DEF"):
            sql = (
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname = $2"
            )
        elif object_type == "TYPE":
            sql = (
                "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
                " WHERE n.nspname = $1 AND t.typname = $2"
            )
        elif object_type in ("CONSTRAINT", "REF_CONSTRAINT"):
            sql = (
                "SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
                " WHERE n.nspname = $1 AND c.conname = $2"
            )
        elif object_type == "SCHEMA":
            sql = "SELECT 1 FROM pg_namespace WHERE nspname = $1 AND $2 = $2"
        else:
            return False
        return await self.conn.fetchval(sql, schema, name) is not None

    async def _execute_ddl(self, sql: str, name: str) -> None:
        try:
            # The definitions are schema-qualified (the catalog is read with an empty
            # search_path); so is their execution.
            await self.conn.execute("SET search_path = ''; " + sql)
        except asyncpg.PostgresError as exc:
            raise ConnectorError(f"creating {name!r} failed: {exc}", table=name) from None

    def pg_columns(self, table: TableDef) -> list[str]:
        """The PostgreSQL types of a SQLite table's dumped columns (made on first use)."""
        if table.name not in self.column_types:
            self.column_types[table.name] = self._pg_table(table).types
        return self.column_types[table.name]

    async def create_table(self, table: TableDef) -> list[str]:
        if table.data_kind == "large_objects":
            return []  # they are made by their archive entries (or as their rows load)
        if not self.cross:
            await self._execute_ddl(table.ddl, table.name)
            return []
        made = self._pg_table(table)
        self.column_types[table.name] = made.types
        await self._execute_ddl(made.create, table.name)
        notes = list(made.notes)
        for what, sql in made.after:
            try:
                async with self.conn.transaction():
                    await self.conn.execute(sql)
            except asyncpg.PostgresError as exc:
                notes.append(f"{what} left out: PostgreSQL refuses it ({exc})")
        return [f"table {table.name!r}: {n}" for n in notes]

    async def truncate(self, table: TableDef) -> None:
        await self.conn.execute(f"TRUNCATE TABLE ONLY {qualified(pg_schema(table), table.name)}")

    async def drop_table(self, table: TableDef) -> None:
        await self.conn.execute(f"DROP TABLE {qualified(pg_schema(table), table.name)} CASCADE")

    async def _set_sequence(self, schema: str, name: str, value: int | None) -> None:
        """A sequence's value; ``None``: never used (its next value is its start)."""
        if value is None:
            # RESTART, not setval(1): 1 may be outside its bounds (a descending sequence).
            await self.conn.execute(f"ALTER SEQUENCE {qualified(schema, name)} RESTART")
        else:
            seq = literal(qualified(schema, name))
            await self.conn.execute(f"SELECT setval({seq}, {int(value)}, true)")

    async def create_object(self, obj: ObjectDef) -> Outcome:
        if obj.object_type == "SEQUENCE":
            if not self.cross:
                await self._set_sequence(obj.schema, obj.name, obj.value)
                return MADE
            return await self._set_identity(obj)
        if obj.object_type == "PRAGMA" and self.cross:
            if not obj.value:
                return MADE  # the setting's default: nothing is lost
            return Outcome(
                False,
                f"SQLite's {obj.name} = {obj.value} has no {self.engine} counterpart pumpkit makes",
            )
        if obj.object_type == "TRIGGER" and self.cross:
            return Outcome(
                False,
                f"a {self.source_engine} trigger's body is {self.source_engine}'s SQL, which"
                " pumpkit does not translate",
            )
        if obj.toc_id is not None:
            return Outcome(False, "an archive entry needs the archive's tool (pg_restore)")
        schema = "public" if self.cross else obj.schema
        if obj.object_type != "COMMENT" and await self._object_exists(
            obj.object_type, schema, obj.name
        ):
            return MADE
        if not self.cross:
            await self._execute_ddl(obj.ddl, obj.name)
            return MADE
        return await self._make_translated(obj)

    async def _set_identity(self, obj: ObjectDef) -> Outcome:
        """A SQLite table's identity column (its rowid key) set past its highest key and
        its AUTOINCREMENT counter (``obj.value``), so that an INSERT without a key works."""
        table = qualified("public", obj.table)
        key = await self.conn.fetchval(
            "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = $1::regclass"
            " AND a.attidentity <> ''",
            table,
        )
        if key is None:
            return MADE  # no identity: the table was not keyed by its rowid here
        highest = await self.conn.fetchval(f"SELECT max({quote_ident(key)}) FROM {table}")
        value = max(int(highest or 0), int(obj.value or 0))
        if value > 0:
            await self.conn.execute(
                "SELECT setval(pg_get_serial_sequence($1, $2), $3, true)", table, key, value
            )
        return MADE

    async def _make_translated(self, obj: ObjectDef) -> Outcome:
        """A SQLite index, view or foreign key in PostgreSQL (the first two translated by
        ``pumpkit.core.translate``), in ``public``; what has no translation or what
        PostgreSQL refuses is left out with why."""
        try:
            if obj.object_type == "INDEX":
                sql = translate_index(
                    obj.ddl, source="sqlite", target="postgres", name=obj.name,
                    table=obj.table, names=self.names or None, booleans=self.booleans,
                )  # fmt: skip
            elif obj.object_type == "VIEW":
                sql = translate_view(
                    obj.ddl, source="sqlite", target="postgres", name=obj.name,
                    names=self.names or None, booleans=self.booleans,
                )  # fmt: skip
            elif obj.object_type == "REF_CONSTRAINT":
                sql = obj.ddl  # written for PostgreSQL by pumpkit.core.typemap
            else:
                return Outcome(False, f"a SQLite {obj.object_type.lower()} has no translation")
        except TranslationError as exc:
            return Outcome(False, exc.reason)
        try:
            async with self.conn.transaction():
                await self.conn.execute("SET LOCAL search_path = public; " + sql)
        except asyncpg.PostgresError as exc:
            return Outcome(False, f"PostgreSQL refuses its translation ({exc}): {sql}")
        return MADE

    async def restore_entries(
        self, items: Sequence[TableDef | ObjectDef], *, jobs: int, restarted: bool
    ) -> list[Outcome] | None:
        """The archive's entries, restored as pg_restore restores them (``jobs`` at once, in
        dependency order, every failure collected per entry); under REMAP_SCHEMA or
        REMAP_TABLE, each entry's SQL rewritten through PostgreSQL's parser and run here, in
        the archive's order."""
        archive = self.options.archive
        if self.cross or archive is None or self.toc is None:
            return None
        made_before = (
            {item.toc_id for item in items if await self._made_before(item)} if restarted else set()
        )
        ids = [
            item.toc_id
            for item in items
            if item.toc_id is not None and item.toc_id not in made_before
        ]
        if not ids:
            return [MADE] * len(items)
        if self.options.schemas or self.options.tables:
            failed = await self._run_renamed(archive, ids)
        else:
            result = await restore(
                archive,
                self.url,
                entries=ids,
                jobs=max(1, jobs),
                role=self.options.role,
                no_owner=self.options.no_owner,
                no_privileges=self.options.no_privileges,
                toc=self.toc,
                tools=self.tools,
            )
            loose = [f.message for f in result.failed if f.dump_id is None]
            if loose:
                raise ConnectorError("pg_restore failed outside any entry: " + "; ".join(loose))
            failed = {f.dump_id: f.message for f in result.failed if f.dump_id is not None}
        outcomes = []
        for item in items:
            message = failed.get(item.toc_id or -1)
            if message is None or (restarted and _exists_message(message)):
                outcomes.append(MADE)
            else:
                outcomes.append(Outcome(False, message))
        return outcomes

    async def _made_before(self, item: TableDef | ObjectDef) -> bool:
        """On a restart: whether this entry's object is there already (made before the job
        stopped, its row not yet marked), for the kinds the catalog can tell by name."""
        schema = self.options.schemas.get(item.schema, item.schema)
        if isinstance(item, TableDef):
            return await self.table_exists(item)
        kind = item.object_type
        if kind == "INDEX":
            sql = (
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('i', 'I')"
            )
        elif kind in ("CONSTRAINT", "REF_CONSTRAINT"):
            sql = (
                "SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
                " WHERE n.nspname = $1 AND c.conname = $2"
            )
        elif kind == "TRIGGER":
            sql = (
                "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND t.tgname = $2 AND NOT t.tgisinternal"
            )
        else:
            return False
        return await self.conn.fetchval(sql, schema, item.name) is not None

    async def _run_renamed(self, archive: bytes, ids: list[int]) -> dict[int, str]:
        """Each entry's SQL (as pg_restore writes it) renamed and run, one transaction each;
        the failures by dump id."""
        scripts = await entry_scripts(archive, tools=self.tools)
        wanted = set(ids)
        failed: dict[int, str] = {}
        await self.conn.execute(_session_settings(scripts.prolog))
        for entry in self.toc or []:
            if entry.dump_id not in wanted:
                continue
            sql = scripts.entries.get(entry.dump_id, "")
            if self.options.no_owner:
                sql = "\n".join(line for line in sql.splitlines() if " OWNER TO " not in line)
            try:
                renamed = remap_sql(sql, schemas=self.options.schemas, tables=self.options.tables)
                async with self.conn.transaction():
                    await self.conn.execute(renamed)
            except (asyncpg.PostgresError, DumpError) as exc:
                failed[entry.dump_id] = str(exc)
        return failed

    # -- markers

    async def ensure_markers(self) -> None:
        """pumpkit's own table of committed granules. It is pumpkit's bookkeeping, not the
        dump's: with a ROLE it is made by the user pumpkit connected as, and the role may
        only read and write its rows (so the role needs no CREATE right on ``public``)."""
        make = (
            f"CREATE TABLE IF NOT EXISTS public.{MARKER_TABLE} ("
            " job_guid text NOT NULL, process_order bigint NOT NULL, rows bigint NOT NULL,"
            " PRIMARY KEY (job_guid, process_order))"
        )
        role = self.options.role
        if role is None:
            await self.conn.execute(make)
            return
        try:
            await self.conn.execute("RESET ROLE")
            await self.conn.execute(make)
            await self.conn.execute(
                f"GRANT SELECT, INSERT, DELETE ON public.{MARKER_TABLE} TO {quote_ident(role)}"
            )
        except asyncpg.PostgresError as exc:
            raise ConnectorError(
                f"cannot make pumpkit's marker table public.{MARKER_TABLE} for role {role!r}: {exc}"
            ) from None
        finally:
            await _set_role(self.conn, role)

    async def markers(self, job_guid: str) -> dict[int, int]:
        if not await self._object_exists("TABLE", "public", MARKER_TABLE):
            return {}
        rows = await self.conn.fetch(
            f"SELECT process_order, rows FROM public.{MARKER_TABLE} WHERE job_guid = $1",
            job_guid,
        )
        return {r["process_order"]: r["rows"] for r in rows}

    async def drop_markers(self, job_guid: str) -> None:
        if not await self._object_exists("TABLE", "public", MARKER_TABLE):
            return
        await self.conn.execute(f"DELETE FROM public.{MARKER_TABLE} WHERE job_guid = $1", job_guid)
        if not await self.conn.fetchval(f"SELECT count(*) FROM public.{MARKER_TABLE}"):
            if self.options.role is not None:
                await self.conn.execute("RESET ROLE")
            try:
                await self.conn.execute(f"DROP TABLE public.{MARKER_TABLE}")
            finally:
                if self.options.role is not None:
                    await _set_role(self.conn, self.options.role)

    # -- granules

    async def open_loaders(self, count: int) -> GranuleLoaders:
        return _Loaders(self)

    def load_schema(self, table: TableDef) -> str:
        """The schema a table's rows go into (its definition is remapped already)."""
        return self.schema_of(table)

    # -- TPump-style loads

    async def open_load(
        self, table: str, columns: Sequence[str] | None, upsert_key: Sequence[str]
    ) -> RecordLoad:
        load = _RecordLoad(self.url, table, upsert_key)
        try:
            await load.open(columns)
        except BaseException:
            await load.close()
            raise
        return load


# --- the loaders --------------------------------------------------------------------------------


class _Loaders(GranuleLoaders):
    """One connection per loader, made on its first granule."""

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self.conns: dict[int, asyncpg.Connection] = {}

    async def load(
        self,
        loader: int,
        request: LoadRequest,
        batches: AsyncIterator[Batch],
        pipe: RowPipe | None,
        stop: threading.Event,
    ) -> int:
        if loader not in self.conns:
            conn = await connect(self.target.url)
            if self.target.options.role is not None:
                await _set_role(conn, self.target.options.role)
            self.conns[loader] = conn
        conn = self.conns[loader]
        table = request.table
        schema = request.schema or self.target.load_schema(table)
        if table.data_kind == "large_objects":
            return await self._load_large_objects(conn, request, batches, stop)

        async def copy() -> AsyncIterator[bytes]:
            async for batch in batches:
                if stop.is_set():
                    raise JobStopped
                yield bytes(batch.payload)

        async def records() -> AsyncIterator[tuple[Any, ...]]:
            types = self.target.pg_columns(table)
            skip = 1 if table.rowid_column else 0
            convert = row_converter(
                table.name, table.columns[skip:], [to_pg_value(t) for t in types]
            )
            async for batch in batches:
                if stop.is_set():
                    raise JobStopped
                for chunk in iter_rows(batch, table=table.name, columns=len(table.columns)):
                    for values in chunk:
                        yield convert(values[skip:])

        try:
            async with conn.transaction():
                if table.row_format == PGCOPY:
                    status = await conn.copy_to_table(
                        table.name,
                        schema_name=schema,
                        columns=list(table.columns),
                        source=copy(),
                        format="binary",
                    )
                else:
                    skip = 1 if table.rowid_column else 0
                    status = await conn.copy_records_to_table(
                        table.name,
                        schema_name=schema,
                        columns=list(table.columns[skip:]),
                        records=records(),
                    )
                rows = int(str(status).rpartition(" ")[2] or 0)
                if rows != request.expect_rows:
                    raise DumpError(
                        f"granule {request.label} of table {schema}.{table.name} gave {rows}"
                        f" rows, the export recorded {request.expect_rows}"
                    )
                await conn.execute(
                    f"INSERT INTO public.{MARKER_TABLE} (job_guid, process_order, rows)"
                    " VALUES ($1, $2, $3)",
                    request.job_guid,
                    request.process_order,
                    rows,
                )
        except asyncpg.PostgresError as exc:
            raise ConnectorError(
                f"loading table {schema}.{table.name} failed: {exc}", table=table.name
            ) from None
        return rows

    async def _load_large_objects(
        self,
        conn: asyncpg.Connection,
        request: LoadRequest,
        batches: AsyncIterator[Batch],
        stop: threading.Event,
    ) -> int:
        """Large objects' rows (oid, bytes): through a temporary table, each object made
        when its archive entry did not make it, then its bytes written; with the marker."""

        async def copy() -> AsyncIterator[bytes]:
            async for batch in batches:
                if stop.is_set():
                    raise JobStopped
                yield bytes(batch.payload)

        try:
            async with conn.transaction():
                await conn.execute(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS pumpkit_large_objects"
                    " (loid oid, data bytea) ON COMMIT DELETE ROWS"
                )
                status = await conn.copy_to_table(
                    "pumpkit_large_objects", source=copy(), format="binary"
                )
                rows = int(str(status).rpartition(" ")[2] or 0)
                if rows != request.expect_rows:
                    raise DumpError(
                        f"granule {request.label} of the large objects gave {rows} rows, the"
                        f" export recorded {request.expect_rows}"
                    )
                await conn.execute(
                    "SELECT pg_catalog.lo_from_bytea(l.loid, ''::bytea)"
                    " FROM pumpkit_large_objects l WHERE NOT EXISTS (SELECT 1"
                    " FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = l.loid)"
                )
                await conn.execute(
                    "SELECT pg_catalog.lo_put(l.loid, 0, l.data) FROM pumpkit_large_objects l"
                )
                await conn.execute(
                    f"INSERT INTO public.{MARKER_TABLE} (job_guid, process_order, rows)"
                    " VALUES ($1, $2, $3)",
                    request.job_guid,
                    request.process_order,
                    rows,
                )
        except asyncpg.PostgresError as exc:
            raise ConnectorError(f"loading the large objects failed: {exc}") from None
        return rows

    async def close(self) -> None:
        for conn in self.conns.values():
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
        self.conns.clear()


# --- TPump-style loads ----------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A record's value as PostgreSQL's text input for its column (the server converts it,
    as TPump leaves the conversion to the database)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _RecordLoad(RecordLoad):
    """A load into one table on a connection of its own; the restart log and the error table
    live in the target's ``public`` schema, written in each checkpoint's transaction."""

    def __init__(self, url: str, table: str, upsert_key: Sequence[str]) -> None:
        self.url = url
        schema, dot, name = table.rpartition(".")
        self.schema = schema if dot else "public"
        self.table = name
        self.key = list(upsert_key)
        self.columns: list[str] = []
        self.conn: asyncpg.Connection | None = None
        self.sql = ""

    def _failed(self, exc: BaseException) -> ConnectorError:
        if _retryable(exc):
            return RetryableError(str(exc), table=self.table)
        return ConnectorError(f"loading {self.table!r} failed: {exc}", table=self.table)

    async def open(self, columns: Sequence[str] | None) -> None:
        self.conn = await connect(self.url)
        try:
            await self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS public.{RESTART_LOG} ("
                " job_guid text NOT NULL, checkpoint bigint NOT NULL, info bytea NOT NULL,"
                " rows_applied bigint NOT NULL, last_sequence bigint NOT NULL,"
                " time double precision NOT NULL, PRIMARY KEY (job_guid, checkpoint));"
                f" CREATE TABLE IF NOT EXISTS public.{ERROR_TABLE} ("
                " job_guid text NOT NULL, job_name text NOT NULL, sequence bigint NOT NULL,"
                " error text NOT NULL, record bytea NOT NULL, time double precision NOT NULL,"
                " PRIMARY KEY (job_guid, sequence))"
            )
            types = await self.conn.fetch(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type"
                " FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0"
                " AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
                qualified(self.schema, self.table),
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            if isinstance(exc, asyncpg.UndefinedTableError):
                raise ConnectorError(
                    f"table {self.schema}.{self.table} does not exist in the target",
                    table=self.table,
                ) from None
            raise self._failed(exc) from None
        known = {r["attname"]: r["type"] for r in types}
        self.columns = list(columns) if columns else list(known)
        missing = [c for c in self.columns if c not in known]
        if missing:
            raise ConnectorError(
                f"table {self.schema}.{self.table} has no column {missing[0]!r}"
                f" (columns: {', '.join(known)})",
                table=self.table,
                column=missing[0],
            )
        names = ", ".join(quote_ident(c) for c in self.columns)
        values = ", ".join(f"${i}::text::{known[c]}" for i, c in enumerate(self.columns, 1))
        sql = f"INSERT INTO {qualified(self.schema, self.table)} ({names}) VALUES ({values})"
        if self.key:
            updates = ", ".join(
                f"{quote_ident(c)} = excluded.{quote_ident(c)}"
                for c in self.columns
                if c not in self.key
            )
            target = ", ".join(quote_ident(c) for c in self.key)
            sql += f" ON CONFLICT ({target}) DO " + (
                f"UPDATE SET {updates}" if updates else "NOTHING"
            )
        self.sql = sql

    async def last_checkpoint(self, job_guid: str) -> tuple[int, bytes, int, int] | None:
        assert self.conn is not None
        try:
            row = await self.conn.fetchrow(
                f"SELECT checkpoint, info, rows_applied, last_sequence FROM public.{RESTART_LOG}"
                " WHERE job_guid = $1 ORDER BY checkpoint DESC LIMIT 1",
                job_guid,
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise self._failed(exc) from None
        if row is None:
            return None
        return (int(row[0]), bytes(row[1]), int(row[2]), int(row[3]))

    async def error_count(self, job_guid: str) -> int:
        assert self.conn is not None
        try:
            return int(
                await self.conn.fetchval(
                    f"SELECT count(*) FROM public.{ERROR_TABLE} WHERE job_guid = $1", job_guid
                )
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise self._failed(exc) from None

    async def apply_checkpoint(
        self,
        job_guid: str,
        job_name: str,
        rows: Sequence[Sequence[object]],
        sequences: Sequence[int],
        records: Sequence[bytes],
        errors: Sequence[tuple[int, str, bytes]],
        checkpoint: tuple[int, bytes, int, int],
    ) -> list[tuple[int, str, bytes]]:
        conn = self.conn
        assert conn is not None
        texts = [[_text(v) for v in row] for row in rows]
        refused: list[tuple[int, str, bytes]] = []
        try:
            async with conn.transaction():
                try:
                    async with conn.transaction():  # a savepoint: the batch at once
                        await conn.executemany(self.sql, texts)
                except asyncpg.PostgresError as exc:
                    if _retryable(exc):
                        raise
                    # Find the records at fault one by one; the others go in.
                    for sequence, row, record in zip(sequences, texts, records, strict=True):
                        try:
                            async with conn.transaction():
                                await conn.execute(self.sql, *row)
                        except asyncpg.PostgresError as one:
                            if _retryable(one):
                                raise
                            refused.append((sequence, f"{type(one).__name__}: {one}", record))
                failed = [*errors, *refused]
                now = time.time()
                if failed:
                    await conn.executemany(
                        f"INSERT INTO public.{ERROR_TABLE} (job_guid, job_name, sequence, error,"
                        " record, time) VALUES ($1, $2, $3, $4, $5, $6)"
                        " ON CONFLICT (job_guid, sequence) DO UPDATE SET error = excluded.error,"
                        " record = excluded.record, time = excluded.time",
                        [
                            (job_guid, job_name, seq, err, bytes(rec[:MAX_RECORD]), now)
                            for seq, err, rec in failed
                        ],
                    )
                number, info, applied, last_sequence = checkpoint
                await conn.execute(
                    f"INSERT INTO public.{RESTART_LOG} (job_guid, checkpoint, info, rows_applied,"
                    " last_sequence, time) VALUES ($1, $2, $3, $4, $5, $6)",
                    job_guid,
                    number,
                    info,
                    applied + len(rows) - len(refused),
                    last_sequence,
                    now,
                )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise self._failed(exc) from None
        return failed

    async def forget(self, job_guid: str) -> None:
        assert self.conn is not None
        try:
            await self.conn.execute(
                f"DELETE FROM public.{RESTART_LOG} WHERE job_guid = $1", job_guid
            )
            if not await self.conn.fetchval(f"SELECT count(*) FROM public.{RESTART_LOG}"):
                await self.conn.execute(f"DROP TABLE public.{RESTART_LOG}")
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise self._failed(exc) from None

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
