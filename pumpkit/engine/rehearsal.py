"""SQLFILE's check of a dump's statements: each is rehearsed, in the import's order, through
both gates of ``sqlite_guard`` on a scratch in-memory database, so the SQL file can leave out
(and say so in a comment) what an import would refuse. No file is opened: a statement that
would ATTACH or VACUUM INTO is refused by the gates before SQLite runs it, here as anywhere.

A user runs an SQL file with the ``sqlite3`` shell, which runs anything: so a refused
statement is never written as SQL, only quoted inside a one-line comment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

import msgspec

from pumpkit.engine.plancheck import check_plan
from pumpkit.errors import PumpkitError, UnsafeDumpError
from pumpkit.io.connectors.base import ObjectDef, TableDef
from pumpkit.io.connectors.sqlite_guard import (
    ALLOWED_PRAGMAS,
    Declared,
    Scope,
    SqliteGuard,
    one_line,
    refusal_comment,
    scratch_guard,
)
from pumpkit.io.store import ControlRow

__all__ = ("Rehearsal", "rehearse")

_table_decoder = msgspec.msgpack.Decoder(TableDef)
_object_decoder = msgspec.msgpack.Decoder(ObjectDef)


class Rehearsal(msgspec.Struct, frozen=True):
    """What the rehearsal found: by ``process_order``, the comment that replaces each refused
    object's SQL; and comments about the plan as a whole."""

    refused: dict[int, str]
    notes: list[str]

    @property
    def header(self) -> list[str]:
        if not self.refused and not self.notes:
            return []
        lines = [
            f"-- pumpkit's guard refused {len(self.refused)} object(s) of this dump: their SQL"
            " is not written below, only quoted in a comment where it would have been."
        ]
        return lines + self.notes


def rehearse(
    objects: Sequence[ControlRow], dump_files: Mapping[int, str], *, source_engine: str
) -> Rehearsal:
    """Rehearse the SQL of ``objects`` (an import's plan) on a scratch SQLite database.
    Blocking (sqlite3): run it in a worker thread. Never raises for what the dump holds."""
    if source_engine != "sqlite":
        return Rehearsal(
            {},
            [f"-- Not checked by pumpkit's guard: the statements are {source_engine}'s."],
        )
    notes: list[str] = []
    try:
        check_plan(objects, dump_files)
    except UnsafeDumpError as exc:
        notes.append(f"-- REFUSED by pumpkit's guard, the import would stop: {one_line(str(exc))}")
    tables = [_table(r).name for r in objects if r.object_type == "TABLE" and r.metadata]
    views = [_object(r).name for r in objects if r.object_type == "VIEW" and r.metadata]
    guard = scratch_guard(Scope())
    guard.scope.widen(tables, views)
    refused: dict[int, str] = {}
    try:
        for row in objects:
            if row.object_type == "TABLE_DATA" or not row.metadata:
                continue
            try:
                _rehearse_one(guard, row)
            except (PumpkitError, msgspec.DecodeError) as exc:
                refused[row.process_order] = refusal_comment(str(exc), _sql_of(row))
            except sqlite3.Error:
                pass  # an ordinary failure, which the import would report: not a refusal
    finally:
        guard.conn.close()
    return Rehearsal(refused, notes)


def _rehearse_one(guard: SqliteGuard, row: ControlRow) -> None:
    """What the import would do with ``row``'s object, on the scratch database."""
    if row.object_type == "TABLE":
        table = _table(row)
        guard.execute(table.ddl, Declared("TABLE", table.name))
        return
    obj = _object(row)
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


def _table(row: ControlRow) -> TableDef:
    return _table_decoder.decode(row.metadata or b"")


def _object(row: ControlRow) -> ObjectDef:
    return _object_decoder.decode(row.metadata or b"")


def _sql_of(row: ControlRow) -> str:
    try:
        if row.object_type == "TABLE":
            return _table(row).ddl
        obj = _object(row)
        return obj.ddl or f"{obj.object_type} {obj.name} = {obj.value}"
    except msgspec.DecodeError:
        return ""
