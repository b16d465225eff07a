"""An import job's work: plan from the control table the export left in the dump-file set,
make the objects that come before the rows, load every granule through the target's loaders
(each with its completion marker, exactly once), then make the objects that come after.

Reading overlaps loading: readers (the worker pool, up to the job's degree) take the frames
of one granule each from the set (``pread``/mmap, decompression and decryption in threads)
into a bounded stream; the target's loaders (as many as it allows: SQLite has one writer)
take the granules in key order and write them. SQLFILE is ``pumpkit.engine.sqlfile``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from functools import partial
from pathlib import Path

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from pumpkit.core.catalog import ObjectDef, TableDef
from pumpkit.core.control_table import (
    OBJECT_TYPES,
    ControlRow,
    ExistsAction,
    FrameRef,
    ProcessingState,
    RowUpdate,
    object_def_of,
    schema_archive_of,
    table_def_of,
    tables_of,
)
from pumpkit.core.frame import FrameKind, Location
from pumpkit.core.jobplan import before_data, plan_added, plan_import
from pumpkit.core.limits import MAX_DATA_FRAME_BYTES
from pumpkit.core.plancheck import ImportPlan, check_plan
from pumpkit.core.rowcodec import Batch
from pumpkit.core.selecting import remap_object, remap_table, select_rows
from pumpkit.core.selection import Selection, fold
from pumpkit.engine.job import Job
from pumpkit.engine.pool import run_pool
from pumpkit.errors import (
    ConnectorError,
    CorruptDumpError,
    DumpError,
    UnsafeDumpError,
    UsageError,
)
from pumpkit.io.connectors import open_target
from pumpkit.io.connectors.base import (
    MADE,
    ImportOptions,
    LoadRequest,
    Outcome,
    RowPipe,
    Target,
)
from pumpkit.io.dumpset.files import existing_set_files
from pumpkit.io.dumpset.keys import read_verify_key
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.io.usercode import remapper

__all__ = ("open_set", "planned_import", "run_import")

# Decoded batches a reader may hold ahead of the loader (back-pressure): none waits in the
# stream; the reader decodes the next frame while the loader inserts one and hands it over.
READ_AHEAD_BATCHES = 0
#: Decoded bytes the readers of granules not yet loading may hold (``DecodedBudget``).
MAX_HELD_DECODED = MAX_DATA_FRAME_BYTES
#: A batch and the room it holds in the budget.
Held = tuple[Batch, int]
#: A granule ready to load: its row, and the stream its reader fills with its batches.
Ready = tuple[ControlRow, MemoryObjectReceiveStream[Held]]
_encode = msgspec.msgpack.encode
#: Control rows that describe an object (not a table, its rows, or the schema archive).
_OBJECTS = frozenset(OBJECT_TYPES) - {"TABLE", "TABLE_DATA", "PG_SCHEMA"}


async def open_set(job: Job) -> DumpSetReader:
    """The job's dump-file set, opened and (with a password) unlocked: a wrong password fails
    here, on the header's key check, before any row."""
    dump_files = job.dump_files
    if not dump_files:
        raise UsageError("the job has no dump file: call add_file with filetype DUMP")
    paths = [
        path for f in dump_files for path in existing_set_files(Path(f.directory), f.file_name)
    ]
    reader = await anyio.to_thread.run_sync(DumpSetReader.open, paths)
    try:
        await anyio.to_thread.run_sync(reader.unlock, job.password)
        verify_key_path = str(job.parameters.get("VERIFY_KEY") or "")
        if verify_key_path:
            # A signed set is checked whole before any object is made (format 1.3).
            key = read_verify_key(verify_key_path)
            await anyio.to_thread.run_sync(reader.check_signature, key)
    except BaseException:
        reader.close()
        raise
    return reader


