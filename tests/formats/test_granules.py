"""Format 1.3's granule tag: the codec, its checks, and granules put together from frames."""

from __future__ import annotations

import struct
import zlib

import pytest
import zstandard

from pumpkit.core.crypto import FrameCipher
from pumpkit.core.frame import (
    GRANULE_TAG_SIZE,
    NEED_DATA,
    Encoding,
    Frame,
    FrameDecoder,
    FrameFlags,
    FrameKind,
    GranuleTag,
    build_frame,
    decode_frame,
    granule_tag,
    payload_bytes,
)
from pumpkit.core.granules import TaggedFrame, granule_runs, granules_of
from pumpkit.errors import CorruptDumpError

KINDS = (bytes, bytearray, memoryview)


def framed(data: bytes, tag: GranuleTag | None, **kw) -> bytes:
    head, stored = build_frame(FrameKind.TABLE_DATA, data, object_id=7, count=3, tag=tag, **kw)
    return head + bytes(stored)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["plain", "zstd", "encrypted", "both"])
def test_a_tag_is_read_back_and_the_payload_is_the_body(kind, mode):
    kw = {}
    if mode in ("zstd", "both"):
        kw["compressor"] = zstandard.ZstdCompressor()
    if mode in ("encrypted", "both"):
        kw["cipher"] = FrameCipher(bytes(32))
    body = b"\x93\x01\x02\x03" * 50
    tag = GranuleTag(4, 0, first=True, last=True)
    raw = framed(body, tag, **kw)
    frame = decode_frame(kind(raw))
    assert frame.header.flags & FrameFlags.TAGGED
    assert frame.header.uncompressed_length == len(body)
    assert bytes(raw[32 : 32 + GRANULE_TAG_SIZE]) == struct.pack("<IIB3x", 4, 0, 3)
    assert granule_tag(frame) == tag
    assert bytes(payload_bytes(frame, cipher=kw.get("cipher"))) == body
    if mode == "plain":
        assert frame.header.payload_length == len(body) + GRANULE_TAG_SIZE
    if mode == "encrypted":
        assert frame.header.payload_length == len(body) + GRANULE_TAG_SIZE + 28


def test_the_stream_decoder_reads_tagged_frames_byte_by_byte():
    raw = framed(b"\x90", GranuleTag(1, 0, first=True, last=False)) + framed(
        b"\x90", GranuleTag(1, 1, first=False, last=True)
    )
    decoder = FrameDecoder()
    tags = []
    for i in range(len(raw)):
        decoder.feed(raw[i : i + 1])
        frame = decoder.next_frame()
        if frame is not NEED_DATA:
            assert isinstance(frame, Frame)
            tags.append(granule_tag(frame))
    decoder.end()
    assert [(t.sequence, t.first, t.last) for t in tags if t] == [
        (0, True, False),
        (1, False, True),
    ]


def test_an_encrypted_tag_is_authenticated():
    cipher = FrameCipher(bytes(32))
    raw = bytearray(framed(b"\x90", GranuleTag(2, 0, first=True, last=True), cipher=cipher))
    raw[32] = 3  # granule 2 -> 3; fix both checksums
    struct.pack_into("<I", raw, 24, zlib.crc32(raw[32:]))
    struct.pack_into("<I", raw, 28, zlib.crc32(raw[:28]))
    frame = decode_frame(bytes(raw))
    with pytest.raises(CorruptDumpError) as info:
        payload_bytes(frame, cipher=cipher)
    assert info.value.offset == 32 + GRANULE_TAG_SIZE


def forge_tag(raw: bytes, at: int, value: int) -> bytes:
    out = bytearray(raw)
    out[32 + at] = value
    struct.pack_into("<I", out, 24, zlib.crc32(out[32:]))
    struct.pack_into("<I", out, 28, zlib.crc32(out[:28]))
    return bytes(out)


@pytest.mark.parametrize(
    ("at", "value", "offset"),
    [(0, 0, 32), (4, 1, 36), (8, 0x07, 40), (9, 1, 41)],
    ids=["granule-0", "first-not-sequence-0", "unknown-tag-flag", "reserved"],
)
def test_a_bad_tag_is_corrupt_at_its_field(at, value, offset):
    raw = framed(b"\x90", GranuleTag(1, 0, first=True, last=False))
    with pytest.raises(CorruptDumpError) as info:
        decode_frame(forge_tag(raw, at, value))
    assert info.value.offset == offset


def test_only_table_data_is_tagged():
    with pytest.raises(ValueError, match="TABLE_DATA"):
        build_frame(FrameKind.METADATA, b"\x80", tag=GranuleTag(1, 0, first=True, last=True))


def tf(granule: int, seq: int, *, last: bool = False, obj: int = 1, count: int = 1):
    head, stored = build_frame(
        FrameKind.TABLE_DATA,
        b"x",
        object_id=obj,
        count=count,
        encoding=Encoding.PGCOPY,
        tag=GranuleTag(granule, seq, first=seq == 0, last=last),
    )
    frame = decode_frame(head + bytes(stored))
    tag = granule_tag(frame)
    assert tag is not None
    return TaggedFrame(1, frame.header, tag)


def test_interleaved_granules_are_told_apart_and_the_unfinished_one_is_not_data():
    frames = [tf(1, 0), tf(2, 0), tf(1, 1), tf(2, 1), tf(1, 2, last=True, count=5), tf(2, 2)]
    runs = granule_runs(frames)
    assert [(r.granule, r.complete, len(r.frames)) for r in runs] == [(1, True, 3), (2, False, 3)]
    data = granules_of(runs)
    assert list(data) == [(1, 1)]
    assert data[(1, 1)].rows == 7


def test_a_redone_granule_takes_its_last_complete_run():
    frames = [tf(1, 0), tf(1, 1), tf(1, 0), tf(1, 1, last=True)]
    runs = granule_runs(frames)
    assert [(r.complete, len(r.frames)) for r in runs] == [(False, 2), (True, 2)]
    assert granules_of(runs)[(1, 1)].frames == frames[2:]


def test_a_gap_breaks_a_run():
    frames = [tf(3, 0), tf(3, 2, last=True), tf(3, 1)]
    runs = granule_runs(frames)
    assert all(not r.complete for r in runs)
    assert granules_of(runs) == {}


def test_granules_of_two_tables_do_not_mix():
    frames = [tf(1, 0, obj=1), tf(1, 0, obj=2, last=True), tf(1, 1, obj=1, last=True)]
    assert list(granules_of(granule_runs(frames))) == [(1, 1), (2, 1)]
