"""Job status from the control store: what GET_STATUS and the jobs view answer.

Read-only and process-independent: any session that reaches the store computes the same
status, which is what lets a client in another process watch a job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

from pumpkit.core.control_table import ControlRow, JobRecord, ProcessingState, RowKind
from pumpkit.core.status import FileStatus, Status, StatusMask, WorkerStatus
from pumpkit.errors import StoreError
from pumpkit.io.store import ControlStore, this_host

__all__ = ("HEARTBEAT_STALE", "executing_seconds", "job_status", "owner_alive", "pid_alive")

# A heartbeat older than this marks a running job's owner as gone (seconds).
HEARTBEAT_STALE = 15.0


def owner_alive(record: JobRecord) -> bool:
    """Whether the process running the job is there: same host, pid alive, heartbeat fresh."""
    if record.owner_pid is None:
        return False
    if record.heartbeat is not None and time.time() - record.heartbeat > HEARTBEAT_STALE:
        return False
    if record.owner_host == this_host():
        return pid_alive(record.owner_pid)
    return True


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # pid (comm) state ...: comm may hold spaces and parentheses; state follows the last ')'.
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        # Reaped between the signal and the read (its parent's wait ran meanwhile) - unless this
        # system has no /proc, where the signal's answer is all there is to go on.
        return not os.path.isdir("/proc/self")
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


class _Figures(msgspec.Struct, frozen=True):
    total_rows: int
    total_bytes: int
    percent: float
    unit: str  # "rows" or "bytes": what percent_done counts


def _progress(data: list[ControlRow], done: list[ControlRow], operation: str | None) -> _Figures:
    """A job's totals and how far it is, from its TABLE_DATA granules.

    The total is the same from the plan to the last granule: an import knows each granule's
    rows (the export recorded them); an export has the plan's estimates, which the real
    counts replace only once every granule is done (so the total does not creep a row at a
    time as granules finish). The share done is counted in rows where rows are known or
    estimated, else in bytes, and ``unit`` says which.
    """
    finished = len(done) == len(data)

    def rows_of(r: ControlRow) -> int:
        if operation == "IMPORT" or (finished and r.done):
            return r.completed_rows or 0
        return r.estimated_rows or 0

    def bytes_of(r: ControlRow) -> int:
        return r.size_estimate or r.completed_bytes or 0

    total_rows = sum(rows_of(r) for r in data)
    total_bytes = sum(bytes_of(r) for r in data)
    if finished:
        return _Figures(total_rows, total_bytes, 100.0 if data else 0.0, "rows")
    # An import knows every granule's rows; an export counts in rows when the source gave
    # estimates (a source without statistics estimates 0 rows: then bytes).
    by_rows = total_rows > 0
    if by_rows:
        share = sum(rows_of(r) for r in done) / total_rows
    else:
        share = sum(bytes_of(r) for r in done) / total_bytes if total_bytes else 0.0
    return _Figures(total_rows, total_bytes, 100.0 * share, "rows" if by_rows else "bytes")


def executing_seconds(history: list[tuple[str, int, str, float]], guid: str, now: float) -> float:
    """How long the job ``guid`` has been EXECUTING, over all its legs (runs between a start or
    restart and a stop): each stretch from a move to EXECUTING to the job's next move, the
    last one (still running) to ``now``. A leg ended by a crash counts until its restart."""
    moves = [(state, at) for g, _, state, at in history if g == guid]
    total = 0.0
    for (state, at), following in zip(moves, [*moves[1:], None], strict=True):
        if state == "EXECUTING":
            total += (following[1] if following is not None else now) - at
    return total


async def job_status(store: ControlStore, job_name: str, mask: StatusMask, *, after: int) -> Status:
    """A job's status from the control store (works from any process)."""
    try:
        return await _job_status(store, job_name, mask, after=after)
    except StoreError:
        # The job may have completed and dropped its control table between the check for it
        # and the read of its rows: its final figures are in the registry by then.
        return await _job_status(store, job_name, mask, after=after)


async def _job_status(
    store: ControlStore, job_name: str, mask: StatusMask, *, after: int
) -> Status:
    record = await store.job(job_name)
    if record is None:
        raise StoreError(f"job {job_name!r} is gone")
    fields: dict[str, Any] = {"job_name": job_name, "state": record.state}
    has_table = await store.has_control_table(job_name)
    if not has_table and record.summary:
        # A completed job's control table is gone; its final figures were kept.
        final = msgspec.json.decode(record.summary, type=Status)
        lines = tuple(t for _, _, t in await store.log_lines(job_name, after))
        return msgspec.structs.replace(final, state=record.state, log_lines=lines)
    rows = await store.rows(job_name) if has_table else []
    if mask & StatusMask.JOB_DESC:
        fields.update(operation=record.operation, job_mode=record.job_mode, degree=record.degree)
        files = []
        for f in rows:
            if f.kind is not RowKind.FILE:
                continue
            path = Path(f.file_name or "")
            files.append(
                FileStatus(
                    file_name=str(path),
                    file_type=f.file_type or "",
                    size=path.stat().st_size if path.exists() else 0,
                    max_size=f.file_max_size,
                )
            )
        fields["files"] = tuple(files)
    if mask & StatusMask.JOB_STATUS:
        data = [r for r in rows if r.object_type == "TABLE_DATA"]
        objects = [r for r in rows if r.kind is RowKind.OBJECT and r.object_type != "TABLE_DATA"]
        done = [r for r in data if r.done]
        figures = _progress(data, done, record.operation)
        fields.update(
            phase="DATA" if data and len(done) < len(data) else ("METADATA" if objects else ""),
            degree=record.degree,
            completed_rows=sum(r.completed_rows or 0 for r in done),
            total_rows=figures.total_rows,
            completed_bytes=sum(r.completed_bytes or 0 for r in done),
            total_bytes=figures.total_bytes,
            percent_done=figures.percent
            if data
            else (100.0 if record.state == "COMPLETED" else 0.0),
            percent_by=figures.unit,
            completed_objects=sum(1 for r in objects if r.done),
            total_objects=len(objects),
            restart_count=record.restart_count,
            workers=tuple(
                WorkerStatus(
                    name=r.name or "",
                    state=r.state or "",
                    object_type=r.base_object_type,
                    object_schema=r.object_schema,
                    object_name=r.object_name,
                    partition_name=r.partition_name,
                )
                for r in rows
                if r.kind is RowKind.WORKER
            ),
        )
    if mask & StatusMask.JOB_STATUS:
        fields["waiting_for"] = next(
            (
                r.value_t
                for r in rows
                if r.kind is RowKind.PARAMETER and r.name == "WAITING_FOR" and r.value_t
            ),
            None,
        )
    if mask & StatusMask.WIP:
        fields["log_lines"] = tuple(text for _, _, text in await store.log_lines(job_name, after))
    if mask & StatusMask.JOB_ERROR:
        errors = tuple(
            text for _, _, text in await store.log_lines(job_name, 0) if " failed: " in text
        )
        # A job's errors: its failure, the objects it did not make (each with why), and the
        # rows a load could not place (its error table).
        failed = tuple(
            f"{r.object_type} {r.object_name}: {r.processing_status or 'not made'}"
            for r in rows
            if r.processing_state is ProcessingState.FAILED and r.object_type != "TABLE_DATA"
        )
        rejected = sum(r.error_count or 0 for r in rows if r.object_type == "TABLE_DATA")
        fields.update(errors=errors + failed, error_count=len(errors) + len(failed) + rejected)
    return Status(**fields)