async def verify_set(job: Job, reader: DumpSetReader) -> None:
    """VERIFY=1 (the default): every byte of every file of the set checked, as ``pumpkit
    verify`` does, before anything in the target changes. Raises ``CorruptDumpError`` naming
    the first faults (file and offset) when the set is damaged: the import then changed
    nothing."""
    paths = [reader.path_of(n) for n in reader.file_numbers]
    report = await anyio.to_thread.run_sync(verify_paths, paths)
    if not report.sound:
        first = report.faults[0]
        shown = "; ".join(str(f) for f in report.faults[:3])
        raise CorruptDumpError(
            f"the dump-file set is damaged, nothing was imported ({len(report.faults)}"
            f" fault(s); `pumpkit verify` lists them all; VERIFY=0 skips this check): {shown}",
            path=first.path,
            offset=first.offset,
        )
    await job.log(
        f"Dump-file set verified before the import: {report.files} file(s),"
        f" {report.frames} frames, {report.rows} rows, sound"
    )


async def run_import(job: Job) -> None:
    """The work of an IMPORT job (``job`` is EXECUTING and owned by this process)."""
    from pumpkit.engine.sqlfile import write_sqlfile

    reader = await open_set(job)
    try:
        if int(job.parameters.get("VERIFY", 1)):
            await verify_set(job, reader)
        sql_files = [f for f in job.files if f.file_type == "SQL"]
        if sql_files:
            await write_sqlfile(job, reader, sql_files[0])
        else:
            await _import_with(job, reader)
    finally:
        reader.close()


async def _dump_rows(reader: DumpSetReader) -> list[ControlRow]:
    """The export's control table copied into the set, as the import's rows (all pending)."""
    payload = await anyio.to_thread.run_sync(reader.control_table)
    where = str(reader.path_of(reader.file_numbers[0]))
    if payload is None:
        raise DumpError(
            "the dump-file set holds no control table (was its export completed?)", path=where
        )
    try:
        doc = msgspec.msgpack.decode(payload)
        reader.check_file_rows(doc["columns"], doc["rows"])
        return plan_import(doc["columns"], doc["rows"], now=time.time())
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
        raise DumpError(f"the set's control table does not decode: {exc}", path=where) from None


async def planned_import(
    job: Job, reader: DumpSetReader, target: Target | None
) -> list[ControlRow]:
    """The import's control rows: the export's, less what the filters leave out, under the
    names the remaps give (``target``: where they go; None for SQLFILE)."""
    selection = job.selection
    objects = select_rows(await _dump_rows(reader), selection)
    for schema in {r.object_schema for r in objects if r.object_schema}:
        remapped = selection.remapped_schema(schema)
        if remapped == schema or target is None:
            continue
        if target.single_schema is not None and remapped != target.single_schema:
            raise UsageError(
                f"REMAP_SCHEMA {schema}:{remapped}: a {target.engine} target has the one"
                f" schema {target.single_schema}"
            )
    return [_remapped_row(r, selection) for r in objects]


async def import_options(
    job: Job, reader: DumpSetReader, planned: list[ControlRow]
) -> ImportOptions:
    """How the target makes the dump's objects: the schema archive the set carries (read
    from its frame, checked against what its control table records), the renames of
    REMAP_SCHEMA and REMAP_TABLE by the source's names, the role and owner options."""
    selection = job.selection
    schemas: dict[str, str] = {}
    tables: dict[tuple[str, str], str] = {}
    for row in await _dump_rows(reader):
        schema = row.object_schema or ""
        if schema and selection.remapped_schema(schema) != schema:
            schemas[schema] = selection.remapped_schema(schema)
        if row.object_type == "TABLE":
            new = selection.remapped_table(row.object_name or "")
            if new != row.object_name:
                tables[(schema, row.object_name or "")] = new
    archive = None
    for row in planned:
        if row.object_type == "PG_SCHEMA" and row.dump_fileid:
            archive = await anyio.to_thread.run_sync(partial(_read_archive, reader, row))
    return ImportOptions(
        archive=archive,
        schemas=schemas,
        tables=tables,
        role=str(job.parameters.get("ROLE") or "") or None,
        no_owner=bool(job.parameters.get("NO_OWNER")),
        no_privileges=bool(job.parameters.get("NO_PRIVILEGES")),
    )


