"""SQLFILE of a PostgreSQL dump: the schema-qualified definitions in the order an import runs
them, sequence values as ``setval``."""

from __future__ import annotations

from pumpkit.core.control_table import ControlRow, object_def_of, table_def_of
from pumpkit.io.connectors.base import Script, statement
from pumpkit.io.connectors.postgres.common import literal, qualified

__all__ = ("PgScript",)


class PgScript(Script):
    def table(self, row: ControlRow) -> list[str]:
        return [statement(table_def_of(row).ddl)]

    def object(self, row: ControlRow) -> list[str]:
        obj = object_def_of(row)
        if obj.object_type == "SEQUENCE":
            name = literal(qualified(obj.schema, obj.name))
            if obj.value is None:
                return [f"ALTER SEQUENCE {qualified(obj.schema, obj.name)} RESTART;"]
            return [f"SELECT pg_catalog.setval({name}, {int(obj.value)}, true);"]
        return [statement(obj.ddl)]
