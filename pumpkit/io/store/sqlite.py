"""The control store in one SQLite file (``HOME/pumpkit.db``, WAL), through aiosqlite.

All of pumpkit's SQL for the store is in this module. Each job has a *control table* named
after the job, with the columns of ``pumpkit.core.control_table.ControlRow``. Beside them,
``pumpkit_jobs`` is the jobs registry (like DBA_DATAPUMP_JOBS), ``pumpkit_commands`` carries
commands to a job's control coroutine from any process, ``pumpkit_log`` holds the log lines
and ``pumpkit_job_states`` every state each job was moved to.

One connection serves every coroutine of a process, behind one lock, so a transaction never
interleaves with another; each transaction is ``BEGIN IMMEDIATE`` (the writer's lock first),
so a compare-and-set reads and writes under one lock across processes.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import msgspec

from pumpkit.core.control_table import (
    CONTROL_COLUMNS,
    ControlRow,
    ExistsAction,
    FileEntry,
    FilterEntry,
    JobRecord,
    JobUpdate,
    Owner,
    ProcessingState,
    RowKey,
    RowKind,
    RowUpdate,
    WorkerEntry,
    parameter_row,
    parameter_value,
)
from pumpkit.core.states import JobState, transition
from pumpkit.errors import StoreError
from pumpkit.io.store.base import ControlStore, StateChange

__all__ = ("SCHEMA_VERSION", "STORE_FILE", "SqliteStore")

SCHEMA_VERSION = 2
STORE_FILE = "pumpkit.db"
#: How long a store call waits for another process's write lock (seconds); also how long an
#: opening retries while another process makes a new store. ``PUMPKIT_STORE_TIMEOUT`` sets it.
OPEN_TIMEOUT = float(os.environ.get("PUMPKIT_STORE_TIMEOUT") or 30.0)

_JOB_COLUMNS = JobRecord.__struct_fields__
_SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pumpkit_jobs (
    job_name TEXT PRIMARY KEY,
    guid TEXT NOT NULL,
    operation TEXT NOT NULL,
    job_mode TEXT NOT NULL,
    state TEXT NOT NULL,
    degree INTEGER NOT NULL DEFAULT 1,
    attached_sessions INTEGER NOT NULL DEFAULT 0,
    owner_host TEXT,
    owner_pid INTEGER,
    owner_token TEXT,
    heartbeat REAL,
    stop_reason TEXT,
    restart_count INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    summary BLOB
);
CREATE TABLE IF NOT EXISTS pumpkit_commands (
    id INTEGER PRIMARY KEY,
    job_name TEXT NOT NULL,
    command TEXT NOT NULL,
    argument TEXT,
    created REAL NOT NULL,
    taken REAL
);
CREATE TABLE IF NOT EXISTS pumpkit_log (
    job_name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job_name, seq)
);
CREATE TABLE IF NOT EXISTS pumpkit_job_states (
    id INTEGER PRIMARY KEY,
    job_name TEXT NOT NULL,
    guid TEXT NOT NULL,
    state TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pumpkit_job_states_job ON pumpkit_job_states (job_name, id);
"""


def _column_type(name: str) -> str:
    annotation = str(ControlRow.__annotations__[name])
    for python, sql in _SQL_TYPES.items():
        if python.__name__ in annotation:
            return sql
    return "TEXT"  # the enums: their values are text


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row(values: Iterable[Any]) -> ControlRow:
    fields = dict(zip(CONTROL_COLUMNS, values, strict=True))
    if fields["processing_state"] is not None:
        fields["processing_state"] = ProcessingState(fields["processing_state"])
    if fields["exists_action"] is not None:
        fields["exists_action"] = ExistsAction(fields["exists_action"])
    return ControlRow(**fields)


def _record(values: Iterable[Any]) -> JobRecord:
    return JobRecord(**dict(zip(_JOB_COLUMNS, values, strict=True)))