def _read_archive(reader: DumpSetReader, row: ControlRow) -> bytes:
    """The schema archive's bytes from its frame; refused when they are not those the
    control table records (blocking)."""
    location = Location(row.dump_fileid or 0, row.dump_position or 0, row.dump_length or 0)
    data = bytes(reader.read(location))
    recorded = schema_archive_of(row)
    if hashlib.sha256(data).hexdigest() != recorded.sha256:
        raise CorruptDumpError(
            "the schema archive is not the one the control table records (its SHA-256 differs)",
            path=str(reader.path_of(location.fileid)),
            offset=location.position,
        )
    return data


def _remapped_row(row: ControlRow, selection: Selection) -> ControlRow:
    """A control row under REMAP_TABLE: its metadata rewritten, its names changed. A data
    granule keeps the source table's name in ``base_object_name`` (the data filters and
    REMAP_DATA name source tables, as impdp's do)."""
    schema = selection.remapped_schema(row.object_schema) if row.object_schema else None
    if row.object_type == "PG_SCHEMA":
        return row
    if row.object_type == "TABLE":
        table = remap_table(table_def_of(row), selection)
        return msgspec.structs.replace(
            row, object_schema=schema, object_name=table.name, metadata=_encode(table)
        )
    if row.object_type == "TABLE_DATA":
        return msgspec.structs.replace(
            row, object_schema=schema, object_name=selection.remapped_table(row.object_name or "")
        )
    obj = remap_object(object_def_of(row), selection)
    return msgspec.structs.replace(
        row,
        object_schema=schema,
        object_name=obj.name,
        base_object_name=obj.table or row.base_object_name,
        metadata=_encode(obj),
    )


async def _import_with(job: Job, reader: DumpSetReader) -> None:
    store = job.store
    objects = await store.rows(job.name, object_types=OBJECT_TYPES)
    source_engine = reader.header.body.source_engine or "sqlite"
    target = await open_target(str(job.parameters["DATABASE"]), source_engine)
    try:
        await job.check_fingerprint("DUMPSET", reader.header.guid_hex)
        await job.check_fingerprint("TARGET", await target.fingerprint())
        # The dump's plan under the job's filters, before TABLE_EXISTS_ACTION: what the
        # dump names (a restart checks its objects against it too).
        planned = await planned_import(job, reader, target)
        fresh = not objects
        if fresh:
            objects = planned
        added = await target.plan_objects(
            [table_def_of(r) for r in objects if r.object_type == "TABLE"],
            [object_def_of(r) for r in objects if r.object_type in _OBJECTS],
        )
        if fresh:
            # The filters see the added rows with the tables they belong to.
            extra = plan_added(objects, added, now=time.time())
            kept = {id(r) for r in select_rows([*objects, *extra], job.selection)}
            objects += [r for r in extra if id(r) in kept]
            tables = [table_def_of(r) for r in objects if r.object_type == "TABLE"]
            present = await target.existing_tables(tables)
            objects = await _table_exists_actions(job, objects, present)
            await store.insert_rows(job.name, objects)
            cross = (
                f", {source_engine} to {target.engine}" if source_engine != target.engine else ""
            )
            await job.log(
                f"Import of {len(tables)} tables from {reader.header.body.job_name}"
                f" ({reader.header.guid_hex}{cross}) planned"
            )
        # The plan is the dump's word: checked, and what it names bounds what it may touch.
        files = {n: str(reader.path_of(n)) for n in reader.file_numbers}
        plan = check_plan(objects, files)
        options = await import_options(job, reader, planned)
        await target.declare(plan, check_plan(planned, files), options)
        await target.ensure_markers()
        await _import_objects(job, target, objects, plan, before=True)
        await _import_data(job, reader, target, objects)
        if job.stopping:
            return
        await _import_objects(job, target, objects, plan, before=False)
        await target.drop_markers(job.guid)
        await job.completing()
    finally:
        with anyio.CancelScope(shield=True):
            await target.close()


def _exists_action(job: Job) -> ExistsAction:
    """TABLE_EXISTS_ACTION, by default SKIP (APPEND when CONTENT=DATA_ONLY), as impdp."""
    given = job.parameters.get("TABLE_EXISTS_ACTION")
    return ExistsAction(
        str(given or ("APPEND" if job.selection.content == "DATA_ONLY" else "SKIP"))
    )


