"""A job's work as control rows: the export's plan from a catalog, the import's plan from the
control table an export left in its dump-file set, and the durable ends of a restarted
export's files.

Theory of operation: every object and every data granule is one row whose ``process_order``
says when it is processed. Orders come in bands, one per :class:`~pumpkit.core.planner.Phase`
(``phase * BAND + n``), so that an import creates tables, then loads their data, then sets
sequence values, builds indexes, views, triggers, and restores settings last, whatever
order the rows were written in. A PostgreSQL schema's types and sequences are planned in the
TABLE band, before its tables, in the catalog's order. Pure: values in, rows out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from pumpkit.core.catalog import Catalog, ObjectDef
from pumpkit.core.control_table import (
    OBJECT_TYPES,
    ControlRow,
    ProcessingState,
)
from pumpkit.core.planner import Granule, Phase
from pumpkit.core.selection import OBJECT_PATHS

__all__ = (
    "BAND",
    "PHASE_OF",
    "before_data",
    "durable_points",
    "granule_label",
    "plan_added",
    "plan_export",
    "plan_import",
)

#: process_order bands: a phase's objects get numbers ``phase * BAND + n``.
BAND = 1_000_000
#: What a table needs before it can be made (PostgreSQL): planned in the TABLE band, first.
_BEFORE_TABLES = ("SCHEMA", "TYPE", "SEQUENCE_DEF")
#: The phase of each kind of object planned after the tables.
PHASE_OF = {
    "TABLE": Phase.TABLE,
    "TABLE_DATA": Phase.TABLE_DATA,
    "SEQUENCE": Phase.SEQUENCE,
    "CONSTRAINT": Phase.INDEX,
    "INDEX": Phase.INDEX,
    "REF_CONSTRAINT": Phase.INDEX,  # after the keys it references (the catalog's order)
    "TRIGGER": Phase.TRIGGER,
    "VIEW": Phase.VIEW,
    "COMMENT": Phase.SETTINGS_AFTER,
}
_encode = msgspec.msgpack.encode


def granule_label(g: Granule) -> str:
    """A granule's key range as the control table's ``partition_name`` shows it."""
    low = "min" if g.low is None else str(g.low)
    high = "max" if g.high is None else str(g.high)
    return f"ROWID {low}..{high}"


def before_data(row: ControlRow) -> bool:
    """Whether an import makes this object before the rows go in (tables and their types)."""
    return row.process_order < Phase.TABLE_DATA * BAND


def plan_export(
    catalog: Catalog, granules: dict[str, list[Granule]], *, now: float
) -> list[ControlRow]:
    """The control rows of an export: one per object and one per data granule, in order."""
    rows: list[ControlRow] = []
    counters: dict[Phase, int] = {}

    def order(phase: Phase) -> int:
        counters[phase] = counters.get(phase, 0) + 1
        return phase * BAND + counters[phase]

    object_number = 0
    if catalog.archive is not None:
        # The source's schema archive: one row, its bytes until they are in the set.
        object_number += 1
        rows.append(
            ControlRow(
                process_order=order(Phase.SETTINGS_BEFORE),
                object_type="PG_SCHEMA",
                object_type_path="DATABASE/SCHEMA_ARCHIVE",
                object_name=f"{catalog.archive.tool} archive",
                object_number=object_number,
                processing_state=ProcessingState.PENDING,
                metadata=_encode(catalog.archive),
                last_update=now,
            )
        )
    for obj in catalog.objects:
        if obj.object_type == "PRAGMA":
            object_number += 1
            rows.append(_object_row(obj, order(Phase.SETTINGS_AFTER), object_number, now))
    for obj in catalog.objects:
        if obj.object_type in _BEFORE_TABLES and obj.toc_id is None:
            object_number += 1
            rows.append(_object_row(obj, order(Phase.TABLE), object_number, now))
    for table in catalog.tables:
        object_number += 1
        table_number = object_number
        rows.append(
            ControlRow(
                process_order=order(Phase.TABLE),
                object_type="TABLE",
                object_type_path=OBJECT_PATHS["TABLE"],
                object_schema=table.schema,
                object_name=table.name,
                object_number=table_number,
                processing_state=ProcessingState.PENDING,
                size_estimate=table.estimated_bytes,
                granules=len(granules[table.name]),
                metadata=_encode(table),
                last_update=now,
            )
        )
        rows.extend(
            ControlRow(
                process_order=order(Phase.TABLE_DATA),
                duplicate=g.number,
                object_type="TABLE_DATA",
                object_type_path=OBJECT_PATHS["TABLE_DATA"],
                object_schema=table.schema,
                object_name=table.name,
                base_object_type="TABLE",
                base_object_name=table.name,
                base_object_schema=table.schema,
                partition_name=granule_label(g),
                object_number=table_number,
                processing_state=ProcessingState.PENDING,
                size_estimate=g.estimated_bytes,
                estimated_rows=g.estimated_rows,
                completed_rows=0,
                granule_low=g.low,
                granule_high=g.high,
                metadata=_encode(g),
                last_update=now,
            )
            for g in granules[table.name]
        )
    # An archive's entries: those made before the rows after the tables, the others in the
    # INDEX band (their tool orders them within; the rows' order is the archive's).
    for obj in catalog.objects:
        if obj.toc_id is not None:
            object_number += 1
            phase = Phase.TABLE if obj.section == "pre-data" else Phase.INDEX
            rows.append(_object_row(obj, order(phase), object_number, now))
    for obj in catalog.objects:
        if obj.object_type in PHASE_OF and obj.toc_id is None:
            object_number += 1
            rows.append(_object_row(obj, order(PHASE_OF[obj.object_type]), object_number, now))
    return rows


def _object_row(obj: ObjectDef, process_order: int, number: int, now: float) -> ControlRow:
    return ControlRow(
        process_order=process_order,
        object_type=obj.object_type,
        object_type_path=OBJECT_PATHS.get(obj.object_type, obj.object_type),
        object_schema=obj.schema,
        object_name=obj.name,
        base_object_type="TABLE" if obj.table and obj.object_type != "VIEW" else None,
        base_object_name=obj.table or None,
        object_number=number,
        processing_state=ProcessingState.PENDING,
        metadata=_encode(obj),
        last_update=now,
    )


def plan_added(
    rows: Sequence[ControlRow], objects: Sequence[ObjectDef], *, now: float
) -> list[ControlRow]:
    """Rows for ``objects`` a target adds to an import's plan (``rows``): each in its kind's
    band, after the rows there, numbered after the plan's objects."""
    taken = {r.process_order for r in rows}
    number = max((r.object_number or 0 for r in rows), default=0)
    added = []
    for obj in objects:
        phase = PHASE_OF.get(obj.object_type, Phase.INDEX)
        order = max((o for o in taken if o // BAND == phase), default=phase * BAND) + 1
        taken.add(order)
        number += 1
        added.append(_object_row(obj, order, number, now))
    return added


def plan_import(
    export_columns: Sequence[str], export_rows: Sequence[Sequence[Any]], *, now: float
) -> list[ControlRow]:
    """The import's control rows from the export's control table copied into the dump: its
    objects, and its data granules that the export completed, all pending."""
    known = set(ControlRow.__struct_fields__)
    rows = []
    for values in export_rows:
        fields = {c: v for c, v in zip(export_columns, values, strict=False) if c in known}
        kind = fields.get("object_type")
        if kind not in OBJECT_TYPES:
            continue
        if kind == "TABLE_DATA" and fields.get("processing_state") != ProcessingState.COMPLETED:
            continue
        fields.update(
            processing_state=ProcessingState.PENDING,
            exists_action=None,
            process_name=None,
            start_time=None,
            completion_time=None,
            elapsed_time=None,
            last_update=now,
        )
        if kind != "TABLE_DATA":
            fields["completed_rows"] = None
        rows.append(msgspec.convert(fields, ControlRow))
    return rows


def durable_points(objects: Sequence[ControlRow]) -> dict[int, int]:
    """For every dump file, the end of the last frame the control table records in it: what
    a restarted export keeps (anything after it was never recorded)."""
    ends: dict[int, int] = {}
    for row in objects:
        spans: list[tuple[int, int, int]] = []
        if row.object_type == "TABLE_DATA" and row.done and row.frames:
            spans = [(f.fileid, f.position, f.length) for f in row.frame_refs()]
        elif row.object_type != "TABLE_DATA" and row.dump_fileid and row.dump_position:
            spans = [(row.dump_fileid, row.dump_position, row.dump_length or 0)]
        for fileid, position, length in spans:
            ends[fileid] = max(ends.get(fileid, 0), position + length)
    return ends
