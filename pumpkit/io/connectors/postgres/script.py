"""SQLFILE of a PostgreSQL dump: what pg_restore writes for the plan's entries of the dump's
schema archive, without a database, then the statements pumpkit runs itself (sequence
values), so that the file replays with ``psql -v ON_ERROR_STOP=1``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pumpkit.core.control_table import ControlRow, object_def_of, table_def_of
from pumpkit.io.connectors.base import Script
from pumpkit.io.connectors.postgres.common import literal, qualified
from pumpkit.io.connectors.postgres.tools import script

__all__ = ("PgScript",)


class PgScript(Script):
    async def render(
        self,
        objects: Sequence[ControlRow],
        *,
        dump_files: Mapping[int, str],
        archive: bytes | None,
        with_ddl: bool,
    ) -> tuple[list[str], int]:
        """pg_restore's script of the archive's entries the plan keeps (its tables' only
        when ``with_ddl``), then each sequence's value."""
        lines: list[str] = []
        entries = []
        for row in objects:
            if row.object_type in ("TABLE_DATA", "PG_SCHEMA", "SEQUENCE"):
                continue
            if row.object_type == "TABLE":
                toc_id = table_def_of(row).toc_id
                if with_ddl and toc_id is not None:
                    entries.append(toc_id)
                continue
            obj = object_def_of(row)
            if obj.toc_id is not None and with_ddl:
                entries.append(obj.toc_id)
        if archive is not None and entries:
            lines.append(await script(archive, entries))
        for row in objects:
            if row.object_type != "SEQUENCE":
                continue
            obj = object_def_of(row)
            name = qualified(obj.schema, obj.name)
            if obj.value is None:
                lines.append(f"ALTER SEQUENCE {name} RESTART;")
            else:
                lines.append(f"SELECT pg_catalog.setval({literal(name)}, {int(obj.value)}, true);")
        return lines, 0