async def _table_exists_actions(
    job: Job, objects: list[ControlRow], present: list[str]
) -> list[ControlRow]:
    """Tables the target has already: SKIP leaves them (and their rows, indexes, triggers)
    alone; APPEND, TRUNCATE and REPLACE are noted on the TABLE row for the table step."""
    if not present:
        return objects
    action = _exists_action(job)
    if action is ExistsAction.REPLACE and job.selection.content == "DATA_ONLY":
        raise UsageError(
            "TABLE_EXISTS_ACTION=REPLACE recreates tables, which CONTENT=DATA_ONLY does not do"
            " (as in impdp): use TRUNCATE or APPEND"
        )
    folded = {fold(p) for p in present}
    if action is ExistsAction.SKIP:
        for name in present:
            await job.log(
                f'Table "{name}" exists: skipped with its data (TABLE_EXISTS_ACTION=SKIP)'
            )
        return [r for r in objects if r.object_type == "VIEW" or fold(r.owner) not in folded]
    for name in present:
        await job.log(f'Table "{name}" exists: TABLE_EXISTS_ACTION={action.value}')
    if action is not ExistsAction.REPLACE:
        # A table kept as it is (its rows appended or replaced) keeps its own indexes,
        # constraints, triggers and grants: the archive's entries of it are not made again.
        objects = [
            r
            for r in objects
            if r.object_type in ("TABLE", "TABLE_DATA", "SEQUENCE", "PG_SCHEMA")
            or fold(r.owner) not in folded
            or object_def_of(r).toc_id is None
        ]
    return [
        msgspec.structs.replace(r, exists_action=action)
        if r.object_type == "TABLE" and fold(r.object_name or "") in folded
        else r
        for r in objects
    ]


async def _import_objects(
    job: Job, target: Target, objects: list[ControlRow], plan: ImportPlan, *, before: bool
) -> None:
    """Make the objects that come before the rows (``before``) or after them; a refusal of
    the target's guard is placed at the object's METADATA frame in the dump."""
    try:
        await _make_objects(job, target, objects, before=before)
    except UnsafeDumpError as exc:
        raise plan.locate(exc) from None


async def _make_objects(
    job: Job, target: Target, objects: list[ControlRow], *, before: bool
) -> None:
    """Tables first (each as TABLE_EXISTS_ACTION says), then the other objects; the entries
    of the dump's schema archive in one batch when the target restores archives itself. An
    object the target does not make is a failed row of the job, with the reason."""
    batch: list[tuple[ControlRow, TableDef | ObjectDef]] = []
    for row in objects:
        if row.done or row.object_type in ("TABLE_DATA", "PG_SCHEMA"):
            continue
        if before_data(row) != before:
            continue
        if job.stopping:
            return
        if row.object_type == "TABLE":
            table = table_def_of(row)
            if not await _table_step(job, target, row, table):
                continue  # the table was there: its rows go in, nothing is made
            if table.toc_id is not None:
                batch.append((row, table))
                continue
            for note in await target.create_table(table):
                await job.log(note)
            await _made(job, row, MADE)
            continue
        obj = object_def_of(row)
        if obj.toc_id is not None:
            batch.append((row, obj))
            continue
        await _made(job, row, await target.create_object(obj))
    if not batch or job.stopping:
        return
    outcomes = await target.restore_entries(
        [d for _, d in batch], jobs=job.degree, restarted=job.restart_count > 0
    )
    if outcomes is None:  # the target makes them one by one
        for row, definition in batch:
            if isinstance(definition, TableDef):
                for note in await target.create_table(definition):
                    await job.log(note)
                await _made(job, row, MADE)
            else:
                await _made(job, row, await target.create_object(definition))
        return
    for (row, _), outcome in zip(batch, outcomes, strict=True):
        await _made(job, row, outcome)


