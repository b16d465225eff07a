"""What a source or a target database must provide: the interfaces the engine calls.

The engine never names an engine. It asks a :class:`Source` for its catalog, its granules
and readers that turn a granule into frames; it asks a :class:`Target` to make objects,
loaders that put a granule's frames into a table together with the granule's completion
marker, and (for TPump-style loads) a :class:`RecordLoad`. Where engines differ, the
connector declares it: the row format its frames hold (``Source.row_format``), how many
loaders may write at once (``Target.max_loaders``: SQLite has one writer), whether it can
filter rows on import (``Target.filters_rows``).

``sqlite.py`` and ``postgres.py`` implement them; ``pumpkit.io.connectors.open_source`` and
``open_target`` choose by the database's name.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from pumpkit.core.buffers import Buffer
from pumpkit.core.catalog import Catalog, ObjectDef, TableDef
from pumpkit.core.control_table import ControlRow, FrameRef
from pumpkit.core.plancheck import ImportPlan
from pumpkit.core.planner import Granule
from pumpkit.core.rowcodec import Batch

__all__ = (
    "MADE",
    "Batch",
    "FramePlacer",
    "GranuleLoaders",
    "GranuleReaders",
    "GranuleRequest",
    "GranuleResult",
    "ImportOptions",
    "LoadRequest",
    "Outcome",
    "RecordLoad",
    "RowPipe",
    "RowSpec",
    "Script",
    "Source",
    "Target",
    "statement",
)


# --- export: a source and its readers --------------------------------------------------------


class RowSpec(msgspec.Struct, frozen=True):
    """What a reader reads of a table beyond the granule's key range: a QUERY condition, a
    SUBQUERY clause, a SAMPLE percentage, and REMAP_DATA (``column -> module:function``)."""

    condition: str | None = None
    subquery: str | None = None
    sample: float | None = None
    remaps: dict[str, str] = msgspec.field(default_factory=dict)


class GranuleRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One granule to read: the table, its key range, the frames' object id, the data
    filters, and the frames' encryption key (``None``: in clear)."""

    table: TableDef
    granule: Granule
    object_id: int
    spec: RowSpec = RowSpec()
    key: bytes | None = None


class GranuleResult(msgspec.Struct):
    """What reading a granule gave: every frame where it was placed, the rows, the bytes."""

    frames: list[FrameRef] = msgspec.field(default_factory=list)
    rows: int = 0
    bytes: int = 0


FramePlacer = Callable[[Buffer, Buffer], FrameRef | None]
"""The engine's hand for a frame a reader built (its header and payload): places it (in the
dump-file set, an output module) and says where, or ``None`` when it went nowhere to record.
Blocking (a full dump-file set waits in it): readers call it from a worker thread."""


class GranuleReaders(abc.ABC):
    """Readers of one source, each able to read one granule at a time."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    async def read(
        self, reader: int, request: GranuleRequest, place: FramePlacer, stop: threading.Event
    ) -> GranuleResult:
        """Read ``request``'s granule with reader number ``reader``, frame its rows, hand
        every frame to ``place`` in order. Raises ``ConnectorError`` for the source's
        failure and ``JobStopped`` when ``stop`` is set (the readers must then be closed:
        one may be mid-granule)."""

    async def replace(self, reader: int) -> bool:
        """Replace reader ``reader`` after it died (``WorkerDiedError``) with a new one, so
        its granule can be redone; whether it was replaced (readers that cannot be replaced
        say False, and the job fails as before)."""
        return False

    @abc.abstractmethod
    async def close(self) -> None: ...


class Source(abc.ABC):
    """A database to export."""

    #: The engine's name, written into the dump's header (``sqlite``, ``postgresql``).
    engine: str
    #: How this source's TABLE_DATA frames hold rows: ``msgpack`` (an array of row arrays
    #: per frame) or ``pgcopy`` (a granule's frames, concatenated, are one binary COPY
    #: stream). See formats/dumpfile.md.
    row_format: str

    @property
    @abc.abstractmethod
    def version(self) -> str: ...

    @abc.abstractmethod
    async def fingerprint(self) -> str:
        """Something that changes when the database is replaced (a restart must not mix
        two databases)."""

    @abc.abstractmethod
    async def catalog(self, *, tables: Sequence[str] | None, views: bool) -> Catalog: ...

    @abc.abstractmethod
    async def check_rows_filter(
        self, table: TableDef, condition: str | None, subquery: str | None
    ) -> None:
        """Refuse a QUERY or SUBQUERY that does not apply to ``table``, before any row moves."""

    @abc.abstractmethod
    async def granules(self, table: TableDef, *, target_bytes: int) -> list[Granule]: ...

    @abc.abstractmethod
    async def open_readers(self, count: int, *, level: int) -> GranuleReaders:
        """``count`` readers that all see one consistent state of the database; ``level``
        is the zstd level of the frames (0: uncompressed)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


