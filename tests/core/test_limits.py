"""The reader's limits, checked before anything is allocated: msgpack walking, row chunks,
frame claims (``pumpkit.core.limits``, ``pumpkit.core.rowcodec``, ``pumpkit.core.msgpackscan``).

Codec inputs are fed three ways (bytes, bytearray, memoryview), as the house's codec tests do.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

import msgspec
import pytest

from pumpkit.core.frame import FrameHeader, FrameKind
from pumpkit.core.header import FileHeader, HeaderBody, decode_header, encode_header
from pumpkit.core.limits import (
    MAX_DATA_FRAME_BYTES,
    MAX_FRAME_ROWS,
    MAX_OTHER_FRAME_BYTES,
    MAX_VALUES,
    ROW_CHUNK_BYTES,
    check_frame_claims,
    check_value_count,
)
from pumpkit.core.msgpackscan import count_values, skip
from pumpkit.core.rowcodec import Batch, iter_rows
from pumpkit.errors import CorruptDumpError, DumpLimitError, UnsafeFileNameError

FEEDS: dict[str, Callable[[bytes], object]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
}
VALUES = [
    None,
    True,
    False,
    0,
    127,
    -32,
    -33,
    255,
    65535,
    2**32,
    -(2**63),
    2**64 - 1,
    1.5,
    "",
    "x" * 31,
    "y" * 32,
    "z" * 300,
    "w" * 70_000,
    b"",
    b"b" * 300,
    b"c" * 70_000,
    [],
    [1, [2, [3, {}]]],
    {"a": [1, 2], "b": {"c": None}},
    list(range(20)),
    {str(i): i for i in range(20)},
    msgspec.msgpack.Ext(5, b"\x01" * 1),
    msgspec.msgpack.Ext(5, b"\x01" * 16),
    msgspec.msgpack.Ext(5, b"\x01" * 17),
    dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
]


def _count(value: object) -> int:
    if isinstance(value, list):
        return 1 + sum(_count(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(_count(k) + _count(v) for k, v in value.items())
    return 1


@pytest.mark.parametrize("feed", list(FEEDS.values()), ids=list(FEEDS))
@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_skip_and_count_agree_with_msgspec(value: object, feed: Callable[[bytes], object]) -> None:
    encoded = msgspec.msgpack.encode(value)
    data = feed(encoded + b"\xc0trailing")
    assert skip(data, 0) == len(encoded)  # type: ignore[arg-type]
    assert count_values(data, 10**6) == _count(value)  # type: ignore[arg-type]


def test_count_stops_at_the_limit_and_refuses_what_is_not_msgpack() -> None:
    with pytest.raises(OverflowError):
        count_values(msgspec.msgpack.encode([0] * 100), 50)
    with pytest.raises(ValueError):
        count_values(b"\x92\x01", 10)  # ends inside the array
    with pytest.raises(ValueError):
        count_values(b"\xc1", 10)  # a byte msgpack never uses


def rows_of(n: int, seed: int = 1, big: int = 0) -> list[list[object]]:
    rng = random.Random(seed)
    rows: list[list[object]] = [
        [i, f"value {i}" * rng.randrange(1, 20), None, rng.random(), b"\x00" * rng.randrange(9)]
        for i in range(n)
    ]
    for i in range(big):
        rows[rng.randrange(n)] = [-i, "big" * (ROW_CHUNK_BYTES // 2), None, 0.0, b""]
    return rows


@pytest.mark.parametrize("feed", list(FEEDS.values()), ids=list(FEEDS))
@pytest.mark.parametrize(("n", "big"), [(0, 0), (1, 0), (1000, 0), (60_000, 0), (5000, 3)])
def test_rows_in_chunks_are_the_rows(n: int, big: int, feed: Callable[[bytes], object]) -> None:
    rows = rows_of(n, big=big)
    payload = msgspec.msgpack.encode(rows)
    chunks = list(iter_rows(Batch(feed(payload), n, "f", 7), table="t", columns=5))  # type: ignore[arg-type]
    assert [list(r) for chunk in chunks for r in chunk] == rows
    if len(payload) > ROW_CHUNK_BYTES:
        assert len(chunks) > 1
        # every chunk but a lone big row was decoded from at most a chunk of payload
        for chunk in chunks:
            if len(chunk) > 1:
                assert len(msgspec.msgpack.encode(chunk)) <= ROW_CHUNK_BYTES + 5


def test_a_count_other_than_the_frames_is_refused_before_decoding() -> None:
    payload = msgspec.msgpack.encode(rows_of(10))
    with pytest.raises(CorruptDumpError, match="holds 10 rows, the frame says 11") as info:
        next(iter_rows(Batch(payload, 11, "f.dmp", 4096), table="t"))
    assert (info.value.path, info.value.offset) == ("f.dmp", 4096)
    with pytest.raises(CorruptDumpError, match="not an array"):
        next(iter_rows(Batch(b"\x05", 1, "f.dmp", 4096), table="t"))


def test_more_rows_than_a_frame_may_hold_are_refused_before_decoding() -> None:
    n = MAX_FRAME_ROWS + 1
    payload = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    with pytest.raises(DumpLimitError, match="more than 1,048,576"):
        next(iter_rows(Batch(payload, n, "f.dmp", 4096), table="t"))


def test_a_big_row_may_not_hold_more_values_than_columns_or_nested_ones() -> None:
    wide = [["v" * 100] * (ROW_CHUNK_BYTES // 100 + 10)]
    with pytest.raises(DumpLimitError, match="the table has 3 columns"):
        list(iter_rows(Batch(msgspec.msgpack.encode(wide), 1, "f", 0), table="t", columns=3))
    deep = [[1, [0] * (ROW_CHUNK_BYTES + 10)]]
    with pytest.raises(DumpLimitError, match="array or map"):
        list(iter_rows(Batch(msgspec.msgpack.encode(deep), 1, "f", 0), table="t"))
    # verify knows no schema: an element that is not a row is a value of its own
    lone = ["s" * (ROW_CHUNK_BYTES + 10)]
    (chunk,) = iter_rows(Batch(msgspec.msgpack.encode(lone), 1, "f", 0), table="t", any_rows=True)
    assert chunk == lone


def frame(kind: int, *, count: int = 1, stored: int = 100, plain: int = 100) -> FrameHeader:
    return FrameHeader(kind, 1, 1, 1, count, stored, plain, 0, offset=5000)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (frame(FrameKind.TABLE_DATA, plain=MAX_DATA_FRAME_BYTES + 1), 20),
        (frame(FrameKind.TABLE_DATA, stored=MAX_DATA_FRAME_BYTES + (2 << 20)), 16),
        (frame(FrameKind.TABLE_DATA, count=4_294_967_295), 12),
        (frame(FrameKind.CONTROL_TABLE, plain=MAX_OTHER_FRAME_BYTES + 1), 20),
        (frame(FrameKind.METADATA, plain=MAX_OTHER_FRAME_BYTES + 1), 20),
    ],
)
def test_frame_claims_past_a_limit_are_refused_at_their_field(
    header: FrameHeader, field: int
) -> None:
    with pytest.raises(DumpLimitError) as info:
        check_frame_claims(header)
    assert info.value.offset == 5000 + field


def test_frame_claims_at_the_limits_pass() -> None:
    check_frame_claims(
        frame(FrameKind.TABLE_DATA, count=MAX_FRAME_ROWS, plain=MAX_DATA_FRAME_BYTES)
    )
    check_frame_claims(frame(FrameKind.CONTROL_TABLE, count=2**32 - 1, plain=MAX_OTHER_FRAME_BYTES))


def test_a_payload_of_too_many_values_is_refused_before_decoding() -> None:
    payload = msgspec.msgpack.encode({"rows": [None] * (MAX_VALUES + 1)})
    with pytest.raises(DumpLimitError, match="more than 4,000,000 values") as info:
        check_value_count(payload, 5000)
    assert info.value.offset == 5032
    check_value_count(msgspec.msgpack.encode({"rows": [None] * 1000}), 5000)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_bad_set_file_name_is_located_at_its_string(index: int) -> None:
    names = ["a01.dmp", "a02.dmp", "a03.dmp"]
    names[index] = "../x" + "y" * 40 * index  # str8 for the longer ones
    body = HeaderBody(job_name="set_files", set_file_count=3, set_files=tuple(names))
    data = encode_header(FileHeader(body=body))
    with pytest.raises(UnsafeFileNameError) as info:
        decode_header(data)
    offset = info.value.offset
    assert offset is not None
    assert msgspec.msgpack.decode(data[offset : skip(data, offset)]) == names[index]


def test_a_copy_row_claiming_more_than_a_frame_is_refused_before_it_is_held() -> None:
    """A field length is a claim: the COPY decoder holds no more than one frame's worth of
    bytes for a row that is not complete."""
    from pumpkit.core.pgcopy import SIGNATURE, CopyDecoder
    from pumpkit.errors import CopyFormatError

    decoder = CopyDecoder(["text"], ["t"])
    head = SIGNATURE + b"\x00" * 8
    claim = (1).to_bytes(2, "big") + (0x7FFF_FFFF).to_bytes(4, "big")
    assert decoder.feed(head + claim + b"x" * 1000) == []  # waiting for the field
    with pytest.raises(CopyFormatError, match="more than the 67,108,864"):
        decoder.feed(b"x" * 1000)


def test_file_rows_of_a_control_table_are_judged_by_their_names() -> None:
    from pumpkit.core.dumpset import file_row_faults

    columns = ["process_order", "object_type", "user_file_name", "file_name"]
    rows = [
        [-3, "FILE", "exp%U.dmp", "/home/me/exp01.dmp"],  # the exporter's path: a record
        [-3, "FILE", "../x%U.dmp", "/home/me/exp01.dmp"],
        [-3, "FILE", "exp%U.dmp", "/home/me/../../etc/passwd"],
        [-3, "FILE", "exp%U.dmp", "exp\x0001.dmp"],
        [-3, "FILE", 5, None],
        [1, "TABLE", "../not-a-file-row", None],
    ]
    faults = [(f.row, f.column) for f in file_row_faults(columns, rows)]
    assert faults == [
        (1, "user_file_name"),
        (2, "file_name"),
        (3, "file_name"),
        (4, "user_file_name"),
    ]
