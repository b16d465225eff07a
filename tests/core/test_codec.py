"""Property tests of the dump-file codec: header, frames, the incremental decoder, templates.

Every decoder takes ``bytes``, ``bytearray``, ``memoryview`` and ``mmap`` (the ``Buffer`` of
``pumpkit.core.buffers``); each property is checked with each.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    MAX_PAYLOAD,
    NEED_DATA,
    Encoding,
    Frame,
    FrameDecoder,
    FrameHeader,
    NeedData,
    build_frame,
    decode_frame,
    encode_frame_header,
    iter_frames,
    parse_frame_header,
    payload_bytes,
)
from pumpkit.core.header import (
    FORMAT_MAJOR,
    HEADER_SIZE,
    MAGIC,
    MAX_CREATED_US,
    MIN_CREATED_US,
    FileHeader,
    HeaderBody,
    HeaderFlags,
    decode_header,
    encode_header,
    file_name_fault,
)
from pumpkit.core.templates import expand_template
from pumpkit.errors import (
    CorruptDumpError,
    DumpError,
    DumpSetFullError,
    NotADumpFileError,
    UnsupportedFeatureError,
)

CODEC = settings(deadline=None, max_examples=150)


def as_mmap(data: bytes) -> mmap.mmap:
    """An anonymous map holding exactly ``data`` (which must not be empty)."""
    mm = mmap.mmap(-1, len(data))
    mm[:] = data
    return mm


BUFFERS: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "memoryview-of-bytearray": lambda b: memoryview(bytearray(b)),
    "mmap": as_mmap,
}
buffer_kinds = pytest.mark.parametrize("to_buffer", BUFFERS.values(), ids=BUFFERS.keys())


# --- header ----------------------------------------------------------------------------------

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
MSGPACK_INT = st.integers(min_value=-(2**63), max_value=2**64 - 1)
SHORT_TEXT = st.text(max_size=40)


@st.composite
def header_bodies(draw: st.DrawFn) -> HeaderBody:
    return HeaderBody(
        job_name=draw(SHORT_TEXT),
        operation=draw(SHORT_TEXT),
        job_mode=draw(SHORT_TEXT),
        producer=draw(SHORT_TEXT),
        producer_version=draw(SHORT_TEXT),
        platform=draw(SHORT_TEXT),
        source_engine=draw(SHORT_TEXT),
        source_version=draw(SHORT_TEXT),
        charset=draw(SHORT_TEXT),
        compression=draw(st.sampled_from(["none", "zstd"]) | SHORT_TEXT),
        compression_level=draw(MSGPACK_INT),
        metadata_compressed=draw(st.booleans()),
        data_compressed=draw(st.booleans()),
        encryption=draw(SHORT_TEXT),
        set_file_count=draw(MSGPACK_INT),
        # A set's files have plain names (a reader refuses others: tests/hostile).
        set_files=tuple(
            draw(st.lists(SHORT_TEXT.filter(lambda n: file_name_fault(n) is None), max_size=6))
        ),
    )


@st.composite
def file_headers(draw: st.DrawFn, header_size: int = HEADER_SIZE) -> FileHeader:
    """Headers a v1 writer may write: known flags only, positions past the header."""
    size = header_size
    position = st.integers(min_value=size, max_value=2**64 - 1)
    clean = draw(st.booleans())
    control = draw(st.booleans())
    flags = (HeaderFlags.CLEAN_CLOSE if clean else 0) | (
        HeaderFlags.CONTROL_TABLE if control else 0
    )
    body = draw(header_bodies())
    if body.encryption != "none":  # the ENCRYPTED flag says what the body says (3.6 step 10)
        flags |= HeaderFlags.ENCRYPTED
    data_end = draw(st.just(0) | position)
    index = 0
    if data_end > size and draw(st.booleans()):
        index = draw(st.integers(min_value=size, max_value=data_end - 1))
    elif data_end == 0:
        index = draw(st.just(0) | position)
    return FileHeader(
        major=FORMAT_MAJOR,
        minor=draw(st.integers(min_value=0, max_value=0xFFFF)),
        header_size=size,
        flags=int(flags),
        file_number=draw(st.integers(min_value=1, max_value=2**32 - 1)),
        guid=draw(st.binary(min_size=16, max_size=16)),
        created_us=draw(st.integers(MIN_CREATED_US, MAX_CREATED_US - 1)),
        data_end=data_end,
        index_position=index,
        control_position=draw(position) if control else 0,
        body=body,
    )


@buffer_kinds
@CODEC
@given(header=file_headers(), trailing=st.binary(max_size=64))
def test_header_round_trips(
    to_buffer: Callable[[bytes], Any], header: FileHeader, trailing: bytes
) -> None:
    encoded = encode_header(header)
    assert len(encoded) == HEADER_SIZE
    assert encoded.startswith(MAGIC)
    assert decode_header(to_buffer(encoded)) == header
    # The header may be given with the rest of the file after it.
    assert decode_header(to_buffer(encoded + trailing)) == header


@buffer_kinds
@CODEC
@given(data=st.data(), header_size=st.sampled_from([512, 1024, 4096, 8192, 65536]))
def test_header_round_trips_at_every_size(
    to_buffer: Callable[[bytes], Any], data: st.DataObject, header_size: int
) -> None:
    header = data.draw(file_headers(header_size))
    body = msgspec.msgpack.encode(header.body)
    if len(body) > header_size - 84:
        with pytest.raises(ValueError):
            encode_header(header)
        return
    encoded = encode_header(header)
    assert len(encoded) == header_size
    assert decode_header(to_buffer(encoded)) == header


@CODEC
@given(header=file_headers(), position=st.integers(min_value=0, max_value=HEADER_SIZE - 1))
def test_any_changed_header_byte_is_refused(header: FileHeader, position: int) -> None:
    encoded = bytearray(encode_header(header))
    encoded[position] ^= 0x01
    with pytest.raises(DumpError) as caught:
        decode_header(encoded)
    assert caught.value.offset is not None
    assert 0 <= caught.value.offset < HEADER_SIZE


@buffer_kinds
@CODEC
@given(header=file_headers(), length=st.integers(min_value=1, max_value=HEADER_SIZE - 1))
def test_a_cut_header_is_refused_where_it_ends(
    to_buffer: Callable[[bytes], Any], header: FileHeader, length: int
) -> None:
    encoded = encode_header(header)[:length]
    with pytest.raises(CorruptDumpError) as caught:
        decode_header(to_buffer(encoded))
    assert caught.value.offset == length


@pytest.mark.parametrize(
    "to_buffer", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"]
)
def test_an_empty_header_is_not_a_dump(to_buffer: Callable[[bytes], Any]) -> None:
    with pytest.raises(NotADumpFileError) as caught:
        decode_header(to_buffer(b""))
    assert caught.value.offset == 0


def test_encode_header_refuses_unknown_flags_and_bad_guids() -> None:
    with pytest.raises(ValueError):
        encode_header(FileHeader(flags=1 << 3))
    with pytest.raises(ValueError):
        encode_header(FileHeader(flags=1 << 16))
    with pytest.raises(ValueError):
        encode_header(FileHeader(guid=b"short"))


def header_with_body(body: bytes) -> bytes:
    """A 4096-byte header around any body bytes, with a valid checksum."""
    head = bytearray(encode_header(FileHeader(body=HeaderBody())))
    head[72:76] = len(body).to_bytes(4, "little")
    head[80 : HEADER_SIZE - 4] = body + bytes(HEADER_SIZE - 84 - len(body))
    head[HEADER_SIZE - 4 :] = zlib.crc32(head[: HEADER_SIZE - 4]).to_bytes(4, "little")
    return bytes(head)


BAD_BODIES = {
    "empty": b"",
    "not-a-map": msgspec.msgpack.encode(["job_name", "x"]),
    "bytes-after-the-map": msgspec.msgpack.encode({"job_name": "x"}) + b"\xc0",
    "bool-as-int": msgspec.msgpack.encode({"data_compressed": 1}),
    "int-as-str": msgspec.msgpack.encode({"compression_level": "3"}),
    "str-as-int": msgspec.msgpack.encode({"job_name": 5}),
    "files-not-an-array": msgspec.msgpack.encode({"set_files": "a.dmp"}),
    "not-msgpack": b"\xc1",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_body_is_corrupt_at_80(body: bytes) -> None:
    with pytest.raises(CorruptDumpError) as caught:
        decode_header(header_with_body(body))
    assert caught.value.offset == 80


def test_a_body_gives_absent_keys_their_defaults_and_ignores_unknown_ones() -> None:
    assert decode_header(header_with_body(msgspec.msgpack.encode({}))).body == HeaderBody()
    body = msgspec.msgpack.encode({"zz_later": [1, {"x": b"y"}], "job_name": "J"})
    assert decode_header(header_with_body(body)).body == HeaderBody(job_name="J")


# --- frames ----------------------------------------------------------------------------------

PAYLOADS = st.binary(max_size=3000) | st.builds(
    lambda unit, n: unit * n, st.binary(min_size=1, max_size=8), st.integers(0, 2000)
)


@st.composite
def frame_args(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "kind": draw(st.integers(min_value=1, max_value=127)),
        "data": draw(PAYLOADS),
        "object_id": draw(st.integers(min_value=0, max_value=2**32 - 1)),
        "count": draw(st.integers(min_value=0, max_value=2**32 - 1)),
        "encoding": draw(st.sampled_from([0, 1]) | st.integers(0, 255)),
        "compressed": draw(st.booleans()),
    }


def built(args: dict[str, Any]) -> bytes:
    header, stored = build_frame(
        args["kind"],
        args["data"],
        object_id=args["object_id"],
        count=args["count"],
        encoding=args["encoding"],
        compressor=zstandard.ZstdCompressor(level=1) if args["compressed"] else None,
    )
    assert len(header) == FRAME_HEADER_SIZE
    return header + bytes(stored)


def check_frame(frame: Frame, args: dict[str, Any], offset: int, blob: bytes) -> None:
    h = frame.header
    assert h.offset == offset
    assert (h.kind, h.object_id, h.count, h.encoding) == (
        args["kind"],
        args["object_id"],
        args["count"],
        args["encoding"],
    )
    assert h.compressed is args["compressed"]
    assert h.length == len(blob)
    assert h.uncompressed_length == len(args["data"])
    assert bytes(frame.payload) == blob[FRAME_HEADER_SIZE:]
    if args["encoding"] not in set(Encoding):
        # A frame of an encoding this reader does not know is read and skipped, never decoded.
        with pytest.raises(UnsupportedFeatureError) as caught:
            payload_bytes(frame)
        assert caught.value.offset == offset + 6
        return
    assert bytes(payload_bytes(frame)) == args["data"]
    assert bytes(payload_bytes(frame, zstandard.ZstdDecompressor())) == args["data"]


@buffer_kinds
@CODEC
@given(args=frame_args(), prefix=st.binary(max_size=40))
def test_frame_round_trips(
    to_buffer: Callable[[bytes], Any], args: dict[str, Any], prefix: bytes
) -> None:
    blob = built(args)
    check_frame(decode_frame(to_buffer(blob)), args, 0, blob)
    assert parse_frame_header(to_buffer(blob)) == decode_frame(blob).header
    # At an offset, with bytes after it.
    framed = prefix + blob + b"\x00trailing"
    check_frame(decode_frame(to_buffer(framed), len(prefix)), args, len(prefix), blob)


@buffer_kinds
@CODEC
@given(args=frame_args(), data=st.data())
def test_a_cut_frame_is_refused(
    to_buffer: Callable[[bytes], Any], args: dict[str, Any], data: st.DataObject
) -> None:
    blob = built(args)
    length = data.draw(st.integers(min_value=1, max_value=len(blob) - 1))
    with pytest.raises(CorruptDumpError) as caught:
        decode_frame(to_buffer(blob[:length]))
    assert caught.value.offset == (0 if length < FRAME_HEADER_SIZE else length)
    with pytest.raises(CorruptDumpError) as caught:
        parse_frame_header(to_buffer(blob[:length] + b"\x00" * 8), 8 + length)
    assert caught.value.offset == 8 + length


def test_an_empty_frame_is_refused() -> None:
    with pytest.raises(CorruptDumpError) as caught:
        decode_frame(b"")
    assert caught.value.offset == 0


@CODEC
@given(args=frame_args(), data=st.data())
def test_a_changed_frame_byte_is_refused(args: dict[str, Any], data: st.DataObject) -> None:
    blob = bytearray(built(args))
    position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    blob[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(CorruptDumpError) as caught:
        decode_frame(blob)
    assert caught.value.offset is not None
    assert 0 <= caught.value.offset < len(blob)


# --- streams and the incremental decoder -----------------------------------------------------


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Several frames one after the other; returns the stream and each frame's bytes."""
    blobs = [built(a) for a in draw(st.lists(frame_args(), max_size=6))]
    return b"".join(blobs), blobs


