"""What the SQLite source and target share: file names, connections, pumpkit's own tables in
a target, and SQLite's reading of a table's definition."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from pumpkit.core.ddl import quote_ident
from pumpkit.core.typemap import SqliteColumn
from pumpkit.errors import ConnectorError
from pumpkit.io.connectors.sqlite.guard import Declared, Scope, SqliteGuard

__all__ = (
    "ERROR_TABLE",
    "MARKER_TABLE",
    "MAX_RECORD",
    "RESTART_LOG",
    "SETTINGS",
    "SQLITE_MAGIC",
    "connect",
    "describe_table",
    "is_busy",
    "locked_or",
    "sqlite_path",
)

SQLITE_MAGIC = b"SQLite format 3\x00"
#: The target's table of granule completion markers; dropped when the import completes.
MARKER_TABLE = "pumpkit_import_markers"
#: A load's restart log (TPump's): one row per checkpoint, committed with the rows it covers.
RESTART_LOG = "pumpkit_restart_log"
#: A load's error table: the records that failed to decode or to insert.
ERROR_TABLE = "pumpkit_load_errors"
#: The error table keeps the first this many bytes of a record (TPump's largest record).
MAX_RECORD = 63_488
#: The database settings an export carries and an import restores.
SETTINGS = ("user_version", "application_id")


def sqlite_path(database: str | os.PathLike[str]) -> Path:
    """The file of a SQLite database given as a path or as ``sqlite:///path``."""
    text = os.fspath(database)
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            if prefix == "sqlite:///" and not text.startswith("/"):
                text = "/" + text if Path("/" + text).parent.exists() else text
            break
    return Path(text)


def connect(path: Path, *, readonly: bool, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread
    (by one at a time)."""
    mode = "ro" if readonly else "rw"
    uri = f"file:{quote(str(path.absolute()))}?mode={mode}"
    return sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )


def is_busy(exc: BaseException) -> bool:
    """A failure of the database itself (locked, busy, I/O), not of the SQL."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "busy", "disk i/o", "unable to open", "full")
    )


def locked_or(exc: sqlite3.Error, what: str) -> str:
    """The message for a failed call; a busy database says so plainly."""
    if "locked" in str(exc) or "busy" in str(exc):
        return f"{what}: the database is locked by another writer ({exc})"
    return f"{what}: {exc}"


def describe_table(ddl: str, name: str) -> tuple[list[SqliteColumn], list[list[str]]]:
    """The columns of a table as its ``CREATE TABLE`` makes them, and its UNIQUE constraints'
    columns, read by making it in an in-memory database (SQLite is the only parser of its
    own SQL that is always right). The DDL is a dump's: it passes both gates of the guard
    there too (an ATTACH would write a file from any connection). Raises
    ``UnsafeDumpError`` or ``ConnectorError``."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        SqliteGuard(conn, Scope()).execute(ddl, Declared("TABLE", name))
        q = quote_ident(name)
        columns = [
            SqliteColumn(
                name=r[1],
                declared=r[2] or "",
                not_null=bool(r[3]),
                default=r[4],
                pk=r[5],
                hidden=r[6],
            )
            for r in conn.execute(f"PRAGMA main.table_xinfo({q})")
        ]
        uniques = [
            [c[2] for c in conn.execute(f"PRAGMA main.index_info({quote_ident(idx[1])})")]
            for idx in conn.execute(f"PRAGMA main.index_list({q})")
            if idx[3] == "u"
        ]
    except sqlite3.Error as exc:
        raise ConnectorError(f"the definition of table {name!r} does not parse: {exc}") from None
    finally:
        conn.close()
    return columns, uniques
