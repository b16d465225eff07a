"""``Session``: integer job handles and the DBMS_DATAPUMP procedures, as async methods.

A session is the seed's *shadow process*: it creates jobs, attaches to them, and passes the
caller's requests on. Every procedure first asks ``pumpkit.core.states`` whether Table 6-1
allows it in the job's current state. Job state lives in the control store, so any session
in any process that reaches the same home directory sees the same jobs.

A job started with ``start_job`` runs its control coroutine in this session's task group;
leaving ``async with Session()`` waits for such jobs to end (detaching does not stop a job).
pumpkit runs on anyio's asyncio backend (aiosqlite is built on asyncio).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from pumpkit.core.control_table import (
    ControlRow,
    FileEntry,
    JobRecord,
    JobUpdate,
    RowKind,
    parameter_row,
)
from pumpkit.core.parameters import (
    DATA_FILTERS,
    METADATA_FILTERS,
    METADATA_REMAPS,
    METADATA_TRANSFORMS,
    PARAMETERS,
    check_filter_name,
    parse_size,
    validate_parameter,
)
from pumpkit.core.selecting import filter_entries
from pumpkit.core.selection import build_selection, parse_name_list
from pumpkit.core.states import (
    ACTIVE_STATES,
    JobState,
    Procedure,
    check,
    parse_state,
)
from pumpkit.core.status import JobView, Status, StatusMask
from pumpkit.core.templates import expand_template
from pumpkit.engine.control import kill_dump_files, run_job
from pumpkit.engine.progress import job_status, owner_alive, pid_alive
from pumpkit.errors import (
    BadStateError,
    FileAccessError,
    InvalidArgumentError,
    InvalidHandleError,
    InvalidStateError,
    JobHeldError,
    PumpkitError,
    StoreError,
    UsageError,
)
from pumpkit.exitcodes import ExitCode
from pumpkit.io.store import ControlStore, new_owner, open_store, this_host
from pumpkit.io.store.clients import add_client, live_clients, remove_client
from pumpkit.io.usercode import load_object

__all__ = ("Session",)

OPERATIONS = ("EXPORT", "IMPORT", "LOAD")
JOB_MODES = ("FULL", "SCHEMA", "TABLE")
FILE_TYPES = ("DUMP", "LOG", "SQL")
_WAIT_POLL = 0.1
_DERIVED_DEFAULTS = ("ENCRYPTION", "ENCRYPTION_PASSWORD", "TABLE_EXISTS_ACTION")
_ATTACH_TRIES = 5


@dataclass
class _Handle:
    job_name: str
    log_seq: int = 0


class Session:
    """A client session: ``async with Session(home=...) as s: h = await s.open(...)``.

    ``home`` is the control-store directory (default ``$PUMPKIT_HOME``, else the user's state
    directory). Handles are ints valid only in the session that made them.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self._home = home
        self._handles: dict[int, _Handle] = {}
        self._next_handle = 1
        self._store_: ControlStore | None = None
        self._tg: TaskGroup | None = None
        # ENCRYPTION_PASSWORD per job: kept in this session only, never in the control store.
        self._passwords: dict[str, str] = {}

    async def __aenter__(self) -> Session:
        self._store_ = await open_store(self._home)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        try:
            if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
                # The body failed: stop this session's jobs (they stay restartable) and let
                # the body's own error through, not wrapped in an exception group.
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
                return None
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            for handle in list(self._handles):
                try:
                    with anyio.CancelScope(shield=True):
                        await self.detach(handle)
                except Exception:
                    pass
            with anyio.CancelScope(shield=True):
                await self._store.close()

    @property
    def _store(self) -> ControlStore:
        if self._store_ is None:
            raise UsageError("use the session inside `async with Session(...)`")
        return self._store_

    # -- handles and states

    def _handle(self, h: int) -> _Handle:
        try:
            return self._handles[h]
        except (KeyError, TypeError):
            raise InvalidHandleError(
                f"handle {h!r} is not a job handle of this session (detached, or never made)"
            ) from None

    async def _record(self, job_name: str) -> JobRecord:
        record = await self._store.job(job_name)
        if record is None:
            raise UsageError(f"job {job_name!r} does not exist")
        return record

    def _effective_state(self, record: JobRecord) -> JobState:
        """The registry's state, or NOT RUNNING when its owner is gone."""
        state = parse_state(record.state)
        running = state in ACTIVE_STATES and state not in (JobState.DEFINING, JobState.IDLING)
        if running and not owner_alive(record):
            return JobState.NOT_RUNNING
        return state

    async def _state_for(
        self, h: int, procedure: Procedure, **context: Any
    ) -> tuple[_Handle, JobRecord, JobState]:
        handle = self._handle(h)
        record = await self._store.job(handle.job_name)
        state = JobState.UNDEFINED if record is None else self._effective_state(record)
        check(procedure, state, **context)
        assert record is not None
        return handle, record, state

    def _new_handle(self, job_name: str) -> int:
        h = self._next_handle
        self._next_handle += 1
        self._handles[h] = _Handle(job_name)
        add_client(self._store.location, job_name, this_host(), os.getpid(), h)
        return h

    def _handle_gone(self, job_name: str, h: int) -> None:
        remove_client(self._store.location, job_name, this_host(), os.getpid(), h)

    # -- OPEN, ATTACH, DETACH

    async def open(
        self,
        operation: str,
        job_mode: str,
        *,
        job_name: str | None = None,
        database: str | os.PathLike[str] | None = None,
        version: str | None = None,
    ) -> int:
        """Create a job in DEFINING state and return a handle to it.

        ``operation`` is ``"EXPORT"`` or ``"IMPORT"``; ``job_mode`` ``"FULL"``, ``"SCHEMA"`` or
        ``"TABLE"``; ``database`` the source (export) or target (import), a path or
        ``sqlite:///path``. The default job name is like Oracle's: ``SYS_EXPORT_FULL_01``.
        Valid in state UNDEFINED (the job must not exist). Raises ``InvalidArgumentError``, and
        ``JobHeldError`` when a job of that name exists (or another session opened one
        of that name at the same moment): the name is taken.
        """
        op = operation.upper()
        mode = job_mode.upper()
        if op not in OPERATIONS:
            raise InvalidArgumentError(
                f"operation {operation!r} is not valid; valid operations: {', '.join(OPERATIONS)}"
            )
        if mode not in JOB_MODES:
            raise InvalidArgumentError(
                f"job mode {job_mode!r} is not valid; valid modes: {', '.join(JOB_MODES)}"
            )
        if version not in (None, "COMPATIBLE", "LATEST", "1", "1.0"):
            raise InvalidArgumentError(
                f"version {version!r} is not valid; this pumpkit writes dump format 1.0"
                " (COMPATIBLE, LATEST, 1.0)"
            )
        if database is None and op != "IMPORT":
            raise InvalidArgumentError(
                f"open needs database=: the source database of an {op.lower()}"
            )
        store = self._store
        names = await store.job_names()
        if job_name is None:
            n = 1
            while f"SYS_{op}_{mode}_{n:02d}" in names:
                n += 1
            job_name = f"SYS_{op}_{mode}_{n:02d}"
        elif not job_name or len(job_name) > 128 or "\x00" in job_name:
            raise InvalidArgumentError(f"job name {job_name!r} must be 1 to 128 characters")
        self._passwords.pop(job_name, None)  # an earlier job's of this name is not this one's
        existing = await store.job(job_name)
        if existing is not None:
            if existing.state == JobState.COMPLETED.value and not await store.has_control_table(
                job_name
            ):
                await store.drop_job(job_name)
            else:
                raise self._name_taken(job_name, existing)
        check(Procedure.OPEN, JobState.UNDEFINED)
        db = "" if database is None else str(database)  # an SQLFILE import needs none
        if db and (op == "EXPORT" or not db.startswith(("postgres://", "postgresql://"))):
            db = (
                db
                if "://" in db and not db.startswith("sqlite")
                else str(Path(_strip_sqlite(db)).absolute())
            )
        guid = str(uuid.uuid4())
        now = time.time()
        record = JobRecord(
            job_name=job_name,
            guid=guid,
            operation=op,
            job_mode=mode,
            state=JobState.DEFINING.value,
            degree=1,
            attached_sessions=1,
            owner_host=None,
            owner_pid=None,
            owner_token=None,
            heartbeat=None,
            stop_reason=None,
            restart_count=0,
            created=now,
            updated=now,
        )
        rows = [
            ControlRow(
                process_order=RowKind.JOB,
                object_type=RowKind.JOB.name,
                operation=op,
                job_mode=mode,
                state=JobState.DEFINING.value,
                guid=guid,
                version="1.0",
                degree=1,
                start_time=now,
            ),
            parameter_row("DATABASE", db, is_default=False),
            parameter_row("JOB_MODE", mode, is_default=False),
        ]
        for name, spec in PARAMETERS.items():
            # These three have defaults that depend on other parameters (ENCRYPTION: ALL with
            # a password; TABLE_EXISTS_ACTION: APPEND under CONTENT=DATA_ONLY): absent = unset.
            if op in spec.operations and name not in _DERIVED_DEFAULTS:
                rows.append(parameter_row(name, spec.default, is_default=True))
        try:
            await store.create_job(record, rows)
        except StoreError:
            # Two opens of one name at once: the other's job was made between our look and
            # our create (the store refuses the second of a name).
            other = await store.job(job_name)
            if other is not None and other.guid != guid:
                raise self._name_taken(job_name, other) from None
            raise
        return self._new_handle(job_name)

    def _name_taken(self, job_name: str, existing: JobRecord) -> JobHeldError:
        """OPEN of a name another job has: the loser of a race to open it, or a name in use."""
        state = self._effective_state(existing)
        runs = state not in (JobState.STOPPED, JobState.NOT_RUNNING, JobState.DEFINING)
        holder = _holder(existing) if runs else None
        return JobHeldError(
            f"job name {job_name!r} is taken: a job of that name exists"
            f" ({f'{holder} runs it' if holder else 'opened by another session or process'});"
            f" attach to it, or open with another name: OPEN is not valid in state"
            f" {state.value}; valid in: {JobState.UNDEFINED.value}",
            procedure=Procedure.OPEN.value,
            state=state.value,
            valid=(JobState.UNDEFINED.value,),
            holder=holder,
        )

    async def attach(self, job_name: str) -> int:
        """Attach to an existing job; a STOPPED or NOT RUNNING job moves to IDLING.

        Valid in DEFINING, EXECUTING, IDLING, STOPPED, COMPLETED, COMPLETING, NOT RUNNING.
        """
        for _ in range(_ATTACH_TRIES):
            record = await self._store.job(job_name)
            state = JobState.UNDEFINED if record is None else self._effective_state(record)
            try:
                check(Procedure.ATTACH, state)
            except InvalidStateError as exc:
                if record is None:
                    raise exc.explained(
                        f"job {job_name!r} does not exist (see `pumpkit jobs`)"
                    ) from None
                raise
            assert record is not None
            if state in (JobState.STOPPED, JobState.NOT_RUNNING):
                if not await self._store.has_control_table(job_name):
                    raise UsageError(
                        f"job {job_name!r} has no control table left: it cannot restart"
                    )
                stored = parse_state(record.state)
                # A job whose owner died is NOT RUNNING though its record still says what it
                # was doing: the move passes through NOT RUNNING, from the dead owner.
                path = (
                    (JobState.NOT_RUNNING, JobState.IDLING)
                    if stored is not JobState.NOT_RUNNING and state is JobState.NOT_RUNNING
                    else (JobState.IDLING,)
                )
                changed = await self._store.move(
                    job_name,
                    stored,
                    *path,
                    token=record.owner_token if state is JobState.NOT_RUNNING else None,
                    update=JobUpdate(owner_host=None, owner_pid=None, owner_token=None),
                )
                if not changed:
                    continue  # another session moved it first (to IDLING, most likely): look again
            await self._store.change_attached(job_name, +1)
            return self._new_handle(job_name)
        raise UsageError(f"job {job_name!r} keeps changing state; attach again")

    async def detach(self, h: int) -> None:
        """Let go of a handle. Valid in every state.

        When the last session detaches from a DEFINING job the job is removed; a running job
        goes on running.
        """
        handle = self._handle(h)
        del self._handles[h]
        self._handle_gone(handle.job_name, h)
        attached = await self._store.change_attached(handle.job_name, -1)
        record = await self._store.job(handle.job_name)
        if record is None or attached:
            return
        if record.state == JobState.DEFINING.value:
            await self._store.drop_job(handle.job_name)
        elif record.state == JobState.IDLING.value:
            # Nobody is left to restart it: it is a stopped job again.
            await self._store.move(handle.job_name, JobState.IDLING, JobState.STOPPED)

    # -- defining the job

    async def add_file(
        self,
        h: int,
        filename: str,
        directory: str | os.PathLike[str] | None = None,
        filesize: int | str | None = None,
        filetype: str = "DUMP",
        reusefile: bool = False,
    ) -> None:
        """Add a dump file (``%U``/``%L`` templates allowed), the log file or the SQL file.

        Valid in DEFINING; for export dump files also in EXECUTING and IDLING.
        Raises ``FileAccessError`` for a missing directory, an existing dump file without
        ``reusefile``, or (import) a dump file that does not exist.
        """
        kind = filetype.upper()
        if kind not in FILE_TYPES:
            raise InvalidArgumentError(
                f"filetype {filetype!r} is not valid; valid types: {', '.join(FILE_TYPES)}"
            )
        handle = self._handle(h)
        existing = await self._store.job(handle.job_name)
        _, record, state = await self._state_for(
            h,
            Procedure.ADD_FILE,
            operation=existing.operation if existing else None,
            filetype=kind,
        )
        if not filename or "\x00" in filename:
            raise InvalidArgumentError(f"file name {filename!r} is not valid")
        path = Path(filename)
        # An absolute name is in its own directory, whatever the job's directory (a set may
        # span several: "one.dmp,/elsewhere/more%U.dmp").
        folder = (
            path.parent
            if path.is_absolute()
            else (Path(directory) if directory is not None else Path("."))
        )
        if path.is_absolute():
            filename = path.name
        elif path.name != filename:
            # "sub/x.dmp": the directory part joins the folder, so that a FILE row (and the
            # copy of it an export writes into its set) holds a plain file name.
            folder, filename = folder / path.parent, path.name
        folder = folder.absolute()
        if not folder.is_dir():
            raise FileAccessError(f"directory {str(folder)!r} does not exist", path=str(folder))
        size = None
        if filesize is not None:
            if kind != "DUMP":
                raise InvalidArgumentError("filesize applies to dump files only")
            size = parse_size(filesize)
        if kind == "SQL" and record.operation != "IMPORT":
            raise InvalidArgumentError("a SQL file (SQLFILE) belongs to an import job")
        first = folder / expand_template(filename, 1)
        if kind == "DUMP" and record.operation == "EXPORT" and not reusefile and first.exists():
            raise FileAccessError(
                f"dump file {str(first)!r} already exists; remove it or pass reusefile=True",
                path=str(first),
            )
        if kind == "DUMP" and record.operation == "IMPORT" and not first.exists():
            raise FileAccessError(f"dump file {str(first)!r} does not exist", path=str(first))
        await self._store.add_file(
            handle.job_name,
            FileEntry(
                file_type=kind,
                directory=str(folder),
                file_name=filename,
                first_path=str(first),
                max_size=size,
                reuse=reusefile,
            ),
        )
        if state in (JobState.EXECUTING, JobState.IDLING) and state == JobState.EXECUTING:
            await self._store.post_command(handle.job_name, "ADD_FILE", str(folder / filename))

    async def set_parallel(self, h: int, degree: int) -> None:
        """Set the number of workers. Valid in DEFINING, EXECUTING, IDLING."""
        handle, _, state = await self._state_for(h, Procedure.SET_PARALLEL)
        if not isinstance(degree, int) or isinstance(degree, bool) or not 1 <= degree <= 64:
            raise InvalidArgumentError(f"degree {degree!r} must be an integer from 1 to 64")
        await self._store.update_job(handle.job_name, JobUpdate(degree=degree))
        if state == JobState.EXECUTING:
            await self._store.post_command(handle.job_name, "PARALLEL", str(degree))

    async def set_parameter(self, h: int, name: str, value: str | int) -> None:
        """Set a job parameter (see ``pumpkit.core.parameters.PARAMETERS``). Valid in
        DEFINING (ENCRYPTION_PASSWORD also in IDLING). Unknown names and bad values raise
        ``InvalidArgumentError`` naming the valid ones."""
        handle, record, _ = await self._state_for(
            h, Procedure.SET_PARAMETER, parameter=name.upper()
        )
        normal = validate_parameter(name, value, operation=record.operation)
        if name.upper() == "ENCRYPTION_PASSWORD":
            if not normal:
                raise InvalidArgumentError("ENCRYPTION_PASSWORD cannot be empty")
            self._passwords[handle.job_name] = str(normal)
            if (
                record.operation == "EXPORT"
                and await self._parameter(handle.job_name, "ENCRYPTION", None) is None
            ):
                # Recorded now, so a restart without the password is refused instead of
                # writing the rest of the set in clear.
                await self._store.set_parameter(
                    handle.job_name, "ENCRYPTION", "ALL", is_default=True
                )
            return
        if name.upper() == "CONTENT":
            build_selection(await self._filter_entries(handle.job_name), content=str(normal))
        await self._store.set_parameter(handle.job_name, name.upper(), normal)

    async def data_filter(
        self,
        h: int,
        name: str,
        value: str | int,
        table_name: str | None = None,
        schema_name: str | None = None,
    ) -> None:
        """Restrict the rows a job moves (QUERY, SUBQUERY, SAMPLE, INCLUDE_ROWS), of table
        ``table_name`` or of every table. Valid in DEFINING."""
        handle, record, _ = await self._state_for(h, Procedure.DATA_FILTER)
        key = check_filter_name("DATA_FILTER", name, DATA_FILTERS)
        if key == "SUBQUERY" and record.operation != "EXPORT":
            raise InvalidArgumentError(
                "SUBQUERY applies to an export (it picks the rows the source's SELECT reads);"
                " on an import use QUERY"
            )
        await self._store_filter(handle, "DATA_FILTER", key, value, table_name, schema_name)

    async def metadata_filter(
        self, h: int, name: str, value: str | list[str], object_path: str | None = None
    ) -> None:
        """Restrict the objects a job moves. Valid in DEFINING.

        NAME_LIST/NAME_EXPR (of ``object_path``, default TABLE), SCHEMA_LIST/SCHEMA_EXPR,
        EXCLUDE_NAME_LIST/EXCLUDE_NAME_EXPR and INCLUDE_/EXCLUDE_PATH_EXPR/LIST; expressions
        are expdp's (``IN ('A','B')``, ``LIKE 'ORD%'``) and are checked now.
        """
        handle, _, _ = await self._state_for(h, Procedure.METADATA_FILTER)
        key = check_filter_name("METADATA_FILTER", name, METADATA_FILTERS)
        if key == "SCHEMA_LIST" or (key == "NAME_LIST" and object_path in (None, "TABLE")):
            names = parse_name_list(value)
            if key == "SCHEMA_LIST" and any(n != "main" for n in names):
                bad = next(n for n in names if n != "main")
                raise InvalidArgumentError(
                    f"schema {bad!r} does not exist: a SQLite database has the schema 'main'"
                )
            await self._store.set_parameter(handle.job_name, key, names)
            value = names  # also a filter, which an import applies to the dump's objects
        await self._store_filter(handle, "METADATA_FILTER", key, value, object_path, None)

    async def metadata_remap(
        self, h: int, name: str, old_value: str, value: str, object_type: str | None = None
    ) -> None:
        """Rename objects on the way (REMAP_SCHEMA, REMAP_TABLE), or pass a column's values
        through a function (REMAP_DATA: ``old_value`` ``table.column``, ``value``
        ``module:function``, checked now). Valid in DEFINING."""
        handle, record, _ = await self._state_for(h, Procedure.METADATA_REMAP)
        key = check_filter_name("METADATA_REMAP", name, METADATA_REMAPS)
        if key != "REMAP_DATA" and record.operation != "IMPORT":
            raise InvalidArgumentError(
                f"{key} applies to an import (as impdp's does); an export keeps the source's names"
            )
        await self._store_filter(
            handle, "METADATA_REMAP", key, [old_value, value], object_type, None
        )

    async def metadata_transform(
        self, h: int, name: str, value: str | int, object_type: str | None = None
    ) -> None:
        """Alter DDL on the way (OMIT_STORAGE, RENAME_INDEXES, RENAME_CONSTRAINTS; 0 or 1).
        Valid in DEFINING."""
        handle, _, _ = await self._state_for(h, Procedure.METADATA_TRANSFORM)
        key = check_filter_name("METADATA_TRANSFORM", name, METADATA_TRANSFORMS)
        await self._store_filter(handle, "METADATA_TRANSFORM", key, value, object_type, None)

    async def _store_filter(
        self,
        handle: _Handle,
        kind: str,
        key: str,
        value: Any,
        target: str | None,
        schema: str | None,
    ) -> None:
        # Checked with the job's earlier calls, so a bad expression or combination is refused
        # now, while DEFINING, and never stored.
        entry = (f"{kind}:{key}", value, target)
        content = await self._parameter(handle.job_name, "CONTENT", "ALL")
        earlier = await self._filter_entries(handle.job_name)
        selection = build_selection([*earlier, entry], content=str(content))
        if key == "REMAP_DATA":
            function = selection.remaps[-1].new
            try:
                await anyio.to_thread.run_sync(load_object, function)
            except PumpkitError as exc:
                raise InvalidArgumentError(f"REMAP_DATA {value[0]}: {exc}") from None
        await self._store.add_filter(
            handle.job_name, f"{kind}:{key}", value, target=target, schema=schema
        )

    async def _filter_entries(self, job_name: str) -> list[tuple[str, object, str | None]]:
        return filter_entries(await self._store.filters(job_name))

    async def _parameters(self, job_name: str) -> dict[str, object]:
        """The job's PARAMETER rows as ``name -> value``."""
        return await self._store.parameters(job_name)

    async def _parameter(self, job_name: str, name: str, default: object) -> object:
        return (await self._parameters(job_name)).get(name, default)

    # -- running

    async def start_job(
        self, h: int, skip_current: bool = False, *, detached: bool = False
    ) -> None:
        """Begin (DEFINING) or resume (IDLING) the job.

        The job runs in this session's task group, or with ``detached=True`` in a process of
        its own that outlives this session (and its terminal). ``skip_current`` skips the
        objects that were in progress when the job stopped, and logs them. Valid in DEFINING
        and IDLING. Raises ``UsageError`` when the job has no dump file, and
        ``JobHeldError`` (naming the job and the process that has it) when another
        session or process started it first: of two racing starts, exactly one starts it.
        """
        try:
            handle, record, state = await self._state_for(h, Procedure.START_JOB)
        except InvalidStateError as exc:
            if exc.state in _HELD_STATES:
                # Another session or process started it first: the race's loser is told so.
                raise await self._taken(self.job_name(h)) from None
            raise
        files = await self._store.files(handle.job_name)
        params = await self._parameters(handle.job_name)
        outmod = bool(params.get("OUTMOD"))
        estimate_only = record.operation == "EXPORT" and bool(params.get("ESTIMATE_ONLY"))
        if (
            record.operation != "LOAD"
            and not outmod
            and not estimate_only
            and not any(f.file_type == "DUMP" for f in files)
        ):
            raise UsageError(f"job {handle.job_name} has no dump file: call add_file first")
        if (
            record.operation == "IMPORT"
            and not params.get("DATABASE")
            and not any(f.file_type == "SQL" for f in files)
        ):
            raise UsageError(
                f"job {handle.job_name} has no target: open it with database=, or add a file"
                " of filetype SQL to write the DDL instead (SQLFILE)"
            )
        password = self._passwords.get(handle.job_name)
        if detached:
            await self._start_detached(handle.job_name, state, skip_current, password)
            return
        if await self._store.take_job(handle.job_name, state, new_owner()) is None:
            raise await self._taken(handle.job_name)
        assert self._tg is not None
        self._tg.start_soon(self._run, handle.job_name, skip_current, password)

    async def _taken(self, job_name: str) -> JobHeldError:
        """The error for a START_JOB that lost the race: the job runs now, in whose process."""
        record = await self._store.job(job_name)
        state = JobState.UNDEFINED if record is None else self._effective_state(record)
        holder = _holder(record)
        valid = (JobState.DEFINING.value, JobState.IDLING.value)
        return JobHeldError(
            f"job {job_name} was started by another session or process ({holder} has it):"
            f" START_JOB is not valid in state {state.value}; valid in: {', '.join(valid)}",
            procedure=Procedure.START_JOB.value,
            state=state.value,
            valid=valid,
            holder=holder,
        )

    async def _start_detached(
        self, job_name: str, state: JobState, skip_current: bool, password: str | None
    ) -> None:
        """Start the runner process and wait until it owns the job (or says why not)."""
        home = Path(self._store.location)
        logs = home / "runners"
        logs.mkdir(exist_ok=True)
        out_path = logs / f"{job_name}.out"
        command = [
            sys.executable,
            "-m",
            "pumpkit.engine.runner",
            "--home",
            str(home),
            "--job",
            job_name,
            "--expect-state",
            state.value,
        ]
        if skip_current:
            command.append("--skip-current")
        if password is not None:
            command.append("--password-on-stdin")
        child = await anyio.to_thread.run_sync(_spawn_runner, command, out_path, password)
        # Reap the runner whenever it ends, so that a long-lived client leaves no zombies.
        threading.Thread(target=child.wait, name=f"pumpkit-reap-{child.pid}", daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record = await self._store.job(job_name)
            if record is not None and record.owner_pid == child.pid:
                return
            if child.poll() is not None:
                record = await self._store.job(job_name)
                if record is not None and record.owner_pid == child.pid:
                    return  # it ran (and maybe ended) already
                if child.returncode == ExitCode.JOB_TAKEN:
                    raise await self._taken(job_name)
                tail = out_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise UsageError(
                    f"job {job_name} did not start: "
                    + (tail[0] if tail else f"exit {child.returncode}")
                )
            await anyio.sleep(_WAIT_POLL)
        raise UsageError(f"job {job_name}: its process did not take it within 60 s ({out_path})")

    async def _run(self, job_name: str, skip_current: bool, password: str | None) -> None:
        # The job gets its own store connection, as it would in its own process.
        store = await open_store(self._home)
        try:
            # A cancellation (the session left) stops the job: run_job records it.
            await run_job(store, job_name, skip_current=skip_current, password=password)
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    async def stop_job(
        self,
        h: int,
        immediate: bool = False,
        keep_master: bool | None = None,
        delay: float = 60,
        *,
        keep_files: bool = False,
    ) -> None:
        """Stop the job and detach from it.

        Graceful: STOP PENDING (workers finish their granule) -> STOPPED; ``immediate``:
        workers are cancelled and their granules rolled back; ``keep_master=False`` is
        KILL_JOB: the control table is dropped and an export's dump files removed (in every
        state: a stopped or NOT RUNNING job is attached, so IDLING, first), unless
        ``keep_files``: then they stay, and the job's log files say so.
        Waits up to ``delay`` seconds for the job to stop. Valid in DEFINING, EXECUTING,
        IDLING, STOP PENDING.
        """
        handle, _, state = await self._state_for(h, Procedure.STOP_JOB)
        name = handle.job_name
        if state in (JobState.DEFINING, JobState.IDLING):
            if keep_master is False or (state == JobState.DEFINING and not keep_master):
                if keep_master is False:
                    # KILL_JOB of a job that does not run: its files are this process's to
                    # remove (a running job's control process removes them itself).
                    line = await kill_dump_files(self._store, name, keep=keep_files)
                    await self._log_to_files(
                        name, f"Job {name} killed" + (f"; {line}" if line else "")
                    )
                await self._store.drop_job(name)
            else:
                await self._store.move(
                    name, state, JobState.STOPPED, update=JobUpdate(stop_reason="STOP_JOB")
                )
        else:
            await self._store.post_command(
                name,
                "STOP",
                msgspec.json.encode(
                    {"immediate": immediate, "keep_master": keep_master, "keep_files": keep_files}
                ).decode(),
            )
            with anyio.move_on_after(delay):
                while True:
                    current = await self._store.job(name)
                    if current is None or current.state in (
                        JobState.STOPPED.value,
                        JobState.COMPLETED.value,
                    ):
                        break
                    await anyio.sleep(_WAIT_POLL)
        if self._handles.pop(h, None) is not None:
            self._handle_gone(name, h)
            await self._store.change_attached(name, -1)

    async def continue_job(self, h: int) -> None:
        """Tell a running export that waits for room on a full disk (ENOSPC, EDQUOT, EFBIG)
        that space was freed: its writes try the same file again. Valid in EXECUTING
        (and harmless when nothing waits). Raises ``BadStateError`` in other states."""
        handle, _, state = await self._state_for(h, Procedure.GET_STATUS)
        if state is not JobState.EXECUTING:
            raise BadStateError(
                f"job {handle.job_name} is {state.value}: CONTINUE applies to a running job"
                " that waits for room (START_JOB restarts a stopped one)"
            )
        await self._store.post_command(handle.job_name, "CONTINUE", None)

    async def wait_for_job(self, h: int) -> JobState:
        """Wait until the job completes or stops; return COMPLETED or STOPPED, then detach.

        Valid in every state except COMPLETED, NOT RUNNING, STOPPED and UNDEFINED.
        """
        handle, _, _ = await self._state_for(h, Procedure.WAIT_FOR_JOB)
        while True:
            record = await self._store.job(handle.job_name)
            if record is None:
                result = JobState.STOPPED  # killed: its control table is gone
                break
            state = self._effective_state(record)
            if state in (JobState.COMPLETED, JobState.STOPPED):
                result = state
                break
            if state == JobState.NOT_RUNNING:
                result = JobState.STOPPED
                break
            await anyio.sleep(_WAIT_POLL)
        await self.detach(h)
        return result

    async def get_status(
        self, h: int, mask: StatusMask = StatusMask.ALL, timeout: float = 0
    ) -> Status:
        """The job's status. ``timeout`` > 0 waits that long for something new (a log line or
        a state change); -1 waits until there is. Valid in every state except COMPLETED,
        NOT RUNNING, STOPPED and UNDEFINED."""
        handle, record, _ = await self._state_for(h, Procedure.GET_STATUS)
        if timeout:
            deadline = None if timeout < 0 else time.monotonic() + timeout
            while deadline is None or time.monotonic() < deadline:
                lines = await self._store.log_lines(handle.job_name, handle.log_seq)
                now = await self._store.job(handle.job_name)
                if lines or now is None or now.state != record.state:
                    break
                await anyio.sleep(_WAIT_POLL)
        if not mask & StatusMask.WIP:
            return await job_status(self._store, handle.job_name, mask, after=handle.log_seq)
        # The new lines are read once, and the handle moves past exactly those: a line logged
        # while the rest of the status is read comes with the next call, never lost (a client
        # counting the lines it printed would print the last ones twice at the end).
        lines = await self._store.log_lines(handle.job_name, handle.log_seq)
        status = await job_status(
            self._store, handle.job_name, mask & ~StatusMask.WIP, after=handle.log_seq
        )
        if lines:
            handle.log_seq = lines[-1][0]
        return msgspec.structs.replace(status, log_lines=tuple(t for _, _, t in lines))

    async def log_entry(self, h: int, message: str) -> None:
        """Add a line to the job's log. Valid in DEFINING, EXECUTING, IDLING, STOP PENDING,
        COMPLETING."""
        handle, _, _ = await self._state_for(h, Procedure.LOG_ENTRY)
        await self._log_to_files(handle.job_name, message)

    async def _log_to_files(self, job_name: str, message: str) -> None:
        """A line into the job's log: the store's and its LOG files."""
        await self._store.log(job_name, message)
        for f in await self._store.rows(job_name, object_types=["FILE"]):
            if f.file_type == "LOG":
                path = Path(f.user_directory or ".") / (f.user_file_name or "")
                await anyio.to_thread.run_sync(_append_line, path, message)

    async def jobs(self) -> list[JobView]:
        """The jobs view (like DBA_DATAPUMP_JOBS): every job whose control table exists."""
        views = []
        for record in await self._store.jobs():
            if record.state == JobState.COMPLETED.value and not await self._store.has_control_table(
                record.job_name
            ):
                continue
            state = self._effective_state(record)
            views.append(
                JobView(
                    job_name=record.job_name,
                    operation=record.operation,
                    job_mode=record.job_mode,
                    state=state.value,
                    degree=record.degree,
                    attached_sessions=self._attached(record),
                    owner_host=record.owner_host,
                    owner_pid=record.owner_pid,
                    owner_alive=owner_alive(record),
                    stop_reason=record.stop_reason,
                    restart_count=record.restart_count + (1 if state == JobState.IDLING else 0),
                )
            )
        return views

    def job_name(self, h: int) -> str:
        """The name of the job behind handle ``h``."""
        return self._handle(h).job_name

    async def state(self, h: int) -> JobState:
        """The job's state as the jobs view shows it (NOT RUNNING included)."""
        record = await self._store.job(self._handle(h).job_name)
        return JobState.UNDEFINED if record is None else self._effective_state(record)

    def _attached(self, record: JobRecord) -> int:
        """ATTACHED: the clients that still run (a killed one never detached); the counter
        for a job without markers."""
        live = live_clients(self._store.location, record.job_name, this_host(), pid_alive)
        return record.attached_sessions if live is None else min(live, record.attached_sessions)

    async def release(self, h: int) -> None:
        """Detach ``h`` if it is still attached (after WAIT_FOR_JOB or STOP_JOB it is not)."""
        if h in self._handles:
            await self.detach(h)

    async def final_status(self, job_name: str) -> Status:
        """The status of a job in any state (for one-call helpers and the CLI)."""
        return await job_status(self._store, job_name, StatusMask.ALL, after=0)


#: States in which a START_JOB that was refused lost to another session's or process's start.
_HELD_STATES = frozenset(
    s.value
    for s in (JobState.EXECUTING, JobState.COMPLETING, JobState.STOP_PENDING, JobState.STOPPING)
)


def _holder(record: JobRecord | None) -> str:
    """Who holds a job, as a user can look it up: the process and its host."""
    if record is None or not record.owner_pid:
        return "another process"
    return f"process {record.owner_pid} on {record.owner_host or 'this host'}"


def _spawn_runner(
    command: list[str], out_path: Path, password: str | None = None
) -> subprocess.Popen[bytes]:
    with open(out_path, "ab") as out:
        child = subprocess.Popen(
            command,
            # The password travels by a pipe: never in argv or the environment, which other
            # users' ps may read.
            stdin=subprocess.DEVNULL if password is None else subprocess.PIPE,
            stdout=out,
            stderr=out,
            start_new_session=True,  # no SIGHUP when the terminal closes
            close_fds=True,
        )
    if password is not None:
        assert child.stdin is not None
        try:
            # One JSON line: a password may hold a newline.
            child.stdin.write(msgspec.json.encode(password) + b"\n")
        except BrokenPipeError:
            pass  # it died at once; the caller reads why from its output
        finally:
            child.stdin.close()
    return child


def _append_line(path: Path, message: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} {message}\n")


def _strip_sqlite(text: str) -> str:
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            return (
                "/" + rest if prefix == "sqlite:///" and Path("/" + rest).parent.exists() else rest
            )
    return text
