"""The control coroutine (the seed's master control process): runs a taken job's work and
moves it to the state its outcome calls for.

``run_job`` starts the command loop (``Job.obey_commands``) and the operation's work
(``exporting``, ``importing``, ``load``) in one task group, so stopping the job is
cancelling that group, and then ends the job along the edges of the state machine:

- the work is done: (EXECUTING ->) COMPLETING -> COMPLETED;
- STOP_JOB: STOP PENDING -> STOPPING -> STOPPED, or STOPPING -> STOPPED when immediate;
- KILL_JOB: the control table (and an export's dump files, unless KEEP_FILES) dropped
  -> UNDEFINED;
- a failure: through STOPPING to STOPPED, with the error as the stop reason (the control
  table is kept: the job can be restarted once the cause is mended);
- the session that ran it in-process was cancelled: the same, as a stop.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec

from pumpkit.core.control_table import JobUpdate
from pumpkit.core.states import JobState
from pumpkit.core.status import StatusMask
from pumpkit.engine.exporting import run_export
from pumpkit.engine.importing import run_import
from pumpkit.engine.job import Job
from pumpkit.engine.load import run_load
from pumpkit.engine.progress import executing_seconds, job_status
from pumpkit.errors import (
    BadStateError,
    JobStopped,
    JobTakenOverError,
    PumpkitError,
)
from pumpkit.io.dumpset.files import job_set_files, remove_set_files
from pumpkit.io.store import ControlStore

__all__ = ("first_error", "kill_dump_files", "run_job")

#: The work of each operation.
OPERATIONS: dict[str, Callable[[Job], Awaitable[None]]] = {
    "EXPORT": run_export,
    "IMPORT": run_import,
    "LOAD": run_load,
}


def first_error(error: BaseException) -> BaseException:
    """The first leaf of a (nested) exception group: the error a user should read."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _stop_path(state: JobState) -> tuple[JobState, ...]:
    """The edges from ``state`` to STOPPED."""
    if state is JobState.STOPPING:
        return (JobState.STOPPED,)
    return (JobState.STOPPING, JobState.STOPPED)


async def run_job(
    store: ControlStore, job_name: str, *, skip_current: bool = False, password: str | None = None
) -> JobState:
    """Run (or resume) a job that this process has taken (EXECUTING); return the state it
    ends in (UNDEFINED when it was killed, or taken over by another process).

    On a restart, granules that were in flight are redone (or, with ``skip_current``,
    skipped and logged), finished ones are kept.
    """
    job = await Job.load(store, job_name, password=password)
    if job.state is not JobState.EXECUTING:
        raise BadStateError(f"job {job_name} is {job.state.value}, not EXECUTING: take it first")
    await job.log(f"Starting {job_name}: {job.operation} {job.job_mode}, parallel {job.degree}")
    exc: BaseException | None = None
    try:
        if job.restart_count:
            await job.log(await _resuming(store, job_name, job.restart_count))
        await job.prepare_restart(skip_current)
        async with anyio.create_task_group() as tg:
            tg.start_soon(job.obey_commands, tg.cancel_scope)
            await OPERATIONS[job.operation](job)
            tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        # The session that ran the job was cancelled (it left): the job stops, restartable.
        with anyio.CancelScope(shield=True):
            await _stopped(
                job, "CANCELLED: session left", f"Job {job_name} stopped: its session was cancelled"
            )
        raise
    except Exception as group:
        exc = first_error(group)
        if isinstance(exc, JobTakenOverError):
            return JobState.UNDEFINED  # the new owner decides what the job's state is
        if job.stopping and isinstance(exc, JobStopped):
            exc = None  # stopped while it waited for a file: a stop, not a failure
    try:
        if exc is not None:
            message = str(exc) if isinstance(exc, PumpkitError) else f"{type(exc).__name__}: {exc}"
            await job.log(f"Job {job_name} failed: {message}")
            if not isinstance(exc, PumpkitError):
                await job.log("".join(traceback.format_exception(exc)))
            await _stopped(job, f"ERROR: {message}", None)
            return JobState.STOPPED
        if job.stopping:
            if job.kill:
                await _kill(job)
                return JobState.UNDEFINED
            mode = (job.stop_mode or "").lower()
            await _stopped(
                job,
                f"STOP_JOB{' IMMEDIATE' if job.stop_mode == 'IMMEDIATE' else ''}",
                f"Job {job_name} stopped ({mode})",
            )
            return JobState.STOPPED
        await job.completing()
        errors = (await job_status(store, job_name, StatusMask.JOB_ERROR, after=0)).error_count
        # The whole job's time, over all its legs (a restart goes on where the last leg left).
        seconds = executing_seconds(await store.history(job_name), job.guid, time.time())
        elapsed = f"{seconds:.1f} s" + (
            f" over {job.restart_count + 1} runs" if job.restart_count else ""
        )
        if errors:
            # Oracle's "completed with N error(s)": what did not move is in the log, each
            # with why, and in the status (exit 5).
            await job.log(f"Job {job_name} completed with {errors} error(s) in {elapsed}")
        else:
            await job.log(f"Job {job_name} successfully completed in {elapsed}")
        await job.move(JobState.COMPLETED, update=JobUpdate(stop_reason=None))
        summary = await job_status(store, job_name, StatusMask.ALL & ~StatusMask.WIP, after=0)
        await store.update_job(job_name, JobUpdate(summary=msgspec.json.encode(summary)))
        if not job.parameters.get("KEEP_MASTER"):
            await store.drop_control_table(job_name)
        return JobState.COMPLETED
    except JobTakenOverError:
        return JobState.UNDEFINED


