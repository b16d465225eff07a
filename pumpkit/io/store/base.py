"""The control store, as an interface: what the engine may ask of it, whatever holds it.

The control store holds every job's registry row (the jobs view), its control table (the
seed's master table), the commands that reach its control coroutine from any process, its log
and the history of its states. The engine talks to it only through the verbs below: a state
change is :meth:`ControlStore.move` (which asks ``pumpkit.core.states`` first and then does a
compare-and-set), taking a job is :meth:`ControlStore.take_job`, a row's progress is a
:class:`~pumpkit.core.control_table.RowUpdate`. So a second implementation (on PostgreSQL,
for several hosts sharing a job) is one new class that passes the same tests.
"""

from __future__ import annotations

import abc
import os
import secrets
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pumpkit.core.control_table import (
    ControlRow,
    FileEntry,
    FilterEntry,
    JobRecord,
    JobUpdate,
    Owner,
    ProcessingState,
    RowKey,
    RowUpdate,
    WorkerEntry,
)
from pumpkit.core.states import JobState

__all__ = ("ControlStore", "StateChange", "default_home", "new_owner", "this_host")


def default_home() -> Path:
    """``$PUMPKIT_HOME``, else ``$XDG_STATE_HOME/pumpkit``, else ``~/.local/state/pumpkit``."""
    if os.environ.get("PUMPKIT_HOME"):
        return Path(os.environ["PUMPKIT_HOME"])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pumpkit"


def this_host() -> str:
    """The name this host goes by in a job's owner fields."""
    return socket.gethostname()


def new_owner() -> Owner:
    """This process, as the owner of a job it takes (a new token each time)."""
    return Owner(host=this_host(), pid=os.getpid(), token=secrets.token_hex(8))


StateChange = tuple[str, int, str, float]
"""One entry of a job's state history: ``(guid, sequence, state, time)``."""


class ControlStore(abc.ABC):
    """Every verb the engine uses on the control store. Use with ``async with``."""

    #: Where it is (a directory for the SQLite store), for messages and for the runner.
    location: str

    async def __aenter__(self) -> ControlStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- the registry and the job's states

    @abc.abstractmethod
    async def create_job(self, record: JobRecord, rows: Sequence[ControlRow]) -> None:
        """Create the job's registry row (in DEFINING) and control table (holding ``rows``)
        at once."""

    @abc.abstractmethod
    async def job(self, job_name: str) -> JobRecord | None: ...

    @abc.abstractmethod
    async def jobs(self) -> list[JobRecord]: ...

    @abc.abstractmethod
    async def job_names(self) -> set[str]: ...

    @abc.abstractmethod
    async def move(
        self,
        job_name: str,
        expect: JobState,
        *path: JobState,
        token: str | None = None,
        update: JobUpdate | None = None,
    ) -> bool:
        """Move the job from ``expect`` through each state of ``path`` (the last is where it
        stays), recording each in its history, and write ``update`` with it; all or nothing.

        Every step must be an edge of ``pumpkit.core.states.TRANSITIONS``
        (``InvalidTransitionError`` otherwise, before anything is written). Compare-and-set:
        returns False, changing nothing, when the job is not in ``expect`` (or, with
        ``token``, not owned by it) any more.
        """

    @abc.abstractmethod
    async def take_job(self, job_name: str, expect: JobState, owner: Owner) -> JobRecord | None:
        """Make ``owner`` the job's process and move it from ``expect`` (DEFINING or IDLING)
        to EXECUTING, in one compare-and-set: of two callers at once exactly one gets the
        record; the other gets ``None``."""

    @abc.abstractmethod
    async def beat(self, job_name: str, token: str) -> bool:
        """The owner's heartbeat; False when another process has taken the job."""

    @abc.abstractmethod
    async def update_job(
        self, job_name: str, update: JobUpdate, *, token: str | None = None
    ) -> bool:
        """Change registry fields that are not the state (degree, the final summary)."""

    @abc.abstractmethod
    async def change_attached(self, job_name: str, delta: int) -> int | None:
        """Add ``delta`` to the job's attached sessions in one statement; the new count,
        ``None`` when the job is gone."""

    @abc.abstractmethod
    async def drop_job(self, job_name: str) -> None:
        """Drop the control table and every trace of the job but its state history, which
        records that it became UNDEFINED."""

    @abc.abstractmethod
    async def history(self, job_name: str) -> list[StateChange]:
        """Every state the job (of any GUID under that name) was moved to, in order."""

    @abc.abstractmethod
    async def has_control_table(self, job_name: str) -> bool: ...

    @abc.abstractmethod
    async def drop_control_table(self, job_name: str) -> None:
        """Drop only the control table (a completed job keeps its registry row and log)."""

    # -- the control table's object rows

    @abc.abstractmethod
    async def insert_rows(self, job_name: str, rows: Sequence[ControlRow]) -> None: ...

    @abc.abstractmethod
    async def rows(
        self,
        job_name: str,
        *,
        object_types: Sequence[str] | None = None,
        states: Sequence[ProcessingState] | None = None,
    ) -> list[ControlRow]:
        """Rows in processing order, of these object types and processing states."""

    @abc.abstractmethod
    async def update_rows(self, job_name: str, updates: Sequence[tuple[RowKey, RowUpdate]]) -> None:
        """Write each update into the row its key names, all in one transaction."""

    @abc.abstractmethod
    async def table_dump(self, job_name: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The whole control table as (columns, rows), to copy into the dump-file set."""

    # -- the rows that describe the job

    @abc.abstractmethod
    async def parameters(self, job_name: str) -> dict[str, Any]:
        """The PARAMETER rows as ``name -> value`` (str, int, float, a list, or None)."""

    @abc.abstractmethod
    async def set_parameter(
        self, job_name: str, name: str, value: Any, *, is_default: bool = False
    ) -> None: ...

    @abc.abstractmethod
    async def files(self, job_name: str) -> list[FileEntry]: ...

    @abc.abstractmethod
    async def add_file(self, job_name: str, entry: FileEntry) -> None:
        """Add a FILE row (or replace the one of the same type and path)."""

    @abc.abstractmethod
    async def workers(self, job_name: str) -> list[WorkerEntry]: ...

    @abc.abstractmethod
    async def set_worker(self, job_name: str, entry: WorkerEntry) -> None: ...

    @abc.abstractmethod
    async def filters(self, job_name: str) -> list[FilterEntry]:
        """The filter, remap and transform calls, in the order they were made."""

    @abc.abstractmethod
    async def add_filter(
        self, job_name: str, name: str, value: Any, *, target: str | None, schema: str | None
    ) -> None: ...

    # -- the log

    @abc.abstractmethod
    async def log(self, job_name: str, text: str) -> int:
        """Append a log line; returns its sequence number."""

    @abc.abstractmethod
    async def log_lines(self, job_name: str, after: int = 0) -> list[tuple[int, float, str]]: ...

    # -- commands (from any process to the job's control coroutine)

    @abc.abstractmethod
    async def post_command(
        self, job_name: str, command: str, argument: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    async def take_commands(self, job_name: str) -> list[tuple[str, str | None]]:
        """The job's untaken commands in order, marked taken in the same transaction."""
