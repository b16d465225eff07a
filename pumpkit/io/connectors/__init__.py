"""The databases pumpkit reads and writes, behind the interfaces of ``base``; this module
chooses the connector a database's name asks for (a ``postgresql://`` URL, else a SQLite
file or ``sqlite:///`` URL)."""

from __future__ import annotations

import os

from pumpkit.errors import ConnectorError
from pumpkit.io.connectors.base import Script, Source, Target
from pumpkit.io.connectors.postgres import PgSource, PgTarget, is_postgres_url
from pumpkit.io.connectors.postgres.script import PgScript
from pumpkit.io.connectors.sqlite import SqliteSource, SqliteTarget
from pumpkit.io.connectors.sqlite.script import SqliteScript

__all__ = ("open_source", "open_target", "script_for")

_SCRIPTS: dict[str, type[Script]] = {"sqlite": SqliteScript, "postgresql": PgScript}


def open_source(database: str | os.PathLike[str]) -> Source:
    """The source a database's name names. Raises ``ConnectorError`` for a missing or
    foreign SQLite file (a PostgreSQL server is reached when first asked)."""
    if is_postgres_url(database):
        return PgSource(str(database))
    return SqliteSource(database)


async def open_target(
    database: str | os.PathLike[str], source_engine: str, *, busy_timeout: float = 30.0
) -> Target:
    """The target a database's name names, for rows from ``source_engine``. Raises
    ``ConnectorError`` (``RetryableError`` when it is locked or unreachable) or
    ``FileAccessError``."""
    if is_postgres_url(database):
        return await PgTarget.open(str(database), source_engine)
    return await SqliteTarget.open(database, source_engine, busy_timeout=busy_timeout)


def script_for(source_engine: str) -> Script:
    """The SQL text an import of a dump from ``source_engine`` runs (SQLFILE)."""
    try:
        return _SCRIPTS[source_engine]()
    except KeyError:
        raise ConnectorError(f"no connector reads dumps from a {source_engine!r} source") from None
