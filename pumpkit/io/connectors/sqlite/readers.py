"""The SQLite source's readers: worker processes (the seed's worker processes, for the GIL's
sake) that read granules of one snapshot and frame their rows.

Measured (benchmarks/README.md): reading rows out of SQLite into Python objects is about 70%
of an export's CPU time and holds the GIL, so worker *threads* cannot use a second core.
Each worker here is a process with its own read-only connection. The pool starts them while
the source's write lock is held (``writers_held``), so every process's read transaction
sees the same committed state: one snapshot across processes, as ``pg_dump -j`` does with
an exported snapshot.

A worker is given one granule at a time; it reads batches, encodes, compresses and frames
them, and sends each finished frame back through its pipe; the parent only places the frame
in the dump-file set (``write_built``: one ``pwritev``) and records where it went. Messages
from a worker are tagged by their first byte: ``R`` ready, ``F`` + frame, ``E`` end of
granule, ``X`` + an error message.

Each worker is a fresh interpreter (running ``pumpkit.io.connectors.sqlite.readers.main``) talking through
its stdin and stdout with length-prefixed messages: nothing of the calling application (its
``__main__``, its threads) is forked or re-imported, which multiprocessing cannot promise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio
import msgspec
import zstandard

from pumpkit.core.catalog import TableDef
from pumpkit.core.crypto import FrameCipher
from pumpkit.core.ddl import quote_ident
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    MAX_PAYLOAD,
    FrameKind,
    GranuleTag,
    build_frame,
    parse_frame_header,
)
from pumpkit.core.planner import Granule
from pumpkit.errors import ConnectorError, JobStopped, WorkerDiedError
from pumpkit.io.connectors.base import (
    FramePlacer,
    GranuleReaders,
    GranuleRequest,
    GranuleResult,
    RowSpec,
)
from pumpkit.io.connectors.sqlite.common import connect
from pumpkit.io.usercode import BatchRemap

if TYPE_CHECKING:
    from pumpkit.io.connectors.sqlite.source import SqliteSource

__all__ = (
    "BATCH_BYTES",
    "ReaderPool",
    "open_reader",
    "open_readers",
    "read_batches",
    "rows_filter_sql",
    "writers_held",
)

#: The flush threshold: a batch is about this many bytes of rows (one fetch, one frame).
BATCH_BYTES = 1 << 20
# A batch whose encoding passes this is split before it is framed (a frame holds 256 MiB).
_SPLIT_BYTES = MAX_PAYLOAD // 2
_READY, _FRAME, _END, _ERROR, _QUIT = b"R", b"F", b"E", b"X", b"Q"
_START_TIMEOUT = 60.0


_LENGTH = struct.Struct("<I")
# Not "-m": the package's __init__ would import this module before it ran as __main__.
_WORKER_COMMAND = "from pumpkit.io.connectors.sqlite.readers import main; main()"


class Channel:
    """Length-prefixed messages over a pair of byte streams (a pipe each way)."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self._reader = reader
        self._writer = writer

    def send_bytes(self, data: bytes) -> None:
        self._writer.write(_LENGTH.pack(len(data)))
        self._writer.write(data)
        self._writer.flush()

    def recv_bytes(self) -> bytes:
        head = self._reader.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            raise EOFError("the other end closed the channel")
        (size,) = _LENGTH.unpack(head)
        data = self._reader.read(size)
        if len(data) < size:
            raise EOFError("the other end closed the channel mid-message")
        return data

    def close(self) -> None:
        for stream in (self._writer, self._reader):
            with contextlib.suppress(OSError, ValueError):
                stream.close()


# --- the worker process ---------------------------------------------------------------------


