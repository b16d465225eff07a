"""SQLFILE of a SQLite dump: each object's original SQL, sequence values and settings as the
statements that set them."""

from __future__ import annotations

from pumpkit.core.catalog import ObjectDef, TableDef
from pumpkit.io.connectors.base import Script, statement

__all__ = ("SqliteScript",)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SqliteScript(Script):
    def table(self, table: TableDef) -> list[str]:
        return [statement(table.ddl)]

    def object(self, obj: ObjectDef) -> list[str]:
        if obj.object_type == "SEQUENCE":
            name = _literal(obj.table)
            value = int(obj.value or 0)
            return [
                f"INSERT INTO sqlite_sequence (name, seq) SELECT {name}, {value}"
                f" WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {name});",
                f"UPDATE sqlite_sequence SET seq = {value} WHERE name = {name};",
            ]
        if obj.object_type == "PRAGMA":
            return [f"PRAGMA {obj.name} = {int(obj.value or 0)};"]
        return [statement(obj.ddl)]
