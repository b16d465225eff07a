"""An import's rows into PostgreSQL.

Each worker has its own connection and loads one granule at a time in one transaction with
its completion marker (``PgTarget.load_granule``), so a granule is loaded exactly once
whatever happens to the job. A PostgreSQL dump's frames are fed to ``COPY ... FROM STDIN
(FORMAT binary)`` as they are (decompressed, decrypted, never decoded); a SQLite dump's rows
are decoded, converted to the columns' PostgreSQL types (``pumpkit.core.typemap``) and sent
with ``copy_records_to_table``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg
import msgspec

from pumpkit.core.typemap import row_converter, to_pg_value
from pumpkit.engine.processes import Stopped
from pumpkit.engine.worker import decode_batch, read_frame
from pumpkit.errors import UsageError
from pumpkit.io.connectors.base import TableDef
from pumpkit.io.connectors.postgres import PGCOPY, PgTarget
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.store import ControlRow

if TYPE_CHECKING:
    from pumpkit.engine.control import JobRunner
    from pumpkit.engine.targets import PgImport

__all__ = ("import_pg_data",)

_frames_decoder = msgspec.msgpack.Decoder(list[list[int]])
_table_decoder = msgspec.msgpack.Decoder(TableDef)


async def import_pg_data(
    job: JobRunner, reader: DumpSetReader, target: PgImport, objects: list[ControlRow]
) -> None:
    tables = {
        r.object_name: _table_decoder.decode(r.metadata or b"")
        for r in objects
        if r.object_type == "TABLE"
    }
    for row in objects:
        if row.object_type != "TABLE":
            continue
        name = row.base_object_name or row.object_name or ""
        if any(job.selection.data_value(f, name) is not None for f in ("QUERY", "SAMPLE")) or (
            job.selection.data_remaps(name)
        ):
            raise UsageError(
                f"table {name!r}: QUERY, SAMPLE and REMAP_DATA on import are done by SQLite"
                " targets only; filter the export instead"
            )
    granules = [r for r in objects if r.object_type == "TABLE_DATA" and r.processing_state != "C"]
    granules = await job.skip_committed(granules, await target.markers(job.guid))
    conns: dict[int, asyncpg.Connection] = {}

    async def frames_of(row: ControlRow) -> AsyncIterator[bytes]:
        for frame in _frames_decoder.decode(row.frames or b"[]"):
            if job.stop_event.is_set():
                raise Stopped
            batch = await anyio.to_thread.run_sync(partial(read_frame, reader, frame))
            yield bytes(batch.payload)

    async def records_of(row: ControlRow, table: TableDef) -> AsyncIterator[tuple[Any, ...]]:
        types = target.pg_columns(table)
        skip = 1 if table.rowid_column else 0
        convert = row_converter(table.name, table.columns[skip:], [to_pg_value(t) for t in types])
        for frame in _frames_decoder.decode(row.frames or b"[]"):
            if job.stop_event.is_set():
                raise Stopped
            batch = await anyio.to_thread.run_sync(partial(read_frame, reader, frame))
            for values in decode_batch(batch, table=table.name):
                yield convert(values[skip:])

    async def work(name: str, number: int, row: ControlRow) -> None:
        if number not in conns:
            conns[number] = await target.target.loader()
        conn = conns[number]
        table = tables[row.object_name or ""]
        started = time.time()
        await job.mark(row, processing_state="R", process_name=name, start_time=started)
        schema = "public" if target.cross else table.schema
        if table.row_format == PGCOPY:
            rows = await PgTarget.load_granule(
                conn,
                table,
                schema=schema,
                name=table.name,
                copy=frames_of(row),
                job_guid=job.guid,
                process_order=row.process_order,
                expect=row.completed_rows or 0,
            )
        else:
            skip = 1 if table.rowid_column else 0
            rows = await PgTarget.load_granule(
                conn,
                table,
                schema=schema,
                name=table.name,
                records=records_of(row, table),
                job_guid=job.guid,
                process_order=row.process_order,
                columns=table.columns[skip:],
                expect=row.completed_rows or 0,
            )
        await job.mark(
            row,
            processing_state="C",
            completed_rows=rows,
            completion_time=time.time(),
            elapsed_time=time.time() - started,
        )

    try:
        await job.run_pool(granules, work, max_workers=max(job.degree, os.cpu_count() or 1, 2))
    finally:
        with anyio.CancelScope(shield=True):
            for conn in conns.values():
                try:
                    await conn.close(timeout=5)
                except (OSError, asyncpg.InterfaceError, TimeoutError):
                    conn.terminate()
