"""SQLFILE: the SQL an import would run, in its order, written into a file; no database is
opened or changed."""

from __future__ import annotations

from pathlib import Path

import anyio

from pumpkit._version import __version__
from pumpkit.core.control_table import FileEntry, object_def_of, table_def_of
from pumpkit.engine.importing import planned_import
from pumpkit.engine.job import Job
from pumpkit.io.connectors import script_for
from pumpkit.io.dumpset.reader import DumpSetReader

__all__ = ("write_sqlfile",)


async def write_sqlfile(job: Job, reader: DumpSetReader, file: FileEntry) -> None:
    """Write the import's statements for ``reader``'s set into ``file``."""
    objects = await planned_import(job, reader, None)
    script = script_for(reader.header.body.source_engine or "sqlite")
    path = Path(file.directory) / file.file_name
    lines = [
        f"-- pumpkit {__version__} SQLFILE of dump-file set {reader.header.guid_hex}"
        f" (job {reader.header.body.job_name}); nothing was imported",
        "",
    ]
    with_ddl = job.selection.content != "DATA_ONLY"
    for row in objects:
        if row.object_type == "TABLE_DATA":
            continue
        if row.object_type == "TABLE":
            if with_ddl:
                lines += [*script.table(table_def_of(row)), ""]
            continue
        lines += [*script.object(object_def_of(row)), ""]
    await anyio.to_thread.run_sync(path.write_text, "\n".join(lines), "utf-8")
    await job.log(f"SQL file {path} written: {len(objects)} objects, no database changed")
    await job.completing()
