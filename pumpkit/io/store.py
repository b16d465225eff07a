"""The control store: every job's control table, the jobs registry, commands and log lines.

One SQLite file (``HOME/pumpkit.db``, WAL) reached through aiosqlite; all of pumpkit's SQL
for it is in this module. Each job has a *control table* named after the job, with the
column names of Oracle's master table where the meaning is the same, so that a Data Pump
user can read it with plain SQL. Its rows are told apart by ``object_type``: one ``JOB``
row, ``PARAMETER`` rows, ``FILE`` rows, ``WORKER`` rows, and one row per object and per
data granule (``TABLE``, ``TABLE_DATA``, ``INDEX``, ``VIEW``, ``TRIGGER``, ``SEQUENCE``,
``PRAGMA``) with ``process_order`` > 0 in processing order. Beside them, ``pumpkit_jobs``
is the jobs view (like DBA_DATAPUMP_JOBS), ``pumpkit_commands`` carries commands to a job's
control coroutine from any process, and ``pumpkit_log`` holds the log lines.

The store is the one interface the engine uses for job state, so that a store on
PostgreSQL (several hosts sharing one job) is a new module, not a rewrite.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import msgspec

from pumpkit.errors import StoreError

__all__ = (
    "CONTROL_COLUMNS",
    "SCHEMA_VERSION",
    "ControlRow",
    "ControlStore",
    "JobRecord",
    "default_home",
)

SCHEMA_VERSION = 1
STORE_FILE = "pumpkit.db"


def default_home() -> Path:
    """``$PUMPKIT_HOME``, else ``$XDG_STATE_HOME/pumpkit``, else ``~/.local/state/pumpkit``."""
    if os.environ.get("PUMPKIT_HOME"):
        return Path(os.environ["PUMPKIT_HOME"])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pumpkit"


class ControlRow(msgspec.Struct, kw_only=True):
    """One row of a control table. Columns follow Oracle's master table where they can."""

    process_order: int
    duplicate: int = 0
    object_type: str
    object_type_path: str | None = None
    object_schema: str | None = None
    object_name: str | None = None
    base_object_type: str | None = None
    base_object_schema: str | None = None
    base_object_name: str | None = None
    partition_name: str | None = None
    object_number: int | None = None
    processing_state: str | None = None  # P pending, R running, C completed, F failed, S skipped
    processing_status: str | None = None
    in_progress: str | None = None
    dump_fileid: int | None = None
    dump_position: int | None = None
    dump_length: int | None = None
    frames: bytes | None = None  # msgpack [[fileid, position, length, rows, bytes], ...]
    completed_rows: int | None = None
    completed_bytes: int | None = None
    size_estimate: int | None = None
    estimated_rows: int | None = None
    error_count: int | None = None
    elapsed_time: float | None = None
    granule_low: int | None = None
    granule_high: int | None = None
    granules: int | None = None
    metadata: bytes | None = None  # msgpack of the object's definition
    process_name: str | None = None
    start_time: float | None = None
    completion_time: float | None = None
    last_update: float | None = None
    name: str | None = None  # PARAMETER rows
    value_t: str | None = None
    value_n: float | None = None
    is_default: int | None = None
    file_type: str | None = None  # FILE rows
    user_directory: str | None = None
    user_file_name: str | None = None
    file_name: str | None = None
    file_max_size: int | None = None
    operation: str | None = None  # the JOB row
    job_mode: str | None = None
    state: str | None = None
    phase: int | None = None
    guid: str | None = None
    version: str | None = None
    db_version: str | None = None
    platform: str | None = None
    degree: int | None = None


CONTROL_COLUMNS: tuple[str, ...] = ControlRow.__struct_fields__
_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


