"""The control coroutine: the seed's master control process.

It plans the job's work into the control table, hands granules to workers through bounded
streams, records each granule once it is durable (one control-table transaction per
granule, never per batch), obeys commands (stop, parallel) that reach it through the control
store, writes the log, and moves the job through its states. Export and import share that
skeleton; what differs is the pipeline a granule goes through (``pumpkit.engine.worker``).

Every task it starts lives in its one task group: stopping the job is cancelling that group.
"""

from __future__ import annotations

import itertools
import os
import platform
import random
import sqlite3
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import msgspec
import zstandard
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pumpkit._version import __version__
from pumpkit.core import crypto
from pumpkit.core.frame import Frame, FrameHeader, FrameKind, payload_bytes
from pumpkit.core.header import HEADER_SIZE, HeaderBody, decode_header
from pumpkit.core.pgcopy import CopyDecoder, CopyFormatError
from pumpkit.core.planner import Granule, Phase, dispatch_order, granule_target
from pumpkit.core.selection import OBJECT_PATHS, Selection, fold
from pumpkit.core.states import JobState
from pumpkit.core.status import StatusMask
from pumpkit.engine.load import run_load
from pumpkit.engine.modules import Receiver, make_driver
from pumpkit.engine.pgdata import import_pg_data
from pumpkit.engine.processes import RowSpec, Stopped, worker_count
from pumpkit.engine.progress import job_status
from pumpkit.engine.rehearsal import rehearse
from pumpkit.engine.selecting import (
    BatchRemap,
    job_selection,
    remap_object,
    remap_table,
    remapper,
    select_catalog,
    select_rows,
)
from pumpkit.engine.sources import ExportSource, open_source
from pumpkit.engine.targets import ImportTarget, PgImport, SqliteImport, open_target
from pumpkit.engine.worker import EncodedBatch, decode_batch, read_frame
from pumpkit.errors import (
    ConnectorError,
    CorruptDumpError,
    DumpError,
    DumpSetFullError,
    EncryptedError,
    PumpkitError,
    UsageError,
)
from pumpkit.io.connectors.base import Catalog, ObjectDef, TableDef
from pumpkit.io.connectors.postgres import PGCOPY
from pumpkit.io.connectors.sqlite import SqliteTarget
from pumpkit.io.connectors.sqlite_guard import one_line
from pumpkit.io.dumpfile import DumpSetReader, DumpSetWriter, expand_template
from pumpkit.io.store import ControlRow, ControlStore

__all__ = ("JobRunner", "run_job")

# How often the control coroutine looks for commands and beats its heart (seconds).
POLL_INTERVAL = 0.2
HEARTBEAT_INTERVAL = 1.0
# Decoded batches a reader may hold ahead of the single import writer (back-pressure).
READ_AHEAD_BATCHES = 1
OBJECT_TYPES = (
    "PRAGMA",
    "SCHEMA",
    "TYPE",
    "SEQUENCE_DEF",
    "TABLE",
    "TABLE_DATA",
    "SEQUENCE",
    "CONSTRAINT",
    "INDEX",
    "REF_CONSTRAINT",
    "TRIGGER",
    "VIEW",
    "COMMENT",
)
#: What a table needs before it can be made (PostgreSQL): planned in the TABLE band, first.
_BEFORE_TABLES = ("SCHEMA", "TYPE", "SEQUENCE_DEF")
_PHASE_OF = {
    "TABLE": Phase.TABLE,
    "TABLE_DATA": Phase.TABLE_DATA,
    "SEQUENCE": Phase.SEQUENCE,
    "CONSTRAINT": Phase.INDEX,
    "INDEX": Phase.INDEX,
    "REF_CONSTRAINT": Phase.INDEX,  # after the keys it references (the catalog's order)
    "TRIGGER": Phase.TRIGGER,
    "VIEW": Phase.VIEW,
    "COMMENT": Phase.SETTINGS_AFTER,
}
_PATH_OF = OBJECT_PATHS
# process_order bands: a phase's objects get numbers phase * BAND + n.
BAND = 1_000_000

_random = random.Random()
_encode = msgspec.msgpack.encode
_frames_decoder = msgspec.msgpack.Decoder(list[list[int]])
_table_decoder = msgspec.msgpack.Decoder(TableDef)
_object_decoder = msgspec.msgpack.Decoder(ObjectDef)


class JobTakenOver(PumpkitError):
    """The job's owner token changed under a running control coroutine."""


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


