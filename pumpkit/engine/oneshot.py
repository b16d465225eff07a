"""One call for the common case: ``export_database`` and ``import_dump``, built on Session."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pumpkit.core.status import Status
from pumpkit.engine.session import Session

__all__ = ("export_database", "import_dump")


async def export_database(
    database: str | os.PathLike[str],
    dumpfile: str | os.PathLike[str] = "expdat.dmp",
    *,
    directory: str | os.PathLike[str] | None = None,
    parallel: int = 1,
    home: str | os.PathLike[str] | None = None,
    job_name: str | None = None,
    tables: Sequence[str] | None = None,
    filesize: int | str | None = None,
    reusefile: bool = False,
    keep_master: bool = False,
    logfile: str | None = None,
    compression: str | None = None,
    compression_level: int | None = None,
) -> Status:
    """Export ``database`` (FULL, or TABLE mode with ``tables``) into a dump-file set.

    ``dumpfile`` may be a ``%U`` template; relative names are in ``directory`` (default the
    current one). Returns the job's final status (state COMPLETED, or STOPPED on an error,
    whose message is in ``status.errors``).
    """
    async with Session(home) as session:
        h = await session.open(
            "EXPORT", "TABLE" if tables else "FULL", job_name=job_name, database=database
        )
        name = session._handles[h].job_name
        await session.add_file(h, str(dumpfile), directory, filesize, "DUMP", reusefile)
        if logfile:
            await session.add_file(h, logfile, directory, filetype="LOG")
        if tables:
            await session.metadata_filter(h, "NAME_LIST", list(tables))
        if keep_master:
            await session.set_parameter(h, "KEEP_MASTER", 1)
        if compression:
            await session.set_parameter(h, "COMPRESSION", compression)
        if compression_level:
            await session.set_parameter(h, "COMPRESSION_LEVEL", compression_level)
        await session.set_parallel(h, parallel)
        await session.start_job(h)
        await session.wait_for_job(h)
        return await session.final_status(name)


async def import_dump(
    dumpfile: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    database: str | os.PathLike[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    parallel: int = 1,
    home: str | os.PathLike[str] | None = None,
    job_name: str | None = None,
    keep_master: bool = False,
    logfile: str | None = None,
) -> Status:
    """Import a dump-file set into ``database`` (created if missing). Returns the final status."""
    files = [dumpfile] if isinstance(dumpfile, (str, os.PathLike)) else list(dumpfile)
    async with Session(home) as session:
        h = await session.open("IMPORT", "FULL", job_name=job_name, database=database)
        name = session._handles[h].job_name
        for f in files:
            await session.add_file(h, str(f), directory, filetype="DUMP")
        if logfile:
            await session.add_file(
                h, logfile, directory if directory else Path(database).parent, filetype="LOG"
            )
        if keep_master:
            await session.set_parameter(h, "KEEP_MASTER", 1)
        await session.set_parallel(h, parallel)
        await session.start_job(h)
        await session.wait_for_job(h)
        return await session.final_status(name)
