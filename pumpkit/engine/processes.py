"""Export workers as OS processes: the seed's worker processes, for the GIL's sake.

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

Each worker is a fresh interpreter (running ``pumpkit.engine.processes.main``) talking through
its stdin and stdout with length-prefixed messages: nothing of the calling application (its
``__main__``, its threads) is forked or re-imported, which multiprocessing cannot promise.
"""

from __future__ import annotations

import contextlib
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO

import msgspec
import zstandard

from pumpkit.core.crypto import FrameCipher
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    MAX_PAYLOAD,
    FrameHeader,
    FrameKind,
    Location,
    build_frame,
    parse_frame_header,
)
from pumpkit.core.planner import Granule
from pumpkit.engine.selecting import BatchRemap
from pumpkit.errors import ConnectorError, DumpSetFullError, PumpkitError
from pumpkit.io.connectors.base import TableDef
from pumpkit.io.connectors.sqlite import SqliteSource, open_reader, read_batches, writers_held
from pumpkit.io.dumpset.writer import DumpSetWriter

__all__ = ("BATCH_BYTES", "ExportPool", "GranuleResult", "RowSpec", "Stopped", "worker_count")

#: The flush threshold: a batch is about this many bytes of rows (one fetch, one frame).
BATCH_BYTES = 1 << 20
# A batch whose encoding passes this is split before it is framed (a frame holds 256 MiB).
_SPLIT_BYTES = MAX_PAYLOAD // 2
_READY, _FRAME, _END, _ERROR, _QUIT = b"R", b"F", b"E", b"X", b"Q"
_START_TIMEOUT = 60.0


_LENGTH = struct.Struct("<I")
# Not "-m": the package's __init__ would import this module before it ran as __main__.
_WORKER_COMMAND = "from pumpkit.engine.processes import main; main()"


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


class Stopped(Exception):
    """Raised in the parent when an immediate stop interrupts a granule."""


class RowSpec(msgspec.Struct, frozen=True):
    """What a worker reads of a table beyond the granule's key range: a QUERY condition, a
    SUBQUERY clause, a SAMPLE percentage, and REMAP_DATA (``column -> module:function``)."""

    condition: str | None = None
    subquery: str | None = None
    sample: float | None = None
    remaps: dict[str, str] = msgspec.field(default_factory=dict)


class GranuleResult(msgspec.Struct):
    frames: list[list[int]] = msgspec.field(
        default_factory=list
    )  # fileid, position, length, rows, bytes
    rows: int = 0
    bytes: int = 0


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
            for rows in batches:
                if remap is not None:
                    rows = remap(rows)
                for count, data in _encoded(encoder, rows):
                    header, payload = build_frame(
                        FrameKind.TABLE_DATA,
                        data,
                        object_id=object_id,
                        count=count,
                        compressor=compressor,
                        cipher=cipher,
                    )
                    conn.send_bytes(b"".join((_FRAME, header, payload)))
            conn.send_bytes(_END)
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as exc:
            conn.send_bytes(_ERROR + str(exc).encode())


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


class ExportPool:
    """``count`` worker processes reading one snapshot of ``source``. Close it when done."""

    def __init__(self, source: SqliteSource, count: int, *, level: int) -> None:
        self._conns: list[Channel] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        try:
            with writers_held(source):
                for _ in range(count):
                    process = subprocess.Popen(
                        [sys.executable, "-c", _WORKER_COMMAND, str(source.path), str(level)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        close_fds=True,
                    )
                    assert process.stdin is not None and process.stdout is not None
                    self._processes.append(process)
                    self._conns.append(Channel(process.stdout, process.stdin))
                for conn in self._conns:
                    message = conn.recv_bytes()
                    if message[:1] == _ERROR:
                        raise ConnectorError(message[1:].decode(errors="replace"))
        except EOFError:
            self.close()
            raise ConnectorError("an export worker process ended before it was ready") from None
        except BaseException:
            self.close()
            raise

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

    def run_granule(
        self,
        worker: int,
        table: TableDef,
        granule: Granule,
        object_id: int,
        writer: DumpSetWriter | None,
        stop: threading.Event,
        sink: Callable[[FrameHeader, memoryview], None] | None = None,
        *,
        spec: RowSpec | None = None,
        key: bytes | None = None,
        wait_for_room: Callable[[str], bool] | None = None,
    ) -> GranuleResult:
        """Have worker ``worker`` export one granule; place its frames; fsync; say where.

        ``sink``, when given, also receives every frame (an export's output module); with
        no ``writer`` the frames go only there. A frame the full dump-file set cannot take is
        written again each time ``wait_for_room`` (called with the ``DumpSetFullError``'s
        message; it blocks) says to. Blocking: run it in a thread. Raises ``ConnectorError``
        for a failure in the worker, ``Stopped`` when ``stop`` is set or ``wait_for_room``
        says not to write again (the pool must then be closed: the worker may be
        mid-granule), and ``DumpSetFullError`` when the set is full and there is no
        ``wait_for_room``.
        """
        conn = self._conns[worker]
        conn.send_bytes(
            msgspec.msgpack.encode(
                [
                    msgspec.msgpack.encode(table),
                    msgspec.msgpack.encode(granule),
                    object_id,
                    msgspec.msgpack.encode(spec or RowSpec()),
                    key or b"",
                ]
            )
        )
        result = GranuleResult()
        while True:
            if stop.is_set():
                raise Stopped
            try:
                message = conn.recv_bytes()
            except EOFError:
                raise PumpkitError(
                    f"export worker {worker + 1} died while reading table {table.name!r}"
                ) from None
            tag = message[:1]
            if tag == _END:
                break
            if tag == _ERROR:
                raise ConnectorError(message[1:].decode(errors="replace"), table=table.name)
            view = memoryview(message)
            header = view[1 : 1 + FRAME_HEADER_SIZE]
            parsed = parse_frame_header(header)
            payload = view[1 + FRAME_HEADER_SIZE :]
            if sink is not None:
                sink(parsed, payload)
            if writer is not None:
                location = _write_waiting(writer, header, payload, wait_for_room)
                result.frames.append(
                    [
                        location.fileid,
                        location.position,
                        location.length,
                        parsed.count,
                        parsed.uncompressed_length,
                    ]
                )
            result.rows += parsed.count
            result.bytes += parsed.uncompressed_length
        if writer is not None:
            writer.sync()
        return result


def _write_waiting(
    writer: DumpSetWriter,
    header: memoryview,
    payload: memoryview,
    wait_for_room: Callable[[str], bool] | None,
) -> Location:
    """``writer.write_built``, made again after each wait for room while the set is full."""
    while True:
        try:
            return writer.write_built(header, payload)
        except DumpSetFullError as full:
            if wait_for_room is None:
                raise
            if not wait_for_room(str(full)):
                raise Stopped from None


def main() -> None:
    """The worker process; its arguments are DATABASE and LEVEL."""
    database, level = sys.argv[-2], int(sys.argv[-1])
    _worker_main(Channel(sys.stdin.buffer, sys.stdout.buffer), database, level)


def worker_count(degree: int, cpus: int | None) -> int:
    """How many processes to start: enough for the degree, and for SET_PARALLEL up to the
    number of cores without starting more later."""
    return max(degree, cpus or 1, 1)
