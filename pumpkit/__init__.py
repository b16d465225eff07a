"""pumpkit: an asyncio data pump.

It moves a database's schema and rows into a self-describing binary dump-file set and back,
as jobs that can be watched, stopped, restarted after a crash and attached to from another
process (the model of Oracle Data Pump), and loads rows from user input modules with
checkpoints (the model of Teradata TPump's INMOD). pumpkit runs on anyio's asyncio backend.
"""

from __future__ import annotations

from pumpkit._version import __version__
from pumpkit.core.states import JobState
from pumpkit.core.status import JobView, Status, StatusMask
from pumpkit.engine.oneshot import export_database, import_dump
from pumpkit.engine.selecting import batch_remap
from pumpkit.engine.session import Session
from pumpkit.errors import (
    BadStateError,
    ConnectorError,
    CorruptDumpError,
    DumpError,
    DumpSetFullError,
    EncryptedError,
    FileAccessError,
    IncompleteSetError,
    InmodError,
    InvalidArgumentError,
    InvalidHandleError,
    InvalidStateError,
    NotADumpFileError,
    PumpkitError,
    StoreError,
    UnsafeDumpError,
    UnsupportedFeatureError,
    UnsupportedVersionError,
    UsageError,
)
from pumpkit.io.dumpfile import DumpFileInfo, get_dumpfile_info

__all__ = (
    "BadStateError",
    "ConnectorError",
    "CorruptDumpError",
    "DumpError",
    "DumpFileInfo",
    "DumpSetFullError",
    "EncryptedError",
    "FileAccessError",
    "IncompleteSetError",
    "InmodError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "InvalidStateError",
    "JobState",
    "JobView",
    "NotADumpFileError",
    "PumpkitError",
    "Session",
    "Status",
    "StatusMask",
    "StoreError",
    "UnsafeDumpError",
    "UnsupportedFeatureError",
    "UnsupportedVersionError",
    "UsageError",
    "__version__",
    "batch_remap",
    "export_database",
    "get_dumpfile_info",
    "import_dump",
)
