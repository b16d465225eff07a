"""The databases an import writes, behind one async interface.

``open_target(database, source_engine)`` gives a :class:`SqliteImport` or a :class:`PgImport`.
Each knows how to make the dump's objects in its engine: the source's own DDL when the
engines match; when they differ (a cross-engine import), tables are made from their columns
through ``pumpkit.core.typemap``, and objects that have no counterpart are left out with a
note in the job's log (``create_object`` returns it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Protocol

import anyio
import asyncpg

from pumpkit.core.typemap import pg_table_ddl, sqlite_index_ddl, sqlite_table_ddl
from pumpkit.engine.plancheck import ImportPlan, check_plan
from pumpkit.errors import UnsafeDumpError
from pumpkit.io.connectors.base import ObjectDef, TableDef
from pumpkit.io.connectors.postgres import PgTarget, is_postgres_url, qualified
from pumpkit.io.connectors.sqlite import SqliteTarget, describe_table
from pumpkit.io.store import ControlRow

__all__ = ("ImportTarget", "PgImport", "SqliteImport", "open_target", "pg_schema")


class ImportTarget(Protocol):
    engine: str
    source_engine: str

    async def fingerprint(self) -> str: ...

    async def declare(
        self,
        objects: Sequence[ControlRow],
        planned: Sequence[ControlRow],
        dump_files: Mapping[int, str],
    ) -> None:
        """Check the import's plan (``plancheck``) and name its objects to the target's
        guard: ``objects`` what the import makes or loads, ``planned`` all the dump names
        under the job's filters (tables TABLE_EXISTS_ACTION=SKIP leaves alone included).
        ``dump_files``: the set's file numbers and paths, for errors' locations."""
        ...

    async def existing_tables(self, tables: list[TableDef]) -> list[str]: ...

    async def table_exists(self, table: TableDef) -> bool: ...

    async def create_table(self, table: TableDef) -> list[str]: ...

    async def truncate(self, table: TableDef) -> None: ...

    async def drop_table(self, table: TableDef) -> None: ...

    async def create_object(self, obj: ObjectDef) -> str | None: ...

    async def ensure_markers(self) -> None: ...

    async def markers(self, job_guid: str) -> dict[int, int]: ...

    async def drop_markers(self, job_guid: str) -> None: ...

    async def close(self) -> None: ...


async def open_target(database: str, source_engine: str) -> ImportTarget:
    if is_postgres_url(database):
        return PgImport(await PgTarget.open(database), source_engine)
    return SqliteImport(await anyio.to_thread.run_sync(SqliteTarget, database), source_engine)


def pg_schema(table: TableDef) -> str:
    """Where a table goes in PostgreSQL: its own schema, or ``public`` for SQLite's ``main``."""
    return "public" if table.schema in ("main", "") else table.schema


def _left_out(obj: ObjectDef, engine: str, source: str) -> str:
    return (
        f"{obj.object_type} {obj.name!r} left out: a {source} {obj.object_type.lower()} has no"
        f" {engine} counterpart pumpkit makes"
    )


# --- SQLite -----------------------------------------------------------------------------------


class SqliteImport:
    engine = "sqlite"

    def __init__(self, target: SqliteTarget, source_engine: str) -> None:
        self.target = target
        self.source_engine = source_engine
        self.plan = ImportPlan()

    @property
    def cross(self) -> bool:
        return self.source_engine != "sqlite"

    async def fingerprint(self) -> str:
        return await anyio.to_thread.run_sync(self.target.fingerprint)

    async def declare(
        self,
        objects: Sequence[ControlRow],
        planned: Sequence[ControlRow],
        dump_files: Mapping[int, str],
    ) -> None:
        named = check_plan(planned, dump_files)
        self.plan = check_plan(objects, dump_files)
        self.target.declare_scope(self.plan.tables, self.plan.views, named=named.tables)

    async def existing_tables(self, tables: list[TableDef]) -> list[str]:
        return await anyio.to_thread.run_sync(self.target.existing_tables, [t.name for t in tables])

    async def table_exists(self, table: TableDef) -> bool:
        self.target.declare_scope([table.name])  # the import makes or loads it
        return await anyio.to_thread.run_sync(self.target.object_exists, "table", table.name)

    async def create_table(self, table: TableDef) -> list[str]:
        ddl = table.ddl
        if self.cross:
            ddl = sqlite_table_ddl(
                table.name, table.columns, table.column_kinds, table.not_null, table.primary_key
            )
        await self._execute(ddl, "TABLE", table.name)
        return []

    async def _execute(self, ddl: str, kind: str, name: str, table: str = "") -> None:
        """The dump's statement through the target's guard; a refusal names where in the
        dump the object is defined."""
        try:
            await anyio.to_thread.run_sync(
                partial(self.target.execute_ddl, ddl, kind=kind, name=name, table=table)
            )
        except UnsafeDumpError as exc:
            raise self.plan.locate(exc) from None

    async def truncate(self, table: TableDef) -> None:
        await anyio.to_thread.run_sync(self.target.truncate, table.name)

    async def drop_table(self, table: TableDef) -> None:
        await anyio.to_thread.run_sync(self.target.drop_table, table.name)

    async def create_object(self, obj: ObjectDef) -> str | None:
        t = self.target
        if obj.object_type == "SEQUENCE":
            if self.cross:
                return _left_out(obj, "sqlite", self.source_engine)
            try:
                await anyio.to_thread.run_sync(t.set_sequence, obj.table, int(obj.value or 0))
            except UnsafeDumpError as exc:
                raise self.plan.locate(exc) from None
            return None
        if obj.object_type == "PRAGMA":
            await anyio.to_thread.run_sync(t.set_setting, obj.name, int(obj.value or 0))
            return None
        ddl = obj.ddl
        if self.cross:
            index = sqlite_index_ddl(obj.ddl, obj.table) if obj.object_type == "INDEX" else None
            if index is None:
                return _left_out(obj, "sqlite", self.source_engine)
            ddl = index
        if await anyio.to_thread.run_sync(t.object_exists, obj.object_type, obj.name):
            return None
        await self._execute(ddl, obj.object_type, obj.name, obj.table)
        return self._guard_note(obj)

    def _guard_note(self, obj: ObjectDef) -> str | None:
        """What the job's log should say about an object the guard let through."""
        guard = self.target.guard
        for declared, why in guard.unchecked:
            if declared.kind == obj.object_type and declared.name == obj.name:
                return (
                    f"{obj.object_type} {obj.name!r} made but not checked: SQLite cannot compile"
                    f" it here ({why}), so it cannot run; it is inert while that holds"
                )
        written = [t for d, t in guard.writes_outside if d.name == obj.name]
        if obj.object_type == "TRIGGER" and written:
            return (
                f"TRIGGER {obj.name!r} made; it writes {', '.join(map(repr, written))}, which"
                " the target had already and this import left alone"
            )
        return None

    async def ensure_markers(self) -> None:
        await anyio.to_thread.run_sync(self.target.ensure_markers)

    async def markers(self, job_guid: str) -> dict[int, int]:
        return await anyio.to_thread.run_sync(self.target.markers, job_guid)

    async def drop_markers(self, job_guid: str) -> None:
        await anyio.to_thread.run_sync(self.target.drop_markers, job_guid)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.target.close)