async def _table_step(job: Job, target: Target, row: ControlRow, table: TableDef) -> bool:
    """What TABLE_EXISTS_ACTION does with a table the target may have; whether to make it."""
    exists = await target.table_exists(table)
    if not exists and job.selection.content == "DATA_ONLY":
        raise ConnectorError(
            f"table {table.name!r} does not exist in the target: CONTENT=DATA_ONLY"
            " loads rows into existing tables",
            table=table.name,
        )
    if not exists:
        return True
    if row.exists_action is ExistsAction.REPLACE:
        await target.drop_table(table)
        await job.log(f'Table "{table.name}" replaced')
        return True
    if row.exists_action is ExistsAction.TRUNCATE:
        await target.truncate(table)
        await job.log(f'Table "{table.name}" truncated')
    await _made(job, row, MADE)
    return False


async def _made(job: Job, row: ControlRow, outcome: Outcome) -> None:
    """Record what became of an object: made (COMPLETED), or left out (FAILED, with why:
    an error of the job, never a silence)."""
    if outcome.made:
        if outcome.note:
            await job.log(outcome.note)
        row.processing_state = ProcessingState.COMPLETED
        await job.mark(
            row,
            RowUpdate(processing_state=ProcessingState.COMPLETED, completion_time=time.time()),
        )
        return
    reason = outcome.note or "the target did not make it"
    what = f"{row.object_type} {_display(row)}"
    await job.log(f"{what} left out: {reason}")
    row.processing_state = ProcessingState.FAILED
    await job.mark(
        row,
        RowUpdate(
            processing_state=ProcessingState.FAILED,
            processing_status=reason[:2000],
            error_count=1,
            completion_time=time.time(),
        ),
    )


def _display(row: ControlRow) -> str:
    """An object's name for the log: schema-qualified where it has a schema of its own."""
    name = row.object_name or ""
    if row.object_schema and row.object_schema != "main":
        name = f"{row.object_schema}.{name}"
    return repr(name)


def _early_objects(
    target: Target,
    objects: list[ControlRow],
    tables: dict[TableKey, TableDef],
    loading: set[TableKey],
) -> dict[TableKey, list[ControlRow]]:
    """For each table whose rows load now, the archive entries of it the target can make as
    soon as they are in: of a kind it says (``early_objects``), needing nothing but the table
    and what was made before the rows."""
    if not target.early_objects:
        return {}
    before = {
        (table_def_of(r) if r.object_type == "TABLE" else object_def_of(r)).toc_id
        for r in objects
        if before_data(r) and r.object_type not in ("TABLE_DATA", "PG_SCHEMA")
    }
    toc_ids = {key: t.toc_id for key, t in tables.items()}
    out: dict[TableKey, list[ControlRow]] = {}
    for row in objects:
        if row.done or before_data(row) or row.object_type not in target.early_objects:
            continue
        key = (row.object_schema or "", row.base_object_name or "")
        if key not in loading or toc_ids.get(key) is None:
            continue
        obj = object_def_of(row)
        if obj.toc_id is None or not set(obj.dependencies) <= before | {toc_ids[key]}:
            continue
        out.setdefault(key, []).append(row)
    return out


def read_batch(reader: DumpSetReader, frame: FrameRef) -> Batch:
    """The payload of the TABLE_DATA frame ``frame`` names (blocking: run it in a thread).
    The frame's header must say the rows the control table records for it (checked once
    the payload has passed its checksum, tag and limits)."""
    where = str(reader.path_of(frame.fileid))
    payload = reader.read(Location(frame.fileid, frame.position, frame.length))
    header = reader.read_frame(frame.fileid, frame.position, frame.length).header
    if header.kind != FrameKind.TABLE_DATA or header.count != frame.rows:
        raise CorruptDumpError(
            f"the frame at {frame.position} is of kind {header.kind} with {header.count}"
            f" rows; the control table records TABLE_DATA with {frame.rows}",
            path=where,
            offset=frame.position,
        )
    return Batch(payload, frame.rows, where, frame.position)


def frame_size(reader: DumpSetReader, frame: FrameRef) -> int:
    """What the frame ``frame`` names decodes to, as its header claims (checked against the
    reader's limits when it is read); blocking."""
    return reader.read_frame(frame.fileid, frame.position, frame.length).header.uncompressed_length


