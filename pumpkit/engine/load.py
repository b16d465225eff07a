"""A LOAD job: records from an input module (INMOD) into a table, with TPump's checkpoints.

The protocol's rules are ``pumpkit.core.inmod``'s; ``pumpkit.engine.modules`` drives a
user's module (class or classic entry point) through them; this module applies the records.

Every checkpoint (every CHECKPOINT records, or CHECKPOINT_SECONDS) is one transaction in the
target: the rows, the records that failed (into the error table, with their sequence number,
the error and the record's first 63,488 bytes) and the restart-log row holding the module's
repositioning bytes. A restart therefore resumes exactly after the last committed record.
A failure of the database rolls back, repositions the module (code 4, or 5 then 0 before the
first checkpoint) and retries with back-off.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import anyio

from pumpkit.core.control_table import ControlRow, ProcessingState, RowUpdate
from pumpkit.core.inmod import MAX_BODY, Call, EntryCode, LoaderProtocol, Outcome
from pumpkit.core.jobplan import BAND
from pumpkit.core.layouts import Layout, make_layout
from pumpkit.core.planner import Phase
from pumpkit.engine.job import Job
from pumpkit.engine.modules import make_driver
from pumpkit.errors import ConnectorError, ErrorLimitReached, RetryableError, UsageError
from pumpkit.io.connectors import open_target
from pumpkit.io.connectors.base import RecordLoad
from pumpkit.io.usercode import load_object

__all__ = ("run_load",)

_READS = (EntryCode.FIRST, EntryCode.NEXT)
# Database failures: retried this many times, waiting 0.5 s, 1 s, 2 s, ... (at most 30 s).
MAX_RETRIES = 8
_BACKOFF_CAP = 30.0


# --- the load loop -----------------------------------------------------------------------------


class _Batch:
    """Rows with their sequence numbers and records (parallel lists: one list operation per
    read, not one object per record), and the records that did not decode."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.sequences: list[int] = []
        self.records: list[bytes] = []
        self.errors: list[tuple[int, str, bytes]] = []

    def __len__(self) -> int:
        return len(self.rows) + len(self.errors)

    def add(self, first: int, bodies: list[bytes], layout: Layout) -> None:
        rows, bad = layout.decode_many(bodies)
        if not bad:
            self.rows.extend(rows)
            self.sequences.extend(range(first, first + len(bodies)))
            self.records.extend(bodies)
            return
        failed = {i for i, _ in bad}
        self.rows.extend(rows)
        self.sequences.extend(first + i for i in range(len(bodies)) if i not in failed)
        self.records.extend(b for i, b in enumerate(bodies) if i not in failed)
        self.errors.extend(
            (first + i, f"layout: {reason}", bodies[i][:MAX_BODY]) for i, reason in bad
        )


async def run_load(job: Job) -> None:
    """The work of a LOAD job (``job`` is EXECUTING and owned by this process)."""
    p = job.parameters
    database = str(p["DATABASE"])
    table = str(p.get("TARGET_TABLE") or "")
    if not table:
        raise UsageError("a LOAD job needs TARGET_TABLE (set_parameter or --table)")
    if not p.get("INMOD"):
        raise UsageError("a LOAD job needs INMOD: module:Name (set_parameter or --inmod)")
    every = int(p.get("CHECKPOINT") or 10_000)
    seconds = float(p.get("CHECKPOINT_SECONDS") or 0)
    errlimit = int(p.get("ERRLIMIT") or 0)
    upsert = str(p.get("LOAD_MODE", "INSERT")) == "UPSERT"
    key = _names(p.get("UPSERT_KEY")) if upsert else []
    if upsert and not key:
        raise UsageError("LOAD_MODE=UPSERT needs UPSERT_KEY: the columns of a unique key")
    target = await _retried(job, lambda: open_target(database, "", busy_timeout=2.0))
    try:
        await job.check_fingerprint("TARGET", await target.fingerprint())
        load = await _retried(job, lambda: target.open_load(table, _names(p.get("COLUMNS")), key))
        try:
            layout = make_layout(
                str(p.get("LAYOUT") or "VARTEXT"),
                load.columns,
                delimiter=str(p.get("DELIMITER") or "|"),
                load=load_object,
            )
            last = await load.last_checkpoint(job.guid)
            row = await _progress_row(job, table)
            await _load(
                job, load, layout, row, last, every=every, seconds=seconds, errlimit=errlimit
            )
        finally:
            with anyio.CancelScope(shield=True):
                await load.close()
    finally:
        with anyio.CancelScope(shield=True):
            await target.close()


async def _retried(job: Job, opening: Any) -> Any:
    """``await opening()``, retried with back-off while the database fails (locked,
    unreachable): a database failure, as TPump retries one."""
    for attempt in range(1, MAX_RETRIES + 1):
        try:
            return await opening()
        except RetryableError as exc:
            if attempt == MAX_RETRIES:
                raise ConnectorError(
                    f"the target stayed unavailable through {MAX_RETRIES} tries: {exc}"
                ) from None
            wait = min(_BACKOFF_CAP, 0.5 * 2 ** (attempt - 1))
            await job.log(f"The target is locked or unavailable ({exc}); retrying in {wait:g} s")
            await anyio.sleep(wait)
    raise AssertionError("unreachable")


