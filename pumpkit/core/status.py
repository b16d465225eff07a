"""What GET_STATUS and the jobs view answer: typed, frozen, msgspec-encodable."""

from __future__ import annotations

from enum import IntFlag

import msgspec

__all__ = ("FileStatus", "JobView", "Status", "StatusMask", "WorkerStatus")


class StatusMask(IntFlag):
    """Oracle's GET_STATUS mask bits (KU$_STATUS_*)."""

    WIP = 1  #: work in progress: new log lines
    JOB_DESC = 2  #: the job's definition: operation, mode, files
    JOB_STATUS = 4  #: state, progress, workers
    JOB_ERROR = 8  #: error lines
    ALL = WIP | JOB_DESC | JOB_STATUS | JOB_ERROR


class WorkerStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str  # WORKING, IDLE, EXITED
    object_type: str | None = None
    object_schema: str | None = None
    object_name: str | None = None
    partition_name: str | None = None


class FileStatus(msgspec.Struct, frozen=True, kw_only=True):
    file_name: str
    file_type: str
    size: int
    max_size: int | None = None


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """A job's status. Fields outside the requested mask keep their defaults."""

    job_name: str
    state: str
    operation: str = ""
    job_mode: str = ""
    phase: str = ""
    degree: int = 1
    percent_done: float = 0.0
    #: What percent_done counts: ``rows`` (every granule's rows are known or estimated) or
    #: ``bytes`` (some are not: a source without row estimates).
    percent_by: str = ""
    completed_rows: int = 0
    total_rows: int = 0
    completed_bytes: int = 0
    total_bytes: int = 0
    completed_objects: int = 0
    total_objects: int = 0
    error_count: int = 0
    restart_count: int = 0
    workers: tuple[WorkerStatus, ...] = ()
    files: tuple[FileStatus, ...] = ()
    log_lines: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    waiting_for: str | None = None


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the jobs view (Oracle's DBA_DATAPUMP_JOBS, plus who runs it and how it ended)."""

    job_name: str
    operation: str
    job_mode: str
    state: str
    degree: int
    attached_sessions: int
    owner_host: str | None
    owner_pid: int | None
    owner_alive: bool
    stop_reason: str | None
    restart_count: int
