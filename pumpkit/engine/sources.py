"""The databases an export reads, behind one async interface.

``open_source(database)`` gives a :class:`SqliteExport` or a :class:`PgExport`; the export
(``pumpkit.engine.control``) plans with ``catalog``/``granules``/``check_rows_filter`` and
moves rows with the workers ``open_workers`` starts, without knowing which engine it reads.

- SQLite: blocking calls in threads; the rows are read and encoded in worker *processes*
  (``pumpkit.engine.processes``), which all read one snapshot.
- PostgreSQL: asyncpg connections in this process, all in one exported snapshot; each granule
  is a ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` whose bytes go into frames undecoded;
  compression and encryption run in threads (zstd and AES release the GIL).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Protocol

import anyio
import asyncpg
import zstandard

from pumpkit.core.buffers import Buffer
from pumpkit.core.crypto import FrameCipher
from pumpkit.core.frame import (
    Encoding,
    FrameHeader,
    FrameKind,
    Location,
    build_frame,
    parse_frame_header,
)
from pumpkit.core.planner import Granule
from pumpkit.engine.processes import ExportPool, GranuleResult, RowSpec, Stopped
from pumpkit.errors import DumpSetFullError, UsageError
from pumpkit.io.connectors.base import Catalog, TableDef
from pumpkit.io.connectors.postgres import PgSnapshot, PgSource, is_postgres_url, select_sql
from pumpkit.io.connectors.sqlite import SqliteSource
from pumpkit.io.dumpset.writer import DumpSetWriter

__all__ = ("ExportSource", "ExportWorkers", "PgExport", "SqliteExport", "open_source")

#: A PostgreSQL granule's COPY stream is cut into frames of this many bytes (before
#: compression): big enough for zstd, small enough to bound memory per worker.
PG_FRAME_BYTES = 1 << 20

Sink = Callable[[FrameHeader, memoryview], None]
#: Awaited with a ``DumpSetFullError``'s message while the dump-file set is full; whether to
#: write the same frame again (``JobRunner.wait_for_room``).
WaitForRoom = Callable[[str], Coroutine[Any, Any, bool]]


class ExportWorkers(Protocol):
    def __len__(self) -> int: ...

    async def run_granule(
        self,
        worker: int,
        table: TableDef,
        granule: Granule,
        object_id: int,
        writer: DumpSetWriter | None,
        stop: threading.Event,
        sink: Sink | None,
        *,
        spec: RowSpec,
        key: bytes | None,
        wait_for_room: WaitForRoom | None = None,
    ) -> GranuleResult: ...

    async def close(self) -> None: ...


class ExportSource(Protocol):
    engine: str

    @property
    def version(self) -> str: ...

    async def fingerprint(self) -> str: ...

    async def catalog(self, *, tables: Sequence[str] | None, views: bool) -> Catalog: ...

    async def check_rows_filter(
        self, table: TableDef, condition: str | None, subquery: str | None
    ) -> None: ...

    async def granules(self, table: TableDef, *, target_bytes: int) -> list[Granule]: ...

    async def open_workers(self, count: int, *, level: int) -> ExportWorkers: ...

    async def close(self) -> None: ...


def open_source(database: str) -> ExportSource:
    if is_postgres_url(database):
        return PgExport(PgSource(database))
    return SqliteExport(SqliteSource(database))


# --- SQLite -----------------------------------------------------------------------------------


class _SqliteWorkers:
    def __init__(self, pool: ExportPool) -> None:
        self.pool = pool
        # Threads of their own: a granule's thread may wait (for room in the dump-file set)
        # on the event loop, which then needs the default threads to log and to look.
        self.limiter = anyio.CapacityLimiter(len(pool))

    def __len__(self) -> int:
        return len(self.pool)

    async def run_granule(
        self, worker: int, *args: Any, wait_for_room: WaitForRoom | None = None, **kwargs: Any
    ) -> GranuleResult:
        return await anyio.to_thread.run_sync(
            partial(
                self.pool.run_granule,
                worker % len(self.pool),
                *args,
                wait_for_room=None if wait_for_room is None else _from_thread(wait_for_room),
                **kwargs,
            ),
            limiter=self.limiter,
        )

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.pool.close)


def _from_thread(wait: WaitForRoom) -> Callable[[str], bool]:
    """``wait`` for the pool's thread: it runs on the event loop while the thread blocks."""

    def blocking(message: str) -> bool:
        try:
            return anyio.from_thread.run(wait, message)
        except concurrent.futures.CancelledError:
            # The job was cancelled while the write waited (its session left): no room,
            # the granule stops, and the cancellation goes on in the waiting task.
            return False

    return blocking


class SqliteExport:
    engine = "sqlite"

    def __init__(self, source: SqliteSource) -> None:
        self.source = source

    @property
    def version(self) -> str:
        return self.source.version

    async def fingerprint(self) -> str:
        return await anyio.to_thread.run_sync(self.source.fingerprint)

    async def catalog(self, *, tables: Sequence[str] | None, views: bool) -> Catalog:
        return await anyio.to_thread.run_sync(
            lambda: self.source.catalog(tables=tables, views=views)
        )

    async def check_rows_filter(
        self, table: TableDef, condition: str | None, subquery: str | None
    ) -> None:
        await anyio.to_thread.run_sync(
            partial(self.source.check_rows_filter, table, condition, subquery)
        )

    async def granules(self, table: TableDef, *, target_bytes: int) -> list[Granule]:
        return await anyio.to_thread.run_sync(
            partial(self.source.granules, table, target_bytes=target_bytes)
        )

    async def open_workers(self, count: int, *, level: int) -> ExportWorkers:
        pool = await anyio.to_thread.run_sync(lambda: ExportPool(self.source, count, level=level))
        return _SqliteWorkers(pool)

    async def close(self) -> None:
        return None