def expected_frames(stream: bytes, base: int) -> list[tuple[FrameHeader, bytes]]:
    return [(f.header, bytes(f.payload)) for f in iter_frames(b"\x00" * base + stream, base)]


def drain(decoder: FrameDecoder) -> list[tuple[FrameHeader, bytes]]:
    out = []
    while True:
        frame = decoder.next_frame()
        if frame is NEED_DATA:
            return out
        assert isinstance(frame, Frame)
        out.append((frame.header, bytes(frame.payload)))


FEEDS: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
}
feed_kinds = pytest.mark.parametrize("to_buffer", FEEDS.values(), ids=FEEDS.keys())
BASES = st.sampled_from([0, 1, HEADER_SIZE])


@feed_kinds
@CODEC
@given(stream=streams(), base=BASES)
def test_iter_frames_matches_the_blobs(
    to_buffer: Callable[[bytes], Any], stream: tuple[bytes, list[bytes]], base: int
) -> None:
    data, blobs = stream
    frames = list(iter_frames(to_buffer(b"\x00" * base + data), base))
    assert [f.header.length for f in frames] == [len(b) for b in blobs]
    offsets = [base + sum(len(b) for b in blobs[:i]) for i in range(len(blobs))]
    assert [f.header.offset for f in frames] == offsets


