"""SQLFILE: the SQL an import would run, in its order, written into a file; no database is
opened or changed. What the statements are is the dump's source engine's connector's
business (``Script``): a SQLite dump's are rehearsed through its guard first, a PostgreSQL
dump's are what pg_restore writes for its schema archive."""

from __future__ import annotations

from pathlib import Path

import anyio

from pumpkit._version import __version__
from pumpkit.core.control_table import FileEntry
from pumpkit.engine.importing import import_options, planned_import
from pumpkit.engine.job import Job
from pumpkit.errors import printable
from pumpkit.io.connectors import script_for
from pumpkit.io.dumpset.reader import DumpSetReader

__all__ = ("write_sqlfile",)


async def write_sqlfile(job: Job, reader: DumpSetReader, file: FileEntry) -> None:
    """Write the import's statements for ``reader``'s set into ``file``."""
    objects = await planned_import(job, reader, None)
    options = await import_options(job, reader, objects)
    script = script_for(reader.header.body.source_engine or "sqlite")
    path = Path(file.directory) / file.file_name
    first = (
        f"-- pumpkit {__version__} SQLFILE of dump-file set {reader.header.guid_hex}"
        f" (job {printable(reader.header.body.job_name)}); nothing was imported"
    )
    lines, refused = await script.render(
        objects,
        dump_files={n: str(reader.path_of(n)) for n in reader.file_numbers},
        archive=options.archive,
        with_ddl=job.selection.content != "DATA_ONLY",
    )
    text = "\n".join([first, *lines])
    await anyio.to_thread.run_sync(path.write_text, text, "utf-8")
    await job.log(
        f"SQL file {path} written: {len(objects)} objects ({refused} refused by the guard,"
        " left out), no database changed"
    )
    await job.completing()
