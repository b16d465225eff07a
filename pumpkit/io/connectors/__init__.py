"""The databases pumpkit reads and writes, behind the interfaces of ``base``; this module
chooses the connector a database's name asks for (a ``postgresql://`` URL, else a SQLite
file or ``sqlite:///`` URL). A connector's package is imported when it is first chosen, so a
SQLite job never pays for asyncpg and PostgreSQL's parser (a third of the start-up)."""

from __future__ import annotations

import os

from pumpkit.errors import ConnectorError
from pumpkit.io.connectors.base import Script, Source, Target

__all__ = ("is_postgres_url", "open_source", "open_target", "script_for")


def is_postgres_url(database: object) -> bool:
    """Whether a database's name is a PostgreSQL URL (else it names a SQLite database)."""
    return isinstance(database, str) and database.startswith(("postgresql://", "postgres://"))


def open_source(database: str | os.PathLike[str]) -> Source:
    """The source a database's name names. Raises ``ConnectorError`` for a missing or
    foreign SQLite file (a PostgreSQL server is reached when first asked)."""
    if is_postgres_url(database):
        from pumpkit.io.connectors.postgres.source import PgSource

        return PgSource(str(database))
    from pumpkit.io.connectors.sqlite.source import SqliteSource

    return SqliteSource(database)


async def open_target(
    database: str | os.PathLike[str], source_engine: str, *, busy_timeout: float = 30.0
) -> Target:
    """The target a database's name names, for rows from ``source_engine``. Raises
    ``ConnectorError`` (``RetryableError`` when it is locked or unreachable) or
    ``FileAccessError``."""
    if is_postgres_url(database):
        from pumpkit.io.connectors.postgres.target import PgTarget

        return await PgTarget.open(str(database), source_engine)
    from pumpkit.io.connectors.sqlite.target import SqliteTarget

    return await SqliteTarget.open(database, source_engine, busy_timeout=busy_timeout)


def script_for(source_engine: str) -> Script:
    """The SQL text an import of a dump from ``source_engine`` runs (SQLFILE)."""
    if source_engine == "postgresql":
        from pumpkit.io.connectors.postgres.script import PgScript

        return PgScript()
    if source_engine == "sqlite":
        from pumpkit.io.connectors.sqlite.script import SqliteScript

        return SqliteScript()
    raise ConnectorError(f"no connector reads dumps from a {source_engine!r} source")
