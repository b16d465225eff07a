"""SQLFILE: the SQL an import would run, in its order, written into a file; no database is
opened or changed. What the statements are is the dump's source engine's connector's
business (``Script``): a SQLite dump's are rehearsed through its guard first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import anyio

from pumpkit._version import __version__
from pumpkit.core.control_table import ControlRow, FileEntry
from pumpkit.engine.importing import planned_import
from pumpkit.engine.job import Job
from pumpkit.errors import printable
from pumpkit.io.connectors import script_for
from pumpkit.io.connectors.base import Script
from pumpkit.io.dumpset.reader import DumpSetReader

__all__ = ("write_sqlfile",)


def _render(
    script: Script,
    objects: Sequence[ControlRow],
    dump_files: Mapping[int, str],
    first: str,
    with_ddl: bool,
) -> tuple[str, int]:
    """The file's text, and how many objects the script refused (blocking)."""
    try:
        lines = [first, *script.prepare(objects, dump_files), ""]
        for row in objects:
            if row.object_type == "TABLE_DATA" or (row.object_type == "TABLE" and not with_ddl):
                continue
            lines += [
                *(script.table(row) if row.object_type == "TABLE" else script.object(row)),
                "",
            ]
    finally:
        script.close()
    return "\n".join(lines), script.refused


async def write_sqlfile(job: Job, reader: DumpSetReader, file: FileEntry) -> None:
    """Write the import's statements for ``reader``'s set into ``file``."""
    objects = await planned_import(job, reader, None)
    script = script_for(reader.header.body.source_engine or "sqlite")
    path = Path(file.directory) / file.file_name
    first = (
        f"-- pumpkit {__version__} SQLFILE of dump-file set {reader.header.guid_hex}"
        f" (job {printable(reader.header.body.job_name)}); nothing was imported"
    )
    files = {n: str(reader.path_of(n)) for n in reader.file_numbers}
    with_ddl = job.selection.content != "DATA_ONLY"
    text, refused = await anyio.to_thread.run_sync(
        partial(_render, script, objects, files, first, with_ddl)
    )
    await anyio.to_thread.run_sync(path.write_text, text, "utf-8")
    await job.log(
        f"SQL file {path} written: {len(objects)} objects ({refused} refused by the guard,"
        " left out), no database changed"
    )
    await job.completing()
