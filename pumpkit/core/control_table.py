"""The control table (the seed's master table), typed: its rows, their kinds and states.

Theory of operation
-------------------
A job's control table has one shape for every row (Oracle's master table does too): the
columns of :class:`ControlRow`, named after the seed's where the meaning is the same, so a
Data Pump user can read it with plain SQL. What a row *is* follows from two columns:

- rows that describe the job have a negative ``process_order``, one value per
  :class:`RowKind` (the seed's convention, kept on disk): the JOB row, PARAMETER, FILE,
  WORKER and FILTER rows. Code never compares ``process_order`` with a number: it asks
  :func:`row_kind`.
- rows with a positive ``process_order`` are the job's objects (a table, one granule of its
  data, an index, ...) in processing order; ``processing_state`` is a
  :class:`ProcessingState`.

The typed faces of the describing rows (:class:`FileEntry`, :class:`WorkerEntry`,
:class:`FilterEntry`) and of a change to an object row (:class:`RowUpdate`) are what the
control store's verbs take and give, so that a misspelt column is a type error, not an SQL
error at run time. ``frames`` is a list of :class:`FrameRef`; on disk it stays what format
1.x writes (a msgpack array of arrays, itself stored as a msgpack bin in the set's copy).

Pure: structs and functions over values, no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from pumpkit.core.catalog import ObjectDef, SchemaArchive, TableDef
from pumpkit.core.planner import Granule
from pumpkit.core.selection import OBJECT_PATHS

__all__ = (
    "CONTROL_COLUMNS",
    "OBJECT_TYPES",
    "ControlRow",
    "ExistsAction",
    "FileEntry",
    "FilterEntry",
    "FrameRef",
    "JobRecord",
    "JobUpdate",
    "Owner",
    "ProcessingState",
    "RowKey",
    "RowKind",
    "RowUpdate",
    "WorkerEntry",
    "decode_frames",
    "encode_frames",
    "granule_of",
    "object_def_of",
    "parameter_row",
    "parameter_value",
    "row_kind",
    "schema_archive_of",
    "table_def_of",
    "tables_of",
)


class RowKind(enum.IntEnum):
    """The rows that describe the job, by the seed's (negative) ``process_order``; every
    other row (``process_order`` > 0) is an OBJECT."""

    OBJECT = 1
    JOB = -1
    PARAMETER = -2
    FILE = -3
    WORKER = -4
    FILTER = -5


def row_kind(process_order: int) -> RowKind:
    """The kind of a row with this ``process_order`` (positive: an object)."""
    return RowKind.OBJECT if process_order > 0 else RowKind(process_order)


class ProcessingState(enum.StrEnum):
    """An object row's progress (one letter on disk, as in the seed's master table)."""

    PENDING = "P"
    RUNNING = "R"
    COMPLETED = "C"
    FAILED = "F"
    SKIPPED = "S"


class ExistsAction(enum.StrEnum):
    """What an import does with a table the target has already (TABLE_EXISTS_ACTION)."""

    SKIP = "SKIP"
    APPEND = "APPEND"
    TRUNCATE = "TRUNCATE"
    REPLACE = "REPLACE"


#: The object types a job plans rows for: every kind a filter can name, and the schema
#: archive a PostgreSQL source's dump carries (its pg_dump archive, one row).
OBJECT_TYPES = (*OBJECT_PATHS, "PG_SCHEMA")


class FrameRef(msgspec.Struct, frozen=True, array_like=True):
    """Where one frame of a granule's data lies, and what it holds."""

    fileid: int
    position: int
    length: int
    rows: int
    bytes: int


_frames_encoder = msgspec.msgpack.Encoder()
_frames_decoder = msgspec.msgpack.Decoder(list[FrameRef])


def encode_frames(frames: Sequence[FrameRef]) -> bytes:
    """``frames`` as the control table stores them: a msgpack array of 5-arrays."""
    return _frames_encoder.encode(list(frames))


def decode_frames(data: bytes | None) -> list[FrameRef]:
    """The frames a ``frames`` column holds (none for NULL)."""
    return _frames_decoder.decode(data) if data else []


