"""The control process's hold on one running job: its state, its commands, its log, and the
progress it records (the seed's master control process, less the work itself).

A :class:`Job` is made by ``run_job`` once the job has been taken (it is EXECUTING and this
process owns it). Every change of the job's state goes through :meth:`Job.move`, which asks
``pumpkit.core.states`` and does a compare-and-set on the owner's token in the store: when
another process has taken the job over, the move raises ``JobTakenOverError`` and this one
stops touching anything. Commands (STOP, PARALLEL, ADD_FILE, CONTINUE, LOG) reach it through the store
from any process; :meth:`Job.obey_commands` polls for them and beats the job's heart.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
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
from pumpkit.core.frame import Location
from pumpkit.core.selecting import job_selection
from pumpkit.core.selection import Selection
from pumpkit.core.states import JobState
from pumpkit.errors import DumpSetFullError, JobStopped, JobTakenOverError, UsageError
from pumpkit.io.dumpset.writer import DumpSetWriter
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
    keep_files: bool = False  # KILL_JOB with KEEP_FILES: an export's dump files stay
    writer: DumpSetWriter | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)
    # What a write that found the dump-file set full waits for (``wait_for_room``): set, and
    # replaced, by ADD_FILE and by a stop. How many writes wait now, and the reason shown.
    room: anyio.Event = field(default_factory=anyio.Event)
    waiting_for_room: int = 0
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
            self.let_writes_go()

    async def _obey_commands(self, scope: anyio.CancelScope) -> None:
        beat = 0.0
        while True:
            for command, argument in await self.store.take_commands(self.name):
                await self._obey(command, argument, scope)
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
                self.keep_files = bool(args.get("keep_files"))
            if self.state not in (JobState.EXECUTING, JobState.STOP_PENDING):
                return  # wrapping up already: STOP_JOB is not valid in COMPLETING
            if immediate or self.kill:
                self.stop_mode = "IMMEDIATE"
                self.stop_event.set()
                self.wake()
                await self.move(JobState.STOPPING)
                await self.log("Job stop requested: immediate" + (" (kill)" if self.kill else ""))
                self.let_writes_go()
                scope.cancel()
            elif self.stop_mode is None:
                self.stop_mode = "GRACEFUL"
                self.wake()
                await self.move(JobState.STOP_PENDING)
                await self.log("Job stop requested: workers finish their current granule")
                # Last (the stop is recorded first): a write waiting for a dump file cannot
                # finish its granule, so it stops now.
                self.let_writes_go()
        elif command == "PARALLEL":
            degree = int(argument or "1")
            self.degree = degree
            self.wake()
            await self.store.update_job(self.name, JobUpdate(degree=degree), token=self.token)
            await self.log(f"Degree of parallelism set to {degree}")
        elif command == "LOG":
            await self.log(argument or "")
        elif command == "CONTINUE" and self.writer is not None:
            # Space was freed where the set had no room: the waiting writes try again there.
            self.writer.retry_in_place()
            await self.log("CONTINUE: the writes waiting for room try the dump file again")
            self.let_writes_go()
        elif command == "ADD_FILE" and self.writer is not None and argument:
            self.writer.add_template(argument)
            await self.log(f"Dump file {argument} added")
            self.let_writes_go()

    # -- a full dump-file set

    def let_writes_go(self) -> None:
        """Wake every write waiting for room in the dump-file set (a file was added, or the
        job stops); each then looks at why."""
        self.room.set()
        self.room = anyio.Event()

    async def wait_for_room(self, message: str) -> bool:
        """Wait while the dump-file set is full: until ADD_FILE gives it another file name or
        the job stops (Oracle's job stops with ORA-39095 here; this one waits). Returns whether
        to write the same frame again (False: the job stops).

        ``message`` (the ``DumpSetFullError``'s) is shown while any write waits: the status's
        WAITING_FOR and a "Waiting: ..." log line; once the last waiting write goes on, "A dump
        file was added: the job goes on". Runs on the event loop: the control coroutine awaits
        it for its own writes, a worker thread calls it with ``anyio.from_thread.run``. Valid
        while an export runs (EXECUTING, STOP PENDING).
        """
        room = self.room  # first: every ADD_FILE from here on sets this one
        if self.stopping or self.stop_event.is_set():
            return False
        writer = self.writer
        if writer is not None and await anyio.to_thread.run_sync(writer.can_grow):
            return True  # a file was added between the write that failed and now
        self.waiting_for_room += 1
        try:
            if self.shown_waiting != message:
                await self.show_waiting(message)
            await room.wait()
        finally:
            self.waiting_for_room -= 1
        if self.stopping or self.stop_event.is_set():
            return False
        if not self.waiting_for_room and self.shown_waiting is not None:
            await self.show_waiting(None)
        return True

    async def write_waiting(self, write: Callable[[], Location]) -> Location:
        """``write`` (a write into the dump-file set) in a thread, made again after each wait
        for room while the set is full. Raises ``JobStopped`` when the job stops meanwhile."""
        while True:
            try:
                return await anyio.to_thread.run_sync(write)
            except DumpSetFullError as full:
                if not await self.wait_for_room(str(full)):
                    raise JobStopped from None

    def write_waiting_from_thread(self, write: Callable[[], Location]) -> Location:
        """``write_waiting`` for a worker thread: it waits on the event loop."""
        while True:
            try:
                return write()
            except DumpSetFullError as full:
                try:
                    go_on = anyio.from_thread.run(self.wait_for_room, str(full))
                except concurrent.futures.CancelledError:
                    # The job was cancelled while the write waited (its session left): no
                    # room; the cancellation goes on in the waiting task.
                    go_on = False
                if not go_on:
                    raise JobStopped from None

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