class DecodedBudget:
    """The bytes of decoded frames an import holds ahead of its loaders, bounded.

    A reader takes room for a frame before decoding it and the loader gives it back once the
    frame's rows are in. The readers of the granules being loaded never wait for room (the
    loader waits on them: one frame each in hand, one being inserted); the others wait
    while the room is taken, so whatever the frames claim, what waits decoded for the
    loaders is at most ``MAX_HELD_DECODED`` bytes (one frame of any size when nothing else
    is held)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.loading: set[tuple[int, int]] = set()
        self._changed = anyio.Condition()

    async def take(self, key: tuple[int, int], size: int) -> int:
        """Room for ``size`` bytes of granule ``key``; the bytes taken (0 while it loads)."""
        async with self._changed:
            while key not in self.loading and self.used and self.used + size > self.limit:
                await self._changed.wait()
            if key in self.loading:
                return 0
            self.used += size
            return size

    async def give(self, size: int) -> None:
        if not size:
            return
        async with self._changed:
            self.used -= size
            self._changed.notify_all()

    async def load(self, key: tuple[int, int], loading: bool) -> None:
        async with self._changed:
            if loading:
                self.loading.add(key)
            else:
                self.loading.discard(key)
            self._changed.notify_all()


TableKey = tuple[str, str]


def _granule(row: ControlRow) -> tuple[int, int]:
    """A data granule's key: its process order and duplicate number."""
    return (row.process_order, row.duplicate)


def _key(row: ControlRow) -> TableKey:
    """The (schema, name) of the table a row belongs to."""
    return (row.object_schema or "", row.object_name or "")


def _pipes(
    job: Job, target: Target, tables: dict[TableKey, TableDef], granules: list[ControlRow]
) -> dict[TableKey, tuple[RowPipe | None, str | None]]:
    """Each table's import-side data filters (QUERY, SAMPLE) and REMAP_DATA, by the target
    table's name; refused when the target cannot apply them. The filters name the source's
    table, which a granule keeps in ``base_object_name`` under REMAP_TABLE (as impdp's do)."""
    selection = job.selection
    out: dict[TableKey, tuple[RowPipe | None, str | None]] = {}
    for row in granules:
        key = _key(row)
        if key in out:
            continue
        source_name = row.base_object_name or key[1]
        condition = selection.data_value("QUERY", source_name)
        sample = selection.data_value("SAMPLE", source_name)
        remap = remapper(
            msgspec.structs.replace(tables[key], name=source_name),
            selection.data_remaps(source_name),
        )
        if condition is None and sample is None and remap is None:
            out[key] = (None, None)
            continue
        if not target.filters_rows:
            raise UsageError(
                f"table {source_name!r}: QUERY, SAMPLE and REMAP_DATA on import are not done"
                f" by a {target.engine} target; filter the export instead"
            )
        pipe = RowPipe(sample=None if sample is None else float(sample), remap=remap)
        out[key] = (pipe, None if condition is None else str(condition))
    return out