@feed_kinds
@CODEC
@given(stream=streams(), base=BASES)
def test_decoder_whole_stream_at_once(
    to_buffer: Callable[[bytes], Any], stream: tuple[bytes, list[bytes]], base: int
) -> None:
    data, _ = stream
    decoder = FrameDecoder(offset=base)
    decoder.feed(to_buffer(data))
    assert drain(decoder) == expected_frames(data, base)
    assert decoder.next_frame() is NEED_DATA
    assert decoder.offset == base + len(data)
    assert decoder.buffered == 0
    decoder.end()


@feed_kinds
@settings(deadline=None, max_examples=40)
@given(stream=streams(), base=BASES)
def test_decoder_byte_by_byte(
    to_buffer: Callable[[bytes], Any], stream: tuple[bytes, list[bytes]], base: int
) -> None:
    data, blobs = stream
    ends = [base + sum(len(b) for b in blobs[: i + 1]) for i in range(len(blobs))]
    decoder = FrameDecoder(offset=base)
    got: list[tuple[FrameHeader, bytes]] = []
    for i in range(len(data)):
        decoder.feed(to_buffer(data[i : i + 1]))
        fed_to = base + i + 1
        new = drain(decoder)  # NEED_DATA ends every drain
        # A frame comes out exactly when its last byte goes in, never before, never later.
        assert [h.offset + h.length for h, _ in new] == [e for e in ends if e == fed_to]
        got += new
    assert got == expected_frames(data, base)
    decoder.end()