async def _resuming(store: ControlStore, job_name: str, restarts: int) -> str:
    """What a restart resumes: the granules and rows done, those left."""
    status = await job_status(store, job_name, StatusMask.JOB_STATUS, after=0)
    rows = await store.rows(job_name, object_types=["TABLE_DATA"])
    done = sum(r.done for r in rows)
    return (
        f"Restart {restarts}: {done} of {len(rows)} granules done ({status.completed_rows:,}"
        f" rows), resuming the other {len(rows) - done}"
    )


async def _stopped(job: Job, reason: str, line: str | None) -> None:
    """The job ends STOPPED (through STOPPING), its control table kept."""
    if line is not None:
        await job.log(line)
    if job.state is JobState.STOPPED:
        return
    await job.move(*_stop_path(job.state), update=JobUpdate(stop_reason=reason))


async def _kill(job: Job) -> None:
    """KILL_JOB: drop the control table; an export's dump files (this job's only) are
    removed, or kept when the kill asked for it (KEEP_FILES)."""
    line = await kill_dump_files(job.store, job.name, keep=job.keep_files)
    await job.log(f"Job {job.name} killed" + (f"; {line}" if line else ""))
    await job.store.drop_job(job.name)


async def kill_dump_files(store: ControlStore, job_name: str, *, keep: bool) -> str | None:
    """KILL_JOB's part in an export's dump files, in every state where KILL_JOB is valid:
    remove the files its dump-file names name whose header carries the job's guid (no other
    job's file is touched), or with ``keep`` leave them. Returns what was done, for the log
    and the client (``None``: not an export, or no file of it exists)."""
    record = await store.job(job_name)
    if record is None or record.operation != "EXPORT":
        return None
    guid = bytes.fromhex(record.guid.replace("-", ""))
    dumps = [f for f in await store.files(job_name) if f.file_type == "DUMP"]
    paths: list[Path] = []
    for f in dumps:
        if keep:
            paths += await anyio.to_thread.run_sync(
                job_set_files, Path(f.directory), f.file_name, guid
            )
        else:
            paths += await anyio.to_thread.run_sync(
                remove_set_files, Path(f.directory), f.file_name, guid
            )
    if not paths:
        return None
    names = ", ".join(str(p) for p in paths)
    if keep:
        return f"its dump files are kept (KEEP_FILES): {names}"
    return f"its dump files are removed: {names}"
