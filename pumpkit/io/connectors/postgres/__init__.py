"""PostgreSQL, on asyncpg: ``source`` (one exported snapshot, binary COPY readers),
``catalog`` (the user schemas from pg_catalog), ``target`` (DDL, COPY loaders, TPump-style
loads) and ``common`` (URLs, connections, quoting)."""

from __future__ import annotations

from pumpkit.io.connectors.postgres.common import MARKER_TABLE, qualified
from pumpkit.io.connectors.postgres.source import PgSnapshot, PgSource
from pumpkit.io.connectors.postgres.target import PgTarget, pg_schema

__all__ = (
    "MARKER_TABLE",
    "PgSnapshot",
    "PgSource",
    "PgTarget",
    "pg_schema",
    "qualified",
)