@dataclass
class JobRunner:
    """Everything the control coroutine of one job holds while it runs."""

    store: ControlStore
    job_name: str
    operation: str
    guid: str
    degree: int
    parameters: dict[str, Any]
    files: list[ControlRow]
    stop_event: threading.Event = field(default_factory=threading.Event)
    stop_mode: str | None = None  # None, "GRACEFUL", "IMMEDIATE"
    keep_master: bool | None = None
    kill: bool = False
    busy: dict[str, ControlRow | None] = field(default_factory=dict)
    log_paths: list[Path] = field(default_factory=list)
    writer: DumpSetWriter | None = None
    token: str | None = None
    restart_count: int = 0
    error_count: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)
    selection: Selection = field(default_factory=Selection)
    password: str | None = None
    # Set by a writer thread when no dump file can take more bytes; the control coroutine
    # shows it in the status until ADD_FILE lets the job go on.
    full_message: str | None = None
    shown_waiting: str | None = None

    def wake(self) -> None:
        """Tell waiting workers that the degree or the stop mode changed."""
        self.changed.set()
        self.changed = anyio.Event()

    # -- logging

    async def log(self, text: str) -> None:
        """A line into the job's log (store and LOG files)."""
        await self.store.log(self.job_name, text)
        line = f"{time.strftime('%H:%M:%S')} {text}\n"
        for path in self.log_paths:
            await anyio.to_thread.run_sync(_append, path, line)

    # -- restart

    async def check_fingerprint(self, what: str, fingerprint: str) -> None:
        """Refuse to go on when the source (or target) is not the one the job started with."""
        name = f"{what}_FINGERPRINT"
        known = self.parameters.get(name)
        if known is None:
            await self.store.set_parameter(
                self.job_name,
                ControlRow(
                    process_order=-2, object_type="PARAMETER", name=name, value_t=fingerprint
                ),
            )
            self.parameters[name] = fingerprint
        elif known != fingerprint:
            raise UsageError(
                f"the {what.lower()} database is not the one job {self.job_name} started with"
                f" ({known} then, {fingerprint} now): a restart would mix two databases;"
                " kill the job (KILL_JOB) and start a new one"
            )

    async def prepare_restart(self, skip_current: bool) -> None:
        """Granules that were in flight when the job stopped are redone, or skipped."""
        rows = await self.store.rows(self.job_name, object_types=OBJECT_TYPES, states=["R"])
        if not rows:
            return
        state = "S" if skip_current else "P"
        await self.store.update_rows(
            self.job_name,
            [
                (r.process_order, r.duplicate, r.object_type, {"processing_state": state})
                for r in rows
            ],
        )
        for r in rows:
            what = f"{r.object_type} {r.object_name} {r.partition_name or ''}".strip()
            await self.log(("Skipped " if skip_current else "Redoing ") + what)

    # -- commands

    async def obey_commands(self, scope: anyio.CancelScope) -> None:
        """Poll the store for commands and beat the heart until the job ends."""
        try:
            await self._obey_commands(scope)
        finally:
            # The job ends or is cancelled (its session left): a thread waiting for a dump
            # file (or for anything) must let go, or the cancellation waits for it for ever.
            self.stop_event.set()

    async def _obey_commands(self, scope: anyio.CancelScope) -> None:
        beat = 0.0
        while True:
            for command, argument in await self.store.take_commands(self.job_name):
                await self._obey(command, argument, scope)
            await self.sync_waiting()
            if time.monotonic() - beat >= HEARTBEAT_INTERVAL:
                beat = time.monotonic()
                owned = await self.store.update_job(
                    self.job_name, expect_token=self.token, heartbeat=time.time()
                )
                if not owned:
                    # Another process took the job over (it thought this one dead): stop
                    # touching anything at once.
                    raise JobTakenOver(
                        f"job {self.job_name} was taken over by another process; this one stops"
                    )
            await anyio.sleep(POLL_INTERVAL)

    async def _obey(self, command: str, argument: str | None, scope: anyio.CancelScope) -> None:
        if command == "STOP":
            args = msgspec.json.decode(argument or "{}")
            immediate = bool(args.get("immediate"))
            self.keep_master = args.get("keep_master")
            if self.keep_master is False:
                self.kill = True
            if immediate or self.kill:
                self.stop_mode = "IMMEDIATE"
                self.stop_event.set()
                self.wake()
                await self.store.update_job(self.job_name, state=JobState.STOPPING.value)
                await self.log("Job stop requested: immediate" + (" (kill)" if self.kill else ""))
                scope.cancel()
            elif self.stop_mode is None:
                self.stop_mode = "GRACEFUL"
                self.wake()
                await self.store.update_job(self.job_name, state=JobState.STOP_PENDING.value)
                await self.log("Job stop requested: workers finish their current granule")
        elif command == "PARALLEL":
            degree = int(argument or "1")
            self.degree = degree
            self.wake()
            await self.store.update_job(self.job_name, degree=degree)
            await self.log(f"Degree of parallelism set to {degree}")
        elif command == "LOG":
            await self.log(argument or "")
        elif command == "ADD_FILE" and self.writer is not None and argument:
            self.writer.add_template(argument)
            await self.log(f"Dump file {argument} added")

    @property
    def stopping(self) -> bool:
        return self.stop_mode is not None

    def dump_set_full(self, message: str | None) -> bool:
        """Called by a writer thread while no file can take more bytes (``message``) and once
        it can again (``None``); returns whether to go on waiting (not while stopping)."""
        self.full_message = message
        return not self.stopping and not self.stop_event.is_set()

    async def sync_waiting(self) -> None:
        """Show what a writer waits for, or that it has stopped waiting, if that changed since
        last shown. Called by the command loop and once more when the work is done: a writer
        that got its file and finished before the loop's next turn is still reported."""
        if self.full_message != self.shown_waiting:
            await self.show_waiting(self.full_message)

    async def show_waiting(self, message: str | None) -> None:
        self.shown_waiting = message
        await self.store.set_parameter(
            self.job_name,
            ControlRow(
                process_order=-2, object_type="PARAMETER", name="WAITING_FOR", value_t=message
            ),
        )
        if message:
            await self.log(f"Waiting: {message}")
        else:
            await self.log("A dump file was added: the job goes on")

    # -- progress

    async def mark(self, row: ControlRow, **fields: Any) -> None:
        fields.setdefault("last_update", time.time())
        await self.store.update_rows(
            self.job_name, [(row.process_order, row.duplicate, row.object_type, fields)]
        )

    async def set_worker(self, name: str, row: ControlRow | None) -> None:
        self.busy[name] = row
        await self.store.set_parameter(
            self.job_name,
            ControlRow(
                process_order=-4,
                object_type="WORKER",
                name=name,
                state="WORKING" if row else "IDLE",
                object_schema=row.object_schema if row else None,
                object_name=row.object_name if row else None,
                base_object_type=row.object_type if row else None,
                partition_name=row.partition_name if row else None,
                last_update=time.time(),
            ),
        )

    async def skip_committed(
        self, granules: list[ControlRow], markers: dict[int, int]
    ) -> list[ControlRow]:
        """Exactly-once on restart: a granule whose marker the target holds was committed
        with its rows; it is recorded complete and not loaded again. The others."""
        done = [r for r in granules if r.process_order in markers]
        if done:
            await self.store.update_rows(
                self.job_name,
                [
                    (r.process_order, r.duplicate, r.object_type, {"processing_state": "C"})
                    for r in done
                ],
            )
        return [r for r in granules if r.process_order not in markers]

    # -- the worker pool (shared by export and import)

    async def run_pool(
        self,
        items: Sequence[ControlRow],
        work: Callable[[str, int, ControlRow], Awaitable[None]],
        *,
        max_workers: int,
    ) -> None:
        """Hand ``items`` to workers through a bounded stream; at most ``degree`` busy at once.

        A worker whose number is at or above the current degree takes nothing new, so
        SET_PARALLEL changes the number of busy workers while the job runs. A graceful stop
        lets every worker finish the item it holds and hands out nothing more.
        """
        send: MemoryObjectSendStream[ControlRow]
        receive: MemoryObjectReceiveStream[ControlRow]
        send, receive = anyio.create_memory_object_stream[ControlRow](0)

        fed = False

        async def feed() -> None:
            nonlocal fed
            async with send:
                for item in items:
                    if self.stopping:
                        break
                    try:
                        await send.send(item)
                    except anyio.BrokenResourceError:
                        break  # every worker left (an orderly stop): nothing more to hand out
            # Idle workers above the degree must learn that nothing more is coming.
            fed = True
            self.wake()

        async def worker(number: int, stream: MemoryObjectReceiveStream[ControlRow]) -> None:
            name = f"WORKER_{number + 1:02d}"
            async with stream:
                while True:
                    while number >= self.degree and not self.stopping and not fed:
                        await self.changed.wait()
                    if self.stopping:
                        return
                    try:
                        item = await stream.receive()
                    except anyio.EndOfStream:
                        break
                    await self.set_worker(name, item)
                    try:
                        await work(name, number, item)
                    except Stopped:
                        # An immediate stop: the granule stays unfinished and is redone on restart.
                        return
                    await self.set_worker(name, None)

        # Closed here too: a worker task cancelled before it began never enters its own.
        clones = [receive.clone() for _ in range(max_workers)]
        receive.close()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(feed)
                for n in range(max_workers):
                    tg.start_soon(worker, n, clones[n])
        finally:
            send.close()
            for clone in clones:
                clone.close()


