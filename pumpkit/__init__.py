"""pumpkit: an asyncio data pump.

It moves a database's schema and rows into a self-describing binary dump-file set and back,
as jobs that can be watched, stopped, restarted after a crash and attached to from another
process (the model of Oracle Data Pump), and loads rows from user input modules with
checkpoints (the model of Teradata TPump's INMOD). pumpkit runs on anyio's asyncio backend.

The map of the house (three layers; nothing imports upward: tests/test_layering.py)::

    errors.py, exitcodes.py   every exception, one root; every exit code, once
    core/                     PURE: values in, values out; no files, no event loop
      states.py               job states, Table 6-1 (which call in which state), the edges
      control_table.py        the control table's rows, typed: kinds, states, frames, updates
      catalog.py              what a database holds that a job moves (tables, objects)
      planner.py              phases, granules, dispatch order, worker counts
      jobplan.py              a job's work as control rows (export plan, import plan)
      selection.py            filters, remaps, transforms: parsed and decided
      selecting.py            a selection applied to a catalog and to control rows
      header.py, frame.py     the dump file's bytes: file header, frames, index
      rowcodec.py, pgcopy.py  rows in frames: msgpack batches, PostgreSQL binary COPY
      typemap.py, ddl.py      types and DDL across engines
      crypto.py, checksum.py  AES-GCM frames and scrypt keys; CRC-32
      inmod.py, layouts.py    TPump's INMOD protocol; record layouts
      parameters.py, status.py  job parameters; what GET_STATUS answers
    io/                       the only code that touches files, databases and user code
      dumpfile.py, setfiles.py  dump-set writer, reader, verify, info; a set's files by name
      store/                  the control store: base.py (the interface), sqlite.py;
                              clients.py (which attached clients still run)
      connectors/             base.py (Source, Target, readers, loaders), sqlite/, postgres/
      usercode.py, inmods.py  user functions by name (REMAP_DATA, modules); built-in INMODs
      dumpset/rows.py         a set's rows read offline, table by table (`pumpkit cat`)
      rowfiles.py             rows as CSV, JSON lines, Parquet and Arrow IPC files
    engine/                   orchestration with anyio, through core's decisions and io
      session.py              Session: handles and the DBMS_DATAPUMP procedures
      runner.py               the process a detached job runs in
      control.py              run_job: the control coroutine, a job's outcome as states
      job.py                  the running job: commands, log, state moves, progress
      pool.py                 the worker pool (degree, SET_PARALLEL, orderly stops)
      exporting.py, importing.py, sqlfile.py, load.py   each operation's work
      modules.py              drivers of INMODs and output modules
      progress.py, oneshot.py  status from the store; one-call helpers
    cli/                      the `pumpkit` command: jobs, inspection, cat, the interactive client
    testing/                  fixtures for tests and benchmarks (SQLite, PostgreSQL)
"""

from __future__ import annotations

from pumpkit._version import __version__
from pumpkit.core.states import JobState
from pumpkit.core.status import JobView, Status, StatusMask
from pumpkit.engine.oneshot import export_database, import_dump
from pumpkit.engine.session import Session
from pumpkit.errors import (
    BadStateError,
    ConnectorError,
    CopyFormatError,
    CorruptDumpError,
    DumpError,
    DumpLimitError,
    DumpSetFullError,
    DumpSetNoSpaceError,
    EncryptedError,
    ErrorLimitReached,
    FileAccessError,
    IncompleteSetError,
    InmodError,
    InvalidArgumentError,
    InvalidHandleError,
    InvalidStateError,
    InvalidTransitionError,
    JobHeldError,
    JobStopped,
    JobTakenOverError,
    LayoutError,
    NotADumpFileError,
    PumpkitError,
    RetryableError,
    SignatureError,
    StoreError,
    TranslationError,
    UnsafeDumpError,
    UnsafeFileNameError,
    UnsupportedFeatureError,
    UnsupportedVersionError,
    UsageError,
    WorkerDiedError,
)
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.info import DumpFileInfo, get_dumpfile_info
from pumpkit.io.usercode import batch_remap

__all__ = (
    "BadStateError",
    "ConnectorError",
    "CopyFormatError",
    "CorruptDumpError",
    "DumpError",
    "DumpFileInfo",
    "DumpLimitError",
    "DumpSetFullError",
    "DumpSetNoSpaceError",
    "EncryptedError",
    "ErrorLimitReached",
    "ExitCode",
    "FileAccessError",
    "IncompleteSetError",
    "InmodError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "InvalidStateError",
    "InvalidTransitionError",
    "JobHeldError",
    "JobState",
    "JobStopped",
    "JobTakenOverError",
    "JobView",
    "LayoutError",
    "NotADumpFileError",
    "PumpkitError",
    "RetryableError",
    "Session",
    "SignatureError",
    "Status",
    "StatusMask",
    "StoreError",
    "TranslationError",
    "UnsafeDumpError",
    "UnsafeFileNameError",
    "UnsupportedFeatureError",
    "UnsupportedVersionError",
    "UsageError",
    "WorkerDiedError",
    "__version__",
    "batch_remap",
    "export_database",
    "get_dumpfile_info",
    "import_dump",
)
