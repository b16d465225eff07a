"""SQLFILE of a SQLite dump: each object's original SQL, sequence values and settings as the
statements that set them; every statement first rehearsed, in the import's order, through
both gates of the guard on a scratch in-memory database.

A user runs an SQL file with the ``sqlite3`` shell, which runs anything: so what an import
would refuse is never written as SQL, only quoted inside a one-line comment where it would
have been. No file is opened: a statement that would ATTACH or VACUUM INTO is refused by the
gates before SQLite runs it, here as anywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from functools import partial

import anyio
import msgspec

from pumpkit.core.catalog import ObjectDef
from pumpkit.core.control_table import ControlRow, object_def_of, table_def_of
from pumpkit.core.plancheck import check_plan
from pumpkit.errors import PumpkitError, UnsafeDumpError
from pumpkit.io.connectors.base import Script, statement
from pumpkit.io.connectors.sqlite.guard import (
    ALLOWED_PRAGMAS,
    Declared,
    Scope,
    SqliteGuard,
    one_line,
    refusal_comment,
    scratch_guard,
)

__all__ = ("SqliteScript",)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _object_sql(obj: ObjectDef) -> list[str]:
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


def _sql_of(row: ControlRow) -> str:
    try:
        if row.object_type == "TABLE":
            return table_def_of(row).ddl
        obj = object_def_of(row)
        return obj.ddl or f"{obj.object_type} {obj.name} = {obj.value}"
    except msgspec.DecodeError:
        return ""


class SqliteScript(Script):
    def __init__(self) -> None:
        self.guard: SqliteGuard | None = None
        self.refused = 0

    async def render(
        self,
        objects: Sequence[ControlRow],
        *,
        dump_files: Mapping[int, str],
        archive: bytes | None,
        with_ddl: bool,
    ) -> tuple[list[str], int]:
        return await anyio.to_thread.run_sync(partial(self._render, objects, dump_files, with_ddl))

    def _render(
        self, objects: Sequence[ControlRow], dump_files: Mapping[int, str], with_ddl: bool
    ) -> tuple[list[str], int]:
        try:
            lines = [*self.prepare(objects, dump_files), ""]
            for row in objects:
                if row.object_type == "TABLE_DATA":
                    continue
                if row.object_type == "TABLE":
                    if with_ddl:
                        lines += [*self.table(row), ""]
                    continue
                lines += [*self.object(row), ""]
        finally:
            self.close()
        return lines, self.refused

    def prepare(self, objects: Sequence[ControlRow], dump_files: Mapping[int, str]) -> list[str]:
        notes: list[str] = []
        try:
            check_plan(objects, dump_files)
        except UnsafeDumpError as exc:
            notes.append(
                f"-- REFUSED by pumpkit's guard, the import would stop: {one_line(str(exc))}"
            )
        tables = [table_def_of(r).name for r in objects if r.object_type == "TABLE" and r.metadata]
        views = [object_def_of(r).name for r in objects if r.object_type == "VIEW" and r.metadata]
        self.guard = scratch_guard(Scope())
        self.guard.scope.widen(tables, views)
        return notes

    def _rehearsed(self, row: ControlRow, sql: list[str]) -> list[str]:
        """``sql``, or the comment that replaces it when the guard refuses the object."""
        if self.guard is None or not row.metadata:
            return sql
        try:
            self._rehearse(self.guard, row)
        except (PumpkitError, msgspec.DecodeError) as exc:
            self.refused += 1
            return [refusal_comment(str(exc), _sql_of(row))]
        except sqlite3.Error:
            pass  # an ordinary failure, which the import would report: not a refusal
        return sql

    @staticmethod
    def _rehearse(guard: SqliteGuard, row: ControlRow) -> None:
        """What the import would do with ``row``'s object, on the scratch database."""
        if row.object_type == "TABLE":
            table = table_def_of(row)
            guard.execute(table.ddl, Declared("TABLE", table.name))
            return
        obj = object_def_of(row)
        if obj.object_type == "SEQUENCE":
            guard.require_table("SEQUENCE", obj.table, obj.table, "setting the counter of")
        elif obj.object_type == "PRAGMA":
            if obj.name not in ALLOWED_PRAGMAS:
                raise UnsafeDumpError(
                    object_type="PRAGMA",
                    object_name=obj.name,
                    refused=f"the setting {obj.name!r}",
                    why=f"pumpkit restores only {', '.join(sorted(ALLOWED_PRAGMAS))}",
                )
        else:
            guard.execute(obj.ddl, Declared(obj.object_type, obj.name, obj.table))

    def table(self, row: ControlRow) -> list[str]:
        return self._rehearsed(row, [statement(table_def_of(row).ddl)])

    def object(self, row: ControlRow) -> list[str]:
        return self._rehearsed(row, _object_sql(object_def_of(row)))

    def close(self) -> None:
        if self.guard is not None:
            self.guard.conn.close()
            self.guard = None