def _worker_main(conn: Channel, database: str, level: int) -> None:
    # Ctrl-C belongs to the client; a worker stops when its parent says so or goes away.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        db = open_reader(database)
    except Exception as exc:
        conn.send_bytes(_ERROR + f"cannot open {database!r}: {exc}".encode())
        return
    conn.send_bytes(_READY)
    encoder = msgspec.msgpack.Encoder()
    compressor = zstandard.ZstdCompressor(level=level) if level else None
    table_decoder = msgspec.msgpack.Decoder(TableDef)
    granule_decoder = msgspec.msgpack.Decoder(Granule)
    spec_decoder = msgspec.msgpack.Decoder(RowSpec)
    remaps: dict[tuple[str, bytes], BatchRemap] = {}
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if message == _QUIT:
            return
        table_bytes, granule_bytes, object_id, spec_bytes, key = msgspec.msgpack.decode(message)
        table = table_decoder.decode(table_bytes)
        granule = granule_decoder.decode(granule_bytes)
        spec = spec_decoder.decode(spec_bytes)
        cipher = FrameCipher(key) if key else None
        try:
            remap = None
            if spec.remaps:
                cache_key = (table.name, spec_bytes)
                if cache_key not in remaps:
                    remaps[cache_key] = BatchRemap(table.name, table.columns, spec.remaps)
                remap = remaps[cache_key]
            batches = read_batches(
                db,
                table,
                granule,
                batch_bytes=BATCH_BYTES,
                condition=spec.condition,
                subquery=spec.subquery,
                sample=spec.sample,
            )
            # Each frame is sent once the next is known, so the granule's last one is sent
            # tagged LAST (format 1.3: a crash-cut set shows which granules are whole).
            held: tuple[int, bytes] | None = None
            sequence = 0
            for rows in batches:
                if remap is not None:
                    rows = remap(rows)
                for count, data in _encoded(encoder, rows):
                    if held is not None:
                        tag = GranuleTag(granule.number, sequence, first=sequence == 0, last=False)
                        _send_frame(conn, object_id, *held, compressor, cipher, tag)
                        sequence += 1
                    held = (count, data)
            if held is not None:
                tag = GranuleTag(granule.number, sequence, first=sequence == 0, last=True)
                _send_frame(conn, object_id, *held, compressor, cipher, tag)
            conn.send_bytes(_END)
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as exc:
            conn.send_bytes(_ERROR + str(exc).encode())


def _send_frame(
    conn: Channel,
    object_id: int,
    count: int,
    data: bytes,
    compressor: zstandard.ZstdCompressor | None,
    cipher: FrameCipher | None,
    tag: GranuleTag,
) -> None:
    header, payload = build_frame(
        FrameKind.TABLE_DATA,
        data,
        object_id=object_id,
        count=count,
        compressor=compressor,
        cipher=cipher,
        tag=tag,
    )
    conn.send_bytes(b"".join((_FRAME, header, payload)))


def _encoded(
    encoder: msgspec.msgpack.Encoder, rows: list[tuple[object, ...]]
) -> list[tuple[int, bytes]]:
    """``(rows, msgpack)`` of the batch, encoded once; split in halves only in the rare case
    that it passes the frame limit."""
    data = encoder.encode(rows)
    if len(rows) <= 1 or len(data) <= _SPLIT_BYTES:
        return [(len(rows), data)]
    middle = len(rows) // 2
    return _encoded(encoder, rows[:middle]) + _encoded(encoder, rows[middle:])


# --- the parent's side ------------------------------------------------------------------------


