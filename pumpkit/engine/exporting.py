"""An export job's work: plan the source's objects into the control table, write their
metadata, have the source's readers frame every granule into the dump-file set (and an output
module), and close the set with the control table in it.

A granule is recorded complete (with every frame's place) only once its frames are fsynced,
one control-table transaction per granule. A stopped or crashed export leaves its files as
they are; a restart reopens them at their last durable points and redoes the granules that
were in flight.
"""

from __future__ import annotations

import os
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import msgspec
import zstandard
from anyio.streams.memory import MemoryObjectSendStream

from pumpkit._version import __version__
from pumpkit.core import crypto
from pumpkit.core.catalog import TableDef
from pumpkit.core.control_table import (
    OBJECT_TYPES,
    ControlRow,
    FrameRef,
    ProcessingState,
    RowUpdate,
    encode_frames,
    granule_of,
    schema_archive_of,
    tables_of,
)
from pumpkit.core.frame import Encoding, Frame, FrameKind, parse_frame_header, payload_bytes
from pumpkit.core.header import HeaderBody
from pumpkit.core.jobplan import durable_points, plan_export
from pumpkit.core.pgcopy import CopyDecoder
from pumpkit.core.planner import dispatch_order, granule_target, worker_count
from pumpkit.core.rowcodec import PGCOPY
from pumpkit.core.selecting import select_catalog
from pumpkit.core.selection import Selection
from pumpkit.engine.job import Job
from pumpkit.engine.modules import Receiver, make_driver
from pumpkit.engine.pool import WorkerReplacer, run_pool
from pumpkit.errors import CopyFormatError, EncryptedError, UsageError, WorkerDiedError
from pumpkit.io.connectors import open_source
from pumpkit.io.connectors.base import FramePlacer, GranuleRequest, RowSpec, Source
from pumpkit.io.dumpset.keys import read_signing_key
from pumpkit.io.dumpset.writer import DumpSetWriter

__all__ = ("run_export",)

_encode = msgspec.msgpack.encode
_rows_encoder = msgspec.msgpack.Encoder()


async def run_export(job: Job) -> None:
    """The work of an EXPORT job (``job`` is EXECUTING and owned by this process)."""
    source = open_source(str(job.parameters["DATABASE"]))
    try:
        await _export_from(job, source)
    finally:
        with anyio.CancelScope(shield=True):
            await source.close()


async def _export_from(job: Job, source: Source) -> None:
    store = job.store
    await job.check_fingerprint("SOURCE", await source.fingerprint())
    objects = await store.rows(job.name, object_types=OBJECT_TYPES)
    restart = bool(objects)
    if not objects:
        objects = await _plan(job, source)
    if job.parameters.get("ESTIMATE_ONLY"):
        # ESTIMATE_ONLY: the plan is the answer; no dump file is written.
        await job.completing()
        return
    dump_files = job.dump_files
    outmod = job.parameters.get("OUTMOD")
    if not dump_files and not outmod:
        raise UsageError("the job has no dump file: call add_file with filetype DUMP")
    compression = str(job.parameters.get("COMPRESSION", "ALL"))
    cipher, encryption = await _encryption(job)
    body = HeaderBody(
        job_name=job.name,
        operation="EXPORT",
        job_mode=str(job.parameters.get("JOB_MODE", "FULL")),
        producer="pumpkit",
        producer_version=__version__,
        platform=f"{platform.system()}-{platform.machine()} / Python {platform.python_version()}",
        source_engine=source.engine,
        source_version=source.version,
        compression="none" if compression == "NONE" else "zstd",
        compression_level=int(job.parameters.get("COMPRESSION_LEVEL", 3)),
        metadata_compressed=compression in ("ALL", "METADATA_ONLY"),
        data_compressed=compression in ("ALL", "DATA_ONLY"),
        **encryption,
    )
    receiver = None
    if outmod:
        receiver = Receiver(make_driver(str(outmod), str(job.parameters.get("OUTMOD_PARMS") or "")))
        await receiver.start()
        await job.log(f"Rows also go to the output module {outmod}")
    if not dump_files:
        # An output module instead of dump files: the rows go there only.
        try:
            await _export_with(job, source, None, objects, receiver)
        finally:
            if receiver is not None:
                await receiver.end()
        return
    first = dump_files[0]
    durable = durable_points(objects) if restart else None
    sign_key_path = str(job.parameters.get("SIGN_KEY") or "")
    sign_key = read_signing_key(sign_key_path) if sign_key_path else None
    writer = await anyio.to_thread.run_sync(
        lambda: DumpSetWriter(
            [str(Path(f.directory) / f.file_name) for f in dump_files],
            body=body,
            guid=bytes.fromhex(job.guid.replace("-", "")),
            filesize=first.max_size,
            reusefile=first.reuse,
            durable=durable,
            cipher=cipher,
            sign_key=sign_key,
        )
    )
    if durable is not None:
        await job.log(
            "Dump files reopened at their last durable points: "
            + ", ".join(f"file {n} at {end}" for n, end in sorted(durable.items()))
        )
    job.writer = writer
    try:
        await _export_with(job, source, writer, objects, receiver)
    finally:
        # A stopped or failed export leaves its files as a crash would: restart reads them.
        writer.abandon()
        if receiver is not None:
            await receiver.end()


