"""PostgreSQL as a source: one exported snapshot for the catalog and every reader, granules
of heap blocks, and rows as binary COPY bytes that are never decoded.

A coordinator connection opens a REPEATABLE READ transaction, reads the catalog (locking the
tables ACCESS SHARE, so no DDL changes them meanwhile) and exports its snapshot
(``pg_export_snapshot()``); every reader's connection sets that snapshot (``SET TRANSACTION
SNAPSHOT``), as ``pg_dump -j`` does, so the dump is one consistent state however many
readers read it. A restarted export takes a new snapshot: the old one died with its
transaction. Each granule is ``COPY (SELECT ...) TO STDOUT (FORMAT binary)``, cut into frames
of ``PG_FRAME_BYTES`` (compression and encryption in threads: zstd and AES release the GIL).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import anyio
import asyncpg
import zstandard

from pumpkit.core.catalog import Catalog, TableDef
from pumpkit.core.crypto import FrameCipher
from pumpkit.core.frame import Encoding, FrameKind, GranuleTag, build_frame
from pumpkit.core.planner import DEFAULT_GRANULE_BYTES, Granule
from pumpkit.core.rowcodec import PGCOPY
from pumpkit.errors import ConnectorError, JobStopped, UsageError
from pumpkit.io.connectors.base import (
    FramePlacer,
    GranuleReaders,
    GranuleRequest,
    GranuleResult,
    Source,
)
from pumpkit.io.connectors.postgres.archive import with_archive
from pumpkit.io.connectors.postgres.catalog import read_catalog
from pumpkit.io.connectors.postgres.common import connect, literal, qualified, select_sql
from pumpkit.io.connectors.postgres.tools import (
    EntryScripts,
    TocEntry,
    dump_schema,
    entry_scripts,
    read_toc,
    tools_for,
)

__all__ = ("PG_FRAME_BYTES", "PgSnapshot", "PgSource")

#: A granule's COPY stream is cut into frames of this many bytes (before compression): big
#: enough for zstd, small enough to bound memory per reader.
PG_FRAME_BYTES = 1 << 20


class PgSnapshot:
    """A coordinator connection whose REPEATABLE READ transaction exported a snapshot.

    Readers' connections made by :meth:`reader` see exactly what it sees. It holds an
    ACCESS SHARE lock on every table it read the catalog of, so no DDL changes them while
    the export runs (as pg_dump). Close it when the export is done.
    """

    def __init__(self, conn: asyncpg.Connection, snapshot: str, url: str) -> None:
        self.conn = conn
        self.snapshot = snapshot
        self.url = url

    @classmethod
    async def take(cls, url: str) -> tuple[PgSnapshot, str]:
        """A new snapshot, and the server's version."""
        conn = await connect(url)
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            name = await conn.fetchval("SELECT pg_export_snapshot()")
            version = str(await conn.fetchval("SHOW server_version"))
        except BaseException:
            await conn.close()
            raise
        return cls(conn, str(name), url), version

    async def reader(self) -> asyncpg.Connection:
        conn = await connect(self.url)
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            await conn.execute(f"SET TRANSACTION SNAPSHOT {literal(self.snapshot)}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        await self.conn.close()


async def database_identity(conn: asyncpg.Connection) -> str:
    """Which database this is: the cluster's system identifier and the database's oid."""
    row = await conn.fetchrow(
        "SELECT (SELECT system_identifier FROM pg_control_system()) AS sys,"
        " d.oid, d.datname FROM pg_database d WHERE d.datname = current_database()"
    )
    assert row is not None
    return f"postgresql:{row['sys']}:{row['oid']}:{row['datname']}"


class PgSource(Source):
    """A PostgreSQL database to export: the catalog and every reader in one snapshot, taken
    when first needed."""

    engine = "postgresql"
    row_format = PGCOPY

    def __init__(self, url: str) -> None:
        self.url = url
        self._version = ""
        self._snapshot: PgSnapshot | None = None

    @property
    def version(self) -> str:
        return self._version

    async def snapshot(self) -> PgSnapshot:
        if self._snapshot is None:
            self._snapshot, self._version = await PgSnapshot.take(self.url)
        return self._snapshot

    async def fingerprint(self) -> str:
        conn = await connect(self.url)
        try:
            self._version = str(await conn.fetchval("SHOW server_version"))
            return await database_identity(conn)
        finally:
            await conn.close()

    async def catalog(self, *, tables: Sequence[str] | None, views: bool) -> Catalog:
        """The tables (for their rows), the sequences' values, the large objects, and every
        other object as pg_dump archives it, all in the export's snapshot. Raises
        ``ConnectorError`` before anything is read when pg_dump and pg_restore of the
        server's version (or newer) are missing, naming the package to install."""
        tools = await tools_for(self.url)
        snap = await self.snapshot()
        # pg_dump works on its own connection in the same snapshot, so the catalog is read
        # while it runs; the archive's list and its scripts are two pg_restore runs at once.
        catalog = Catalog(engine="postgresql", version="", tables=())
        toc: list[TocEntry] = []
        scripts = EntryScripts(prolog="", entries={})

        async def read_tables() -> None:
            nonlocal catalog
            catalog = await read_catalog(snap.conn, tables=tables)

        async def read_list() -> None:
            nonlocal toc
            toc = await read_toc(archive, tools=tools)

        async def read_scripts() -> None:
            nonlocal scripts
            scripts = await entry_scripts(archive, tools=tools)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_tables)
            archive = await dump_schema(self.url, snap.snapshot, sections=True, tools=tools)
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_list)
            tg.start_soon(read_scripts)
        return with_archive(catalog, archive, toc, scripts, tools, chosen=tables is not None)

    async def granules(
        self, table: TableDef, *, target_bytes: int = DEFAULT_GRANULE_BYTES
    ) -> list[Granule]:
        """Ranges of heap blocks of about ``target_bytes`` each; the last is open-ended. A
        partitioned table has none (its rows are its partitions'); the large objects are one."""
        if table.partitioned:
            return []
        if table.data_kind == "large_objects":
            return [Granule(1, None, None, table.estimated_rows, table.estimated_bytes)]
        conn = (await self.snapshot()).conn
        blocks = int(
            await conn.fetchval(
                "SELECT pg_relation_size($1::regclass, 'main')"
                " / current_setting('block_size')::int",
                qualified(table.schema, table.name),
            )
        )
        size = table.estimated_bytes
        count = max(1, min(blocks, math.ceil(size / max(1, target_bytes)))) if blocks else 1
        if count == 1:
            return [Granule(1, None, None, table.estimated_rows, size)]
        step = math.ceil(blocks / count)
        bounds = list(range(0, blocks, step))
        out = []
        for i, low in enumerate(bounds):
            high = bounds[i + 1] if i + 1 < len(bounds) else None
            share = ((high or blocks) - low) / blocks
            out.append(
                Granule(
                    i + 1,
                    None if i == 0 else low,
                    high,
                    round(table.estimated_rows * share),
                    round(size * share),
                )
            )
        return out

    async def check_rows_filter(
        self, table: TableDef, condition: str | None, subquery: str | None
    ) -> None:
        """Refuse a QUERY or SUBQUERY the server cannot plan, before any row moves."""
        conn = (await self.snapshot()).conn
        sql = select_sql(table, None, condition=condition, subquery=subquery)
        # In a savepoint: the connection's transaction holds the export's snapshot, and a
        # failed statement must not abort it.
        await conn.execute("SAVEPOINT pumpkit_check")
        try:
            await conn.execute("EXPLAIN " + sql)
            await conn.execute("RELEASE SAVEPOINT pumpkit_check")
        except asyncpg.PostgresError as exc:
            await conn.execute("ROLLBACK TO SAVEPOINT pumpkit_check")
            raise ConnectorError(
                f"the data filter of table {table.name!r} is not valid: {exc}", table=table.name
            ) from None

    async def open_readers(self, count: int, *, level: int) -> GranuleReaders:
        snap = await self.snapshot()
        conns: list[asyncpg.Connection] = []
        try:
            for _ in range(count):
                conns.append(await snap.reader())  # noqa: PERF401 (one at a time, each awaited)
        except BaseException:
            for conn in conns:
                await conn.close()
            raise
        return _Readers(conns, level)

    async def close(self) -> None:
        if self._snapshot is not None:
            await self._snapshot.close()
            self._snapshot = None