def _column_type(name: str) -> str:
    annotation = ControlRow.__annotations__[name]
    for python, sql in _TYPES.items():
        if python.__name__ in str(annotation):
            return sql
    return ""


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the jobs view."""

    job_name: str
    guid: str
    operation: str
    job_mode: str
    state: str
    degree: int
    attached_sessions: int
    owner_host: str | None
    owner_pid: int | None
    owner_token: str | None
    heartbeat: float | None
    stop_reason: str | None
    restart_count: int
    created: float
    updated: float
    summary: bytes | None = None  # the final status (JSON) once the control table is gone


_JOB_COLUMNS = JobRecord.__struct_fields__

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
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_OPEN_TIMEOUT = 30.0


async def _connect(path: Path) -> aiosqlite.Connection:
    """Connect, make sure of WAL and the schema, and close again if any of it fails (an
    open aiosqlite thread would keep the process alive). An existing store of this version is
    only read: its opening takes no write lock."""
    conn = await aiosqlite.connect(path, timeout=_OPEN_TIMEOUT, isolation_level=None)
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


class ControlStore:
    """The control store of one home directory. Use ``async with ControlStore.open(home)``."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        # One connection, used by several coroutines: a transaction must not interleave.
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, home: str | os.PathLike[str] | None = None) -> ControlStore:
        """Open (and create) the store in ``home``; raises ``StoreError`` if it cannot."""
        directory = Path(home) if home is not None else default_home()
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
        deadline = time.monotonic() + _OPEN_TIMEOUT
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

    async def __aenter__(self) -> ControlStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
        async with self._lock:
            await self._transaction_locked(statements)

    async def _transaction_locked(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        async with self._atomic():
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
                await self._rollback()
            if isinstance(exc, aiosqlite.Error):
                raise StoreError(f"control store update failed: {exc}") from None
            raise

    # -- jobs

    async def create_job(self, record: JobRecord, rows: Sequence[ControlRow]) -> None:
        """Create the job's registry row and control table (holding ``rows``) at once."""
        table = _quote(record.job_name)
        columns = ", ".join(f"{c} {_column_type(c)}" for c in CONTROL_COLUMNS)
        statements: list[tuple[str, Sequence[Any]]] = [
            (f"CREATE TABLE {table} ({columns})", ()),
            (
                f"CREATE INDEX {_quote(record.job_name + '_order')} ON {table} (object_type, process_order)",
                (),
            ),
            (
                f"INSERT INTO pumpkit_jobs ({', '.join(_JOB_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_JOB_COLUMNS))})",
                msgspec.structs.astuple(record),
            ),
        ]
        statements += [_insert(record.job_name, row) for row in rows]
        await self._transaction(statements)

    async def job(self, job_name: str) -> JobRecord | None:
        rows = await self._all(
            f"SELECT {', '.join(_JOB_COLUMNS)} FROM pumpkit_jobs WHERE job_name = ?", (job_name,)
        )
        return JobRecord(**dict(zip(_JOB_COLUMNS, rows[0], strict=True))) if rows else None

    async def jobs(self) -> list[JobRecord]:
        rows = await self._all(
            f"SELECT {', '.join(_JOB_COLUMNS)} FROM pumpkit_jobs ORDER BY job_name"
        )
        return [JobRecord(**dict(zip(_JOB_COLUMNS, r, strict=True))) for r in rows]

    async def job_names(self) -> set[str]:
        return {r[0] for r in await self._all("SELECT job_name FROM pumpkit_jobs")}

    async def update_job(
        self,
        job_name: str,
        *,
        expect_state: str | None = None,
        expect_token: str | None = None,
        **fields: Any,
    ) -> bool:
        """Change registry fields (and the JOB row's state). With ``expect_state`` or
        ``expect_token`` only if the job is still in that state / owned by that token
        (compare-and-set). Returns whether it changed."""
        async with self._lock:
            return await self._update_job(
                job_name, expect_state=expect_state, expect_token=expect_token, **fields
            )

    async def _update_job(
        self,
        job_name: str,
        *,
        expect_state: str | None,
        expect_token: str | None,
        **fields: Any,
    ) -> bool:
        fields["updated"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        sql = f"UPDATE pumpkit_jobs SET {sets} WHERE job_name = ?"
        params: list[Any] = [*fields.values(), job_name]
        if expect_state is not None:
            sql += " AND state = ?"
            params.append(expect_state)
        if expect_token is not None:
            sql += " AND owner_token = ?"
            params.append(expect_token)
        async with self._atomic():
            cursor = await self._conn.execute(sql, params)
            changed = cursor.rowcount > 0
            has_table = await (
                await self._conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (job_name,)
                )
            ).fetchone()
            if changed and has_table and ("state" in fields or "degree" in fields):
                job_fields = {k: fields[k] for k in ("state", "degree") if k in fields}
                await self._conn.execute(
                    f"UPDATE {_quote(job_name)} SET {', '.join(f'{k} = ?' for k in job_fields)}"
                    " WHERE object_type = 'JOB'",
                    list(job_fields.values()),
                )
        return changed

    async def _rollback(self) -> None:
        with contextlib.suppress(aiosqlite.Error):
            await self._conn.execute("ROLLBACK")

    async def drop_job(self, job_name: str) -> None:
        """Drop the control table and every trace of the job."""
        await self._transaction(
            [
                (f"DROP TABLE IF EXISTS {_quote(job_name)}", ()),
                ("DELETE FROM pumpkit_jobs WHERE job_name = ?", (job_name,)),
                ("DELETE FROM pumpkit_commands WHERE job_name = ?", (job_name,)),
                ("DELETE FROM pumpkit_log WHERE job_name = ?", (job_name,)),
            ]
        )

    async def change_attached(self, job_name: str, delta: int) -> int | None:
        """Add ``delta`` to the job's attached sessions in one statement (no lost update when
        sessions attach at once); returns the new count, None when the job is gone."""
        async with self._lock, self._atomic():
            await self._conn.execute(
                "UPDATE pumpkit_jobs SET attached_sessions = max(0, attached_sessions + ?),"
                " updated = ? WHERE job_name = ?",
                (delta, time.time(), job_name),
            )
            row = await (
                await self._conn.execute(
                    "SELECT attached_sessions FROM pumpkit_jobs WHERE job_name = ?", (job_name,)
                )
            ).fetchone()
        return None if row is None else int(row[0])

    async def has_control_table(self, job_name: str) -> bool:
        rows = await self._all(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (job_name,)
        )
        return bool(rows)

    async def drop_control_table(self, job_name: str) -> None:
        """Drop only the control table (a completed job keeps its registry row and log)."""
        await self._run(f"DROP TABLE IF EXISTS {_quote(job_name)}")

    # -- control rows

    async def insert_rows(self, job_name: str, rows: Sequence[ControlRow]) -> None:
        await self._transaction([_insert(job_name, row) for row in rows])

    async def rows(
        self,
        job_name: str,
        *,
        object_types: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
    ) -> list[ControlRow]:
        sql = f"SELECT {', '.join(CONTROL_COLUMNS)} FROM {_quote(job_name)}"
        where, params = [], []
        if object_types:
            where.append(f"object_type IN ({', '.join('?' * len(object_types))})")
            params += list(object_types)
        if states:
            where.append(f"processing_state IN ({', '.join('?' * len(states))})")
            params += list(states)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY process_order, duplicate"
        return [
            ControlRow(**dict(zip(CONTROL_COLUMNS, r, strict=True)))
            for r in await self._all(sql, params)
        ]

    async def update_rows(
        self, job_name: str, updates: Sequence[tuple[int, int, str, dict[str, Any]]]
    ) -> None:
        """Update rows by ``(process_order, duplicate, object_type)``, all in one transaction."""
        statements = []
        for process_order, duplicate, object_type, fields in updates:
            sets = ", ".join(f"{k} = ?" for k in fields)
            statements.append(
                (
                    f"UPDATE {_quote(job_name)} SET {sets}"
                    " WHERE process_order = ? AND duplicate = ? AND object_type = ?",
                    [*fields.values(), process_order, duplicate, object_type],
                )
            )
        await self._transaction(statements)

    async def set_parameter(self, job_name: str, row: ControlRow) -> None:
        """Insert or replace a PARAMETER-like row identified by (object_type, name)."""
        await self._transaction(
            [
                (
                    f"DELETE FROM {_quote(job_name)} WHERE object_type = ? AND name = ?",
                    (row.object_type, row.name),
                ),
                _insert(job_name, row),
            ]
        )

    async def delete_rows(self, job_name: str, object_type: str, name: str | None = None) -> None:
        sql = f"DELETE FROM {_quote(job_name)} WHERE object_type = ?"
        params: list[Any] = [object_type]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        await self._run(sql, params)

    async def table_dump(self, job_name: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The whole control table as (columns, rows), to copy into the dump-file set."""
        rows = await self._all(
            f"SELECT {', '.join(CONTROL_COLUMNS)} FROM {_quote(job_name)}"
            " ORDER BY process_order, duplicate"
        )
        return CONTROL_COLUMNS, [tuple(r) for r in rows]

    # -- log

    async def log(self, job_name: str, text: str) -> int:
        """Append a log line; returns its sequence number."""
        async with self._lock:
            return await self._log(job_name, text)

    async def _log(self, job_name: str, text: str) -> int:
        async with self._atomic():
            row = await (
                await self._conn.execute(
                    "SELECT coalesce(max(seq), 0) + 1 FROM pumpkit_log WHERE job_name = ?",
                    (job_name,),
                )
            ).fetchone()
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
                "SELECT seq, time, text FROM pumpkit_log WHERE job_name = ? AND seq > ? ORDER BY seq",
                (job_name, after),
            )
        ]

    # -- commands (from any process to the job's control coroutine)

    async def post_command(self, job_name: str, command: str, argument: str | None = None) -> None:
        await self._run(
            "INSERT INTO pumpkit_commands (job_name, command, argument, created) VALUES (?, ?, ?, ?)",
            (job_name, command, argument, time.time()),
        )

    async def take_commands(self, job_name: str) -> list[tuple[str, str | None]]:
        """The job's untaken commands in order, marked taken in the same transaction."""
        async with self._lock:
            return await self._take_commands(job_name)

    async def _take_commands(self, job_name: str) -> list[tuple[str, str | None]]:
        async with self._atomic():
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
                    f" AND id <= {int(rows[-1][0])}",
                    (time.time(), job_name),
                )
        return [(str(c), a) for _, c, a in rows]


def _insert(job_name: str, row: ControlRow) -> tuple[str, Sequence[Any]]:
    values = msgspec.structs.astuple(row)
    return (
        f"INSERT INTO {_quote(job_name)} ({', '.join(CONTROL_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(CONTROL_COLUMNS))})",
        values,
    )


def this_host() -> str:
    return socket.gethostname()