# --- import: a target and its loaders --------------------------------------------------------


@dataclass
class RowPipe:
    """What an import does to a table's decoded rows on the way in: a random SAMPLE share,
    REMAP_DATA (a callable over a batch), and leaving out the source's hidden rowid (rows
    appended to a table of the target get the target's rowids)."""

    sample: float | None = None
    remap: Callable[[list[tuple[object, ...]]], list[tuple[object, ...]]] | None = None
    drop_first: bool = False


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How an import makes the dump's objects in a target."""

    #: The dump's schema archive (its source engine's own tool's), when it has one.
    archive: bytes | None = None
    #: REMAP_SCHEMA: old schema -> new.
    schemas: dict[str, str] = msgspec.field(default_factory=dict)
    #: REMAP_TABLE: (schema, old name) -> new name.
    tables: dict[tuple[str, str], str] = msgspec.field(default_factory=dict)
    #: Run the dump's statements and load its rows as this role (PostgreSQL's SET ROLE:
    #: the rights of a role made for the job, not the connecting user's).
    role: str | None = None
    #: Leave out the archive's ownership and grants (the objects belong to the importing
    #: role), as pg_restore's --no-owner and --no-privileges.
    no_owner: bool = False
    no_privileges: bool = False


class Outcome(NamedTuple):
    """What became of an object the import asked a target to make: ``made``, and a note for
    the job's log (when not made: why; that object is a failure of the job)."""

    made: bool
    note: str | None = None


MADE = Outcome(True)


class LoadRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One granule to load: the table as the target makes it, the frames' row format, the
    granule's marker, the rows the export recorded, what to do to the rows on the way."""

    table: TableDef
    label: str  # the granule, for messages: its key range
    job_guid: str
    process_order: int
    expect_rows: int
    schema: str | None = None  # where the table is in the target (None: the target decides)
    condition: str | None = None  # an import's QUERY (targets with filters_rows only)
    append: bool = False  # rows go into a table the target had: leave out the source rowid