class ReaderPool:
    """``count`` worker processes reading one snapshot of ``source``. Close it when done."""

    def __init__(self, source: SqliteSource, count: int, *, level: int) -> None:
        self._conns: list[Channel] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._source = source
        self._level = level
        try:
            with writers_held(source):
                for _ in range(count):
                    process, conn = self._spawn()
                    self._processes.append(process)
                    self._conns.append(conn)
                for conn in self._conns:
                    _ready(conn)
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Channel]:
        process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_COMMAND, str(self._source.path), str(self._level)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert process.stdin is not None and process.stdout is not None
        return process, Channel(process.stdout, process.stdin)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids, by worker number (for the log, and for tests)."""
        return [p.pid for p in self._processes]

    def replace(self, worker: int) -> None:
        """Start a new process for worker ``worker`` (the old one died); blocking.

        Its read transaction begins now, under the source's write lock as the first ones'
        did: the rows it reads are those committed now (the same as the others' while
        nothing has written to the source since the export began)."""
        old, conn = self._processes[worker], self._conns[worker]
        conn.close()
        with contextlib.suppress(OSError):
            old.kill()
        old.wait(timeout=5)
        with writers_held(self._source):
            process, conn = self._spawn()
            self._processes[worker], self._conns[worker] = process, conn
            _ready(conn)

    def __len__(self) -> int:
        return len(self._conns)

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(_QUIT)
            conn.close()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._conns = []
        self._processes = []

    def read_granule(
        self, worker: int, request: GranuleRequest, place: FramePlacer, stop: threading.Event
    ) -> GranuleResult:
        """Have worker ``worker`` read one granule; hand its frames to ``place``; say where.

        Blocking: run it in a thread. Raises ``ConnectorError`` for a failure in the worker
        and ``JobStopped`` when ``stop`` is set (the pool must then be closed: the worker
        may be mid-granule).
        """
        conn = self._conns[worker]
        table = request.table
        died = WorkerDiedError(
            f"export worker {worker + 1} (process {self._processes[worker].pid}) died while"
            f" reading table {table.name!r}",
            worker=worker + 1,
            table=table.name,
        )
        try:
            conn.send_bytes(
                msgspec.msgpack.encode(
                    [
                        msgspec.msgpack.encode(table),
                        msgspec.msgpack.encode(request.granule),
                        request.object_id,
                        msgspec.msgpack.encode(request.spec),
                        request.key or b"",
                    ]
                )
            )
        except (OSError, ValueError):
            raise died from None  # it died while idle: its pipe is gone
        result = GranuleResult()
        while True:
            if stop.is_set():
                raise JobStopped
            try:
                message = conn.recv_bytes()
            except EOFError:
                raise died from None
            tag = message[:1]
            if tag == _END:
                break
            if tag == _ERROR:
                raise ConnectorError(message[1:].decode(errors="replace"), table=table.name)
            view = memoryview(message)
            header = view[1 : 1 + FRAME_HEADER_SIZE]
            parsed = parse_frame_header(header)
            ref = place(header, view[1 + FRAME_HEADER_SIZE :])
            if ref is not None:
                result.frames.append(ref)
            result.rows += parsed.count
            result.bytes += parsed.uncompressed_length
        return result


def _ready(conn: Channel) -> None:
    """Wait for a new worker's READY; raises ``ConnectorError`` when it could not start."""
    try:
        message = conn.recv_bytes()
    except EOFError:
        raise ConnectorError("an export reader process ended before it was ready") from None
    if message[:1] == _ERROR:
        raise ConnectorError(message[1:].decode(errors="replace"))


def main() -> None:
    """The worker process; its arguments are DATABASE and LEVEL."""
    database, level = sys.argv[-2], int(sys.argv[-1])
    _worker_main(Channel(sys.stdin.buffer, sys.stdout.buffer), database, level)


@contextlib.contextmanager
def writers_held(source: SqliteSource) -> Iterator[None]:
    """Hold the database's write lock (``BEGIN IMMEDIATE``) for the duration.

    Readers that start their read transaction inside it all see the same committed state:
    no writer can commit in between, and WAL (or their shared locks) keeps that state for
    them afterwards. The application's writers wait (their busy timeout) only meanwhile.
    """
    lock: sqlite3.Connection | None = None
    try:
        lock = source.connect(readonly=False)
        lock.execute("BEGIN IMMEDIATE")
    except (sqlite3.OperationalError, ConnectorError) as exc:
        if lock is not None:
            lock.close()
        lock = None
        if "locked" in str(exc) or "busy" in str(exc):
            raise ConnectorError(
                f"source database {str(source.path)!r} is locked by another writer"
                f" (waited {source.busy_timeout:g} s): {exc}"
            ) from None
        # A read-only file: nobody can write it, so every reader sees one state anyway.
    try:
        yield
    finally:
        if lock is not None:
            if lock.in_transaction:
                lock.execute("ROLLBACK")
            lock.close()