# --- planning ---------------------------------------------------------------------------------


def plan_export(catalog: Catalog, granules: dict[str, list[Granule]]) -> list[ControlRow]:
    """The control rows of an export: one per object and one per data granule, in order."""
    rows: list[ControlRow] = []
    counters: dict[Phase, int] = {}
    now = time.time()

    def order(phase: Phase) -> int:
        counters[phase] = counters.get(phase, 0) + 1
        return phase * BAND + counters[phase]

    object_number = 0
    for obj in catalog.objects:
        if obj.object_type == "PRAGMA":
            object_number += 1
            rows.append(_object_row(obj, order(Phase.SETTINGS_AFTER), object_number, now))
    for obj in catalog.objects:
        if obj.object_type in _BEFORE_TABLES:
            object_number += 1
            rows.append(_object_row(obj, order(Phase.TABLE), object_number, now))
    for table in catalog.tables:
        object_number += 1
        table_number = object_number
        rows.append(
            ControlRow(
                process_order=order(Phase.TABLE),
                object_type="TABLE",
                object_type_path=_PATH_OF["TABLE"],
                object_schema=table.schema,
                object_name=table.name,
                object_number=table_number,
                processing_state="P",
                size_estimate=table.estimated_bytes,
                granules=len(granules[table.name]),
                metadata=_encode(table),
                last_update=now,
            )
        )
        rows.extend(
            ControlRow(
                process_order=order(Phase.TABLE_DATA),
                duplicate=g.number,
                object_type="TABLE_DATA",
                object_type_path=_PATH_OF["TABLE_DATA"],
                object_schema=table.schema,
                object_name=table.name,
                base_object_type="TABLE",
                base_object_name=table.name,
                base_object_schema=table.schema,
                partition_name=_granule_label(g),
                object_number=table_number,
                processing_state="P",
                size_estimate=g.estimated_bytes,
                estimated_rows=g.estimated_rows,
                completed_rows=0,
                granule_low=g.low,
                granule_high=g.high,
                metadata=_encode(g),
                last_update=now,
            )
            for g in granules[table.name]
        )
    for obj in catalog.objects:
        if obj.object_type in _PHASE_OF:
            object_number += 1
            rows.append(_object_row(obj, order(_PHASE_OF[obj.object_type]), object_number, now))
    return rows


def _object_row(obj: ObjectDef, process_order: int, number: int, now: float) -> ControlRow:
    return ControlRow(
        process_order=process_order,
        object_type=obj.object_type,
        object_type_path=_PATH_OF[obj.object_type],
        object_schema=obj.schema,
        object_name=obj.name,
        base_object_type="TABLE" if obj.table and obj.object_type != "VIEW" else None,
        base_object_name=obj.table or None,
        object_number=number,
        processing_state="P",
        metadata=_encode(obj),
        last_update=now,
    )


def _decode_and_insert(
    target: SqliteTarget,
    sql: str,
    batch: EncodedBatch,
    table: TableDef,
    pipe: _ImportRows | None = None,
    copy: CopyDecoder | None = None,
) -> int:
    """Decode a batch and insert it; the rows inserted. In one thread, back to back: see
    pumpkit.engine.worker on why. ``copy`` decodes a PostgreSQL dump's COPY stream, whose
    frames need not end on a row."""
    if copy is not None:
        try:
            rows = copy.feed(batch.payload)
        except CopyFormatError as exc:
            raise CorruptDumpError(
                f"rows of table {table.name!r} do not decode: {exc}",
                path=batch.path,
                offset=batch.position,
            ) from None
    else:
        rows = decode_batch(batch, table=table.name)
    if pipe is None:
        target.insert(sql, rows, table=table.name)
        return len(rows)
    rows = pipe.transform(rows)
    if pipe.condition:
        return target.insert_where(table, rows, pipe.condition)
    target.insert(sql, rows, table=table.name)
    return len(rows)