# --- PostgreSQL -------------------------------------------------------------------------------


class PgImport:
    engine = "postgresql"

    def __init__(self, target: PgTarget, source_engine: str) -> None:
        self.target = target
        self.source_engine = source_engine
        #: For a SQLite source: each table's PostgreSQL column types (the converters' key).
        self.column_types: dict[str, list[str]] = {}

    @property
    def cross(self) -> bool:
        return self.source_engine != "postgresql"

    async def fingerprint(self) -> str:
        return await self.target.fingerprint()

    async def declare(
        self,
        objects: Sequence[ControlRow],
        planned: Sequence[ControlRow],
        dump_files: Mapping[int, str],
    ) -> None:
        # The plan's own checks hold for every target; PostgreSQL's guard is its own work.
        check_plan(planned, dump_files)
        check_plan(objects, dump_files)

    async def existing_tables(self, tables: list[TableDef]) -> list[str]:
        present = await self.target.existing_tables((pg_schema(t), t.name) for t in tables)
        return [name for _, name in present]

    async def table_exists(self, table: TableDef) -> bool:
        return bool(await self.target.existing_tables([(pg_schema(table), table.name)]))

    def pg_columns(self, table: TableDef) -> list[str]:
        """The PostgreSQL types of a SQLite table's dumped columns (made on first use)."""
        if table.name not in self.column_types:
            columns, uniques = describe_table(table.ddl, table.name)
            _, types, _ = pg_table_ddl("x", columns, uniques)
            self.column_types[table.name] = types
        return self.column_types[table.name]

    async def create_table(self, table: TableDef) -> list[str]:
        if not self.cross:
            await self.target.execute_ddl(table.ddl, name=table.name)
            return []
        columns, uniques = describe_table(table.ddl, table.name)
        ddl, types, notes = pg_table_ddl(qualified(pg_schema(table), table.name), columns, uniques)
        self.column_types[table.name] = types
        await self.target.execute_ddl(ddl, name=table.name)
        return [f"table {table.name!r}: {n}" for n in notes]

    async def truncate(self, table: TableDef) -> None:
        await self.target.truncate(pg_schema(table), table.name)

    async def drop_table(self, table: TableDef) -> None:
        await self.target.drop_table(pg_schema(table), table.name)

    async def create_object(self, obj: ObjectDef) -> str | None:
        t = self.target
        if obj.object_type == "SEQUENCE":
            if not self.cross:
                await t.set_sequence(obj.schema, obj.name, obj.value)
                return None
            # SQLite's sqlite_sequence value of an AUTOINCREMENT table: its identity column.
            key = await t.conn.fetchval(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = $1::regclass"
                " AND a.attidentity <> ''",
                qualified("public", obj.table),
            )
            if key is not None and obj.value:
                await t.set_serial("public", obj.table, key, int(obj.value))
            return None
        if obj.object_type in ("PRAGMA", "TRIGGER") and self.cross:
            return _left_out(obj, "postgresql", self.source_engine)
        schema = "public" if self.cross else obj.schema
        if obj.object_type != "COMMENT" and await t.object_exists(
            obj.object_type, schema, obj.name
        ):
            return None
        if not self.cross:
            await t.execute_ddl(obj.ddl, name=obj.name)
            return None
        # A SQLite index or view: its SQL is often PostgreSQL's too, on unqualified names.
        try:
            async with t.conn.transaction():
                await t.conn.execute("SET LOCAL search_path = public; " + obj.ddl)
        except asyncpg.PostgresError as exc:
            return f"{obj.object_type} {obj.name!r} left out: PostgreSQL refuses its SQL ({exc})"
        return None

    async def ensure_markers(self) -> None:
        await self.target.ensure_markers()

    async def markers(self, job_guid: str) -> dict[int, int]:
        return await self.target.markers(job_guid)

    async def drop_markers(self, job_guid: str) -> None:
        await self.target.drop_markers(job_guid)

    async def close(self) -> None:
        await self.target.close()
