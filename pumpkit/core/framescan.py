"""Walking the frames of a file's bytes, for the verifier and for a restarting writer.

Theory of operation: after its header, a file is frames back to back (section 7.1 of
``formats/dumpfile.md``). Two callers walk them without an index:

- ``scan_frames`` (``verify``, section 10) checks every frame in full and never stops at a
  fault: after one it resynchronises on the next frame magic whose frame header holds and
  whose frame fits in the data, so one scan reports every damaged region;
- ``frame_entries`` (a writer reopening a file after a stop or crash, section 8) lists the
  frames between the header and the job's last durable point, trusting their headers' checksums
  and refusing a frame that runs past that point.

A reader of a job's data never resynchronises (section 10); it stops at the first fault.
Pure: any buffer in (bytes, bytearray, memoryview, mmap), values out; no files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import msgspec
import zstandard

from pumpkit.core.buffers import Buffer
from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    FRAME_MAGIC,
    Encoding,
    FrameHeader,
    FrameKind,
    IndexEntry,
    check_encoding,
    decode_frame,
    parse_frame_header,
    payload_bytes,
)
from pumpkit.core.limits import check_frame_claims, check_value_count
from pumpkit.core.rowcodec import Batch, iter_rows
from pumpkit.errors import CorruptDumpError, DumpError, DumpLimitError

__all__ = (
    "FrameScan",
    "ScanFault",
    "ScannedFrame",
    "check_frame",
    "find_next_frame",
    "frame_entries",
    "scan_frames",
)

# re searches any buffer in place: the resynchronisation copies nothing out of a map.
_MAGIC = re.compile(re.escape(FRAME_MAGIC))
_any_decoder = msgspec.msgpack.Decoder()


@dataclass(frozen=True, slots=True)
class ScannedFrame:
    """A sound frame the scan passed: where it starts, its whole length, kind and count."""

    offset: int
    length: int
    kind: int
    count: int


@dataclass(frozen=True, slots=True)
class ScanFault:
    """A fault the scan met: the offset of the field at fault, and why."""

    offset: int
    reason: str


@dataclass(slots=True)
class FrameScan:
    """What ``scan_frames`` found: the sound frames in order, the rows of the TABLE_DATA ones,
    and the faults in offset order."""

    start: int
    frames: list[ScannedFrame] = field(default_factory=list)
    faults: list[ScanFault] = field(default_factory=list)
    rows: int = 0

    @property
    def end(self) -> int:
        """The offset just past the last sound frame (``start`` when there is none)."""
        if not self.frames:
            return self.start
        last = self.frames[-1]
        return last.offset + last.length


def check_frame(
    data: Buffer, offset: int, decompressor: zstandard.ZstdDecompressor | None = None
) -> FrameHeader:
    """Check everything about the frame at ``offset`` that can be checked without a schema:
    both checksums, that its claims are within a reader's limits (``pumpkit.core.limits``),
    that a compressed payload decompresses to its declared length, that a MSGPACK payload
    decodes and, for TABLE_DATA, holds as many rows as the frame header's count says. An encrypted frame's payload is checked by its checksum only
    (its contents need the password; reading it checks the tag).

    Raises the ``DumpError`` of section 11, its offset in ``data``.
    """
    frame = decode_frame(data, offset)
    header = frame.header
    check_encoding(header)
    check_frame_claims(header)  # before anything is decompressed (pumpkit.core.limits)
    if header.encrypted:
        return header
    payload = payload_bytes(frame, decompressor)
    if header.encoding == Encoding.MSGPACK and header.kind == FrameKind.TABLE_DATA:
        # The rows, a chunk at a time, as many as the frame says (checked before decoding).
        # verify names the payload (P + 32, section 11) where a reader of the rows names P.
        batch = Batch(payload, header.count, "", offset + FRAME_HEADER_SIZE)
        for _ in iter_rows(batch, table=f"#{header.object_id}", any_rows=True):
            pass
    elif header.encoding == Encoding.MSGPACK:
        check_value_count(payload, offset)
        try:
            _any_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise CorruptDumpError(
                f"msgpack payload does not decode: {exc}", offset=offset + FRAME_HEADER_SIZE
            ) from None
    return header


def find_next_frame(data: Buffer, offset: int) -> int | None:
    """The first offset at or after ``offset`` where a frame header holds and its whole frame
    fits in ``data`` (its payload is not checked here); ``None`` when there is none."""
    view = memoryview(data).cast("B")
    size = len(view)
    while True:
        found = _MAGIC.search(view, offset)
        if found is None:
            return None
        offset = found.start()
        try:
            header = parse_frame_header(view, offset)
        except DumpError:
            offset += 1
            continue
        if offset + header.length <= size:
            return offset
        offset += 1


def scan_frames(data: Buffer, start: int) -> FrameScan:
    """Check every frame of ``data`` from ``start`` to its end; after a fault, go on from the
    next sound frame (``find_next_frame`` from the byte after the frame at fault)."""
    scan = FrameScan(start)
    decompressor = zstandard.ZstdDecompressor()
    view = memoryview(data).cast("B")
    offset = start
    while offset < len(view):
        try:
            header = check_frame(view, offset, decompressor)
        except DumpLimitError as exc:
            # A sound frame that claims more than a reader takes: a fault, and the scan
            # goes on right after it (its header holds; its payload is not looked at).
            scan.faults.append(
                ScanFault(exc.offset if exc.offset is not None else offset, exc.reason)
            )
            header = parse_frame_header(view, offset)  # check_frame checked both CRCs first
        except DumpError as exc:
            scan.faults.append(
                ScanFault(exc.offset if exc.offset is not None else offset, exc.reason)
            )
            resync = find_next_frame(view, offset + 1)
            if resync is None:
                break
            offset = resync
            continue
        scan.frames.append(ScannedFrame(header.offset, header.length, header.kind, header.count))
        if header.kind == FrameKind.TABLE_DATA:
            scan.rows += header.count
        offset += header.length
    return scan


def frame_entries(data: Buffer, start: int, end: int) -> list[IndexEntry]:
    """The INDEX entries of the frames of ``data`` from ``start`` up to ``end``, a point the
    frames must reach exactly (a job's durable end). Only frame headers are read.

    Raises ``CorruptDumpError`` (or another ``DumpError``) at the offset of a frame header that
    does not hold or of a frame that runs past ``end``.
    """
    view = memoryview(data).cast("B")
    entries = []
    offset = start
    while offset < end:
        h = parse_frame_header(view, offset)
        if offset + h.length > end:
            raise CorruptDumpError(
                f"frame at {offset} runs past the durable end {end} the job recorded",
                offset=offset,
            )
        entries.append(
            IndexEntry(h.kind, h.object_id, h.count, offset, h.length, h.uncompressed_length)
        )
        offset += h.length
    return entries
