"""SQLite as a target: objects from their original SQL, granules loaded exactly once, and
TPump-style loads with their restart log.

Each object is made from its original SQL, so ``sqlite_master`` of the copy says exactly
what the source's said (a dump from another engine: tables from their columns through
``pumpkit.core.typemap``, and what SQLite cannot take is left out with a note). Each granule
is loaded in one transaction together with its completion marker, so a restart after a crash
loads every granule exactly once. SQLite has one writer: ``max_loaders`` is 1, and the
engine overlaps reading and decompressing frames with it.

Blocking sqlite3 calls run in worker threads; the connection is used by one thread at a time.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import partial
from typing import Any

import anyio
import msgspec

from pumpkit.core.catalog import ObjectDef, TableDef
from pumpkit.core.ddl import quote_ident
from pumpkit.core.limits import ROW_CHUNK_BYTES
from pumpkit.core.pgcopy import CopyDecoder
from pumpkit.core.plancheck import ImportPlan
from pumpkit.core.rowcodec import PGCOPY, iter_rows
from pumpkit.core.selection import fold
from pumpkit.core.translate import (
    ForeignKey,
    foreign_key_of,
    translate_index,
    translate_view,
    unique_of,
)
from pumpkit.core.typemap import sqlite_table_ddl
from pumpkit.errors import (
    ConnectorError,
    CopyFormatError,
    CorruptDumpError,
    DumpError,
    FileAccessError,
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
from pumpkit.io.connectors.sqlite.common import (
    ERROR_TABLE,
    MARKER_TABLE,
    MAX_RECORD,
    RESTART_LOG,
    SETTINGS,
    SQLITE_MAGIC,
    is_busy,
    sqlite_path,
)
from pumpkit.io.connectors.sqlite.guard import Declared, Scope, SqliteGuard

__all__ = ("LOAD_BUSY_TIMEOUT", "SqliteTarget")

#: The tables pumpkit keeps in a target: no dump's object may be one, be on one, or touch one.
_OWN_TABLES = frozenset({MARKER_TABLE, RESTART_LOG, ERROR_TABLE})
_OWN_PREFIXES = ("pumpkit_stage_",)
# A row the table refuses; a failure of the database itself is OperationalError.
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError)
#: A load's connection gives up on a lock after this long: a database failure, retried.
LOAD_BUSY_TIMEOUT = 2.0
_random = random.Random()


def _open(path: os.PathLike[str] | str, busy_timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        # SQLite's default page cache on purpose: a 32 MiB cache was measured to make the
        # CREATE INDEX after the load twice as slow. Sorter threads help it a little.
        # NORMAL sync is durable against a crash of this process (exactly-once restart).
        conn.execute(f"PRAGMA threads = {min(4, os.cpu_count() or 1)}")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _insert_sql(table: TableDef) -> str:
    columns = ", ".join(quote_ident(c) for c in table.columns)
    marks = ", ".join("?" * len(table.columns))
    return f"INSERT INTO main.{quote_ident(table.name)} ({columns}) VALUES ({marks})"


class SqliteTarget(Target):
    """A SQLite database to import or load into (created if missing). Open with :meth:`open`.

    Raises ``FileAccessError`` when its directory does not exist, ``ConnectorError`` when the
    file is not a SQLite database, ``RetryableError`` when it is locked.
    """

    engine = "sqlite"
    max_loaders = 1
    filters_rows = True
    single_schema = "main"

    def __init__(
        self, database: str | os.PathLike[str], source_engine: str, *, busy_timeout: float = 30.0
    ) -> None:
        self.path = sqlite_path(database)
        self.source_engine = source_engine
        self.busy_timeout = busy_timeout
        if self.path.is_dir():
            raise FileAccessError(
                f"target database {str(self.path)!r} is a directory", path=str(self.path)
            )
        if not self.path.parent.is_dir():
            raise FileAccessError(
                f"directory {str(self.path.parent)!r} of the target database does not exist",
                path=str(self.path.parent),
            )
        if self.path.exists():
            with open(self.path, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
            if head and head != SQLITE_MAGIC:
                raise ConnectorError(f"target database {str(self.path)!r} is not a SQLite database")
        try:
            self.conn = _open(self.path, busy_timeout)
        except sqlite3.Error as exc:
            error = RetryableError if is_busy(exc) else ConnectorError
            raise error(f"cannot open target database {str(self.path)!r}: {exc}") from None
        #: From another engine's dump: each table's (by folded name) foreign keys and
        #: UNIQUE constraints, which SQLite takes only in a CREATE TABLE, and the tables
        #: keyed by an identity or serial column (with those sequences' names).
        self.foreign_keys: dict[str, list[tuple[str, ForeignKey]]] = {}
        self.uniques: dict[str, list[tuple[str, tuple[str | None, tuple[str, ...]]]]] = {}
        self.counted: dict[str, str] = {}
        #: The objects a CREATE TABLE took in: ``(object type, folded name)``.
        self.in_tables: set[tuple[str, str]] = set()
        #: Both gates for the dump's statements; its scope grows with ``declare``.
        self.guard = SqliteGuard(
            self.conn, Scope(reserved=_OWN_TABLES, reserved_prefixes=_OWN_PREFIXES)
        )

    @classmethod
    async def open(
        cls, database: str | os.PathLike[str], source_engine: str, *, busy_timeout: float = 30.0
    ) -> SqliteTarget:
        return await anyio.to_thread.run_sync(
            partial(cls, database, source_engine, busy_timeout=busy_timeout)
        )

    @property
    def cross(self) -> bool:
        return self.source_engine != self.engine

    async def _call(self, function: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(partial(function, *args))

    async def close(self) -> None:
        await self._call(self.conn.close)

    async def fingerprint(self) -> str:
        """Which file this is: a restart into another file would break exactly-once."""
        return f"sqlite:{self.path.resolve()}:{self.path.stat().st_ino}"

    # -- objects

    def _object_exists(self, object_type: str, name: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM main.sqlite_master WHERE type = ? AND name = ?",
            (object_type.lower(), name),
        ).fetchone()
        return row is not None

    def _execute_ddl(self, sql: str, kind: str, name: str, table: str = "") -> None:
        """Create the dump's object ``kind name`` (on ``table`` for an index or trigger) from
        ``sql``, through both gates of the guard: the statement must be exactly that CREATE,
        and it runs under the authorizer. Raises ``UnsafeDumpError`` (nothing changed) when
        it is anything else, ``ConnectorError`` when SQLite refuses it."""
        try:
            self.guard.execute(sql, Declared(kind, name, table))
        except sqlite3.Error as exc:
            raise ConnectorError(f"creating {name!r} failed: {exc}", table=name) from None

    async def declare(self, plan: ImportPlan, named: ImportPlan, options: ImportOptions) -> None:
        """The import's tables and views, and (``named``) the other tables its dump names
        (those TABLE_EXISTS_ACTION=SKIP leaves alone): a dump's indexes and triggers are on
        the first, its triggers write only to either."""
        self.guard.scope.widen(plan.tables, plan.views, named=named.tables)

    async def plan_objects(
        self, tables: Sequence[TableDef], objects: Sequence[ObjectDef]
    ) -> list[ObjectDef]:
        """From a PostgreSQL dump: what each table's CREATE TABLE must hold here (its
        foreign keys and UNIQUE constraints: SQLite adds neither to a table it has made), and
        which tables are keyed by an identity or serial column (their sequences own them).
        Nothing is added to the plan."""
        if not self.cross:
            return []
        made = {fold(t.name) for t in tables}
        for obj in objects:
            what = f"{obj.object_type} {obj.name!r}"
            try:
                if obj.object_type == "REF_CONSTRAINT":
                    fk = foreign_key_of(obj.ddl, source="postgres", what=what)
                    if fold(fk.table) in made:
                        self.foreign_keys.setdefault(fold(obj.table), []).append((obj.name, fk))
                elif obj.object_type == "CONSTRAINT" and obj.desc == "CONSTRAINT":
                    unique = unique_of(obj.ddl, source="postgres", what=what)
                    self.uniques.setdefault(fold(obj.table), []).append((obj.name, unique))
            except TranslationError:
                continue  # not one SQLite's CREATE TABLE takes: left out when its turn comes
            if obj.object_type == "SEQUENCE" and obj.table and fold(obj.table) in made:
                self.counted[fold(obj.name)] = obj.table
        return []

    async def existing_tables(self, tables: list[TableDef]) -> list[str]:
        def existing() -> list[str]:
            present = {
                row[0].casefold()
                for row in self.conn.execute(
                    "SELECT name FROM main.sqlite_master WHERE type = 'table'"
                )
            }
            return [t.name for t in tables if t.name.casefold() in present]

        result: list[str] = await self._call(existing)
        return result

    async def table_exists(self, table: TableDef) -> bool:
        self.guard.scope.widen([table.name])  # the import makes or loads it
        exists: bool = await self._call(self._object_exists, "table", table.name)
        return exists

    async def create_table(self, table: TableDef) -> list[str]:
        ddl = table.ddl
        if self.cross:
            if table.partition_root is not None:
                # SQLite has no partitions: a partition's rows go into its root's table.
                return [
                    f"table {table.name!r}: a partition; its rows go into {table.partition_root[1]!r}"
                ]
            notes: list[str] = []
            ddl = self._cross_table(table, notes)
        else:
            notes = []
        await self._call(self._execute_ddl, ddl, "TABLE", table.name)
        notes = [f"table {table.name!r}: {n}" for n in notes]
        if self.cross and table.inherits:
            parents = ", ".join(name for _, name in table.inherits)
            notes.append(
                f"table {table.name!r}: inherits {parents} in the source; SQLite has no"
                " inheritance, so its rows no longer show through its parents"
            )
        return notes

    def _cross_table(self, table: TableDef, notes: list[str]) -> str:
        """Another engine's table as SQLite makes it (``pumpkit.core.typemap``), with the
        foreign keys and UNIQUE constraints of its own (recorded as made with it)."""
        key = fold(table.name)
        fks = self.foreign_keys.get(key, [])
        uniques = self.uniques.get(key, [])
        self.in_tables.update(("REF_CONSTRAINT", fold(name)) for name, _ in fks)
        self.in_tables.update(("CONSTRAINT", fold(name)) for name, _ in uniques)
        return sqlite_table_ddl(
            table.name,
            table.columns,
            table.column_kinds,
            table.not_null,
            table.primary_key,
            ddl=table.ddl,
            foreign_keys=[fk for _, fk in fks],
            uniques=[u for _, u in uniques],
            autoincrement=key in {fold(t) for t in self.counted.values()},
            notes=notes,
        )

    async def truncate(self, table: TableDef) -> None:
        """TABLE_EXISTS_ACTION=TRUNCATE: every row goes, the table stays."""
        await self._call(self.conn.execute, f"DELETE FROM main.{quote_ident(table.name)}")

    async def drop_table(self, table: TableDef) -> None:
        """TABLE_EXISTS_ACTION=REPLACE: the table goes (with its indexes and triggers)."""
        await self._call(self.conn.execute, f"DROP TABLE main.{quote_ident(table.name)}")

    def _set_sequence(self, table: str, value: int) -> None:
        """The AUTOINCREMENT counter of ``table``, a table the import makes or loads."""
        self.guard.require_table("SEQUENCE", table, table, "setting the counter of")
        self.conn.execute("BEGIN")
        cur = self.conn.execute(
            "UPDATE main.sqlite_sequence SET seq = ? WHERE name = ?", (value, table)
        )
        if cur.rowcount == 0:
            self.conn.execute(
                "INSERT INTO main.sqlite_sequence (name, seq) VALUES (?, ?)", (table, value)
            )
        self.conn.execute("COMMIT")

    def _set_setting(self, name: str, value: int) -> None:
        if name not in SETTINGS:
            raise ConnectorError(f"setting {name!r} cannot be restored into SQLite")
        self.conn.execute(f"PRAGMA main.{name} = {int(value)}")

    async def create_object(self, obj: ObjectDef) -> Outcome:
        if obj.object_type == "SEQUENCE":
            if self.cross:
                return await self._cross_sequence(obj)
            await self._call(self._set_sequence, obj.table, int(obj.value or 0))
            return MADE
        if obj.object_type == "PRAGMA":
            await self._call(self._set_setting, obj.name, int(obj.value or 0))
            return MADE
        ddl = obj.ddl
        if self.cross:
            made = self._made_with_table(obj)
            if made is not None:
                return made
            try:
                translated = self._translated(obj)
            except TranslationError as exc:
                return Outcome(False, exc.reason)
            if translated is None:
                return _left_out(obj, self.engine, self.source_engine)
            ddl = translated
        if await self._call(self._object_exists, obj.object_type, obj.name):
            return MADE
        await self._call(self._execute_ddl, ddl, obj.object_type, obj.name, obj.table)
        return Outcome(True, self._guard_note(obj))

    def _made_with_table(self, obj: ObjectDef) -> Outcome | None:
        """An object of another engine's dump that its table's CREATE TABLE made (its key,
        foreign keys, UNIQUE constraints; the identity or the serial default that its
        INTEGER PRIMARY KEY AUTOINCREMENT is); ``None`` for any other."""
        kind = obj.object_type
        if kind == "CONSTRAINT" and "PRIMARY KEY" in obj.ddl:
            return MADE  # the table was made with its primary key
        if (kind, fold(obj.name)) in self.in_tables:
            return MADE
        if kind == "SEQUENCE_DEF" and fold(obj.name) in self.counted:
            return MADE  # the table's INTEGER PRIMARY KEY AUTOINCREMENT
        if (
            kind == "DEFAULT"
            and "nextval(" in obj.ddl
            and fold(obj.table) in {fold(t) for t in self.counted.values()}
        ):
            return MADE  # a serial column's default: the AUTOINCREMENT key is it
        if kind == "REF_CONSTRAINT":
            return Outcome(
                False, "SQLite takes a foreign key only in its table's CREATE TABLE, which"
                " had not this one (it references a table this import does not make, or its"
                " SQL did not translate)",
            )  # fmt: skip
        return None

    def _translated(self, obj: ObjectDef) -> str | None:
        """Another engine's index or view in SQLite's SQL (``pumpkit.core.translate``);
        ``None`` for an object of another kind. Raises ``TranslationError``."""
        if obj.object_type == "INDEX":
            return translate_index(
                obj.ddl, source="postgres", target="sqlite", name=obj.name, table=obj.table
            )
        if obj.object_type == "VIEW":
            return translate_view(obj.ddl, source="postgres", target="sqlite", name=obj.name)
        return None

    async def _cross_sequence(self, obj: ObjectDef) -> Outcome:
        """A PostgreSQL sequence's value: the AUTOINCREMENT counter of the table it keys."""
        table = self.counted.get(fold(obj.name))
        if table is None:
            return _left_out(obj, self.engine, self.source_engine)
        if obj.value is not None:
            await self._call(self._set_sequence, table, int(obj.value))
        return MADE

    def _guard_note(self, obj: ObjectDef) -> str | None:
        """What the job's log should say about an object the guard let through."""
        for declared, why in self.guard.unchecked:
            if declared.kind == obj.object_type and declared.name == obj.name:
                return (
                    f"{obj.object_type} {obj.name!r} made but not checked: SQLite cannot compile"
                    f" it here ({why}), so it cannot run; it is inert while that holds"
                )
        written = [t for d, t in self.guard.writes_outside if d.name == obj.name]
        if obj.object_type == "TRIGGER" and written:
            return (
                f"TRIGGER {obj.name!r} made; it writes {', '.join(map(repr, written))}, which"
                " the target had already and this import left alone"
            )
        return None

    # -- markers

    def _ensure_markers(self) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS main.{MARKER_TABLE} ("
            " job_guid TEXT NOT NULL, process_order INTEGER NOT NULL, rows INTEGER NOT NULL,"
            " PRIMARY KEY (job_guid, process_order)) WITHOUT ROWID"
        )

    async def ensure_markers(self) -> None:
        await self._call(self._ensure_markers)

    def _markers(self, job_guid: str) -> dict[int, int]:
        if not self._object_exists("table", MARKER_TABLE):
            return {}
        return dict(
            self.conn.execute(
                f"SELECT process_order, rows FROM main.{MARKER_TABLE} WHERE job_guid = ?",
                (job_guid,),
            ).fetchall()
        )

    async def markers(self, job_guid: str) -> dict[int, int]:
        markers: dict[int, int] = await self._call(self._markers, job_guid)
        return markers

    def _drop_markers(self, job_guid: str) -> None:
        if not self._object_exists("table", MARKER_TABLE):
            return
        self.conn.execute(f"DELETE FROM main.{MARKER_TABLE} WHERE job_guid = ?", (job_guid,))
        if self.conn.execute(f"SELECT count(*) FROM main.{MARKER_TABLE}").fetchone()[0] == 0:
            self.conn.execute(f"DROP TABLE main.{MARKER_TABLE}")

    async def drop_markers(self, job_guid: str) -> None:
        await self._call(self._drop_markers, job_guid)

    # -- granules

    async def open_loaders(self, count: int) -> GranuleLoaders:
        return _Loaders(self)

    # -- TPump-style loads

    async def open_load(
        self, table: str, columns: Sequence[str] | None, upsert_key: Sequence[str]
    ) -> RecordLoad:
        load = _RecordLoad(self.path, table, upsert_key)
        try:
            await load.open(columns)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await load.close()
            raise
        return load


