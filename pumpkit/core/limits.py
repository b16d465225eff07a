"""What a reader takes from a dump, at most, whatever the dump claims.

Theory of operation: a dump is input from a stranger, and every length in it is a claim. A
reader checks each claim against a limit here BEFORE it allocates, decompresses or decodes
anything, so that import, ``verify``, ``ls`` and ``cat`` stay within a memory bound that does
not depend on the dump (docs/trust.md says the bound and how it is made up):

- a frame's stored and uncompressed lengths: at most ``MAX_DATA_FRAME_BYTES`` for TABLE_DATA
  (hence for one row) and ``MAX_OTHER_FRAME_BYTES`` for every other kind; zstd then
  decompresses into exactly the declared length (``max_output_size``), never more;
- a TABLE_DATA frame's row count: at most ``MAX_FRAME_ROWS``, and equal to the rows its
  payload holds (checked from the msgpack array header before the rows are decoded);
- rows are decoded ``ROW_CHUNK_BYTES`` of payload at a time (``pumpkit.core.rowcodec``), and
  a row larger than that only when it has no more values than its table has columns and no
  value is an array or map: a decoded row is then its payload's size plus a small overhead
  per column, never a multiple of the payload;
- an msgpack payload other than rows holds at most ``MAX_VALUES`` values (counted before it
  is decoded when it is larger than ``ROW_CHUNK_BYTES``).

Pumpkit's own writers stay far inside these limits (a batch is about a megabyte and at most
100,000 rows). Pure: headers and bytes in, errors out.
"""

from __future__ import annotations

from typing import Final

from pumpkit.core.buffers import Buffer
from pumpkit.core.frame import FRAME_HEADER_SIZE, FrameHeader, FrameKind
from pumpkit.core.msgpackscan import count_values
from pumpkit.errors import DumpLimitError

__all__ = (
    "MAX_DATA_FRAME_BYTES",
    "MAX_FRAME_ROWS",
    "MAX_OTHER_FRAME_BYTES",
    "MAX_VALUES",
    "PEAK_RSS_BOUND",
    "ROW_CHUNK_BYTES",
    "check_frame_claims",
    "check_value_count",
    "frame_limit",
)

#: The largest uncompressed (and stored) payload of a TABLE_DATA frame a reader decodes:
#: one row can be no larger.
MAX_DATA_FRAME_BYTES: Final = 64 << 20
#: The same for METADATA, CONTROL_TABLE, LOG, INDEX and unknown kinds.
MAX_OTHER_FRAME_BYTES: Final = 32 << 20
#: The most rows one TABLE_DATA frame may claim (pumpkit writes at most 100,000).
MAX_FRAME_ROWS: Final = 1 << 20
#: Rows are decoded this much payload at a time.
ROW_CHUNK_BYTES: Final = 1 << 20
#: The most msgpack values a payload other than rows may hold.
MAX_VALUES: Final = 4_000_000
#: The documented peak resident memory of an import, ``verify``, ``ls`` or ``cat`` of any
#: dump, measured by tests/hostile/test_bounded_memory.py (a SQLite target, one loader).
PEAK_RSS_BOUND: Final = 512 << 20
#: Room over the uncompressed limit for what zstd or AES-GCM add to a stored payload.
_STORED_SLACK = 1 << 20


def frame_limit(kind: int) -> int:
    """The largest uncompressed payload a reader takes from a frame of ``kind``."""
    return MAX_DATA_FRAME_BYTES if kind == FrameKind.TABLE_DATA else MAX_OTHER_FRAME_BYTES


def check_frame_claims(header: FrameHeader) -> None:
    """Refuse a frame whose lengths or row count pass the reader's limits, before any of its
    payload is decompressed or decoded. Raises ``DumpLimitError`` at the field's offset."""
    limit = frame_limit(header.kind)
    if header.uncompressed_length > limit:
        raise DumpLimitError(
            f"frame of kind {header.kind} claims {header.uncompressed_length:,} bytes"
            f" uncompressed; a reader takes at most {limit:,} from one frame",
            offset=header.offset + 20,
        )
    if header.payload_length > limit + _STORED_SLACK:
        raise DumpLimitError(
            f"frame of kind {header.kind} stores {header.payload_length:,} bytes; a reader"
            f" takes at most {limit + _STORED_SLACK:,} from one frame",
            offset=header.offset + 16,
        )
    if header.kind == FrameKind.TABLE_DATA and header.count > MAX_FRAME_ROWS:
        raise DumpLimitError(
            f"TABLE_DATA frame claims {header.count:,} rows; a frame holds at most"
            f" {MAX_FRAME_ROWS:,}",
            offset=header.offset + 12,
        )


def check_value_count(payload: Buffer, offset: int) -> None:
    """Refuse an msgpack payload (not rows) of more than ``MAX_VALUES`` values before it is
    decoded; a payload of at most ``ROW_CHUNK_BYTES`` passes uncounted (it cannot decode to
    much). ``offset``: the frame's, for the error. Raises ``DumpLimitError``; a payload that
    is not msgpack is left to the decoder to refuse."""
    if memoryview(payload).nbytes <= ROW_CHUNK_BYTES:
        return
    try:
        count_values(payload, MAX_VALUES)
    except OverflowError:
        raise DumpLimitError(
            f"msgpack payload holds more than {MAX_VALUES:,} values",
            offset=offset + FRAME_HEADER_SIZE,
        ) from None
    except ValueError:
        return