class GranuleLoaders(abc.ABC):
    """Writers of one target, each loading one granule at a time in one transaction."""

    @abc.abstractmethod
    async def load(
        self,
        loader: int,
        request: LoadRequest,
        batches: AsyncIterator[Batch],
        pipe: RowPipe | None,
        stop: threading.Event,
    ) -> int:
        """Load the granule's batches and commit them with the granule's completion marker,
        all or nothing; returns the rows loaded. Raises ``DumpError`` when the frames hold
        other than ``request.expect_rows`` rows (nothing is committed), ``ConnectorError``
        for a row the table refuses, ``JobStopped`` when ``stop`` is set."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class RecordLoad(abc.ABC):
    """A TPump-style load into one table: rows with their restart log and error table in
    the target, one transaction per checkpoint."""

    #: The columns each row fills, in order.
    columns: list[str]

    @abc.abstractmethod
    async def last_checkpoint(self, job_guid: str) -> tuple[int, bytes, int, int] | None:
        """``(number, info, rows applied, last sequence)`` of the job's last checkpoint."""

    @abc.abstractmethod
    async def error_count(self, job_guid: str) -> int: ...

    @abc.abstractmethod
    async def apply_checkpoint(
        self,
        job_guid: str,
        job_name: str,
        rows: Sequence[Sequence[object]],
        sequences: Sequence[int],
        records: Sequence[bytes],
        errors: Sequence[tuple[int, str, bytes]],
        checkpoint: tuple[int, bytes, int, int],
    ) -> list[tuple[int, str, bytes]]:
        """One transaction: the rows, the records that failed (to decode, or that the table
        refuses) into the error table, and the restart-log row. Returns every error of this
        checkpoint. A failure of the database itself rolls back and raises
        ``RetryableError``."""

    @abc.abstractmethod
    async def forget(self, job_guid: str) -> None:
        """The load completed: its restart log goes (its error-table rows stay)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Target(abc.ABC):
    """A database to import or load into."""

    engine: str
    #: The engine the dump's rows came from (the same as ``engine``, or a cross-engine move).
    source_engine: str
    #: How many loaders may write at once (``None``: as many as the job's degree).
    max_loaders: int | None = None
    #: Whether an import's QUERY, SAMPLE and REMAP_DATA can be applied to the rows.
    filters_rows: bool = False
    #: The one schema every object goes into (SQLite's ``main``); ``None``: many schemas.
    single_schema: str | None = None
    #: Kinds of a table's archive entries it can make as soon as that table's rows are in,
    #: while other tables load (its indexes and constraints), through ``restore_entries``.
    early_objects: frozenset[str] = frozenset()

    @abc.abstractmethod
    async def fingerprint(self) -> str: ...

    @abc.abstractmethod
    async def existing_tables(self, tables: list[TableDef]) -> list[str]: ...

    @abc.abstractmethod
    async def table_exists(self, table: TableDef) -> bool: ...

    @abc.abstractmethod
    async def create_table(self, table: TableDef) -> list[str]:
        """Make the table; notes for the job's log (what a cross-engine move changed)."""

    @abc.abstractmethod
    async def truncate(self, table: TableDef) -> None: ...

    @abc.abstractmethod
    async def drop_table(self, table: TableDef) -> None: ...

    @abc.abstractmethod
    async def create_object(self, obj: ObjectDef) -> Outcome:
        """Make an index, view, trigger, ...; set a sequence value or a setting. An object
        this engine has no counterpart for is not made: the outcome says why (the job
        reports it as failed, never in silence)."""

    async def restore_entries(
        self, items: Sequence[TableDef | ObjectDef], *, jobs: int, restarted: bool
    ) -> list[Outcome] | None:
        """Make entries of the dump's schema archive (``toc_id`` set) in one batch, the way
        the archive's own tool restores them, ``jobs`` at once; an outcome per item, in
        order. ``restarted``: the job was restarted, so an entry may exist already (made
        before the crash). ``None``: this target makes them one by one (``create_table``,
        ``create_object``)."""
        return None

    async def plan_objects(
        self, tables: Sequence[TableDef], objects: Sequence[ObjectDef]
    ) -> list[ObjectDef]:
        """What the import's plan holds (its ``tables`` and other ``objects``), shown to the
        target on every run before anything is made; and the objects the target adds to the
        plan (taken on the first run only), each then a row of the job like any other: what a
        cross-engine move makes apart from the tables (SQLite's foreign keys, which
        PostgreSQL adds after the rows; identity sequences set past the highest key)."""
        return []

    async def declare(self, plan: ImportPlan, named: ImportPlan, options: ImportOptions) -> None:
        """What the import makes or loads (``plan``), everything its dump names under the
        job's filters (``named``), and how (``options``: the dump's schema archive, the
        renames, the role): a target that guards the dump's statements bounds what they may
        touch by it, one that can restore the archive keeps it. Raises ``ConnectorError``
        when it cannot do what the options ask (the archive's tools are missing)."""
        return None

    @abc.abstractmethod
    async def ensure_markers(self) -> None: ...

    @abc.abstractmethod
    async def markers(self, job_guid: str) -> dict[int, int]:
        """``process_order -> rows`` of every granule this job has committed."""

    @abc.abstractmethod
    async def drop_markers(self, job_guid: str) -> None: ...

    @abc.abstractmethod
    async def open_loaders(self, count: int) -> GranuleLoaders: ...

    @abc.abstractmethod
    async def open_load(
        self, table: str, columns: Sequence[str] | None, upsert_key: Sequence[str]
    ) -> RecordLoad:
        """A TPump-style load into ``table`` (its columns, or those given), inserting, or
        with ``upsert_key`` updating rows whose key exists."""

    @abc.abstractmethod
    async def close(self) -> None: ...


# --- SQLFILE: the SQL an import would run, as text ------------------------------------------


class Script(abc.ABC):
    """The statements an import of a dump from this engine runs, as SQL text, without a
    database (SQLFILE), each ending with ``;``."""

    @abc.abstractmethod
    async def render(
        self,
        objects: Sequence[ControlRow],
        *,
        dump_files: Mapping[int, str],
        archive: bytes | None,
        with_ddl: bool,
    ) -> tuple[list[str], int]:
        """The file's lines for an import's plan (``objects``, in order; ``with_ddl``: its
        tables' DDL too, not only what fills them), and how many objects it left out because
        the import would refuse them (a comment says where and why)."""


def statement(sql: str) -> str:
    """``sql`` ending with a ``;`` (on a line of its own after a trailing ``--`` comment,
    where it would be part of the comment)."""
    sql = sql.rstrip()
    if sql.endswith(";"):
        return sql
    last = sql.rsplit("\n", 1)[-1]
    return sql + "\n;" if "--" in last else sql + ";"