class ControlRow(msgspec.Struct, kw_only=True):
    """One row of a control table. Columns follow Oracle's master table where they can."""

    process_order: int
    duplicate: int = 0
    object_type: str
    object_type_path: str | None = None
    object_schema: str | None = None
    object_name: str | None = None
    base_object_type: str | None = None
    base_object_schema: str | None = None
    base_object_name: str | None = None
    partition_name: str | None = None
    object_number: int | None = None
    processing_state: ProcessingState | None = None
    processing_status: str | None = None
    in_progress: str | None = None
    dump_fileid: int | None = None
    dump_position: int | None = None
    dump_length: int | None = None
    frames: bytes | None = None  # encode_frames(...): every frame of a TABLE_DATA granule
    completed_rows: int | None = None
    completed_bytes: int | None = None
    size_estimate: int | None = None
    estimated_rows: int | None = None
    error_count: int | None = None
    elapsed_time: float | None = None
    granule_low: int | None = None
    granule_high: int | None = None
    granules: int | None = None
    metadata: bytes | None = None  # msgpack: TableDef, ObjectDef, or a TABLE_DATA's Granule
    process_name: str | None = None
    start_time: float | None = None
    completion_time: float | None = None
    last_update: float | None = None
    name: str | None = None  # PARAMETER, FILE, WORKER and FILTER rows
    value_t: str | None = None
    value_n: float | None = None
    is_default: int | None = None
    file_type: str | None = None  # FILE rows
    user_directory: str | None = None
    user_file_name: str | None = None
    file_name: str | None = None
    file_max_size: int | None = None
    operation: str | None = None  # the JOB row
    job_mode: str | None = None
    state: str | None = None
    phase: int | None = None
    guid: str | None = None
    version: str | None = None
    db_version: str | None = None
    platform: str | None = None
    degree: int | None = None
    exists_action: ExistsAction | None = None  # an import's TABLE row: the table was there

    @property
    def kind(self) -> RowKind:
        return row_kind(self.process_order)

    @property
    def key(self) -> RowKey:
        return RowKey(self.process_order, self.duplicate, self.object_type)

    @property
    def done(self) -> bool:
        return self.processing_state is ProcessingState.COMPLETED

    @property
    def owner(self) -> str:
        """The table this row belongs to: its own name for a table and its data, else the
        base object's."""
        if self.object_type in ("TABLE", "TABLE_DATA"):
            return self.object_name or ""
        return self.base_object_name or ""

    def frame_refs(self) -> list[FrameRef]:
        return decode_frames(self.frames)


CONTROL_COLUMNS: tuple[str, ...] = ControlRow.__struct_fields__
"""The control table's columns, in order."""


class RowKey(msgspec.Struct, frozen=True, array_like=True):
    """What names one row of a control table."""

    process_order: int
    duplicate: int
    object_type: str