def _insert(job_name: str, row: ControlRow) -> tuple[str, Sequence[Any]]:
    values = [v.value if isinstance(v, enum.Enum) else v for v in msgspec.structs.astuple(row)]
    return (
        f"INSERT INTO {_quote(job_name)} ({', '.join(CONTROL_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(CONTROL_COLUMNS))})",
        values,
    )


async def _connect(path: Path) -> aiosqlite.Connection:
    """Connect, make sure of WAL and the schema, and close again if any of it fails (an
    open aiosqlite thread would keep the process alive). An existing store of this version is
    only read: its opening takes no write lock."""
    conn = await aiosqlite.connect(path, timeout=OPEN_TIMEOUT, isolation_level=None)
    try:
        mode = (await (await conn.execute("PRAGMA journal_mode")).fetchone() or ("",))[0]
        if str(mode).lower() != "wal":
            await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        version = (await (await conn.execute("PRAGMA user_version")).fetchone() or (0,))[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"control store {path} has schema version {version}; this pumpkit knows"
                f" {SCHEMA_VERSION}: use a newer pumpkit"
            )
        if version < SCHEMA_VERSION:
            await conn.executescript(_SCHEMA)
            await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.close()
        raise
    return conn


class SqliteStore(ControlStore):
    """The control store of one home directory. Open with :meth:`open`."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self.location = str(path.parent)
        self._conn = conn
        # One connection, used by several coroutines: a transaction must not interleave.
        self._lock = anyio.Lock()
        # Control tables whose columns are known to be this version's (see _columns_ready).
        self._ready: set[str] = set()

    @classmethod
    async def open(cls, directory: Path) -> SqliteStore:
        """Open (and create) the store in ``directory``; raises ``StoreError`` if it cannot."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the control-store directory {directory}: {exc}"
            ) from None
        path = directory / STORE_FILE
        # Two processes may open a new store at the same moment (a job's runner and a client
        # watching it); SQLite can answer "locked" at once, without waiting, while the other
        # switches the file to WAL. Retry for as long as a busy wait would have lasted.
        deadline = time.monotonic() + OPEN_TIMEOUT
        while True:
            try:
                conn = await _connect(path)
            except aiosqlite.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if busy and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                    continue
                raise StoreError(f"cannot open the control store {path}: {exc}") from None
            except aiosqlite.Error as exc:
                raise StoreError(f"cannot open the control store {path}: {exc}") from None
            break
        return cls(path, conn)

    async def close(self) -> None:
        await self._conn.close()

    # -- helpers

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            async with self._lock, self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except aiosqlite.Error as exc:
            raise StoreError(f"control store query failed: {exc}") from None

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            async with self._lock, self._conn.execute(sql, params) as cursor:
                return cursor.rowcount
        except aiosqlite.Error as exc:
            raise StoreError(f"control store update failed: {exc}") from None

    async def _transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        async with self._lock, self._atomic():
            for sql, params in statements:
                await self._conn.execute(sql, params)

    @contextlib.asynccontextmanager
    async def _atomic(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on any exit by exception, cancellation included, a
        shielded ROLLBACK, so the shared connection is never left inside a transaction."""
        try:
            # Inside the try: a cancelled BEGIN may still run on aiosqlite's thread, and the
            # ROLLBACK below, queued behind it, then ends that transaction too.
            await self._conn.execute("BEGIN IMMEDIATE")
            yield
            await self._conn.execute("COMMIT")
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(aiosqlite.Error):
                    await self._conn.execute("ROLLBACK")
            if isinstance(exc, aiosqlite.Error):
                raise StoreError(f"control store update failed: {exc}") from None
            raise

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query inside a transaction (the lock is held)."""
        return await (await self._conn.execute(sql, params)).fetchone()

    async def _has_table(self, job_name: str) -> bool:
        """Inside a transaction: whether the job's control table exists."""
        return bool(
            await self._one(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (job_name,)
            )
        )

    async def _columns_ready(self, job_name: str) -> None:
        """A control table made by an older pumpkit gets the columns added since (a stopped
        job of that version can still be restarted)."""
        if job_name in self._ready:
            return
        present = {r[1] for r in await self._all(f"PRAGMA table_info({_quote(job_name)})")}
        if present:
            for column in CONTROL_COLUMNS:
                if column not in present:
                    await self._run(
                        f"ALTER TABLE {_quote(job_name)} ADD COLUMN {column} {_column_type(column)}"
                    )
            self._ready.add(job_name)

    # -- the registry and the job's states

    async def create_job(self, record: JobRecord, rows: Sequence[ControlRow]) -> None:
        transition(JobState.UNDEFINED, JobState(record.state))
        table = _quote(record.job_name)
        columns = ", ".join(f"{c} {_column_type(c)}" for c in CONTROL_COLUMNS)
        statements: list[tuple[str, Sequence[Any]]] = [
            (f"CREATE TABLE {table} ({columns})", ()),
            (
                f"CREATE INDEX {_quote(record.job_name + '_order')} ON {table}"
                " (object_type, process_order)",
                (),
            ),
            (
                f"INSERT INTO pumpkit_jobs ({', '.join(_JOB_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_JOB_COLUMNS))})",
                msgspec.structs.astuple(record),
            ),
            (
                "INSERT INTO pumpkit_job_states (job_name, guid, state, time) VALUES (?, ?, ?, ?)",
                (record.job_name, record.guid, record.state, time.time()),
            ),
        ]
        statements += [_insert(record.job_name, row) for row in rows]
        await self._transaction(statements)
        self._ready.add(record.job_name)

    async def job(self, job_name: str) -> JobRecord | None:
        rows = await self._all(
            f"SELECT {', '.join(_JOB_COLUMNS)} FROM pumpkit_jobs WHERE job_name = ?", (job_name,)
        )
        return _record(rows[0]) if rows else None

    async def jobs(self) -> list[JobRecord]:
        rows = await self._all(
            f"SELECT {', '.join(_JOB_COLUMNS)} FROM pumpkit_jobs ORDER BY job_name"
        )
        return [_record(r) for r in rows]

    async def job_names(self) -> set[str]:
        return {r[0] for r in await self._all("SELECT job_name FROM pumpkit_jobs")}

    async def move(
        self,
        job_name: str,
        expect: JobState,
        *path: JobState,
        token: str | None = None,
        update: JobUpdate | None = None,
    ) -> bool:
        if not path:
            raise ValueError("move needs at least one state to move to")
        for current, new in itertools.pairwise((expect, *path)):
            transition(current, new)
        async with self._lock, self._atomic():
            return await self._move(job_name, expect, path, token, update)

    async def _move(
        self,
        job_name: str,
        expect: JobState,
        path: Sequence[JobState],
        token: str | None,
        update: JobUpdate | None,
    ) -> bool:
        row = await self._one(
            "SELECT state, guid, owner_token FROM pumpkit_jobs WHERE job_name = ?", (job_name,)
        )
        if row is None or row[0] != expect.value or (token is not None and row[2] != token):
            return False
        final = path[-1]
        fields = {"state": final.value, **(update.columns() if update else {})}
        fields["updated"] = time.time()
        await self._conn.execute(
            f"UPDATE pumpkit_jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE job_name = ?",
            [*fields.values(), job_name],
        )
        if await self._has_table(job_name):
            job_fields: dict[str, Any] = {"state": final.value}
            if update is not None and isinstance(update.degree, int):
                job_fields["degree"] = update.degree
            await self._conn.execute(
                f"UPDATE {_quote(job_name)} SET {', '.join(f'{k} = ?' for k in job_fields)}"
                " WHERE object_type = 'JOB'",
                list(job_fields.values()),
            )
        now = time.time()
        await self._conn.executemany(
            "INSERT INTO pumpkit_job_states (job_name, guid, state, time) VALUES (?, ?, ?, ?)",
            [(job_name, row[1], state.value, now) for state in path],
        )
        return True

    async def take_job(self, job_name: str, expect: JobState, owner: Owner) -> JobRecord | None:
        transition(expect, JobState.EXECUTING)
        async with self._lock, self._atomic():
            record = await self._one(
                f"SELECT {', '.join(_JOB_COLUMNS)} FROM pumpkit_jobs WHERE job_name = ?",
                (job_name,),
            )
            if record is None:
                return None
            restarts = _record(record).restart_count + (1 if expect is JobState.IDLING else 0)
            taken = await self._move(
                job_name,
                expect,
                (JobState.EXECUTING,),
                None,
                JobUpdate(
                    owner_host=owner.host,
                    owner_pid=owner.pid,
                    owner_token=owner.token,
                    heartbeat=time.time(),
                    stop_reason=None,
                    restart_count=restarts,
                ),
            )
            if not taken:
                return None
            return _record(
                await self._one(
                    f"SELECT {', '.join(_JOB_COLUMNS)} FROM pumpkit_jobs WHERE job_name = ?",
                    (job_name,),
                )
            )

    async def beat(self, job_name: str, token: str) -> bool:
        return await self.update_job(job_name, JobUpdate(heartbeat=time.time()), token=token)

    async def update_job(
        self, job_name: str, update: JobUpdate, *, token: str | None = None
    ) -> bool:
        fields = {**update.columns(), "updated": time.time()}
        sql = f"UPDATE pumpkit_jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE job_name = ?"
        params: list[Any] = [*fields.values(), job_name]
        if token is not None:
            sql += " AND owner_token = ?"
            params.append(token)
        async with self._lock, self._atomic():
            changed = (await self._conn.execute(sql, params)).rowcount > 0
            if changed and isinstance(update.degree, int) and await self._has_table(job_name):
                await self._conn.execute(
                    f"UPDATE {_quote(job_name)} SET degree = ? WHERE object_type = 'JOB'",
                    (update.degree,),
                )
        return changed

    async def change_attached(self, job_name: str, delta: int) -> int | None:
        async with self._lock, self._atomic():
            await self._conn.execute(
                "UPDATE pumpkit_jobs SET attached_sessions = max(0, attached_sessions + ?),"
                " updated = ? WHERE job_name = ?",
                (delta, time.time(), job_name),
            )
            row = await self._one(
                "SELECT attached_sessions FROM pumpkit_jobs WHERE job_name = ?", (job_name,)
            )
        return None if row is None else int(row[0])

    async def drop_job(self, job_name: str) -> None:
        async with self._lock, self._atomic():
            row = await self._one(
                "SELECT state, guid FROM pumpkit_jobs WHERE job_name = ?", (job_name,)
            )
            if row is not None:
                transition(JobState(row[0]), JobState.UNDEFINED)
                await self._conn.execute(
                    "INSERT INTO pumpkit_job_states (job_name, guid, state, time)"
                    " VALUES (?, ?, ?, ?)",
                    (job_name, row[1], JobState.UNDEFINED.value, time.time()),
                )
            await self._conn.execute(f"DROP TABLE IF EXISTS {_quote(job_name)}")
            for table in ("pumpkit_jobs", "pumpkit_commands", "pumpkit_log"):
                await self._conn.execute(f"DELETE FROM {table} WHERE job_name = ?", (job_name,))
        self._ready.discard(job_name)

    async def history(self, job_name: str) -> list[StateChange]:
        return [
            (str(g), int(i), str(s), float(t))
            for g, i, s, t in await self._all(
                "SELECT guid, id, state, time FROM pumpkit_job_states WHERE job_name = ?"
                " ORDER BY id",
                (job_name,),
            )
        ]

    async def has_control_table(self, job_name: str) -> bool:
        rows = await self._all(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (job_name,)
        )
        return bool(rows)

    async def drop_control_table(self, job_name: str) -> None:
        await self._run(f"DROP TABLE IF EXISTS {_quote(job_name)}")
        self._ready.discard(job_name)

    # -- the control table's rows

    async def insert_rows(self, job_name: str, rows: Sequence[ControlRow]) -> None:
        await self._columns_ready(job_name)
        await self._transaction([_insert(job_name, row) for row in rows])

    async def _select(
        self, job_name: str, where: Sequence[str] = (), params: Sequence[Any] = ()
    ) -> list[ControlRow]:
        await self._columns_ready(job_name)
        sql = f"SELECT {', '.join(CONTROL_COLUMNS)} FROM {_quote(job_name)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY process_order, duplicate"
        return [_row(r) for r in await self._all(sql, params)]

    async def rows(
        self,
        job_name: str,
        *,
        object_types: Sequence[str] | None = None,
        states: Sequence[ProcessingState] | None = None,
    ) -> list[ControlRow]:
        where: list[str] = []
        params: list[Any] = []
        if object_types:
            where.append(f"object_type IN ({', '.join('?' * len(object_types))})")
            params += list(object_types)
        if states:
            where.append(f"processing_state IN ({', '.join('?' * len(states))})")
            params += [s.value for s in states]
        return await self._select(job_name, where, params)

    async def update_rows(self, job_name: str, updates: Sequence[tuple[RowKey, RowUpdate]]) -> None:
        statements = []
        for key, update in updates:
            fields = update.columns()
            if not fields:
                continue
            statements.append(
                (
                    f"UPDATE {_quote(job_name)} SET {', '.join(f'{k} = ?' for k in fields)}"
                    " WHERE process_order = ? AND duplicate = ? AND object_type = ?",
                    [*fields.values(), key.process_order, key.duplicate, key.object_type],
                )
            )
        if statements:
            await self._transaction(statements)

    async def table_dump(self, job_name: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        await self._columns_ready(job_name)
        rows = await self._all(
            f"SELECT {', '.join(CONTROL_COLUMNS)} FROM {_quote(job_name)}"
            " ORDER BY process_order, duplicate"
        )
        return CONTROL_COLUMNS, [tuple(r) for r in rows]

    async def _replace(self, job_name: str, row: ControlRow) -> None:
        """Insert or replace a describing row identified by (object_type, name)."""
        await self._columns_ready(job_name)
        await self._transaction(
            [
                (
                    f"DELETE FROM {_quote(job_name)} WHERE object_type = ? AND name = ?",
                    (row.object_type, row.name),
                ),
                _insert(job_name, row),
            ]
        )

    async def _kind(self, job_name: str, kind: RowKind) -> list[ControlRow]:
        return await self._select(job_name, ["object_type = ?"], [kind.name])

    # -- the rows that describe the job

    async def parameters(self, job_name: str) -> dict[str, Any]:
        return {
            r.name: parameter_value(r)
            for r in await self._kind(job_name, RowKind.PARAMETER)
            if r.name is not None
        }

    async def set_parameter(
        self, job_name: str, name: str, value: Any, *, is_default: bool = False
    ) -> None:
        await self._replace(job_name, parameter_row(name, value, is_default=is_default))

    async def files(self, job_name: str) -> list[FileEntry]:
        return [
            FileEntry(
                file_type=r.file_type or "",
                directory=r.user_directory or ".",
                file_name=r.user_file_name or "",
                first_path=r.file_name or "",
                max_size=r.file_max_size,
                reuse=bool(r.value_n),
            )
            for r in await self._kind(job_name, RowKind.FILE)
        ]

    async def add_file(self, job_name: str, entry: FileEntry) -> None:
        await self._replace(
            job_name,
            ControlRow(
                process_order=RowKind.FILE,
                object_type=RowKind.FILE.name,
                name=entry.key,
                file_type=entry.file_type,
                user_directory=entry.directory,
                user_file_name=entry.file_name,
                file_name=entry.first_path,
                file_max_size=entry.max_size,
                value_n=1.0 if entry.reuse else 0.0,
            ),
        )

    async def workers(self, job_name: str) -> list[WorkerEntry]:
        return [
            WorkerEntry(
                name=r.name or "",
                state=r.state or "",
                object_type=r.base_object_type,
                object_schema=r.object_schema,
                object_name=r.object_name,
                partition_name=r.partition_name,
                last_update=r.last_update,
            )
            for r in await self._kind(job_name, RowKind.WORKER)
        ]

    async def set_worker(self, job_name: str, entry: WorkerEntry) -> None:
        await self._replace(
            job_name,
            ControlRow(
                process_order=RowKind.WORKER,
                object_type=RowKind.WORKER.name,
                name=entry.name,
                state=entry.state,
                object_schema=entry.object_schema,
                object_name=entry.object_name,
                base_object_type=entry.object_type,
                partition_name=entry.partition_name,
                last_update=entry.last_update,
            ),
        )

    async def filters(self, job_name: str) -> list[FilterEntry]:
        rows = await self._kind(job_name, RowKind.FILTER)
        return [
            FilterEntry(
                seq=r.duplicate,
                name=r.name or "",
                value=parameter_value(r),
                target=r.object_name,
                schema=r.object_schema,
            )
            for r in sorted(rows, key=lambda r: r.duplicate)
        ]

    async def add_filter(
        self, job_name: str, name: str, value: Any, *, target: str | None, schema: str | None
    ) -> None:
        await self._columns_ready(job_name)
        async with self._lock, self._atomic():
            row = await self._one(
                f"SELECT coalesce(max(duplicate), 0) + 1 FROM {_quote(job_name)}"
                " WHERE object_type = ?",
                (RowKind.FILTER.name,),
            )
            sql, params = _insert(
                job_name,
                ControlRow(
                    process_order=RowKind.FILTER,
                    duplicate=int(row[0]),  # call order: later calls refine earlier ones
                    object_type=RowKind.FILTER.name,
                    name=name,
                    object_name=target,
                    object_schema=schema,
                    value_t="json:" + msgspec.json.encode(value).decode(),
                ),
            )
            await self._conn.execute(sql, params)

    # -- the log

    async def log(self, job_name: str, text: str) -> int:
        async with self._lock, self._atomic():
            row = await self._one(
                "SELECT coalesce(max(seq), 0) + 1 FROM pumpkit_log WHERE job_name = ?",
                (job_name,),
            )
            seq = int(row[0]) if row else 1
            await self._conn.execute(
                "INSERT INTO pumpkit_log (job_name, seq, time, text) VALUES (?, ?, ?, ?)",
                (job_name, seq, time.time(), text),
            )
        return seq

    async def log_lines(self, job_name: str, after: int = 0) -> list[tuple[int, float, str]]:
        return [
            (int(s), float(t), str(x))
            for s, t, x in await self._all(
                "SELECT seq, time, text FROM pumpkit_log WHERE job_name = ? AND seq > ?"
                " ORDER BY seq",
                (job_name, after),
            )
        ]

    # -- commands

    async def post_command(self, job_name: str, command: str, argument: str | None = None) -> None:
        await self._run(
            "INSERT INTO pumpkit_commands (job_name, command, argument, created)"
            " VALUES (?, ?, ?, ?)",
            (job_name, command, argument, time.time()),
        )

    async def take_commands(self, job_name: str) -> list[tuple[str, str | None]]:
        async with self._lock, self._atomic():
            rows = list(
                await (
                    await self._conn.execute(
                        "SELECT id, command, argument FROM pumpkit_commands"
                        " WHERE job_name = ? AND taken IS NULL ORDER BY id",
                        (job_name,),
                    )
                ).fetchall()
            )
            if rows:
                await self._conn.execute(
                    "UPDATE pumpkit_commands SET taken = ? WHERE job_name = ? AND taken IS NULL"
                    " AND id <= ?",
                    (time.time(), job_name, int(rows[-1][0])),
                )
        return [(str(c), a) for _, c, a in rows]
