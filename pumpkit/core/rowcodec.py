"""Rows as TABLE_DATA frames hold them: the row formats, and the decoding of msgpack batches.

A frame of a ``msgpack`` table holds one batch: a msgpack array of row arrays, each row's
values in the table's dumped column order. A ``pgcopy`` table's frames, concatenated per
granule, are one PostgreSQL binary COPY stream (``pumpkit.core.pgcopy`` decodes it).
See formats/dumpfile.md §5.5 and §5.8.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from pumpkit.core.buffers import Buffer
from pumpkit.errors import CorruptDumpError

__all__ = ("MSGPACK", "PGCOPY", "Batch", "decode_rows")

#: The row format of a SQLite source's TABLE_DATA frames.
MSGPACK = "msgpack"
#: The row format of a PostgreSQL source's TABLE_DATA frames (formats/dumpfile.md §5.8).
PGCOPY = "pgcopy"

# Rows as tuples: measured 4.5-7x faster to decode than list[list[object]] (1.06 M rows:
# 0.16 s against 0.72-1.16 s), and executemany binds them as fast.
_decoder = msgspec.msgpack.Decoder(list[tuple])  # type: ignore[type-arg]


@dataclass(frozen=True, slots=True)
class Batch:
    """One TABLE_DATA frame's uncompressed payload, and where it came from."""

    payload: Buffer
    rows: int
    path: str
    position: int


def decode_rows(batch: Batch, *, table: str) -> list[tuple[object, ...]]:
    """The rows of a msgpack batch; raises ``CorruptDumpError`` naming the file and offset
    when they do not decode or are not as many as the frame says."""
    try:
        rows = _decoder.decode(batch.payload)
    except msgspec.DecodeError as exc:
        raise CorruptDumpError(
            f"rows of table {table!r} do not decode: {exc}", path=batch.path, offset=batch.position
        ) from None
    if len(rows) != batch.rows:
        raise CorruptDumpError(
            f"frame of table {table!r} holds {len(rows)} rows, the control table says {batch.rows}",
            path=batch.path,
            offset=batch.position,
        )
    return rows
