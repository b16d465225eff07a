"""The control process's hold on one running job: its state, its commands, its log, and the
progress it records (the seed's master control process, less the work itself).

A :class:`Job` is made by ``run_job`` once the job has been taken (it is EXECUTING and this
process owns it). Every change of the job's state goes through :meth:`Job.move`, which asks
``pumpkit.core.states`` and does a compare-and-set on the owner's token in the store: when
another process has taken the job over, the move raises ``JobTakenOverError`` and this one
stops touching anything. Commands (STOP, PARALLEL, ADD_FILE, LOG) reach it through the store
from any process; :meth:`Job.obey_commands` polls for them and beats the job's heart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec

from pumpkit.core.control_table import (
    OBJECT_TYPES,
    ControlRow,
    FileEntry,
    JobUpdate,
    ProcessingState,
    RowUpdate,
    WorkerEntry,
)
from pumpkit.core.selecting import job_selection
from pumpkit.core.selection import Selection
from pumpkit.core.states import JobState
from pumpkit.errors import JobTakenOverError, UsageError
from pumpkit.io.dumpfile import DumpSetWriter
from pumpkit.io.store import ControlStore

__all__ = ("HEARTBEAT_INTERVAL", "POLL_INTERVAL", "Job")

#: How often the control coroutine looks for commands (seconds) and beats its heart.
POLL_INTERVAL = 0.2
HEARTBEAT_INTERVAL = 1.0


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


@dataclass
class Job:
    """Everything the control coroutine of one job holds while it runs."""

    store: ControlStore
    name: str
    operation: str
    job_mode: str
    guid: str
    degree: int
    state: JobState
    token: str | None
    restart_count: int
    parameters: dict[str, Any]
    files: list[FileEntry]
    selection: Selection = field(default_factory=Selection)
    password: str | None = None
    #: Set when the work must end now (an immediate stop, a kill, the job's end): threads
    #: reading or writing a granule look at it.
    stop_event: threading.Event = field(default_factory=threading.Event)
    stop_mode: str | None = None  # None, "GRACEFUL", "IMMEDIATE"
    kill: bool = False
    writer: DumpSetWriter | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)
    # Set by a writer thread when no dump file can take more bytes; shown in the status
    # until ADD_FILE lets the job go on.
    full_message: str | None = None
    shown_waiting: str | None = None

    @classmethod
    async def load(cls, store: ControlStore, name: str, *, password: str | None) -> Job:
        """The job as its control table describes it (it must be EXECUTING: taken)."""
        record = await store.job(name)
        if record is None:
            raise UsageError(f"job {name!r} does not exist")
        parameters = await store.parameters(name)
        return cls(
            store=store,
            name=name,
            operation=record.operation,
            job_mode=record.job_mode,
            guid=record.guid,
            degree=record.degree,
            state=JobState(record.state),
            token=record.owner_token,
            restart_count=record.restart_count,
            parameters=parameters,
            files=await store.files(name),
            selection=job_selection(await store.filters(name), parameters),
            password=password,
        )

    # -- state

    async def move(self, *path: JobState, update: JobUpdate | None = None) -> None:
        """Move the job through ``path`` (each step an edge of the state machine), as its
        owner; raises ``JobTakenOverError`` when another process has the job now."""
        moved = await self.store.move(self.name, self.state, *path, token=self.token, update=update)
        if not moved:
            raise JobTakenOverError(
                f"job {self.name} was taken over by another process; this one stops"
            )
        self.state = path[-1]

    async def completing(self) -> None:
        """The work is done: the job wraps up (EXECUTING -> COMPLETING)."""
        if self.state is JobState.EXECUTING:
            await self.move(JobState.COMPLETING)

    def wake(self) -> None:
        """Tell waiting workers that the degree or the stop mode changed."""
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def stopping(self) -> bool:
        return self.stop_mode is not None

    # -- logging

    @property
    def log_paths(self) -> list[Path]:
        return [Path(f.directory) / f.file_name for f in self.files if f.file_type == "LOG"]

    @property
    def dump_files(self) -> list[FileEntry]:
        return [f for f in self.files if f.file_type == "DUMP"]

    async def log(self, text: str) -> None:
        """A line into the job's log (store and LOG files)."""
        await self.store.log(self.name, text)
        line = f"{time.strftime('%H:%M:%S')} {text}\n"
        for path in self.log_paths:
            await anyio.to_thread.run_sync(_append, path, line)

    # -- parameters

    async def set_parameter(self, name: str, value: Any) -> None:
        await self.store.set_parameter(self.name, name, value)
        self.parameters[name] = value

    async def check_fingerprint(self, what: str, fingerprint: str) -> None:
        """Refuse to go on when the source (or target) is not the one the job started with."""
        name = f"{what}_FINGERPRINT"
        known = self.parameters.get(name)
        if known is None:
            await self.set_parameter(name, fingerprint)
        elif known != fingerprint:
            raise UsageError(
                f"the {what.lower()} database is not the one job {self.name} started with"
                f" ({known} then, {fingerprint} now): a restart would mix two databases;"
                " kill the job (KILL_JOB) and start a new one"
            )

    # -- restart

    async def prepare_restart(self, skip_current: bool) -> None:
        """Granules that were in flight when the job stopped are redone, or skipped."""
        rows = await self.store.rows(
            self.name, object_types=OBJECT_TYPES, states=[ProcessingState.RUNNING]
        )
        if not rows:
            return
        state = ProcessingState.SKIPPED if skip_current else ProcessingState.PENDING
        await self.store.update_rows(
            self.name, [(r.key, RowUpdate(processing_state=state)) for r in rows]
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
            for command, argument in await self.store.take_commands(self.name):
                await self._obey(command, argument, scope)
            await self.sync_waiting()
            if time.monotonic() - beat >= HEARTBEAT_INTERVAL:
                beat = time.monotonic()
                if self.token is not None and not await self.store.beat(self.name, self.token):
                    # Another process took the job over (it thought this one dead): stop
                    # touching anything at once.
                    raise JobTakenOverError(
                        f"job {self.name} was taken over by another process; this one stops"
                    )
            await anyio.sleep(POLL_INTERVAL)

    async def _obey(self, command: str, argument: str | None, scope: anyio.CancelScope) -> None:
        if command == "STOP":
            args = msgspec.json.decode(argument or "{}")
            immediate = bool(args.get("immediate"))
            if args.get("keep_master") is False:
                self.kill = True
            if self.state not in (JobState.EXECUTING, JobState.STOP_PENDING):
                return  # wrapping up already: STOP_JOB is not valid in COMPLETING
            if immediate or self.kill:
                self.stop_mode = "IMMEDIATE"
                self.stop_event.set()
                self.wake()
                await self.move(JobState.STOPPING)
                await self.log("Job stop requested: immediate" + (" (kill)" if self.kill else ""))
                scope.cancel()
            elif self.stop_mode is None:
                self.stop_mode = "GRACEFUL"
                self.wake()
                await self.move(JobState.STOP_PENDING)
                await self.log("Job stop requested: workers finish their current granule")
        elif command == "PARALLEL":
            degree = int(argument or "1")
            self.degree = degree
            self.wake()
            await self.store.update_job(self.name, JobUpdate(degree=degree), token=self.token)
            await self.log(f"Degree of parallelism set to {degree}")
        elif command == "LOG":
            await self.log(argument or "")
        elif command == "ADD_FILE" and self.writer is not None and argument:
            self.writer.add_template(argument)
            await self.log(f"Dump file {argument} added")

    # -- a full dump-file set

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
        await self.store.set_parameter(self.name, "WAITING_FOR", message)
        if message:
            await self.log(f"Waiting: {message}")
        else:
            await self.log("A dump file was added: the job goes on")

    # -- progress

    async def mark(self, row: ControlRow, update: RowUpdate) -> None:
        """Record progress on one object row (one transaction)."""
        if update.last_update is msgspec.UNSET:
            update.last_update = time.time()
        await self.store.update_rows(self.name, [(row.key, update)])

    async def mark_all(self, rows: Sequence[ControlRow], update: RowUpdate) -> None:
        """The same progress on many rows, in one transaction."""
        if rows:
            await self.store.update_rows(self.name, [(r.key, update) for r in rows])

    async def set_worker(self, name: str, row: ControlRow | None) -> None:
        await self.store.set_worker(
            self.name,
            WorkerEntry(
                name=name,
                state="WORKING" if row else "IDLE",
                object_schema=row.object_schema if row else None,
                object_name=row.object_name if row else None,
                object_type=row.object_type if row else None,
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
        await self.mark_all(done, RowUpdate(processing_state=ProcessingState.COMPLETED))
        return [r for r in granules if r.process_order not in markers]