class RowUpdate(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The columns of an object row that a job's progress changes; only those given are
    written (``UNSET``: left as they are)."""

    processing_state: ProcessingState | UnsetType = UNSET
    process_name: str | UnsetType | None = UNSET
    start_time: float | UnsetType | None = UNSET
    completion_time: float | UnsetType | None = UNSET
    elapsed_time: float | UnsetType | None = UNSET
    last_update: float | UnsetType | None = UNSET
    completed_rows: int | UnsetType | None = UNSET
    completed_bytes: int | UnsetType | None = UNSET
    error_count: int | UnsetType | None = UNSET
    frames: bytes | UnsetType | None = UNSET
    dump_fileid: int | UnsetType | None = UNSET
    dump_position: int | UnsetType | None = UNSET
    dump_length: int | UnsetType | None = UNSET
    processing_status: str | UnsetType | None = UNSET
    metadata: bytes | UnsetType | None = UNSET

    def columns(self) -> dict[str, Any]:
        """The columns to write and their values (enums as their on-disk values)."""
        return {
            name: value.value if isinstance(value, enum.Enum) else value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }


class FileEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A FILE row: a dump file (name or template), the log file or the SQL file."""

    file_type: str  # DUMP, LOG, SQL
    directory: str
    file_name: str  # as given: may hold %U / %L
    first_path: str  # the first file it names
    max_size: int | None = None
    reuse: bool = False

    @property
    def key(self) -> str:
        return f"{self.file_type}:{self.directory.rstrip('/')}/{self.file_name}"


class WorkerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A WORKER row: what one worker does now."""

    name: str
    state: str  # WORKING, IDLE
    object_type: str | None = None
    object_schema: str | None = None
    object_name: str | None = None
    partition_name: str | None = None
    last_update: float | None = None


class FilterEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A FILTER row: one filter, remap or transform call, in call order (``seq``)."""

    seq: int
    name: str  # KIND:NAME, e.g. METADATA_FILTER:NAME_EXPR
    value: Any
    target: str | None = None  # a table, or an object path
    schema: str | None = None


class JobUpdate(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Fields of a job's registry row that change with it; only those given are written."""

    degree: int | UnsetType = UNSET
    stop_reason: str | UnsetType | None = UNSET
    owner_host: str | UnsetType | None = UNSET
    owner_pid: int | UnsetType | None = UNSET
    owner_token: str | UnsetType | None = UNSET
    heartbeat: float | UnsetType | None = UNSET
    restart_count: int | UnsetType = UNSET
    summary: bytes | UnsetType | None = UNSET

    def columns(self) -> dict[str, Any]:
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }


class Owner(msgspec.Struct, frozen=True, kw_only=True):
    """The process that runs a job: its host, pid, and the token it proves itself with."""

    host: str
    pid: int
    token: str


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the jobs registry (the jobs view, like DBA_DATAPUMP_JOBS)."""

    job_name: str
    guid: str
    operation: str
    job_mode: str
    state: str
    degree: int
    attached_sessions: int
    owner_host: str | None
    owner_pid: int | None
    owner_token: str | None
    heartbeat: float | None
    stop_reason: str | None
    restart_count: int
    created: float
    updated: float
    summary: bytes | None = None  # the final status (JSON) once the control table is gone


def parameter_row(name: str, value: Any, *, is_default: bool) -> ControlRow:
    """A PARAMETER row: text in value_t, a number in value_n, anything else as JSON."""
    text: str | None = None
    number: float | None = None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):  # bool too: an int
        number = float(value)
    elif value is not None:
        text = "json:" + msgspec.json.encode(value).decode()
    return ControlRow(
        process_order=RowKind.PARAMETER,
        object_type=RowKind.PARAMETER.name,
        name=name,
        value_t=text,
        value_n=number,
        is_default=int(is_default),
    )


def parameter_value(row: ControlRow) -> Any:
    if row.value_t is not None:
        return (
            msgspec.json.decode(row.value_t[5:]) if row.value_t.startswith("json:") else row.value_t
        )
    if row.value_n is not None:
        return int(row.value_n) if float(row.value_n).is_integer() else row.value_n
    return None


# --- typed metadata ---------------------------------------------------------------------------

_table_decoder = msgspec.msgpack.Decoder(TableDef)
_object_decoder = msgspec.msgpack.Decoder(ObjectDef)
_granule_decoder = msgspec.msgpack.Decoder(Granule)
_archive_decoder = msgspec.msgpack.Decoder(SchemaArchive)


def table_def_of(row: ControlRow) -> TableDef:
    """The table a TABLE row describes."""
    return _table_decoder.decode(row.metadata or b"")


def object_def_of(row: ControlRow) -> ObjectDef:
    """The object an INDEX, VIEW, TRIGGER, SEQUENCE, ... row describes."""
    return _object_decoder.decode(row.metadata or b"")


def granule_of(row: ControlRow) -> Granule:
    """The key range a TABLE_DATA row covers."""
    return _granule_decoder.decode(row.metadata or b"")


def schema_archive_of(row: ControlRow) -> SchemaArchive:
    """What a PG_SCHEMA row records about its source's schema archive."""
    return _archive_decoder.decode(row.metadata or b"")


def tables_of(rows: Iterable[ControlRow]) -> dict[tuple[str, str], TableDef]:
    """``(schema, name) -> TableDef`` of the TABLE rows among ``rows`` (two schemas may each
    have a table of one name)."""
    return {
        (r.object_schema or "", r.object_name or ""): table_def_of(r)
        for r in rows
        if r.object_type == "TABLE"
    }