@feed_kinds
@CODEC
@given(stream=streams(), base=BASES, data=st.data())
def test_decoder_random_chunks(
    to_buffer: Callable[[bytes], Any],
    stream: tuple[bytes, list[bytes]],
    base: int,
    data: st.DataObject,
) -> None:
    raw, _ = stream
    decoder = FrameDecoder(offset=base)
    got: list[tuple[FrameHeader, bytes]] = []
    at = 0
    while at < len(raw):
        size = data.draw(st.integers(min_value=1, max_value=max(1, len(raw) - at)))
        decoder.feed(to_buffer(raw[at : at + size]))
        at += size
        got += drain(decoder)
        assert decoder.next_frame() is NEED_DATA
    assert got == expected_frames(raw, base)
    decoder.end()


@feed_kinds
@CODEC
@given(stream=streams(), extra=frame_args(), base=BASES, data=st.data())
def test_decoder_with_a_partial_frame_at_the_end(
    to_buffer: Callable[[bytes], Any],
    stream: tuple[bytes, list[bytes]],
    extra: dict[str, Any],
    base: int,
    data: st.DataObject,
) -> None:
    raw, _ = stream
    partial_frame = built(extra)
    cut = data.draw(st.integers(min_value=1, max_value=len(partial_frame) - 1))
    chunk = data.draw(st.integers(min_value=1, max_value=len(raw) + cut))
    whole = raw + partial_frame[:cut]
    decoder = FrameDecoder(offset=base)
    got: list[tuple[FrameHeader, bytes]] = []
    for at in range(0, len(whole), chunk):
        decoder.feed(to_buffer(whole[at : at + chunk]))
        got += drain(decoder)
    assert got == expected_frames(raw, base)
    assert decoder.next_frame() is NEED_DATA
    assert decoder.offset == base + len(raw)
    assert decoder.buffered == cut
    with pytest.raises(CorruptDumpError) as caught:
        decoder.end()
    assert caught.value.offset == base + len(raw)
    # iter_frames over the same bytes stops at the same place, with the same offset.
    with pytest.raises(CorruptDumpError) as caught:
        list(iter_frames(b"\x00" * base + whole, base))
    expected_offset = base + len(raw) + (cut if cut >= FRAME_HEADER_SIZE else 0)
    assert caught.value.offset == expected_offset


