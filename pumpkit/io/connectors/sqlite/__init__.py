"""SQLite, the embedded default: ``source`` (catalog, granules, one snapshot), ``readers``
(the worker processes that frame a granule's rows), ``target`` (objects, loaders, TPump-style
loads) and ``common`` (what both sides share)."""

from __future__ import annotations

from pumpkit.io.connectors.sqlite.common import (
    ERROR_TABLE,
    MARKER_TABLE,
    RESTART_LOG,
    describe_table,
    sqlite_path,
)
from pumpkit.io.connectors.sqlite.source import SqliteSource
from pumpkit.io.connectors.sqlite.target import SqliteTarget

__all__ = (
    "ERROR_TABLE",
    "MARKER_TABLE",
    "RESTART_LOG",
    "SqliteSource",
    "SqliteTarget",
    "describe_table",
    "sqlite_path",
)
