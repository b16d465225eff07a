"""The frame walks of ``pumpkit.core.framescan``, fed bytes, bytearray, memoryview and mmap:
the verifier's scan with resynchronisation, and a restarting writer's walk to a durable end."""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import zstandard

from pumpkit.core.frame import FRAME_HEADER_SIZE, Encoding, FrameKind, IndexEntry, build_frame
from pumpkit.core.framescan import (
    ScanFault,
    check_frame,
    find_next_frame,
    frame_entries,
    scan_frames,
)
from pumpkit.errors import CorruptDumpError


def as_mmap(data: bytes) -> mmap.mmap:
    mm = mmap.mmap(-1, len(data))
    mm[:] = data
    return mm


BUFFERS: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "mmap": as_mmap,
}
buffer_kinds = pytest.mark.parametrize("to_buffer", BUFFERS.values(), ids=BUFFERS.keys())

PREFIX = b"\0" * 64  # stands for a file header: frames start at 64
COMPRESSOR = zstandard.ZstdCompressor(level=1)


def frame(rows: int, *, compressed: bool = False, kind: int = FrameKind.TABLE_DATA) -> bytes:
    data = msgspec.msgpack.encode([[i, f"row {i}"] for i in range(rows)])
    header, payload = build_frame(
        kind, data, count=rows, compressor=COMPRESSOR if compressed else None
    )
    return header + bytes(payload)


FRAMES = [frame(3), frame(5, compressed=True), frame(2), frame(4, compressed=True)]
DATA = PREFIX + b"".join(FRAMES)
OFFSETS = [len(PREFIX) + sum(len(f) for f in FRAMES[:i]) for i in range(len(FRAMES))]


@buffer_kinds
def test_a_sound_file_scans_with_no_fault(to_buffer: Callable[[bytes], Any]) -> None:
    scan = scan_frames(to_buffer(DATA), len(PREFIX))
    assert scan.faults == []
    assert [f.offset for f in scan.frames] == OFFSETS
    assert [f.length for f in scan.frames] == [len(f) for f in FRAMES]
    assert scan.rows == 14
    assert scan.end == len(DATA)


@buffer_kinds
def test_a_damaged_payload_is_one_fault_and_the_scan_goes_on(
    to_buffer: Callable[[bytes], Any],
) -> None:
    damaged = bytearray(DATA)
    damaged[OFFSETS[1] + FRAME_HEADER_SIZE + 3] ^= 0xFF
    scan = scan_frames(to_buffer(bytes(damaged)), len(PREFIX))
    assert scan.faults == [ScanFault(OFFSETS[1] + FRAME_HEADER_SIZE, scan.faults[0].reason)], (
        scan.faults
    )
    assert "checksum" in scan.faults[0].reason
    assert [f.offset for f in scan.frames] == [OFFSETS[0], OFFSETS[2], OFFSETS[3]]
    assert scan.rows == 9


@buffer_kinds
def test_garbage_between_frames_and_a_cut_tail(to_buffer: Callable[[bytes], Any]) -> None:
    """Bytes that are no frame (one holding the magic) are one fault; a frame cut short at the
    end is another, and the readable end is the frame before it."""
    garbage = b"xxPKFRyy" * 4
    data = PREFIX + FRAMES[0] + garbage + FRAMES[1] + FRAMES[2][:-3]
    scan = scan_frames(to_buffer(data), len(PREFIX))
    start_garbage = len(PREFIX) + len(FRAMES[0])
    after = start_garbage + len(garbage)
    cut = after + len(FRAMES[1])
    # Section 11: a payload cut short is a fault at P + 32 + the bytes of it present.
    assert [f.offset for f in scan.faults] == [start_garbage, cut + len(FRAMES[2]) - 3]
    assert [f.offset for f in scan.frames] == [len(PREFIX), after]
    assert scan.end == cut


@buffer_kinds
def test_find_next_frame_skips_a_magic_that_starts_no_frame(
    to_buffer: Callable[[bytes], Any],
) -> None:
    data = to_buffer(b"PKFR" + b"\0" * 40 + FRAMES[0])
    assert find_next_frame(data, 0) == 44
    assert find_next_frame(data, 45) is None
    # A sound header whose frame does not fit the data is no place to resume either.
    assert find_next_frame(to_buffer(b"ab" + FRAMES[0][:-1]), 0) is None


def test_check_frame_refuses_msgpack_that_does_not_decode() -> None:
    header, payload = build_frame(FrameKind.METADATA, b"\xc1", encoding=Encoding.MSGPACK)
    with pytest.raises(CorruptDumpError) as caught:
        check_frame(b"\0" * 8 + header + bytes(payload), 8)
    assert caught.value.offset == 8 + FRAME_HEADER_SIZE


@buffer_kinds
def test_frame_entries_up_to_a_durable_end(to_buffer: Callable[[bytes], Any]) -> None:
    data = to_buffer(DATA + b"torn bytes past the durable end")
    entries = frame_entries(data, len(PREFIX), OFFSETS[3])
    assert [(e.position, e.length, e.count) for e in entries] == [
        (OFFSETS[i], len(FRAMES[i]), c) for i, c in enumerate([3, 5, 2])
    ]
    assert all(isinstance(e, IndexEntry) and e.kind == FrameKind.TABLE_DATA for e in entries)
    assert frame_entries(data, len(PREFIX), len(PREFIX)) == []


@buffer_kinds
def test_frame_entries_refuse_a_frame_past_the_durable_end(
    to_buffer: Callable[[bytes], Any],
) -> None:
    with pytest.raises(CorruptDumpError, match="runs past the durable end") as caught:
        frame_entries(to_buffer(DATA), len(PREFIX), OFFSETS[2] + 5)
    assert caught.value.offset == OFFSETS[2]
    damaged = bytearray(DATA)
    damaged[OFFSETS[1] + 9] ^= 1  # object_id: the frame header's checksum fails
    with pytest.raises(CorruptDumpError, match="checksum") as caught:
        frame_entries(to_buffer(bytes(damaged)), len(PREFIX), len(DATA))
    assert caught.value.offset == OFFSETS[1]
    with pytest.raises(CorruptDumpError, match="cut short") as caught:
        frame_entries(to_buffer(DATA[: OFFSETS[1] + 10]), len(PREFIX), OFFSETS[2])
    assert caught.value.offset == OFFSETS[1]