# --- PostgreSQL -------------------------------------------------------------------------------


class PgExport:
    """A PostgreSQL source: the catalog and every worker in one snapshot, taken when first
    needed (a restarted export takes a new one: the old one died with its transaction)."""

    engine = "postgresql"

    def __init__(self, source: PgSource) -> None:
        self.source = source
        self._snapshot: PgSnapshot | None = None

    @property
    def version(self) -> str:
        return self.source.version

    async def snapshot(self) -> PgSnapshot:
        if self._snapshot is None:
            self._snapshot = await self.source.snapshot()
        return self._snapshot

    async def fingerprint(self) -> str:
        return await self.source.fingerprint()

    async def catalog(self, *, tables: Sequence[str] | None, views: bool) -> Catalog:
        snap = await self.snapshot()
        return await self.source.catalog(snap.conn, tables=tables, views=views)

    async def check_rows_filter(
        self, table: TableDef, condition: str | None, subquery: str | None
    ) -> None:
        snap = await self.snapshot()
        await self.source.check_rows_filter(snap.conn, table, condition, subquery)

    async def granules(self, table: TableDef, *, target_bytes: int) -> list[Granule]:
        snap = await self.snapshot()
        return await self.source.granules(snap.conn, table, target_bytes=target_bytes)

    async def open_workers(self, count: int, *, level: int) -> ExportWorkers:
        snap = await self.snapshot()
        conns: list[asyncpg.Connection] = []
        try:
            for _ in range(count):
                conns.append(await snap.worker())  # noqa: PERF401 (one at a time, each awaited)
        except BaseException:
            for conn in conns:
                await conn.close()
            raise
        return _PgWorkers(conns, level)

    async def close(self) -> None:
        if self._snapshot is not None:
            await self._snapshot.close()
            self._snapshot = None


class _PgWorkers:
    def __init__(self, conns: list[asyncpg.Connection], level: int) -> None:
        self.conns = conns
        # One compressor per connection: a zstd context is not shared between threads.
        self.compressors = [zstandard.ZstdCompressor(level=level) if level else None for _ in conns]

    def __len__(self) -> int:
        return len(self.conns)

    async def run_granule(
        self,
        worker: int,
        table: TableDef,
        granule: Granule,
        object_id: int,
        writer: DumpSetWriter | None,
        stop: threading.Event,
        sink: Sink | None,
        *,
        spec: RowSpec,
        key: bytes | None,
        wait_for_room: WaitForRoom | None = None,
    ) -> GranuleResult:
        """Copy one granule out into frames; fsync; say where they are. A frame the full
        dump-file set cannot take is written again each time ``wait_for_room`` says to
        (``Stopped`` when it says not to).

        The frames hold the COPY stream cut every ``PG_FRAME_BYTES``, not at row
        boundaries (finding them would mean parsing every field): their count is 0 but for
        the last, which carries the granule's rows (formats/dumpfile.md §5.8).
        """
        if spec.remaps:
            raise UsageError(
                f"REMAP_DATA of table {table.name!r}: a PostgreSQL table's rows are dumped"
                " as COPY bytes, never decoded, so they cannot be remapped on export"
            )
        conn = self.conns[worker % len(self.conns)]
        compressor = self.compressors[worker % len(self.conns)]
        cipher = FrameCipher(key) if key else None
        result = GranuleResult()
        pending = bytearray()

        async def emit(count: int) -> None:
            data = bytes(pending)
            pending.clear()
            header, payload = await anyio.to_thread.run_sync(
                lambda: build_frame(
                    FrameKind.TABLE_DATA,
                    data,
                    object_id=object_id,
                    count=count,
                    encoding=Encoding.PGCOPY,
                    compressor=compressor,
                    cipher=cipher,
                )
            )
            if sink is not None:
                sink(parse_frame_header(header), memoryview(payload))
            if writer is not None:
                location = await _write_waiting(writer, header, payload, wait_for_room)
                result.frames.append(
                    [location.fileid, location.position, location.length, count, len(data)]
                )
            result.bytes += len(data)

        async def output(chunk: bytes) -> None:
            if stop.is_set():
                raise Stopped
            pending.extend(chunk)
            if len(pending) >= PG_FRAME_BYTES:
                await emit(0)

        sql = select_sql(
            table, granule, condition=spec.condition, subquery=spec.subquery, sample=spec.sample
        )
        result.rows = await PgSource.copy_out(conn, sql, output, table=table.name)
        await emit(result.rows)
        if stop.is_set():
            raise Stopped
        if writer is not None:
            await anyio.to_thread.run_sync(writer.sync)
        return result

    async def close(self) -> None:
        for conn in self.conns:
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()


async def _write_waiting(
    writer: DumpSetWriter, header: bytes, payload: Buffer, wait_for_room: WaitForRoom | None
) -> Location:
    """``writer.write_built`` in a thread, made again after each wait for room while the
    set is full."""
    while True:
        try:
            return await anyio.to_thread.run_sync(writer.write_built, header, payload)
        except DumpSetFullError as full:
            if wait_for_room is None:
                raise
            if not await wait_for_room(str(full)):
                raise Stopped from None