def open_reader(path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> sqlite3.Connection:
    """A read-only connection whose read transaction (its snapshot) has begun."""
    conn = connect(Path(path), readonly=True, timeout=busy_timeout)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM main.sqlite_master").fetchone()
    return conn


def rows_filter_sql(
    table: TableDef, condition: str | None, subquery: str | None, sample: float | None
) -> list[str]:
    """The WHERE terms of the data filters: QUERY's condition as given, SUBQUERY as the rows
    that ``SELECT key FROM table <subquery>`` picks, SAMPLE as a random share of rows."""
    terms = []
    if condition:
        terms.append(f"({condition})")
    if subquery:
        qname = quote_ident(table.name)
        if table.key_alias is not None:
            key = table.key_alias
        elif table.primary_key:
            key = "(" + ", ".join(quote_ident(c) for c in table.primary_key) + ")"
        else:
            raise ConnectorError(
                f"SUBQUERY needs a key of table {table.name!r} (a rowid or a primary key)",
                table=table.name,
            )
        inner = key.strip("()") if key.startswith("(") else key
        terms.append(f"{key} IN (SELECT {inner} FROM main.{qname} {subquery})")
    if sample is not None and sample < 100:
        terms.append(f"(abs(random()) % 1000000) < {int(sample * 10_000)}")
    return terms


def read_batches(
    conn: sqlite3.Connection,
    table: TableDef,
    granule: Granule,
    *,
    batch_bytes: int = 1 << 20,
    condition: str | None = None,
    subquery: str | None = None,
    sample: float | None = None,
) -> Iterator[list[tuple[object, ...]]]:
    """The rows of ``granule`` in rowid (or primary key) order, in batches of about
    ``batch_bytes`` (one ``fetchmany`` each: the rows never pass through Python one by one),
    less those the data filters leave out (see :func:`rows_filter_sql`)."""
    select = ", ".join(quote_ident(c) for c in table.columns)
    sql = f"SELECT {select} FROM main.{quote_ident(table.name)}"
    params: list[int] = []
    key = table.key_alias
    where = rows_filter_sql(table, condition, subquery, sample)
    if key is not None:
        if granule.low is not None:
            where.append(f"{key} >= ?")
            params.append(granule.low)
        if granule.high is not None:
            where.append(f"{key} <= ?")
            params.append(granule.high)
    if where:
        sql += " WHERE " + " AND ".join(where)
    if key is not None:
        sql += f" ORDER BY {key}"
    elif table.primary_key:
        sql += " ORDER BY " + ", ".join(quote_ident(c) for c in table.primary_key)
    per_row = max(1, table.estimated_bytes // max(1, table.estimated_rows))
    size = max(1, min(100_000, batch_bytes // per_row))
    try:
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield rows
    except sqlite3.DatabaseError as exc:
        raise ConnectorError(
            f"reading table {table.name!r} failed: {exc}", table=table.name
        ) from None


async def open_readers(source: SqliteSource, count: int, *, level: int) -> GranuleReaders:
    """``count`` reader processes of ``source``, all in one snapshot."""
    pool = await anyio.to_thread.run_sync(lambda: ReaderPool(source, count, level=level))
    return _Readers(pool)


class _Readers(GranuleReaders):
    """The worker processes, each reading one granule at a time (in a thread of ours that
    waits for its frames)."""

    def __init__(self, pool: ReaderPool) -> None:
        self.pool = pool
        # Threads of their own: a granule's thread may wait (for room in the dump-file set)
        # on the event loop, which then needs the default threads to log and to look.
        self.limiter = anyio.CapacityLimiter(len(pool))

    def __len__(self) -> int:
        return len(self.pool)

    async def read(
        self, reader: int, request: GranuleRequest, place: FramePlacer, stop: threading.Event
    ) -> GranuleResult:
        return await anyio.to_thread.run_sync(
            partial(self.pool.read_granule, reader % len(self.pool), request, place, stop),
            limiter=self.limiter,
        )

    async def replace(self, reader: int) -> bool:
        await anyio.to_thread.run_sync(self.pool.replace, reader % len(self.pool))
        return True

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self.pool.close)
