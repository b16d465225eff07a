"""Rewrite a real dump-file set as an attacker would, and fix every checksum.

An attacker who holds a dump (or writes one) can change any byte and recompute every CRC:
the format's checksums find damage, not intent. This toolkit does exactly that, relying only
on the format (formats/dumpfile.md, formats/control-table.md), never on the engine:

1. :meth:`DumpCopy.read` reads every frame of a set with the codec (``pumpkit.core.header``,
   ``pumpkit.core.frame``): headers, METADATA, TABLE_DATA, LOG and the CONTROL_TABLE.
2. :meth:`DumpCopy.redefine` changes an object's definition where both copies of it live:
   in its METADATA frame and in its control-table row (``metadata``), names included.
   :meth:`DumpCopy.set_row` changes a control-table row only; :meth:`DumpCopy.clone` adds
   a new object next to an existing one.
3. :meth:`DumpCopy.write` writes a new set with the same GUID, creation time and header body
   through ``DumpSetWriter``, which computes every frame CRC, the INDEX, END and the header
   CRC; the control table's locations (``dump_fileid``/``dump_position``/``dump_length``
   and each granule's ``frames``) are moved to where the frames now are. ``verify_paths``
   then calls the set sound.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from pumpkit.core.frame import Encoding, FrameKind, decode_frame, payload_bytes
from pumpkit.core.header import decode_header, encode_header
from pumpkit.io.dumpset.writer import DumpSetWriter

__all__ = ("DumpCopy", "FrameCopy", "rewrite_header")

_SKIPPED = (FrameKind.INDEX, FrameKind.END)


@dataclass
class FrameCopy:
    """One frame of the set: what it holds (uncompressed) and where it was."""

    kind: int
    object_id: int
    count: int
    encoding: int
    compressed: bool
    data: bytes | Callable[[], bytes]  # a callable makes a big payload only as it is written
    origin: tuple[int, int]  # (file number, position) in the set it was read from

    def decoded(self) -> Any:
        assert isinstance(self.data, bytes)
        return msgspec.msgpack.decode(self.data)


@dataclass
class DumpCopy:
    """Every frame of a dump-file set, and its control table, open to change."""

    header: Any  # the FileHeader of file 1
    frames: list[FrameCopy]
    table: str
    columns: list[str]
    rows: list[list[Any]]
    added: list[FrameCopy] = field(default_factory=list)

    @classmethod
    def read(cls, paths: list[Path]) -> DumpCopy:
        frames: list[FrameCopy] = []
        first = None
        control = None
        for path in sorted(paths):
            data = path.read_bytes()
            header = decode_header(data)
            if header.file_number == 1:
                first = header
            offset = header.header_size
            while offset < len(data):
                frame = decode_frame(data, offset)
                h = frame.header
                offset += h.length
                if h.kind == FrameKind.END:
                    break
                if h.kind in _SKIPPED:
                    continue
                copied = FrameCopy(
                    kind=h.kind,
                    object_id=h.object_id,
                    count=h.count,
                    encoding=h.encoding,
                    compressed=h.compressed,
                    data=bytes(payload_bytes(frame)),
                    origin=(header.file_number, h.offset),
                )
                if h.kind == FrameKind.CONTROL_TABLE:
                    control = copied
                else:
                    frames.append(copied)
        assert first is not None and control is not None, "a closed set with a control table"
        doc = control.decoded()
        return cls(first, frames, doc["table"], list(doc["columns"]), doc["rows"])

    # -- the control table ------------------------------------------------------------------

    def row(self, object_type: str, name: str) -> list[Any]:
        at = {c: i for i, c in enumerate(self.columns)}
        for row in self.rows:
            if row[at["object_type"]] == object_type and row[at["object_name"]] == name:
                return row
        raise KeyError((object_type, name))

    def get(self, row: list[Any], column: str) -> Any:
        return row[self.columns.index(column)]

    def put(self, row: list[Any], column: str, value: Any) -> None:
        row[self.columns.index(column)] = value

    def definition(self, object_type: str, name: str) -> dict[str, Any]:
        """The object's definition as its control-table row holds it."""
        decoded: dict[str, Any] = msgspec.msgpack.decode(
            self.get(self.row(object_type, name), "metadata")
        )
        return decoded

    def _metadata_frame(self, object_id: int) -> FrameCopy:
        for frame in [*self.frames, *self.added]:
            if frame.kind == FrameKind.METADATA and frame.object_id == object_id:
                return frame
        raise KeyError(object_id)

    # -- the attacker's edits ---------------------------------------------------------------

    def redefine(
        self, object_type: str, name: str, /, *, rows_agree: bool = True, **changes: Any
    ) -> None:
        """Change the object's definition in its METADATA frame and its control row. A new
        ``name`` or ``table`` is also written where the row and the frame name the object
        (and a table's data rows), as a careful attacker would, so that they agree; with
        ``rows_agree=False`` the control rows keep the old names."""
        row = self.row(object_type, name)
        definition = self.definition(object_type, name)
        definition.update(changes)
        if rows_agree and object_type == "TABLE" and definition["name"] != name:
            for data in self.rows:
                if self.get(data, "object_type") == "TABLE_DATA" and (
                    self.get(data, "object_name") == name
                ):
                    self.put(data, "object_name", definition["name"])
                    self.put(data, "base_object_name", definition["name"])
        self._store(row, definition, rows_agree=rows_agree)

    def _store(
        self, row: list[Any], definition: dict[str, Any], *, rows_agree: bool = True
    ) -> None:
        encoded = msgspec.msgpack.encode(definition)
        self.put(row, "metadata", encoded)
        if rows_agree:
            self.put(row, "object_name", definition["name"])
            if self.get(row, "object_type") in ("INDEX", "TRIGGER") and "table" in definition:
                self.put(row, "base_object_name", definition["table"] or None)
        frame = self._metadata_frame(self.get(row, "object_number"))
        meta = frame.decoded()
        meta["name"] = definition["name"]
        meta["definition"] = definition
        frame.data = msgspec.msgpack.encode(meta)

    def set_row(self, object_type: str, name: str, /, **values: Any) -> None:
        """Change columns of the object's control-table row only."""
        row = self.row(object_type, name)
        for column, value in values.items():
            self.put(row, column, value)

    def clone(self, object_type: str, name: str, new_name: str, /, **changes: Any) -> None:
        """A new object made like ``object_type name``: its own control row (ordered right
        after the original's) and its own METADATA frame."""
        original = self.row(object_type, name)
        row = copy.copy(original)
        number = 1 + max(self.get(r, "object_number") or 0 for r in self.rows)
        orders = {(self.get(r, "process_order"), self.get(r, "duplicate")) for r in self.rows}
        order = self.get(original, "process_order") + 1
        while (order, 0) in orders:
            order += 1
        self.put(row, "process_order", order)
        self.put(row, "object_number", number)
        frame = copy.copy(self._metadata_frame(self.get(original, "object_number")))
        frame.object_id = number
        frame.origin = (0, -number)  # a new frame: no place in the old set
        self.added.append(frame)
        self.put(row, "dump_fileid", None)
        self.put(row, "dump_position", None)
        self.put(row, "dump_length", None)
        self.rows.insert(self.rows.index(original) + 1, row)
        definition = self.definition(object_type, name)
        definition.update({"name": new_name, **changes})
        self._store(row, definition)

    def replace_data(
        self, table: str, payloads: list[tuple[Callable[[], bytes], int, int]]
    ) -> None:
        """The rows of ``table`` (its one granule) become the frames ``payloads`` gives: each
        a maker of its uncompressed payload, the row count its frame header and control row
        claim, and the uncompressed length the control row records. The frames are made
        only as the set is written (a bomb need not sit in this process's memory)."""
        number = self.get(self.row("TABLE", table), "object_number")
        granules = [
            r
            for r in self.rows
            if self.get(r, "object_type") == "TABLE_DATA" and self.get(r, "object_number") == number
        ]
        assert len(granules) == 1, "one granule"
        at = next(
            i
            for i, f in enumerate(self.frames)
            if f.kind == FrameKind.TABLE_DATA and f.object_id == number
        )
        self.frames = [
            f for f in self.frames if not (f.kind == FrameKind.TABLE_DATA and f.object_id == number)
        ]
        spans = []
        for i, (make, rows, size) in enumerate(payloads):
            origin = (0, -(10_000 + i))
            self.frames.insert(
                at + i,
                FrameCopy(FrameKind.TABLE_DATA, number, rows, Encoding.MSGPACK, True, make, origin),
            )
            spans.append([*origin, 0, rows, size])
        self.put(granules[0], "frames", msgspec.msgpack.encode(spans))
        self.put(granules[0], "completed_rows", sum(p[1] for p in payloads))

    # -- a new set, every checksum right -----------------------------------------------------

    def write(self, directory: Path, template: str = "hostile%U.dmp") -> list[Path]:
        body = msgspec.structs.replace(self.header.body, set_file_count=0, set_files=())
        created = dt.datetime.fromtimestamp(self.header.created_us / 1e6, dt.UTC)
        writer = DumpSetWriter(
            [template], directory=directory, body=body, guid=self.header.guid, created=created
        )
        moved: dict[tuple[int, int], tuple[int, int, int]] = {}
        for frame in [*self.frames, *self.added]:
            loc = writer.write_frame(
                FrameKind(frame.kind),
                frame.data() if callable(frame.data) else frame.data,
                object_id=frame.object_id,
                count=frame.count,
                encoding=Encoding(frame.encoding),
                compress=frame.compressed,
            )
            moved[frame.origin] = (loc.fileid, loc.position, loc.length)
        rows = [self._relocated(row, moved) for row in self.rows]
        doc = {"table": self.table, "columns": self.columns, "rows": rows}
        writer.write_control_table(msgspec.msgpack.encode(doc), count=len(rows))
        return writer.close()

    def _relocated(
        self, row: list[Any], moved: dict[tuple[int, int], tuple[int, int, int]]
    ) -> list[Any]:
        row = list(row)
        fileid, position = self.get(row, "dump_fileid"), self.get(row, "dump_position")
        new = moved.get((fileid, position)) if fileid is not None else None
        if new is None and self.get(row, "object_number") and self.get(row, "metadata"):
            # A cloned object: its METADATA frame is the one numbered after it.
            new = moved.get((0, -self.get(row, "object_number")))
        if new is not None:
            for column, value in zip(
                ("dump_fileid", "dump_position", "dump_length"), new, strict=True
            ):
                self.put(row, column, value)
        frames = self.get(row, "frames")
        if frames:
            spans = msgspec.msgpack.decode(frames)
            for span in spans:
                span[0], span[1], span[2] = moved[(span[0], span[1])]
            self.put(row, "frames", msgspec.msgpack.encode(spans))
        return row


def rewrite_header(path: Path, **body_changes: Any) -> None:
    """Change facts of the header body of the file at ``path`` in place; the header's CRC is
    computed again (``encode_header`` writes whatever it is given)."""
    data = bytearray(path.read_bytes())
    header = decode_header(data)
    body = msgspec.structs.replace(header.body, **body_changes)
    data[: header.header_size] = encode_header(msgspec.structs.replace(header, body=body))
    path.write_bytes(bytes(data))