async def _plan(job: Job, source: Source) -> list[ControlRow]:
    """The catalog, less what the filters leave out, planned into control rows."""
    selection = job.selection
    names = job.parameters.get("NAME_LIST")
    catalog = await source.catalog(tables=names, views=job.parameters.get("JOB_MODE") != "TABLE")
    catalog, with_rows = select_catalog(catalog, selection)
    for table in catalog.tables:
        if table.name in with_rows:
            spec = row_spec(table, selection)
            if spec.condition or spec.subquery:
                await source.check_rows_filter(table, spec.condition, spec.subquery)
    total = sum(t.estimated_bytes for t in catalog.tables if t.name in with_rows)
    target = granule_target(total, worker_count(job.degree, os.cpu_count()))
    plans = {
        table.name: (
            await source.granules(table, target_bytes=target) if table.name in with_rows else []
        )
        for table in catalog.tables
    }
    objects = plan_export(catalog, plans, now=time.time())
    await job.store.insert_rows(job.name, objects)
    rows = sum(t.estimated_rows for t in catalog.tables if t.name in with_rows)
    sampled = any(f.name in ("QUERY", "SUBQUERY", "SAMPLE") for f in selection.data)
    await job.log(
        f"Estimate ({job.parameters.get('ESTIMATE') or 'STATISTICS'}): {len(catalog.tables)}"
        f" tables, {sum(len(g) for g in plans.values())} granules, {rows} rows,"
        f" {total / 1e6:.1f} MB of table data ({catalog.engine} {catalog.version})"
        + (" before the data filters" if sampled else "")
    )
    if job.parameters.get("ESTIMATE_ONLY"):
        for table in catalog.tables:
            if table.name in with_rows:
                await job.log(
                    f"  {table.name}: {table.estimated_rows} rows,"
                    f" {table.estimated_bytes / 1e6:.2f} MB"
                )
    return objects


def row_spec(table: TableDef, selection: Selection) -> RowSpec:
    """What a reader reads of ``table``: the data filters and REMAP_DATA functions."""
    condition = selection.data_value("QUERY", table.name)
    subquery = selection.data_value("SUBQUERY", table.name)
    sample = selection.data_value("SAMPLE", table.name)
    return RowSpec(
        condition=None if condition is None else str(condition),
        subquery=None if subquery is None else str(subquery),
        sample=None if sample is None else float(sample),
        remaps=selection.data_remaps(table.name),
    )


async def _encryption(job: Job) -> tuple[crypto.FrameCipher | None, dict[str, Any]]:
    """The cipher and header fields of an export: none without a password. The salt and key
    check are kept in the control table, so a restart derives the same key (and refuses a
    different password); the password itself is never stored."""
    scope = str(job.parameters.get("ENCRYPTION") or ("ALL" if job.password else "NONE"))
    salt_hex = job.parameters.get("ENCRYPTION_SALT")
    if scope == "NONE" and not salt_hex:
        return None, {}
    if not job.password:
        raise UsageError(
            f"ENCRYPTION={scope} needs the ENCRYPTION_PASSWORD"
            + (" again: a restart must be given it (it is never stored)" if salt_hex else "")
        )
    if scope == "NONE":
        scope = "ALL"
    salt = bytes.fromhex(str(salt_hex)) if salt_hex else crypto.new_salt()
    key = await anyio.to_thread.run_sync(crypto.derive_key, job.password, salt)
    check = crypto.key_check(key)
    known = job.parameters.get("ENCRYPTION_KEY_CHECK")
    if known is not None and known != check.hex():
        raise EncryptedError(
            "wrong ENCRYPTION_PASSWORD: not the one this job started with (key check differs)"
        )
    for name, value in (("ENCRYPTION_SALT", salt.hex()), ("ENCRYPTION_KEY_CHECK", check.hex())):
        if job.parameters.get(name) is None:
            await job.set_parameter(name, value)
    fields = {
        "encryption": crypto.ALGORITHM,
        "encryption_scope": scope,
        "kdf": crypto.KDF,
        "kdf_salt": salt,
        "kdf_n": crypto.SCRYPT_N,
        "kdf_r": crypto.SCRYPT_R,
        "kdf_p": crypto.SCRYPT_P,
        "key_check": check,
    }
    return crypto.FrameCipher(key), fields