async def _import_data(
    job: Job, reader: DumpSetReader, target: Target, objects: list[ControlRow]
) -> None:
    tables = tables_of(objects)
    appending = {
        _key(r)
        for r in objects
        if r.object_type == "TABLE"
        and (
            r.exists_action is ExistsAction.APPEND
            or (
                job.selection.content == "DATA_ONLY"
                and r.exists_action is not ExistsAction.TRUNCATE
            )
        )
    }
    granules = [r for r in objects if r.object_type == "TABLE_DATA" and not r.done]
    pipes = _pipes(job, target, tables, granules)
    granules = await job.skip_committed(granules, await target.markers(job.guid))
    # Key order, not biggest first: a single writer then appends to each table's B-tree
    # (SQLite's fast path); out of order, inserting the same rows was measured 1.7x slower.
    granules.sort(key=lambda r: (r.process_order, r.duplicate))
    max_workers = max(job.degree, os.cpu_count() or 1, 2)
    loaders_count = min(max_workers, target.max_loaders or max_workers)
    loaders = await target.open_loaders(loaders_count)
    left = {key: sum(_key(r) == key for r in granules) for key in {_key(r) for r in granules}}
    early = _early_objects(target, objects, tables, set(left))
    builders = anyio.CapacityLimiter(max(1, job.degree))

    async def build_early(key: TableKey) -> None:
        """The table's indexes and constraints, now that its rows are in."""
        rows = early.get(key, [])
        if not rows or job.stopping:
            return
        async with builders:
            outcomes = await target.restore_entries(
                [object_def_of(r) for r in rows], jobs=1, restarted=job.restart_count > 0
            )
        for row, outcome in zip(rows, outcomes or (), strict=False):
            await _made(job, row, outcome)

    ready_send, ready_receive = anyio.create_memory_object_stream[Ready](max(1, job.degree))
    # One receiving end per loader; the original is closed after the task group, once what
    # it still holds is closed.
    clones = [ready_receive.clone() for _ in range(loaders_count)]

    budget = DecodedBudget(MAX_HELD_DECODED)

    async def read(name: str, number: int, row: ControlRow) -> None:
        send, receive = anyio.create_memory_object_stream[Held](READ_AHEAD_BATCHES)
        try:
            await job.mark(
                row,
                RowUpdate(
                    processing_state=ProcessingState.RUNNING,
                    process_name=name,
                    start_time=time.time(),
                ),
            )
            await ready_send.send((row, receive))
        except BaseException:
            send.close()
            receive.close()  # never handed over: nobody else will close it
            raise
        async with send:
            for frame in row.frame_refs():
                if job.stop_event.is_set():
                    return
                size = await anyio.to_thread.run_sync(partial(frame_size, reader, frame))
                taken = await budget.take(_granule(row), size)
                try:
                    batch = await anyio.to_thread.run_sync(partial(read_batch, reader, frame))
                    await send.send((batch, taken))
                except anyio.BrokenResourceError:
                    await budget.give(taken)
                    return  # the loader failed or stopped: its error is the one to report
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await budget.give(taken)
                    raise

    async def load(number: int, granules: MemoryObjectReceiveStream[Ready]) -> None:
        async with granules:
            async for row, batches in granules:
                try:
                    await load_granule(number, row, batches)
                finally:
                    batches.close()  # also when it failed before reading it

    async def held(batches: MemoryObjectReceiveStream[Held]) -> AsyncGenerator[Batch]:
        """The batches, each one's room given back once the loader asks for the next."""
        async for batch, taken in batches:
            try:
                yield batch
            finally:
                with anyio.CancelScope(shield=True):
                    await budget.give(taken)

    async def load_granule(
        number: int, row: ControlRow, batches: MemoryObjectReceiveStream[Held]
    ) -> None:
        table = tables[_key(row)]
        pipe, condition = pipes.get(_key(row), (None, None))
        request = LoadRequest(
            table=table,
            label=row.partition_name or str(row.duplicate),
            job_guid=job.guid,
            process_order=row.process_order,
            expect_rows=row.completed_rows or 0,
            condition=condition,
            append=_key(row) in appending,
        )
        started = time.time()
        await budget.load(_granule(row), True)
        try:
            async with batches, aclosing(held(batches)) as given:
                await loaders.load(number, request, given, pipe, job.stop_event)
        finally:
            with anyio.CancelScope(shield=True):
                await budget.load(_granule(row), False)
        await job.mark(
            row,
            RowUpdate(
                processing_state=ProcessingState.COMPLETED,
                completion_time=time.time(),
                elapsed_time=time.time() - started,
            ),
        )
        left[_key(row)] -= 1
        if not left[_key(row)]:
            tg.start_soon(build_early, _key(row))

    try:
        async with anyio.create_task_group() as tg:
            for number, clone in enumerate(clones):
                tg.start_soon(load, number, clone)
            async with ready_send:
                await run_pool(job, granules, read, max_workers=max_workers)
    finally:
        # On a failure, the granules' streams still waiting in the hand-over are closed here
        # (also when the loaders were cancelled before they began).
        while True:
            try:
                _, waiting = ready_receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            waiting.close()
        for clone in clones:
            clone.close()
        ready_receive.close()
        with anyio.CancelScope(shield=True):
            await loaders.close()