def _left_out(obj: ObjectDef, engine: str, source: str) -> Outcome:
    kind = (obj.desc or obj.object_type).lower()
    return Outcome(False, f"a {source} {kind} has no {engine} counterpart pumpkit makes")


# --- the loader ---------------------------------------------------------------------------------


class _Loaders(GranuleLoaders):
    """The one writer: each granule in one transaction with its marker, decoded and inserted
    in the same thread, back to back (``executemany`` releases the GIL around every row's
    step; a decode in another thread was measured to halve the insert rate)."""

    def __init__(self, target: SqliteTarget) -> None:
        self.target = target
        self.conn = target.conn

    async def close(self) -> None:
        return None

    async def load(
        self,
        loader: int,
        request: LoadRequest,
        batches: AsyncIterator[Batch],
        pipe: RowPipe | None,
        stop: threading.Event,
    ) -> int:
        table = request.table
        if self.target.cross and table.partition_root is not None:
            # SQLite has no partitions: a partition's rows go into its root's table.
            table = msgspec.structs.replace(table, name=table.partition_root[1])
        if request.append and table.rowid_column:
            # Rows added to the target's own keep their columns but not the source's
            # hidden rowids, which may be taken there: the target assigns new ones.
            pipe = pipe or RowPipe()
            pipe.drop_first = True
            table = msgspec.structs.replace(table, columns=table.columns[1:], rowid_column=None)
        sql = _insert_sql(table)
        copy = None
        if table.row_format == PGCOPY:
            try:
                copy = CopyDecoder(table.column_kinds, table.columns)
            except CopyFormatError as exc:
                raise DumpError(f"the rows of table {table.name!r} cannot be read: {exc}") from None
        rows = 0
        inserted = 0
        await anyio.to_thread.run_sync(self.conn.execute, "BEGIN")
        try:
            async for batch in batches:
                inserted += await anyio.to_thread.run_sync(
                    partial(self._insert, sql, batch, table, pipe, request.condition, copy)
                )
                rows += batch.rows
            if stop.is_set():
                raise JobStopped
            if copy is not None:
                try:
                    copy.finish()
                except CopyFormatError as exc:
                    raise DumpError(
                        f"granule {request.label} of table {table.name!r}: {exc}"
                    ) from None
                rows = copy.rows
            if rows != request.expect_rows:
                raise DumpError(
                    f"granule {request.label} of table {table.name!r} gave {rows}"
                    f" rows, the export recorded {request.expect_rows}"
                )
            await anyio.to_thread.run_sync(
                self._commit, request.job_guid, request.process_order, inserted
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._rollback)
            raise
        return inserted

    def _insert(
        self,
        sql: str,
        batch: Batch,
        table: TableDef,
        pipe: RowPipe | None,
        condition: str | None,
        copy: CopyDecoder | None,
    ) -> int:
        """Decode a batch and insert it, a chunk of rows at a time (memory stays near the
        batch's size: ``pumpkit.core.limits``); the rows inserted. ``copy`` decodes a
        PostgreSQL dump's COPY stream, whose frames need not end on a row."""
        inserted = 0
        for rows in self._chunks(batch, table, copy):
            if pipe is not None:
                rows = _transform(rows, pipe)
            try:
                if condition:
                    inserted += self._insert_where(table, rows, condition)
                    continue
                self.conn.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise ConnectorError(
                    f"loading table {table.name!r} failed: {exc}", table=table.name
                ) from None
            inserted += len(rows)
        return inserted

    @staticmethod
    def _chunks(
        batch: Batch, table: TableDef, copy: CopyDecoder | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        if copy is None:
            yield from iter_rows(batch, table=table.name, columns=len(table.columns))
            return
        view = memoryview(batch.payload).cast("B")
        for start in range(0, view.nbytes, ROW_CHUNK_BYTES):
            try:
                rows = copy.feed(view[start : start + ROW_CHUNK_BYTES])
            except CopyFormatError as exc:
                raise CorruptDumpError(
                    f"rows of table {table.name!r} do not decode: {exc}",
                    path=batch.path,
                    offset=batch.position,
                ) from None
            yield rows

    def _insert_where(
        self, table: TableDef, rows: Sequence[Sequence[object]], condition: str
    ) -> int:
        """Insert the rows that satisfy ``condition`` (an import's QUERY): they pass through
        a temporary table without column types (no conversion on the way) and SQLite
        evaluates the condition. Returns how many went in."""
        stage = quote_ident(f"pumpkit_stage_{table.name}")
        columns = ", ".join(quote_ident(c) for c in table.columns)
        try:
            self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({columns})")
            self.conn.executemany(
                f"INSERT INTO temp.{stage} VALUES ({', '.join('?' * len(table.columns))})", rows
            )
            cursor = self.conn.execute(
                f"INSERT INTO main.{quote_ident(table.name)} ({columns})"
                f" SELECT {columns} FROM temp.{stage} WHERE ({condition})"
            )
            self.conn.execute(f"DELETE FROM temp.{stage}")
        except sqlite3.Error as exc:
            raise ConnectorError(
                f"loading table {table.name!r} with QUERY {condition!r} failed: {exc}",
                table=table.name,
            ) from None
        return int(cursor.rowcount)

    def _commit(self, job_guid: str, process_order: int, rows: int) -> None:
        """Commit the open transaction together with the granule's completion marker."""
        self.conn.execute(
            f"INSERT INTO main.{MARKER_TABLE} (job_guid, process_order, rows) VALUES (?, ?, ?)",
            (job_guid, process_order, rows),
        )
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def _transform(rows: list[tuple[Any, ...]], pipe: RowPipe) -> list[tuple[Any, ...]]:
    if pipe.sample is not None and pipe.sample < 100:
        share = pipe.sample / 100
        rows = [r for r in rows if _random.random() < share]
    if pipe.remap is not None:
        rows = pipe.remap(rows)  # over the source's columns, rowid included
    if pipe.drop_first:
        rows = [r[1:] for r in rows]
    return rows


# --- TPump-style loads ----------------------------------------------------------------------


class _RecordLoad(RecordLoad):
    """A load into one table on a connection of its own, which gives up on a lock after
    ``LOAD_BUSY_TIMEOUT`` (a database failure: the engine rolls back, repositions and
    retries)."""

    def __init__(self, path: os.PathLike[str], table: str, upsert_key: Sequence[str]) -> None:
        self.path = path
        self.table = table
        self.key = list(upsert_key)
        self.columns: list[str] = []
        self.conn: sqlite3.Connection | None = None
        self.sql = ""

    async def _call(self, function: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(partial(function, *args))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise RetryableError(str(exc), table=self.table) from None
            raise ConnectorError(
                f"loading {self.table!r} failed: {exc}", table=self.table
            ) from None

    async def open(self, columns: Sequence[str] | None) -> None:
        def connect() -> sqlite3.Connection:
            try:
                return _open(self.path, LOAD_BUSY_TIMEOUT)
            except sqlite3.Error as exc:
                error = RetryableError if is_busy(exc) else ConnectorError
                raise error(f"cannot open target database {str(self.path)!r}: {exc}") from None

        self.conn = await anyio.to_thread.run_sync(connect)
        await self._call(self._ensure_tables)
        self.columns = list(columns) if columns else await self._call(self._table_columns)
        self.sql = self._load_sql()

    def _ensure_tables(self) -> None:
        assert self.conn is not None
        self.conn.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS main.{RESTART_LOG} (
                job_guid TEXT NOT NULL, checkpoint INTEGER NOT NULL, info BLOB NOT NULL,
                rows_applied INTEGER NOT NULL, last_sequence INTEGER NOT NULL,
                time REAL NOT NULL, PRIMARY KEY (job_guid, checkpoint)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS main.{ERROR_TABLE} (
                job_guid TEXT NOT NULL, job_name TEXT NOT NULL, sequence INTEGER NOT NULL,
                error TEXT NOT NULL, record BLOB NOT NULL, time REAL NOT NULL,
                PRIMARY KEY (job_guid, sequence)) WITHOUT ROWID;
            """
        )

    def _table_columns(self) -> list[str]:
        """The columns a load fills: every column but generated ones."""
        assert self.conn is not None
        info = self.conn.execute(f"PRAGMA main.table_xinfo({quote_ident(self.table)})").fetchall()
        if not info:
            raise ConnectorError(
                f"table {self.table!r} does not exist in {str(self.path)!r}", table=self.table
            )
        return [row[1] for row in info if row[6] == 0]

    def _load_sql(self) -> str:
        """INSERT, or with a key an UPSERT (INSERT ... ON CONFLICT (key) DO UPDATE)."""
        names = ", ".join(quote_ident(c) for c in self.columns)
        sql = (
            f"INSERT INTO main.{quote_ident(self.table)} ({names})"
            f" VALUES ({', '.join('?' * len(self.columns))})"
        )
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
        return sql

    async def last_checkpoint(self, job_guid: str) -> tuple[int, bytes, int, int] | None:
        def last() -> tuple[int, bytes, int, int] | None:
            assert self.conn is not None
            row = self.conn.execute(
                f"SELECT checkpoint, info, rows_applied, last_sequence FROM main.{RESTART_LOG}"
                " WHERE job_guid = ? ORDER BY checkpoint DESC LIMIT 1",
                (job_guid,),
            ).fetchone()
            return None if row is None else (int(row[0]), bytes(row[1]), int(row[2]), int(row[3]))

        result: tuple[int, bytes, int, int] | None = await self._call(last)
        return result

    async def error_count(self, job_guid: str) -> int:
        def count() -> int:
            assert self.conn is not None
            return int(
                self.conn.execute(
                    f"SELECT count(*) FROM main.{ERROR_TABLE} WHERE job_guid = ?", (job_guid,)
                ).fetchone()[0]
            )

        result: int = await self._call(count)
        return result

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
        failed: list[tuple[int, str, bytes]] = await self._call(
            self._apply, job_guid, job_name, rows, sequences, records, errors, checkpoint
        )
        return failed

    def _apply(
        self,
        job_guid: str,
        job_name: str,
        rows: Sequence[Sequence[object]],
        sequences: Sequence[int],
        records: Sequence[bytes],
        errors: Sequence[tuple[int, str, bytes]],
        checkpoint: tuple[int, bytes, int, int],
    ) -> list[tuple[int, str, bytes]]:
        """One transaction: the rows (with, in parallel, their sequence numbers and records,
        for the error table should the table refuse one), the records that failed to decode
        or insert into the error table, and the restart-log row. A row the table refuses (a
        constraint) is an error of that record; a failure of the database itself (locked,
        I/O) raises after a rollback."""
        conn = self.conn
        assert conn is not None
        sql = self.sql
        refused: list[tuple[int, str, bytes]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("SAVEPOINT batch")
            try:
                conn.executemany(sql, rows)
                conn.execute("RELEASE batch")
            except _ROW_ERRORS:
                # Find the records at fault one by one; the others go in.
                conn.execute("ROLLBACK TO batch")
                conn.execute("RELEASE batch")
                for sequence, row, record in zip(sequences, rows, records, strict=True):
                    try:
                        conn.execute(sql, row)
                    except _ROW_ERRORS as exc:
                        refused.append((sequence, f"{type(exc).__name__}: {exc}", record))
            failed = [*errors, *refused]
            now = time.time()
            conn.executemany(
                f"INSERT OR REPLACE INTO main.{ERROR_TABLE}"
                " (job_guid, job_name, sequence, error, record, time) VALUES (?, ?, ?, ?, ?, ?)",
                [(job_guid, job_name, seq, err, rec[:MAX_RECORD], now) for seq, err, rec in failed],
            )
            number, info, applied, last_sequence = checkpoint
            conn.execute(
                f"INSERT INTO main.{RESTART_LOG} (job_guid, checkpoint, info, rows_applied,"
                " last_sequence, time) VALUES (?, ?, ?, ?, ?, ?)",
                (job_guid, number, info, applied + len(rows) - len(refused), last_sequence, now),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return failed

    async def forget(self, job_guid: str) -> None:
        def forget() -> None:
            assert self.conn is not None
            exists = self.conn.execute(
                "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?",
                (RESTART_LOG,),
            ).fetchone()
            if not exists:
                return
            self.conn.execute(f"DELETE FROM main.{RESTART_LOG} WHERE job_guid = ?", (job_guid,))
            if self.conn.execute(f"SELECT count(*) FROM main.{RESTART_LOG}").fetchone()[0] == 0:
                self.conn.execute(f"DROP TABLE main.{RESTART_LOG}")

        await self._call(forget)

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await anyio.to_thread.run_sync(conn.close)