def _placer(
    job: Job,
    writer: DumpSetWriter | None,
    table: TableDef,
    rows_out: MemoryObjectSendStream[tuple[str, bytes]] | None,
    cipher: crypto.FrameCipher | None,
) -> FramePlacer:
    """Where a reader's frames go: into the dump-file set (``write_built``: one ``pwritev``;
    while the set is full, the frame waits for ADD_FILE and is written again), and, for an
    output module, decoded into rows and passed to the event loop (waiting while the module
    is behind). It runs in the reader's thread."""
    decompressor = zstandard.ZstdDecompressor() if rows_out is not None else None
    copy = None
    if rows_out is not None and table.row_format == PGCOPY:
        try:
            copy = CopyDecoder(table.column_kinds, table.columns)
        except CopyFormatError as exc:
            raise UsageError(
                f"OUTMOD: the rows of table {table.name!r} cannot be decoded for an output"
                f" module: {exc}"
            ) from None

    def place(header: Any, payload: Any) -> FrameRef | None:
        parsed = parse_frame_header(header)
        if rows_out is not None:
            assert decompressor is not None
            data = payload_bytes(Frame(parsed, memoryview(payload)), decompressor, cipher)
            # An output module takes rows: a COPY stream's are decoded first.
            batch = _rows_encoder.encode(copy.feed(data)) if copy is not None else bytes(data)
            anyio.from_thread.run(rows_out.send, (table.name, batch))
        if writer is None:
            return None
        location = job.write_waiting_from_thread(partial(writer.write_built, header, payload))
        return FrameRef(
            location.fileid,
            location.position,
            location.length,
            parsed.count,
            parsed.uncompressed_length,
        )

    return place


async def _write_metadata(
    job: Job, writer: DumpSetWriter | None, objects: list[ControlRow]
) -> None:
    """One small METADATA frame per object, written by the control coroutine itself; a
    source's schema archive as one frame of its own (encoding PG_ARCHIVE), after which the
    control table keeps only what it records about it."""
    updates = []
    for row in objects:
        if row.object_type == "TABLE_DATA" or row.metadata is None or row.dump_fileid:
            continue
        update = RowUpdate()
        if row.object_type == "PG_SCHEMA":
            archive = schema_archive_of(row)
            payload, encoding, count = archive.data, Encoding.PG_ARCHIVE, archive.entries
            update.metadata = _encode(archive.info())
        else:
            meta = {
                "object_type": row.object_type,
                "schema": row.object_schema,
                "name": row.object_name,
                "definition": msgspec.msgpack.decode(row.metadata),
            }
            payload, encoding, count = _encode(meta), Encoding.MSGPACK, 1
        if writer is not None:
            loc = await job.write_waiting(
                partial(
                    writer.write_frame,
                    FrameKind.METADATA,
                    payload,
                    object_id=row.object_number or 0,
                    count=count,
                    encoding=encoding,
                )
            )
            update.dump_fileid = loc.fileid
            update.dump_position = loc.position
            update.dump_length = loc.length
        if row.object_type != "TABLE":
            update.processing_state = ProcessingState.COMPLETED
            update.completion_time = time.time()
        updates.append((row.key, update))
    if writer is not None:
        await anyio.to_thread.run_sync(writer.sync)
    await job.store.update_rows(job.name, updates)
    if updates or not job.restart_count:  # a restart whose metadata was written says nothing
        await job.log(f"Metadata written for {len(updates)} objects")