class _Readers(GranuleReaders):
    def __init__(self, conns: list[asyncpg.Connection], level: int) -> None:
        self.conns = conns
        # One compressor per connection: a zstd context is not shared between threads.
        self.compressors = [zstandard.ZstdCompressor(level=level) if level else None for _ in conns]
        # Threads of their own: placing a frame may wait (for room in the dump-file set) on
        # the event loop, which then needs the default threads to log and to look.
        self.limiter = anyio.CapacityLimiter(max(1, len(conns)))

    def __len__(self) -> int:
        return len(self.conns)

    async def read(
        self, reader: int, request: GranuleRequest, place: FramePlacer, stop: threading.Event
    ) -> GranuleResult:
        """Copy one granule out into frames and hand them to ``place``.

        The frames hold the COPY stream cut every ``PG_FRAME_BYTES``, not at row
        boundaries (finding them would mean parsing every field): their count is 0 but for
        the last, which carries the granule's rows (formats/dumpfile.md §5.8).
        """
        table = request.table
        if request.spec.remaps:
            raise UsageError(
                f"REMAP_DATA of table {table.name!r}: a PostgreSQL table's rows are dumped"
                " as COPY bytes, never decoded, so they cannot be remapped on export"
            )
        conn = self.conns[reader % len(self.conns)]
        compressor = self.compressors[reader % len(self.conns)]
        cipher = FrameCipher(request.key) if request.key else None
        result = GranuleResult()
        pending = bytearray()

        sequence = 0

        async def emit(count: int, *, last: bool = False) -> None:
            nonlocal sequence
            data = bytes(pending)
            pending.clear()
            # Format 1.3: the frame names its granule; FIRST holds the COPY signature, LAST
            # the trailer, so a crash-cut set shows which COPY streams are whole.
            tag = GranuleTag(request.granule.number, sequence, first=sequence == 0, last=last)
            sequence += 1

            def build_and_place() -> None:
                header, payload = build_frame(
                    FrameKind.TABLE_DATA,
                    data,
                    object_id=request.object_id,
                    count=count,
                    encoding=Encoding.PGCOPY,
                    compressor=compressor,
                    cipher=cipher,
                    tag=tag,
                )
                ref = place(header, payload)
                if ref is not None:
                    result.frames.append(ref)

            # In a thread: compression and encryption release the GIL, and a full dump-file
            # set waits in ``place``.
            await anyio.to_thread.run_sync(build_and_place, limiter=self.limiter)
            result.bytes += len(data)

        async def output(chunk: bytes) -> None:
            if stop.is_set():
                raise JobStopped
            pending.extend(chunk)
            if len(pending) >= PG_FRAME_BYTES:
                await emit(0)

        spec = request.spec
        sql = select_sql(
            table,
            request.granule,
            condition=spec.condition,
            subquery=spec.subquery,
            sample=spec.sample,
        )
        try:
            status = await conn.copy_from_query(sql, output=output, format="binary")
        except asyncpg.PostgresError as exc:
            raise ConnectorError(
                f"reading table {table.name!r} failed: {exc}", table=table.name
            ) from None
        result.rows = int(str(status).rpartition(" ")[2] or 0)
        await emit(result.rows, last=True)
        if stop.is_set():
            raise JobStopped
        return result

    async def close(self) -> None:
        for conn in self.conns:
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