@CODEC
@given(stream=streams(), extra=frame_args(), base=BASES, data=st.data())
def test_decoder_names_the_offset_of_damage(
    stream: tuple[bytes, list[bytes]],
    extra: dict[str, Any],
    base: int,
    data: st.DataObject,
) -> None:
    raw, _ = stream
    damaged = bytearray(built(extra))
    position = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1))
    damaged[position] ^= 0xFF
    decoder = FrameDecoder(offset=base)
    decoder.feed(raw + damaged)
    with pytest.raises(CorruptDumpError) as caught:
        drain(decoder)
    # The header checks itself (its start is named); a payload is named where it starts.
    in_payload = position >= FRAME_HEADER_SIZE
    assert caught.value.offset == base + len(raw) + (FRAME_HEADER_SIZE if in_payload else 0)


def test_need_data_is_one_object() -> None:
    assert NeedData() is NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"
    assert FrameDecoder().next_frame() is NEED_DATA


def test_frame_headers_refuse_oversize_lengths() -> None:
    for stored, uncompressed in ((MAX_PAYLOAD + 1, 0), (0, MAX_PAYLOAD + 1)):
        with pytest.raises(ValueError):
            encode_frame_header(
                2,
                flags=0,
                encoding=1,
                object_id=0,
                count=0,
                payload_length=stored,
                uncompressed_length=uncompressed,
                payload_crc=0,
            )


# --- file-name templates ---------------------------------------------------------------------


@pytest.mark.parametrize("code", ["%U", "%u"])
def test_expand_template_u(code: str) -> None:
    template = f"exp{code}.dmp"
    assert expand_template(template, 1) == "exp01.dmp"
    assert expand_template(template, 9) == "exp09.dmp"
    assert expand_template(template, 10) == "exp10.dmp"
    assert expand_template(template, 99) == "exp99.dmp"
    for number in (100, 101, 1000):
        with pytest.raises(DumpSetFullError):
            expand_template(template, number)


@pytest.mark.parametrize("code", ["%L", "%l"])
def test_expand_template_l(code: str) -> None:
    template = f"exp{code}.dmp"
    assert expand_template(template, 1) == "exp01.dmp"
    assert expand_template(template, 99) == "exp99.dmp"
    assert expand_template(template, 100) == "exp100.dmp"
    assert expand_template(template, 123456) == "exp123456.dmp"


@given(number=st.integers(min_value=1, max_value=10**9), code=st.sampled_from(["%L", "%l"]))
def test_expand_template_l_has_no_upper_bound(number: int, code: str) -> None:
    name = expand_template(f"a{code}b", number)
    digits = name[1:-1]
    assert int(digits) == number
    assert len(digits) == max(2, len(str(number)))


@given(number=st.integers(min_value=1, max_value=99), code=st.sampled_from(["%U", "%u"]))
def test_expand_template_u_is_two_digits(number: int, code: str) -> None:
    assert expand_template(f"x{code}", number) == f"x{number:02d}"


def test_expand_template_without_a_code_names_one_file() -> None:
    assert expand_template("plain.dmp", 1) == "plain.dmp"
    assert expand_template("plain.dmp", 5) == "plain.dmp"


def test_expand_template_replaces_every_code() -> None:
    assert expand_template("d%U_%L_%u_%l", 7) == "d07_07_07_07"
    with pytest.raises(DumpSetFullError):
        expand_template("d%L_%U", 100)