@dataclass
class _ImportRows:
    """The data filters and REMAP_DATA of one table on import."""

    condition: str | None
    sample: float | None
    remap: BatchRemap | None
    drop_first: bool = False  # the source's hidden rowid, left out when appending

    def transform(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if self.sample is not None and self.sample < 100:
            share = self.sample / 100
            rows = [r for r in rows if _random.random() < share]
        if self.remap is not None:
            rows = self.remap(rows)  # over the source's columns, rowid included
        if self.drop_first:
            rows = [r[1:] for r in rows]
        return rows


def _import_rows(table: TableDef, source_name: str, selection: Selection) -> _ImportRows | None:
    condition = selection.data_value("QUERY", source_name)
    sample = selection.data_value("SAMPLE", source_name)
    source_table = msgspec.structs.replace(table, name=source_name)
    remap = remapper(source_table, selection)
    if condition is None and sample is None and remap is None:
        return None
    return _ImportRows(
        None if condition is None else str(condition),
        None if sample is None else float(sample),
        remap,
    )


def _sink(
    table: str,
    send: MemoryObjectSendStream[tuple[str, bytes]],
    cipher: crypto.FrameCipher | None = None,
) -> Callable[[FrameHeader, memoryview], None]:
    """What a worker thread does with each frame for the output module: decompress it (zstd
    releases the GIL) and pass it to the event loop, waiting while the module is behind."""
    decompressor = zstandard.ZstdDecompressor()

    def sink(header: FrameHeader, payload: memoryview) -> None:
        data = payload_bytes(Frame(header, payload), decompressor, cipher)
        anyio.from_thread.run(send.send, (table, bytes(data)))

    return sink


def durable_points(objects: Sequence[ControlRow]) -> dict[int, int]:
    """For every dump file, the end of the last frame the control table records in it."""
    ends: dict[int, int] = {}
    for row in objects:
        spans: list[list[int]] = []
        if row.object_type == "TABLE_DATA" and row.processing_state == "C" and row.frames:
            spans = _frames_decoder.decode(row.frames)
        elif row.object_type != "TABLE_DATA" and row.dump_fileid and row.dump_position:
            spans = [[row.dump_fileid, row.dump_position, row.dump_length or 0]]
        for fileid, position, length, *_ in spans:
            ends[fileid] = max(ends.get(fileid, 0), position + length)
    return ends


def _granule_label(g: Granule) -> str:
    low = "min" if g.low is None else str(g.low)
    high = "max" if g.high is None else str(g.high)
    return f"ROWID {low}..{high}"


# --- export -----------------------------------------------------------------------------------


async def run_export(job: JobRunner) -> None:
    database = str(job.parameters["DATABASE"])
    source = open_source(database)
    try:
        await _export_from(job, source)
    finally:
        with anyio.CancelScope(shield=True):
            await source.close()


async def _export_from(job: JobRunner, source: ExportSource) -> None:
    store = job.store
    await job.check_fingerprint("SOURCE", await source.fingerprint())
    objects = await store.rows(job.job_name, object_types=OBJECT_TYPES)
    restart = bool(objects)
    if not objects:
        objects = await _plan_export(job, source)
    if job.parameters.get("ESTIMATE_ONLY"):
        # ESTIMATE_ONLY: the plan is the answer; no dump file is written.
        await job.store.update_job(job.job_name, state=JobState.COMPLETING.value)
        return
    dump_files = [f for f in job.files if f.file_type == "DUMP"]
    outmod = job.parameters.get("OUTMOD")
    if not dump_files and not outmod:
        raise UsageError("the job has no dump file: call add_file with filetype DUMP")
    compression = str(job.parameters.get("COMPRESSION", "ALL"))
    cipher, encryption = await _export_encryption(job)
    body = HeaderBody(
        job_name=job.job_name,
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
    if outmod and source.engine != "sqlite":
        raise UsageError(
            f"OUTMOD: an output module gets decoded rows; a {source.engine} source's rows are"
            " dumped as COPY bytes, never decoded"
        )
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
    writer = await anyio.to_thread.run_sync(
        lambda: DumpSetWriter(
            [str(Path(f.user_directory or ".") / (f.user_file_name or "")) for f in dump_files],
            body=body,
            guid=bytes.fromhex(job.guid.replace("-", "")),
            filesize=first.file_max_size,
            reusefile=bool(first.value_n),
            durable=durable,
            cipher=cipher,
        )
    )
    # A full set waits for ADD_FILE instead of failing (Oracle stops with ORA-39095 here).
    writer.when_full = job.dump_set_full
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


async def _plan_export(job: JobRunner, source: ExportSource) -> list[ControlRow]:
    """The catalog, less what the filters leave out, planned into control rows."""
    selection = job.selection
    names = job.parameters.get("NAME_LIST")
    catalog = await source.catalog(tables=names, views=job.parameters.get("JOB_MODE") != "TABLE")
    catalog, with_rows = select_catalog(catalog, selection)
    for table in catalog.tables:
        if table.name in with_rows:
            spec = _row_spec(table, selection)
            if spec.condition or spec.subquery:
                await source.check_rows_filter(table, spec.condition, spec.subquery)
    plans: dict[str, list[Granule]] = {}
    target = granule_target(
        sum(t.estimated_bytes for t in catalog.tables if t.name in with_rows),
        worker_count(job.degree, os.cpu_count()),
    )
    for table in catalog.tables:
        plans[table.name] = (
            await source.granules(table, target_bytes=target) if table.name in with_rows else []
        )
    objects = plan_export(catalog, plans)
    await job.store.insert_rows(job.job_name, objects)
    total = sum(t.estimated_bytes for t in catalog.tables if t.name in with_rows)
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


def _row_spec(table: TableDef, selection: Selection) -> RowSpec:
    """What a worker reads of ``table``: the data filters and REMAP_DATA functions."""
    condition = selection.data_value("QUERY", table.name)
    subquery = selection.data_value("SUBQUERY", table.name)
    sample = selection.data_value("SAMPLE", table.name)
    return RowSpec(
        condition=None if condition is None else str(condition),
        subquery=None if subquery is None else str(subquery),
        sample=None if sample is None else float(sample),
        remaps=selection.data_remaps(table.name),
    )


async def _export_encryption(job: JobRunner) -> tuple[crypto.FrameCipher | None, dict[str, Any]]:
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
            await job.store.set_parameter(
                job.job_name,
                ControlRow(process_order=-2, object_type="PARAMETER", name=name, value_t=value),
            )
            job.parameters[name] = value
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


async def _export_with(
    job: JobRunner,
    source: ExportSource,
    writer: DumpSetWriter | None,
    objects: list[ControlRow],
    receiver: Receiver | None,
) -> None:
    store = job.store
    # Metadata first: one small frame per object, written by the control coroutine itself.
    updates = []
    for row in objects:
        if row.object_type == "TABLE_DATA" or row.metadata is None or row.dump_fileid:
            continue
        meta = {
            "object_type": row.object_type,
            "schema": row.object_schema,
            "name": row.object_name,
            "definition": msgspec.msgpack.decode(row.metadata),
        }
        fields: dict[str, Any] = {}
        if writer is not None:
            # In a thread: a full set waits there for ADD_FILE, which this loop must obey.
            loc = await anyio.to_thread.run_sync(
                partial(
                    writer.write_frame,
                    FrameKind.METADATA,
                    _encode(meta),
                    object_id=row.object_number or 0,
                    count=1,
                )
            )
            fields.update(
                dump_fileid=loc.fileid, dump_position=loc.position, dump_length=loc.length
            )
        if row.object_type != "TABLE":
            fields["processing_state"] = "C"
            fields["completion_time"] = time.time()
        updates.append((row.process_order, row.duplicate, row.object_type, fields))
    if writer is not None:
        await anyio.to_thread.run_sync(writer.sync)
    await store.update_rows(job.job_name, [u for u in updates if u[3]])
    await job.log(f"Metadata written for {len(updates)} objects")

    tables = {
        r.object_name: _table_decoder.decode(r.metadata)
        for r in objects
        if r.object_type == "TABLE" and r.metadata is not None
    }
    specs = {name: _row_spec(table, job.selection) for name, table in tables.items()}
    data_cipher = writer.cipher_for(FrameKind.TABLE_DATA) if writer is not None else None
    pending = [r for r in objects if r.object_type == "TABLE_DATA" and r.processing_state != "C"]
    order = dispatch_order((i, r.size_estimate or 0) for i, r in enumerate(pending))
    pending = [pending[i] for i in order]
    count = worker_count(job.degree, os.cpu_count())
    # Without dump files the frames only pass through this process: no compression.
    level = writer.compression_level if writer is not None and writer.compresses_data else 0
    pool = await source.open_workers(count, level=level)
    rows_send, rows_receive = anyio.create_memory_object_stream[tuple[str, bytes]](2)
    try:

        async def work(name: str, number: int, row: ControlRow) -> None:
            table = tables[row.object_name or ""]
            granule = msgspec.msgpack.decode(row.metadata or b"", type=Granule)
            started = time.time()
            await job.mark(row, processing_state="R", process_name=name, start_time=started)
            try:
                result = await pool.run_granule(
                    number,
                    table,
                    granule,
                    row.object_number or 0,
                    writer,
                    job.stop_event,
                    None if receiver is None else _sink(table.name, rows_send, data_cipher),
                    spec=specs[table.name],
                    key=None if data_cipher is None else data_cipher.key,
                )
            except DumpSetFullError:
                if job.stopping or job.stop_event.is_set():
                    raise Stopped from None  # stopped while waiting for ADD_FILE
                raise
            first = result.frames[0] if result.frames else [None, None, None]
            await job.mark(
                row,
                processing_state="C",
                completed_rows=result.rows,
                completed_bytes=result.bytes,
                frames=_encode(result.frames),
                dump_fileid=first[0],
                dump_position=first[1],
                dump_length=first[2],
                elapsed_time=time.time() - started,
                completion_time=time.time(),
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
                await job.run_pool(pending, work, max_workers=count)
    finally:
        rows_send.close()
        rows_receive.close()
        with anyio.CancelScope(shield=True):
            await pool.close()
    if job.stopping:
        return
    # Tables are complete once all their granules are.
    await store.update_rows(
        job.job_name,
        [
            (
                r.process_order,
                r.duplicate,
                "TABLE",
                {"processing_state": "C", "completion_time": time.time()},
            )
            for r in objects
            if r.object_type == "TABLE"
        ],
    )
    await job.store.update_job(job.job_name, state=JobState.COMPLETING.value)
    if receiver is not None:
        await job.log(f"{receiver.sent} rows sent to the output module")
    if writer is None:
        return
    columns, rows = await store.table_dump(job.job_name)
    payload = _encode({"table": job.job_name, "columns": columns, "rows": rows})
    await anyio.to_thread.run_sync(partial(writer.write_control_table, payload, count=len(rows)))
    paths = await anyio.to_thread.run_sync(writer.close)
    total_rows = sum(
        r[CONTROL_INDEX["completed_rows"]] or 0
        for r in rows
        if r[CONTROL_INDEX["object_type"]] == "TABLE_DATA"
    )
    await job.log(f"Dump file set for {job.job_name} is: " + ", ".join(str(p) for p in paths))
    await job.log(f"Exported {total_rows} rows")


CONTROL_INDEX = {name: i for i, name in enumerate(ControlRow.__struct_fields__)}


# --- import -----------------------------------------------------------------------------------


def plan_import(
    export_columns: Sequence[str], export_rows: Sequence[Sequence[Any]]
) -> list[ControlRow]:
    """The import's control rows from the export's control table copied into the dump."""
    known = set(ControlRow.__struct_fields__)
    rows = []
    now = time.time()
    for values in export_rows:
        fields = {c: v for c, v in zip(export_columns, values, strict=False) if c in known}
        if fields.get("object_type") not in OBJECT_TYPES:
            continue
        if fields.get("object_type") == "TABLE_DATA" and fields.get("processing_state") != "C":
            continue
        fields.update(
            processing_state="P",
            process_name=None,
            start_time=None,
            completion_time=None,
            elapsed_time=None,
            last_update=now,
        )
        if fields["object_type"] != "TABLE_DATA":
            fields["completed_rows"] = None
        rows.append(ControlRow(**fields))
    return rows


async def run_import(job: JobRunner) -> None:
    dump_files = [f for f in job.files if f.file_type == "DUMP"]
    if not dump_files:
        raise UsageError("the job has no dump file: call add_file with filetype DUMP")
    paths = [
        path
        for f in dump_files
        for path in existing_set_files(Path(f.user_directory or "."), f.user_file_name or "")
    ]
    reader = await anyio.to_thread.run_sync(DumpSetReader.open, paths)
    try:
        # A wrong password fails here, on the header's key check, before any row.
        await anyio.to_thread.run_sync(reader.unlock, job.password)
        sql_files = [f for f in job.files if f.file_type == "SQL"]
        if sql_files:
            await _write_sqlfile(job, reader, sql_files[0])
        else:
            await _import_with(job, reader)
    finally:
        reader.close()


async def _planned_import(
    job: JobRunner, reader: DumpSetReader, target_engine: str = "sqlite"
) -> list[ControlRow]:
    """The import's control rows: the export's, less what the filters leave out, under the
    names the remaps give."""
    payload = await anyio.to_thread.run_sync(reader.control_table)
    if payload is None:
        raise DumpError(
            "the dump-file set holds no control table (was its export completed?)",
            path=str(reader.path_of(reader.file_numbers[0])),
        )
    doc = msgspec.msgpack.decode(payload)
    selection = job.selection
    objects = select_rows(plan_import(doc["columns"], doc["rows"]), selection)
    for schema in {r.object_schema for r in objects if r.object_schema}:
        remapped = selection.remapped_schema(schema)
        if remapped == schema:
            continue
        if target_engine == "sqlite" and remapped != "main":
            raise UsageError(
                f"REMAP_SCHEMA {schema}:{remapped}: a SQLite target has the one schema main"
            )
        if target_engine != "sqlite":
            raise UsageError(
                f"REMAP_SCHEMA {schema}:{remapped}: not done on a {target_engine} target yet"
            )
    return [_remapped_row(r, selection) for r in objects]


def _remapped_row(row: ControlRow, selection: Selection) -> ControlRow:
    """A control row under REMAP_TABLE: its metadata rewritten, its names changed. A data
    granule keeps the source table's name in ``base_object_name`` (the data filters and
    REMAP_DATA name source tables, as impdp's do)."""
    if row.object_type == "TABLE":
        table = remap_table(_table_decoder.decode(row.metadata or b""), selection)
        return msgspec.structs.replace(row, object_name=table.name, metadata=_encode(table))
    if row.object_type == "TABLE_DATA":
        return msgspec.structs.replace(
            row, object_name=selection.remapped_table(row.object_name or "")
        )
    obj = remap_object(_object_decoder.decode(row.metadata or b""), selection)
    return msgspec.structs.replace(
        row,
        object_name=obj.name,
        base_object_name=obj.table or row.base_object_name,
        metadata=_encode(obj),
    )


async def _write_sqlfile(job: JobRunner, reader: DumpSetReader, file: ControlRow) -> None:
    """SQLFILE: the DDL the import would run, in its order, into the SQL file; no database
    is opened or changed."""
    objects = await _planned_import(job, reader)
    path = Path(file.user_directory or ".") / (file.user_file_name or "")
    # Each statement rehearsed through the guard on a scratch database: what an import would
    # refuse is not written as SQL (the sqlite3 shell would run it), only named in a comment.
    files = {n: str(reader.path_of(n)) for n in reader.file_numbers}
    engine = reader.header.body.source_engine or "sqlite"
    checked = await anyio.to_thread.run_sync(
        partial(rehearse, objects, files, source_engine=engine)
    )
    lines = [
        f"-- pumpkit {__version__} SQLFILE of dump-file set {reader.header.guid_hex}"
        f" (job {one_line(reader.header.body.job_name)}); nothing was imported",
        *checked.header,
        "",
    ]
    content_ddl = job.selection.content != "DATA_ONLY"
    for row in objects:
        if row.object_type == "TABLE" and content_ddl:
            refused = checked.refused.get(row.process_order)
            table_sql = [_statement(_table_decoder.decode(row.metadata or b"").ddl)]
            lines += [*([refused] if refused else table_sql), ""]
    for row in objects:
        if row.object_type in ("TABLE", "TABLE_DATA"):
            continue
        refused = checked.refused.get(row.process_order)
        if refused:
            lines += [refused, ""]
            continue
        obj = _object_decoder.decode(row.metadata or b"")
        lines += [*_object_sql(obj), ""]
    text = "\n".join(lines)
    await anyio.to_thread.run_sync(path.write_text, text, "utf-8")
    await job.log(
        f"SQL file {path} written: {len(objects)} objects ({len(checked.refused)} refused by"
        " the guard, left out), no database changed"
    )
    await job.store.update_job(job.job_name, state=JobState.COMPLETING.value)


def _statement(sql: str) -> str:
    sql = sql.rstrip()
    if sql.endswith(";"):
        return sql
    # After a trailing -- comment, a ';' on the same line would be part of the comment.
    return sql + ";" if sqlite3.complete_statement(sql + ";") else sql + "\n;"


def _object_sql(obj: ObjectDef) -> list[str]:
    """The SQL a normal import runs for an object (a sequence value or a setting included)."""
    if obj.object_type == "SEQUENCE":
        name = "'" + obj.table.replace("'", "''") + "'"
        value = int(obj.value or 0)
        return [
            f"INSERT INTO sqlite_sequence (name, seq) SELECT {name}, {value}"
            f" WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {name});",
            f"UPDATE sqlite_sequence SET seq = {value} WHERE name = {name};",
        ]
    if obj.object_type == "PRAGMA":
        return [f"PRAGMA {obj.name} = {int(obj.value or 0)};"]
    return [_statement(obj.ddl)]


async def _import_with(job: JobRunner, reader: DumpSetReader) -> None:
    store = job.store
    objects = await store.rows(job.job_name, object_types=OBJECT_TYPES)
    database = str(job.parameters["DATABASE"])
    source_engine = reader.header.body.source_engine or "sqlite"
    target = await open_target(database, source_engine)
    try:
        await job.check_fingerprint("DUMPSET", reader.header.guid_hex)
        await job.check_fingerprint("TARGET", await target.fingerprint())
        # The dump's plan under the job's filters, before TABLE_EXISTS_ACTION: what the
        # dump names (a restart checks its objects against it too).
        planned = await _planned_import(job, reader, target.engine)
        if not objects:
            objects = planned
            tables = [
                _table_decoder.decode(r.metadata or b"")
                for r in objects
                if r.object_type == "TABLE"
            ]
            present = await target.existing_tables(tables)
            objects = await _table_exists_actions(job, objects, present)
            await store.insert_rows(job.job_name, objects)
            cross = (
                f", {source_engine} to {target.engine}" if source_engine != target.engine else ""
            )
            await job.log(
                f"Import of {len(tables)} tables from {reader.header.body.job_name}"
                f" ({reader.header.guid_hex}{cross}) planned"
            )
        # The plan is the dump's word: checked, and what it names bounds what it may touch.
        files = {n: str(reader.path_of(n)) for n in reader.file_numbers}
        await target.declare(objects, planned, files)
        await target.ensure_markers()
        await _import_objects(job, target, objects, before_data=True)
        if isinstance(target, PgImport):
            await import_pg_data(job, reader, target, objects)
        else:
            assert isinstance(target, SqliteImport)
            await _import_data(job, reader, target.target, objects)
        if job.stopping:
            return
        await _import_objects(job, target, objects, before_data=False)
        await job.store.update_job(job.job_name, state=JobState.COMPLETING.value)
        await target.drop_markers(job.guid)
    finally:
        with anyio.CancelScope(shield=True):
            await target.close()


def _owner(row: ControlRow) -> str:
    """The table a control row belongs to (its own name for a table and its data)."""
    if row.object_type in ("TABLE", "TABLE_DATA"):
        return row.object_name or ""
    return row.base_object_name or ""


def _exists_action(job: JobRunner) -> str:
    """TABLE_EXISTS_ACTION, by default SKIP (APPEND when CONTENT=DATA_ONLY), as impdp."""
    given = job.parameters.get("TABLE_EXISTS_ACTION")
    return str(given or ("APPEND" if job.selection.content == "DATA_ONLY" else "SKIP"))


async def _table_exists_actions(
    job: JobRunner, objects: list[ControlRow], present: list[str]
) -> list[ControlRow]:
    """Tables the target has already: SKIP leaves them (and their rows, indexes, triggers)
    alone; APPEND, TRUNCATE and REPLACE are noted on the TABLE row for the table step."""
    if not present:
        return objects
    action = _exists_action(job)
    if action == "REPLACE" and job.selection.content == "DATA_ONLY":
        raise UsageError(
            "TABLE_EXISTS_ACTION=REPLACE recreates tables, which CONTENT=DATA_ONLY does not do"
            " (as in impdp): use TRUNCATE or APPEND"
        )
    folded = {fold(p) for p in present}
    if action == "SKIP":
        for name in present:
            await job.log(
                f'Table "{name}" exists: skipped with its data (TABLE_EXISTS_ACTION=SKIP)'
            )
        return [r for r in objects if r.object_type == "VIEW" or fold(_owner(r)) not in folded]
    for name in present:
        await job.log(f'Table "{name}" exists: TABLE_EXISTS_ACTION={action}')
    return [
        msgspec.structs.replace(r, value_t=f"EXISTS:{action}")
        if r.object_type == "TABLE" and fold(r.object_name or "") in folded
        else r
        for r in objects
    ]


async def _import_objects(
    job: JobRunner, target: ImportTarget, objects: list[ControlRow], *, before_data: bool
) -> None:
    for row in objects:
        if row.processing_state == "C" or row.object_type == "TABLE_DATA":
            continue
        if (row.process_order < Phase.TABLE_DATA * BAND) != before_data:
            continue
        if job.stopping:
            return
        if row.object_type == "TABLE":
            table = _table_decoder.decode(row.metadata or b"")
            exists = await target.table_exists(table)
            action = (row.value_t or "").removeprefix("EXISTS:")
            if not exists and job.selection.content == "DATA_ONLY":
                raise ConnectorError(
                    f"table {table.name!r} does not exist in the target: CONTENT=DATA_ONLY"
                    " loads rows into existing tables",
                    table=table.name,
                )
            notes: list[str] = []
            if exists and action == "TRUNCATE":
                await target.truncate(table)
                await job.log(f'Table "{table.name}" truncated')
            elif exists and action == "REPLACE":
                await target.drop_table(table)
                notes = await target.create_table(table)
                await job.log(f'Table "{table.name}" replaced')
            elif not exists:
                notes = await target.create_table(table)
            for note in notes:
                await job.log(note)
        else:
            obj = _object_decoder.decode(row.metadata or b"")
            left_out = await target.create_object(obj)
            if left_out is not None:
                await job.log(left_out)
        row.processing_state = "C"
        await job.mark(row, processing_state="C", completion_time=time.time())


async def _import_data(
    job: JobRunner, reader: DumpSetReader, target: SqliteTarget, objects: list[ControlRow]
) -> None:
    tables = {
        r.object_name: _table_decoder.decode(r.metadata or b"")
        for r in objects
        if r.object_type == "TABLE"
    }
    granules = [r for r in objects if r.object_type == "TABLE_DATA" and r.processing_state != "C"]
    appending = {
        r.object_name
        for r in objects
        if r.object_type == "TABLE"
        and (
            r.value_t == "EXISTS:APPEND"
            or (job.selection.content == "DATA_ONLY" and r.value_t != "EXISTS:TRUNCATE")
        )
    }
    granules = await job.skip_committed(
        granules, await anyio.to_thread.run_sync(target.markers, job.guid)
    )
    # Key order, not biggest first: the single writer then appends to each table's B-tree
    # (SQLite's fast path); out of order, inserting the same rows was measured 1.7x slower.
    granules.sort(key=lambda r: (r.process_order, r.duplicate))

    ready_send, ready_receive = anyio.create_memory_object_stream[
        tuple[ControlRow, MemoryObjectReceiveStream[EncodedBatch]]
    ](max(1, job.degree))

    async def read(name: str, number: int, row: ControlRow) -> None:
        frames = _frames_decoder.decode(row.frames or b"[]")
        send, receive = anyio.create_memory_object_stream[EncodedBatch](READ_AHEAD_BATCHES)
        try:
            await job.mark(row, processing_state="R", process_name=name, start_time=time.time())
            await ready_send.send((row, receive))
        except BaseException:
            send.close()
            receive.close()  # never handed over: nobody else will close it
            raise
        async with send:
            for frame in frames:
                if job.stop_event.is_set():
                    return
                batch = await anyio.to_thread.run_sync(partial(read_frame, reader, frame))
                await send.send(batch)

    async def write() -> None:
        # ready_receive is closed after the task group, once what it still holds is closed.
        async for row, batches in ready_receive:
            try:
                await write_granule(row, batches)
            finally:
                batches.close()  # also when it failed before reading it

    async def write_granule(
        row: ControlRow, batches: MemoryObjectReceiveStream[EncodedBatch]
    ) -> None:
        table = tables[row.object_name or ""]
        if table.name in appending and table.rowid_column:
            # Rows added to the target's own keep their columns but not the source's
            # hidden rowids, which may be taken there: the target assigns new ones.
            table = msgspec.structs.replace(table, columns=table.columns[1:], rowid_column=None)
        sql = SqliteTarget.insert_sql(table)
        pipe = _import_rows(table, row.base_object_name or row.object_name or "", job.selection)
        if table.name in appending and tables[table.name].rowid_column:
            pipe = pipe or _ImportRows(None, None, None)
            pipe.drop_first = True
        rows = 0
        inserted = 0
        started = time.time()
        copy = None
        if table.row_format == PGCOPY:
            try:
                copy = CopyDecoder(table.column_kinds, table.columns)
            except CopyFormatError as exc:
                raise DumpError(f"the rows of table {table.name!r} cannot be read: {exc}") from None
        await anyio.to_thread.run_sync(target.begin)
        try:
            async with batches:
                async for batch in batches:
                    inserted += await anyio.to_thread.run_sync(
                        partial(_decode_and_insert, target, sql, batch, table, pipe, copy)
                    )
                    rows += batch.rows
            if job.stop_event.is_set():
                raise Stopped
            if copy is not None:
                try:
                    copy.finish()
                except CopyFormatError as exc:
                    raise DumpError(
                        f"granule {row.partition_name} of table {table.name!r}: {exc}"
                    ) from None
                rows = copy.rows
            if rows != (row.completed_rows or 0):
                raise DumpError(
                    f"granule {row.partition_name} of table {table.name!r} gave {rows}"
                    f" rows, the export recorded {row.completed_rows}"
                )
            await anyio.to_thread.run_sync(
                target.commit_granule, job.guid, row.process_order, inserted
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(target.rollback)
            raise
        await job.mark(
            row,
            processing_state="C",
            completion_time=time.time(),
            elapsed_time=time.time() - started,
        )

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            async with ready_send:
                await job.run_pool(
                    granules, read, max_workers=max(job.degree, os.cpu_count() or 1, 2)
                )
    finally:
        # On a failure, the granules' streams still waiting in the hand-over are closed here
        # (also when the writer was cancelled before it began).
        while True:
            try:
                _, waiting = ready_receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            waiting.close()
        ready_receive.close()


# --- the whole job ------------------------------------------------------------------------------


async def run_job(
    store: ControlStore, job_name: str, *, skip_current: bool = False, password: str | None = None
) -> JobState:
    """Run (or resume) a job whose state is already EXECUTING; return the state it ends in.

    On a restart, granules that were in flight are redone (or, with ``skip_current``,
    skipped and logged), finished ones are kept.
    """
    record = await store.job(job_name)
    if record is None:
        raise UsageError(f"job {job_name!r} does not exist")
    params_rows = await store.rows(job_name, object_types=["PARAMETER", "FILTER"])
    parameters: dict[str, Any] = {}
    for r in params_rows:
        if r.name is None:
            continue
        if r.value_t is not None and r.value_t.startswith("json:"):
            parameters[r.name] = msgspec.json.decode(r.value_t[5:])
        elif r.value_t is not None:
            parameters[r.name] = r.value_t
        else:
            parameters[r.name] = int(r.value_n) if r.value_n is not None else None
    files = await store.rows(job_name, object_types=["FILE"])
    selection = job_selection([r for r in params_rows if r.object_type == "FILTER"], parameters)
    job = JobRunner(
        selection=selection,
        password=password,
        token=record.owner_token,
        restart_count=record.restart_count,
        store=store,
        job_name=job_name,
        operation=record.operation,
        guid=record.guid,
        degree=record.degree,
        parameters=parameters,
        files=files,
        log_paths=[
            Path(f.user_directory or ".") / (f.user_file_name or "")
            for f in files
            if f.file_type == "LOG"
        ],
    )
    await job.log(
        f"Starting {job_name}: {record.operation} {record.job_mode}, parallel {record.degree}"
    )
    started = time.time()
    state = JobState.COMPLETED
    exc: BaseException | None = None
    try:
        await job.prepare_restart(skip_current)
        async with anyio.create_task_group() as tg:
            tg.start_soon(job.obey_commands, tg.cancel_scope)
            runners = {"EXPORT": run_export, "IMPORT": run_import, "LOAD": run_load}
            await runners[record.operation](job)
            await job.sync_waiting()
            tg.cancel_scope.cancel()
    except Exception as group:
        # Keep the control table: the job can be restarted once the cause is mended.
        exc = first_error(group)
        if isinstance(exc, JobTakenOver):
            return JobState.UNDEFINED  # the new owner decides what the job's state is
        if job.stopping and isinstance(exc, DumpSetFullError | Stopped):
            exc = None  # stopped while it waited for a file: a stop, not a failure
    if exc is not None:
        message = str(exc) if isinstance(exc, PumpkitError) else f"{type(exc).__name__}: {exc}"
        await job.log(f"Job {job_name} failed: {message}")
        if not isinstance(exc, PumpkitError):
            await job.log("".join(traceback.format_exception(exc)))
        await store.update_job(
            job_name, state=JobState.STOPPED.value, stop_reason=f"ERROR: {message}"
        )
        return JobState.STOPPED
    if job.stopping:
        if job.kill:
            await _kill(job)
            return JobState.UNDEFINED
        if job.stop_mode == "GRACEFUL":
            # Every worker has finished its granule: the job winds down (STOP PENDING ->
            # STOPPING -> STOPPED, as the seed's states go).
            await store.update_job(job_name, state=JobState.STOPPING.value)
        await job.log(f"Job {job_name} stopped ({job.stop_mode.lower() if job.stop_mode else ''})")
        await store.update_job(
            job_name,
            state=JobState.STOPPED.value,
            stop_reason=f"STOP_JOB{' IMMEDIATE' if job.stop_mode == 'IMMEDIATE' else ''}",
        )
        return JobState.STOPPED
    await job.log(f"Job {job_name} successfully completed in {time.time() - started:.1f} s")
    keep = job.parameters.get("KEEP_MASTER")
    await store.update_job(job_name, state=state.value, stop_reason=None)
    summary = await job_status(store, job_name, StatusMask.ALL & ~StatusMask.WIP, after=0)
    await store.update_job(job_name, summary=msgspec.json.encode(summary))
    if not keep:
        await store.drop_control_table(job_name)
    return state


def first_error(error: BaseException) -> BaseException:
    """The first leaf of a (nested) exception group: the error a user should read."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def _kill(job: JobRunner) -> None:
    """KILL_JOB: drop the control table; an export's dump files (this job's only) are removed."""
    if job.operation == "EXPORT":
        guid = bytes.fromhex(job.guid.replace("-", ""))
        for f in job.files:
            if f.file_type == "DUMP":
                remove_set_files(Path(f.user_directory or "."), f.user_file_name or "", guid)
    await job.log(f"Job {job.job_name} killed")
    await job.store.drop_job(job.job_name)


def template_paths(directory: Path, template: str) -> Iterator[Path]:
    """The files ``template`` can name, in order: itself, or 01, 02, ... for %U/%L."""
    if "%" not in template:
        yield directory / template
        return
    for number in range(1, 10_000):
        try:
            yield directory / expand_template(template, number)
        except DumpSetFullError:
            return


def existing_set_files(directory: Path, template: str) -> list[Path]:
    """The files a dump-file name names that exist, up to the first missing one (the reader
    then checks the set); for a missing first file, its name, so the error names it."""
    found = list(itertools.takewhile(Path.exists, template_paths(directory, template)))
    return found or [next(template_paths(directory, template))]


def remove_set_files(directory: Path, template: str, guid: bytes) -> list[Path]:
    """Remove the files that ``template`` names and whose header carries ``guid``."""
    removed = []
    for path in template_paths(directory, template):
        if not path.exists():
            break
        try:
            with open(path, "rb") as fh:
                header = decode_header(fh.read(HEADER_SIZE))
        except (OSError, DumpError):
            continue
        if header.guid == guid:
            path.unlink()
            removed.append(path)
    return removed