async def _export_with(
    job: Job,
    source: Source,
    writer: DumpSetWriter | None,
    objects: list[ControlRow],
    receiver: Receiver | None,
) -> None:
    await _write_metadata(job, writer, objects)
    tables = tables_of(objects)
    specs = {key: row_spec(table, job.selection) for key, table in tables.items()}
    data_cipher = writer.cipher_for(FrameKind.TABLE_DATA) if writer is not None else None
    pending = [r for r in objects if r.object_type == "TABLE_DATA" and not r.done]
    order = dispatch_order((i, r.size_estimate or 0) for i, r in enumerate(pending))
    pending = [pending[i] for i in order]
    count = worker_count(job.degree, os.cpu_count())
    # Without dump files the frames only pass through this process: no compression.
    level = writer.compression_level if writer is not None and writer.compresses_data else 0
    readers = await source.open_readers(count, level=level)
    replacer = WorkerReplacer(job, readers)
    rows_send, rows_receive = anyio.create_memory_object_stream[tuple[str, bytes]](2)
    try:

        async def work(name: str, number: int, row: ControlRow) -> None:
            table = tables[(row.object_schema or "", row.object_name or "")]
            started = time.time()
            await job.mark(
                row,
                RowUpdate(
                    processing_state=ProcessingState.RUNNING, process_name=name, start_time=started
                ),
            )
            request = GranuleRequest(
                table=table,
                granule=granule_of(row),
                object_id=row.object_number or 0,
                spec=specs[(table.schema, table.name)],
                key=None if data_cipher is None else data_cipher.key,
            )
            while True:
                place = _placer(job, writer, table, rows_send if receiver else None, data_cipher)
                try:
                    result = await readers.read(number, request, place, job.stop_event)
                    break
                except WorkerDiedError as died:
                    if receiver is not None:
                        # Rows the dead worker sent on cannot be taken back from the module.
                        raise
                    # Its frames written so far stay unrecorded (dead space): the control
                    # table records only the redone granule's.
                    await replacer.replace(number, died)
            if writer is not None:
                # A granule is recorded only once its frames are durable.
                await anyio.to_thread.run_sync(writer.sync)
            first = result.frames[0] if result.frames else None
            await job.mark(
                row,
                RowUpdate(
                    processing_state=ProcessingState.COMPLETED,
                    completed_rows=result.rows,
                    completed_bytes=result.bytes,
                    frames=encode_frames(result.frames),
                    dump_fileid=first.fileid if first else None,
                    dump_position=first.position if first else None,
                    dump_length=first.length if first else None,
                    elapsed_time=time.time() - started,
                    completion_time=time.time(),
                ),
            )

        async def feed_receiver() -> None:
            assert receiver is not None
            async with rows_receive:
                async for table_name, payload in rows_receive:
                    await receiver.send(table_name, payload)

        async with anyio.create_task_group() as tg:
            if receiver is not None:
                tg.start_soon(feed_receiver)
            async with rows_send:
                await run_pool(job, pending, work, max_workers=count)
    finally:
        rows_send.close()
        rows_receive.close()
        with anyio.CancelScope(shield=True):
            await readers.close()
    if job.stopping:
        return
    # Tables are complete once all their granules are.
    await job.mark_all(
        [r for r in objects if r.object_type == "TABLE"],
        RowUpdate(processing_state=ProcessingState.COMPLETED, completion_time=time.time()),
    )
    if receiver is not None:
        await job.log(f"{receiver.sent} rows sent to the output module")
    if writer is not None:
        await _close_set(job, writer)
    await job.completing()


async def _close_set(job: Job, writer: DumpSetWriter) -> None:
    """The control table into the set, then every file finished (INDEX, END, headers)."""
    columns, rows = await job.store.table_dump(job.name)
    payload = _encode({"table": job.name, "columns": columns, "rows": rows})
    await job.write_waiting(partial(writer.write_control_table, payload, count=len(rows)))
    paths = await anyio.to_thread.run_sync(writer.close)
    kind, done = columns.index("object_type"), columns.index("completed_rows")
    total_rows = sum(r[done] or 0 for r in rows if r[kind] == "TABLE_DATA")
    await job.log(f"Dump file set for {job.name} is: " + ", ".join(str(p) for p in paths))
    await job.log(f"Exported {total_rows} rows")