def _names(value: object) -> list[str]:
    if not value:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


async def _progress_row(job: Job, table: str) -> ControlRow:
    rows = await job.store.rows(job.name, object_types=["TABLE_DATA"])
    if rows:
        return rows[0]
    row = ControlRow(
        process_order=Phase.TABLE_DATA * BAND + 1,
        duplicate=1,
        object_type="TABLE_DATA",
        object_type_path="SCHEMA/TABLE/TABLE_DATA",
        object_schema="main",
        object_name=table,
        processing_state=ProcessingState.RUNNING,
        completed_rows=0,
        start_time=time.time(),
    )
    await job.store.insert_rows(job.name, [row])
    return row


async def _load(
    job: Job,
    target: RecordLoad,
    layout: Layout,
    row: ControlRow,
    last: tuple[int, bytes, int, int] | None,
    *,
    every: int,
    seconds: float,
    errlimit: int,
) -> None:
    if row.done:
        # The load completed before the job could say so: nothing is left to do.
        await target.forget(job.guid)
        await job.log(f"The load into {row.object_name} had completed; nothing to redo")
        return
    number, info, applied, last_sequence = last if last else (0, None, 0, 0)
    protocol = LoaderProtocol(checkpoint=info, checkpoint_sequence=last_sequence)
    driver = make_driver(str(job.parameters["INMOD"]), str(job.parameters.get("INMOD_PARMS") or ""))
    restart = last is not None or job.restart_count > 0
    errors_so_far = await target.error_count(job.guid)
    calls: deque[Call] = deque(protocol.start(restart=restart))
    if restart:
        await job.log(
            f"Restarting the load after checkpoint {number} ({applied} rows applied)"
            if last
            else "Restarting the load from the start (no checkpoint was written)"
        )
    retries = 0
    eof = False

    async def drive(call: Call) -> Outcome:
        reply = await driver.call(call)
        return protocol.accept(call, reply)

    while True:
        batch = _Batch()
        started = time.monotonic()
        while len(batch) < every and not eof and not job.stopping:
            if seconds and time.monotonic() - started >= seconds:
                break
            call = calls.popleft() if calls else protocol.read()
            if call.code == EntryCode.NEXT and driver.can_read_many:
                outcome = protocol.accept_many(
                    call.code, await driver.read_many(every - len(batch))
                )
                batch.add(protocol.first_sequence, protocol.bodies, layout)
            else:
                outcome = await drive(call)
                if outcome is Outcome.RECORD and protocol.record is not None:
                    record = protocol.record
                    batch.add(record.sequence, [record.body], layout)
            eof = outcome is Outcome.END_OF_FILE
        if job.stop_event.is_set():
            return  # immediate stop: nothing of this batch was committed
        if eof and not len(batch):
            break  # the input ended right after a checkpoint: nothing left to commit
        await drive(protocol.checkpoint_due())
        assert protocol.pending_checkpoint is not None
        try:
            failed = await target.apply_checkpoint(
                job.guid,
                job.name,
                batch.rows,
                batch.sequences,
                batch.records,
                batch.errors,
                (number + 1, protocol.pending_checkpoint, applied, protocol.pending_sequence),
            )
        except RetryableError as exc:
            # The database failed (locked, I/O): roll back (done), reposition, try again.
            retries += 1
            if retries > MAX_RETRIES:
                raise ConnectorError(
                    f"the database failed {retries} times in a row at checkpoint {number + 1}: {exc}",
                    table=row.object_name,
                ) from None
            wait = min(_BACKOFF_CAP, 0.5 * 2 ** (retries - 1))
            await job.log(
                f"Database failure at checkpoint {number + 1} ({exc}); repositioning the input"
                f" and retrying in {wait:g} s"
            )
            calls = deque(protocol.database_failed())
            while calls and calls[0].code not in _READS:
                await drive(calls.popleft())
            eof = False
            await anyio.sleep(wait)
            continue
        retries = 0
        number += 1
        protocol.checkpoint_stored()
        applied += len(batch.rows) - (len(failed) - len(batch.errors))
        errors_so_far += len(failed)
        await job.mark(
            row,
            RowUpdate(
                completed_rows=applied,
                error_count=errors_so_far,
                processing_state=ProcessingState.RUNNING,
            ),
        )
        await job.log(
            f"Checkpoint {number}: {applied} rows applied, {errors_so_far} records in the error"
            f" table, input at sequence {protocol.checkpoint_sequence}"
        )
        if errlimit and errors_so_far >= errlimit:
            raise ErrorLimitReached(
                f"ERRLIMIT {errlimit} reached ({errors_so_far} records failed; see the error"
                " table pumpkit_load_errors); the job stopped after its last checkpoint and can"
                " be restarted"
            )
        if eof or job.stopping:
            break
    if eof:
        await drive(protocol.end())
        # Complete in the control table first, then forget the restart log: a crash in
        # between must find the load complete, never restart it from the beginning.
        await job.mark(
            row,
            RowUpdate(processing_state=ProcessingState.COMPLETED, completion_time=time.time()),
        )
        await target.forget(job.guid)
        await job.log(
            f"Loaded {applied} rows into {row.object_name}; {errors_so_far} in the error table"
        )
