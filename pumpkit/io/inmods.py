"""Built-in input modules: records from text files and from a pumpkit dump-file set.

They are INMODs like any user's (``pumpkit.engine.load`` drives them through the same entry
codes) in the class form: ``initialize(parms)``, ``read()``, ``checkpoint()``,
``reposition(info)``, ``close()``. Each checkpoints the byte offset (text files) or the
frame and row (dump sets) it has read up to, so a restart repositions exactly. They also
offer ``read_many(limit)``: up to ``limit`` records per call, checked by the loader as one batch, which
keeps the per-record cost in C.

parms: ``"PATH"`` or ``"PATH;skip=N"`` (text: skip N header lines on a fresh start);
``"PATH;table=NAME"`` for a dump set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import anyio
import msgspec

from pumpkit.core.frame import Location
from pumpkit.errors import InmodError
from pumpkit.io.dumpset.reader import DumpSetReader

__all__ = ("DelimitedFile", "DumpSetRecords", "JsonLinesFile", "LinesFile")

_READ_HINT = 1 << 20  # bytes of lines per read_many


def _parse(parms: str) -> tuple[str, dict[str, str]]:
    path, *options = parms.split(";")
    values = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise InmodError(f"module parameter {option!r} is not KEY=VALUE")
        values[key.strip().lower()] = value.strip()
    if not path.strip():
        raise InmodError("the module parameters must start with a file path")
    return path.strip(), values


class LinesFile:
    """One record per line of a text file (the line's bytes, with its line end)."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._offset = 0  # the end of the last line returned: what a checkpoint records
        self._skip = 0
        # Lines read from the file but not returned yet (read_many reads ~1 MB at a time):
        # kept rather than read again, which cost ~0.9 ms per checkpoint every 1,000 rows.
        self._ahead: list[bytes] = []
        self._next = 0
        self.path = ""

    async def initialize(self, parms: str) -> None:
        self.path, options = _parse(parms)
        try:
            self._skip = int(options.get("skip", "0"))
        except ValueError:
            raise InmodError(f"skip must be a number in {parms!r}") from None
        try:
            self._file = await anyio.to_thread.run_sync(open, self.path, "rb")
        except OSError as exc:
            raise InmodError(f"cannot open {self.path!r}: {exc.strerror}") from None
        self._offset = 0
        self._forget_ahead()
        for _ in range(self._skip):
            self._offset += len(self._file.readline())

    def _forget_ahead(self) -> None:
        self._ahead = []
        self._next = 0

    async def read(self) -> bytes | None:
        lines = await self.read_many(1)
        return lines[0] if lines else None

    async def read_many(self, limit: int) -> list[bytes]:
        """At most ``limit`` whole lines (about 1 MB of them); [] at end of file."""
        assert self._file is not None
        if self._next >= len(self._ahead):
            self._ahead = await anyio.to_thread.run_sync(self._file.readlines, _READ_HINT)
            self._next = 0
        # Only what is returned counts for the checkpoint; the rest waits for the next call.
        lines = self._ahead[self._next : self._next + limit]
        self._next += len(lines)
        self._offset += sum(map(len, lines))
        return lines

    async def checkpoint(self) -> bytes:
        return str(self._offset).encode()

    async def reposition(self, info: bytes) -> None:
        assert self._file is not None
        offset = int(info)
        if offset > os.fstat(self._file.fileno()).st_size:
            raise InmodError(f"{self.path!r} is shorter than its checkpoint at byte {offset}")
        self._file.seek(offset)
        self._offset = offset
        self._forget_ahead()

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


#: Delimited text (TPump's VARTEXT): one record per line.
DelimitedFile = LinesFile
#: JSON lines: one record per line.
JsonLinesFile = LinesFile


class DumpSetRecords:
    """One record per row of one table of a pumpkit dump-file set: the row, msgpack-encoded
    (use the MSGPACK layout). Checkpoints are ``frame:row`` in the table's frame list."""

    def __init__(self) -> None:
        self._reader: DumpSetReader | None = None
        self._frames: list[tuple[int, int, int]] = []
        self._frame = 0
        self._row = 0
        self._rows: list[object] = []
        self._encoder = msgspec.msgpack.Encoder()

    async def initialize(self, parms: str) -> None:
        path, options = _parse(parms)
        table = options.get("table")
        if not table:
            raise InmodError(f"name the table: {parms!r} needs ;table=NAME")
        self._reader = DumpSetReader.open([Path(path)])
        found = [o for o in self._reader.objects() if o.name == table and o.frames]
        if not found:
            raise InmodError(f"the dump-file set of {path!r} has no rows of table {table!r}")
        self._frames = [(f[0], f[1], f[2]) for f in found[0].frames]
        self._frame = self._row = 0
        self._rows = []

    def _load(self) -> bool:
        assert self._reader is not None
        if self._frame >= len(self._frames):
            self._rows = []
            return False
        payload = self._reader.read(Location(*self._frames[self._frame]))
        self._rows = msgspec.msgpack.decode(payload)
        return True

    async def read(self) -> bytes | None:
        batch = await self.read_many(1)
        return batch[0] if batch else None

    async def read_many(self, limit: int) -> list[bytes]:
        out: list[bytes] = []
        size = 0
        while size < _READ_HINT and len(out) < limit:
            if not self._rows or self._row >= len(self._rows):
                if self._rows:
                    self._frame += 1
                    self._row = 0
                if not self._load():
                    break
            row = self._rows[self._row]
            self._row += 1
            body = self._encoder.encode(row)
            out.append(body)
            size += len(body)
        return out

    async def checkpoint(self) -> bytes:
        return f"{self._frame}:{self._row}".encode()

    async def reposition(self, info: bytes) -> None:
        frame, _, row = info.decode().partition(":")
        self._frame, self._row = int(frame), int(row)
        self._rows = []
        if not self._load() and self._row:
            raise InmodError(f"checkpoint {info!r} lies past the dump set's rows")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
