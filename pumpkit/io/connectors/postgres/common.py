"""What the PostgreSQL source and target share: URLs, connections, quoting, the SELECT a
reader copies out.

PostgreSQL as a source and a target, on asyncpg.

Source: the catalog of the user schemas from ``pg_catalog`` (schemas, enums and domains,
standalone sequences, tables with their columns, defaults, identity, serial and generated
columns, constraints, indexes, views in dependency order, comments, sequence values), every
table's rows as ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` byte streams that are never
decoded on the way into the dump (the *zero-copy* path), granules as ranges of heap blocks
(``ctid``), and one snapshot for every worker: a coordinator connection exports it
(``pg_export_snapshot()``) and every worker sets it (``SET TRANSACTION SNAPSHOT``), as
``pg_dump -j`` does.

Target: the DDL in dependency order (types, tables, data, sequence values, constraints and
indexes, foreign keys, views, comments); each granule loaded by ``COPY ... FROM STDIN
(FORMAT binary)`` in one transaction together with its completion marker, so a restart after
a crash loads every granule exactly once.

Database URLs are libpq's: ``postgresql://user@host:port/database``.
"""

from __future__ import annotations

import asyncpg

from pumpkit.core.catalog import TableDef
from pumpkit.core.ddl import quote_ident
from pumpkit.core.planner import Granule
from pumpkit.errors import ConnectorError, RetryableError

__all__ = (
    "MARKER_TABLE",
    "SYSTEM_SCHEMAS",
    "connect",
    "literal",
    "qualified",
    "safe_url",
    "select_sql",
)

MARKER_TABLE = "pumpkit_import_markers"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_CONNECT_TIMEOUT = 30


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def literal(text: str) -> str:
    """An SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


async def connect(url: str) -> asyncpg.Connection:
    """A connection; ``RetryableError`` when the server cannot be reached (it may come back),
    ``ConnectorError`` when it refuses."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise RetryableError(f"cannot connect to {safe_url(url)}: {exc}") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ConnectorError(f"cannot connect to {safe_url(url)}: {exc}") from None
    return conn


def safe_url(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        auth, _, host = rest.rpartition("@")
        user = auth.partition(":")[0]
        return f"{scheme}{sep}{user}@{host}"
    return url


def select_sql(
    table: TableDef,
    granule: Granule | None,
    *,
    condition: str | None = None,
    subquery: str | None = None,
    sample: float | None = None,
) -> str:
    """The SELECT a worker copies out: the table's dumped columns, in the granule's block
    range, less what the data filters leave out. The large objects' pseudo-table is every
    large object's oid and bytes, in oid order."""
    if table.data_kind == "large_objects":
        return "SELECT m.oid, pg_catalog.lo_get(m.oid) FROM pg_catalog.pg_largeobject_metadata m ORDER BY m.oid"
    columns = ", ".join(quote_ident(c) for c in table.columns)
    name = qualified(table.schema, table.name)
    sql = f"SELECT {columns} FROM ONLY {name}"
    if sample is not None and sample < 100:
        sql += f" TABLESAMPLE BERNOULLI ({float(sample)!r})"
    where = []
    if granule is not None and granule.low is not None:
        where.append(f"ctid >= '({granule.low},0)'::tid")
    if granule is not None and granule.high is not None:
        where.append(f"ctid < '({granule.high},0)'::tid")
    if condition:
        where.append(f"({condition})")
    if subquery:
        # The rows SUBQUERY's clause picks, as on SQLite: a clause of its own, so it never
        # meets the granule's ctid range (within one snapshot a ctid names one row).
        where.append(f"ctid IN (SELECT ctid FROM ONLY {name} {subquery})")
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql
