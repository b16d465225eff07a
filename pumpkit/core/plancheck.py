"""What an import checks in the plan a dump carries before it acts on it.

An import plans its work from the control table inside the dump (formats/control-table.md),
and every value there is the dump writer's word. The engine decides *what* to do from a
row's ``object_type``, ``object_name`` and ``base_object_name`` (which rows TABLE_EXISTS_ACTION
skips, which table a granule's rows go into), while the target makes the object from the
row's ``metadata``. A row whose two descriptions disagree would let a dump slip an object
past those decisions (a table the import skips, named otherwise in the row), so they must
agree. And a trigger is made only after every row of data: made before, it would fire on
the import's own rows.

:func:`check_plan` is pure: control rows in, the plan's names out, or ``UnsafeDumpError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from pumpkit.core.catalog import ObjectDef, SchemaArchive, TableDef
from pumpkit.core.control_table import ControlRow
from pumpkit.core.selection import fold
from pumpkit.errors import UnsafeDumpError

__all__ = ("ImportPlan", "check_plan")

_table_decoder = msgspec.msgpack.Decoder(TableDef)
_object_decoder = msgspec.msgpack.Decoder(ObjectDef)
_archive_decoder = msgspec.msgpack.Decoder(SchemaArchive)
#: Object types whose definition names the table they are on.
_ON_TABLE = ("INDEX", "TRIGGER")


@dataclass
class ImportPlan:
    """The names an import's plan holds, and where in the dump each object was defined."""

    tables: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    #: ``(object_type, folded name) -> (dump file, offset of its METADATA frame)``.
    where: dict[tuple[str, str], tuple[str | None, int | None]] = field(default_factory=dict)

    def locate(self, error: UnsafeDumpError) -> UnsafeDumpError:
        """``error`` placed at the METADATA frame of the object it names, when known."""
        path, offset = self.where.get((error.object_type, fold(error.object_name)), (None, None))
        if path is None and error.object_type == "SEQUENCE":
            path, offset = self.where.get(("TABLE", fold(error.object_name)), (None, None))
        return error if path is None else error.at(path, offset)


def check_plan(objects: Sequence[ControlRow], dump_files: Mapping[int, str]) -> ImportPlan:
    """Check that every object row of an import agrees with its own definition and that
    no trigger comes before table data; return the plan's tables and views.

    ``dump_files`` maps the set's file numbers to their paths (for the error's location).
    Raises ``UnsafeDumpError`` naming the row, valid in any state of an import job.
    """
    plan = ImportPlan()
    last_data: int | None = None
    first_trigger: tuple[int, str] | None = None
    table_names: set[str] = set()
    data_rows: list[ControlRow] = []
    for row in objects:
        where = (dump_files.get(row.dump_fileid or 0), row.dump_position)
        kind = row.object_type
        if kind == "TABLE_DATA":
            data_rows.append(row)
            last_data = max(last_data or row.process_order, row.process_order)
            continue
        if row.metadata is None:
            continue
        if kind == "PG_SCHEMA":
            # Not an object the target makes from a definition: the record of the schema
            # archive (whose bytes the import checks against it).
            try:
                _archive_decoder.decode(row.metadata)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise UnsafeDumpError(
                    object_type=kind,
                    object_name=row.object_name or "",
                    refused="a schema archive's record that does not decode",
                    why=str(exc),
                    path=where[0],
                    offset=where[1],
                ) from None
            continue
        try:
            definition: TableDef | ObjectDef = (
                _table_decoder.decode(row.metadata)
                if kind == "TABLE"
                else _object_decoder.decode(row.metadata)
            )
        except msgspec.DecodeError as exc:
            raise UnsafeDumpError(
                object_type=kind,
                object_name=row.object_name or "",
                refused="a definition that does not decode",
                why=str(exc),
                path=where[0],
                offset=where[1],
            ) from None
        name = definition.name
        said = [(row.object_type, definition.object_type), (row.object_name or "", name)]
        if isinstance(definition, ObjectDef) and definition.object_type in _ON_TABLE:
            said.append((row.base_object_name or "", definition.table))
        for row_says, definition_says in said:
            if fold(row_says) != fold(definition_says):
                raise UnsafeDumpError(
                    object_type=definition.object_type,
                    object_name=name,
                    refused=f"a control-table row that says {row_says!r} where its definition"
                    f" says {definition_says!r}",
                    why="the import decides from the row and makes the object from the"
                    " definition, so the two must name the same object",
                    path=where[0],
                    offset=where[1],
                )
        plan.where[(definition.object_type, fold(name))] = where
        if kind == "TABLE":
            plan.tables.append(name)
            table_names.add(fold(name))
        elif kind == "VIEW":
            plan.views.append(name)
        elif kind == "TRIGGER" and (first_trigger is None or row.process_order < first_trigger[0]):
            first_trigger = (row.process_order, name)
    for row in data_rows:
        if fold(row.object_name or "") not in table_names:
            raise UnsafeDumpError(
                object_type="TABLE_DATA",
                object_name=row.object_name or "",
                refused="rows of a table the plan does not define",
                why="an import loads rows only into the tables it makes or is told to load",
            )
    if first_trigger is not None and last_data is not None and first_trigger[0] < last_data:
        trigger = first_trigger[1]
        raise UnsafeDumpError(
            object_type="TRIGGER",
            object_name=trigger,
            refused=f"a place in the plan before table data (process order {first_trigger[0]})",
            why="a trigger made before the rows would fire on the import's own rows; an"
            " export orders every trigger after the data",
            path=plan.where.get(("TRIGGER", fold(trigger)), (None, None))[0],
            offset=plan.where.get(("TRIGGER", fold(trigger)), (None, None))[1],
        )
    return plan
