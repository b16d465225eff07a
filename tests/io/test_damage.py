"""Damaged dump files: every byte flipped, every length cut, forged lengths, mixed and missing
files, garbage, and the reader's memory bound.

The rule under test: damage is always *found* (``verify_paths`` reports a fault that names
a place in the file) and never *believed* (the reader either raises a ``DumpError`` subclass
or gives exactly the rows that were written; never other rows, never another exception).
"""

from __future__ import annotations

import datetime as dt
import random
import struct
import tempfile
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpkit.core.frame import (
    FRAME_HEADER_SIZE,
    FRAME_MAGIC,
    NEED_DATA,
    FrameDecoder,
    FrameKind,
    Location,
    decode_frame,
    decode_index,
    encode_frame_header,
    encode_index,
    iter_frames,
    parse_frame_header,
)
from pumpkit.core.header import HEADER_SIZE, MAGIC, HeaderBody
from pumpkit.errors import (
    CorruptDumpError,
    DumpError,
    IncompleteSetError,
    NotADumpFileError,
    UnsupportedFeatureError,
    UnsupportedVersionError,
)
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.io.dumpset.writer import DumpSetWriter

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GUID_A = bytes(range(16))
GUID_B = bytes(range(100, 116))
PREFIX = struct.Struct("<8sHHIII16sqQQQII")  # the header's fixed prefix, as the spec lays it out
MB = 1 << 20


# --- building sets ---------------------------------------------------------------------------


def zstd_body(job: str = "DAMAGE") -> HeaderBody:
    return HeaderBody(
        job_name=job,
        operation="EXPORT",
        job_mode="TABLE",
        compression="zstd",
        compression_level=3,
        metadata_compressed=True,
        data_compressed=True,
    )


def meta(object_id: int, name: str) -> bytes:
    return msgspec.msgpack.encode(
        {"object_type": "TABLE", "schema": "main", "name": name, "object_id": object_id}
    )


def write_small_set(directory: Path, name: str = "small.dmp", guid: bytes = GUID_A) -> Path:
    """2 tables: 2 METADATA frames, 3 TABLE_DATA frames (2 compressed, 1 not), a control table."""
    writer = DumpSetWriter(
        [name], directory=directory, body=zstd_body(), guid=guid, created=CREATED
    )
    writer.write_frame(FrameKind.METADATA, meta(1, "alpha"), object_id=1, count=1)
    writer.write_frame(FrameKind.METADATA, meta(2, "beta"), object_id=2, count=1)
    alpha1 = [[i, f"alpha row {i}", i * 0.5, None] for i in range(8)]
    beta = [[i, b"\x00\xff" * i, -(2**63) + i] for i in range(6)]
    alpha2 = [[i, f"alpha row {i}", -0.0, b""] for i in range(8, 12)]
    writer.write_frame(FrameKind.TABLE_DATA, msgspec.msgpack.encode(alpha1), object_id=1, count=8)
    writer.write_frame(FrameKind.TABLE_DATA, msgspec.msgpack.encode(beta), object_id=2, count=6)
    writer.write_frame(
        FrameKind.TABLE_DATA,
        msgspec.msgpack.encode(alpha2),
        object_id=1,
        count=4,
        compress=False,
    )
    control = {"table": "DAMAGE", "columns": ["object", "state"], "rows": [["alpha", "C"]]}
    writer.write_control_table(msgspec.msgpack.encode(control), count=1)
    (path,) = writer.close()
    return path


def write_multifile_set(directory: Path, prefix: str, guid: bytes = GUID_A) -> list[Path]:
    writer = DumpSetWriter(
        [f"{prefix}-%U.dmp"],
        directory=directory,
        body=HeaderBody(job_name="MULTI"),
        guid=guid,
        filesize=6144,
        created=CREATED,
    )
    writer.write_frame(FrameKind.METADATA, meta(1, "events"), object_id=1, count=1)
    for batch in range(5):
        rows = [[batch * 10 + i, "x" * 60] for i in range(10)]
        writer.write_frame(
            FrameKind.TABLE_DATA, msgspec.msgpack.encode(rows), object_id=1, count=10
        )
    paths = writer.close()
    assert len(paths) == 3
    return paths


def read_rows(paths: list[Path]) -> dict[str, Any]:
    """Everything the reader gives of a set: objects and their rows, and the control table.

    DumpErrors propagate; so does anything else (which is then a failure of the test).
    """
    with DumpSetReader.open(paths) as reader:
        result: dict[str, Any] = {}
        for obj in reader.objects():
            rows: list[Any] = []
            for fileid, position, length, _count, _nbytes in obj.frames:
                rows.extend(
                    msgspec.msgpack.decode(bytes(reader.read(Location(fileid, position, length))))
                )
            result[f"{obj.object_id}:{obj.object_type}:{obj.schema}:{obj.name}"] = rows
        control = reader.control_table()
        result["control"] = None if control is None else msgspec.msgpack.decode(bytes(control))
        return result


def same(a: Any, b: Any) -> bool:
    """Equal as values and as msgpack bytes (so -0.0 is not 0.0, 1 is not 1.0)."""
    return bool(msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b))


@dataclass(frozen=True)
class Unit:
    """A region of the file that checks itself: the header, or one frame."""

    start: int
    end: int
    what: str


def units_of(data: bytes) -> list[Unit]:
    units = [Unit(0, HEADER_SIZE, "header")]
    for frame in iter_frames(data, HEADER_SIZE):
        h = frame.header
        units.append(Unit(h.offset, h.offset + h.length, FrameKind(h.kind).name))
    return units


def unit_at(units: list[Unit], position: int) -> Unit:
    return next(u for u in units if u.start <= position < u.end)


@contextmanager
def peak_memory() -> Iterator[Callable[[], int]]:
    """Trace Python allocations in the block; call the result for the peak (bytes)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    peak = [0]
    try:
        yield lambda: peak[0]
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, bytes, dict[str, Any]]:
    source = tmp_path / "source"
    source.mkdir()
    path = write_small_set(source)
    data = path.read_bytes()
    assert verify_paths([path]).sound
    return path, data, read_rows([path])


def test_the_small_set_is_small_and_complete(small: tuple[Path, bytes, dict[str, Any]]) -> None:
    _, data, rows = small
    assert len(data) < 6000
    kinds = [f.header.kind for f in iter_frames(data, HEADER_SIZE)]
    assert kinds.count(FrameKind.METADATA) == 2
    assert kinds.count(FrameKind.TABLE_DATA) == 3
    assert kinds.count(FrameKind.CONTROL_TABLE) == 1
    flags = [f.header.flags for f in iter_frames(data, HEADER_SIZE)]
    assert 0 in flags and 1 in flags  # some frames compressed, some not
    assert len(rows["1:TABLE:main:alpha"]) == 12
    assert len(rows["2:TABLE:main:beta"]) == 6


# --- every byte flipped ----------------------------------------------------------------------


def check_damaged(
    path: Path, data: bytes, original: dict[str, Any], where: str, region: Unit | None
) -> list[str]:
    """The violations of the rule for the damaged bytes ``data`` (written to ``path``)."""
    path.write_bytes(data)
    problems = []
    try:
        report = verify_paths([path])
    except Exception as exc:
        problems.append(f"{where}: verify raised {exc!r}")
    else:
        located = [f for f in report.faults if f.offset is not None and 0 <= f.offset <= len(data)]
        if not located:
            problems.append(f"{where}: verify found no located fault: {report.faults}")
        elif region is not None and not any(region.start <= f.offset < region.end for f in located):  # type: ignore[operator]
            problems.append(
                f"{where}: no fault lies in the damaged {region.what} [{region.start},"
                f" {region.end}): {report.faults}"
            )
    try:
        got = read_rows([path])
    except DumpError as exc:
        if exc.path is None or Path(exc.path) != path:
            problems.append(f"{where}: reader error names file {exc.path!r}: {exc!r}")
    except Exception as exc:
        problems.append(f"{where}: reader raised {type(exc).__name__}: {exc}")
    else:
        if not same(got, original):
            problems.append(f"{where}: reader returned different rows, silently")
    return problems


def summary(problems: list[str], total: int) -> str:
    shown = "\n".join(problems[:15])
    return f"{len(problems)} violations in {total} damaged files; first ones:\n{shown}"


def test_every_byte_flipped(small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path) -> None:
    _, data, original = small
    units = units_of(data)
    target = tmp_path / "small.dmp"
    problems: list[str] = []
    cases = 0
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        region = unit_at(units, position)
        problems += check_damaged(
            target, bytes(damaged), original, f"byte {position} ^ 0xFF ({region.what})", region
        )
        cases += 1
    # A second pass with a one-bit change over the bytes that steer the reader: the header's
    # fixed prefix and checksum, and every frame header.
    steering = [*range(PREFIX.size), *range(HEADER_SIZE - 4, HEADER_SIZE)]
    for u in units[1:]:
        steering += range(u.start, u.start + FRAME_HEADER_SIZE)
    for position in steering:
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        region = unit_at(units, position)
        problems += check_damaged(
            target, bytes(damaged), original, f"byte {position} ^ 0x01 ({region.what})", region
        )
        cases += 1
    assert not problems, summary(problems, cases)


# --- every length cut ------------------------------------------------------------------------


def test_every_truncation(small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path) -> None:
    _, data, original = small
    target = tmp_path / "small.dmp"
    problems: list[str] = []
    for length in range(len(data)):
        problems += check_damaged(target, data[:length], original, f"cut at {length}", None)
    assert not problems, summary(problems, len(data))


# --- forged lengths --------------------------------------------------------------------------


def forged_frame_header(payload_length: int, *, kind: int = FrameKind.TABLE_DATA) -> bytes:
    head = bytearray(FRAME_HEADER_SIZE)
    struct.pack_into(
        "<4sBBBBIIIIII",
        head,
        0,
        FRAME_MAGIC,
        kind,
        0,
        1,
        0,
        1,
        10,
        payload_length,
        payload_length,
        0,
        0,
    )
    struct.pack_into("<I", head, 28, zlib.crc32(head[:28]))
    return bytes(head)


@pytest.mark.parametrize("claimed", [2**31, 0xFFFFFFF0, 0xFFFFFFFF, (1 << 28) + 1])
def test_huge_length_is_refused_before_allocation(claimed: int) -> None:
    header = forged_frame_header(claimed)
    with peak_memory() as peak, pytest.raises(CorruptDumpError) as caught:
        parse_frame_header(header)
    assert caught.value.offset == 16
    assert peak() < MB

    with peak_memory() as peak, pytest.raises(CorruptDumpError) as caught:
        decode_frame(header + b"\x00" * 64, 0)
    assert caught.value.offset == 16
    assert peak() < MB


@pytest.mark.parametrize("base", [0, 4096])
@pytest.mark.parametrize("extra", [0, 1, 1000])
def test_decoder_refuses_huge_length_instead_of_waiting(base: int, extra: int) -> None:
    decoder = FrameDecoder(offset=base)
    with peak_memory() as peak:
        decoder.feed(forged_frame_header(2**31) + b"\x00" * extra)
        with pytest.raises(CorruptDumpError) as caught:
            decoder.next_frame()
    assert caught.value.offset == base + 16
    assert peak() < MB


def test_decoder_refuses_huge_length_fed_byte_by_byte() -> None:
    decoder = FrameDecoder()
    header = forged_frame_header(2**31)
    for i in range(FRAME_HEADER_SIZE - 1):
        decoder.feed(header[i : i + 1])
        assert decoder.next_frame() is NEED_DATA
    decoder.feed(header[-1:])
    with pytest.raises(CorruptDumpError) as caught:
        decoder.next_frame()
    assert caught.value.offset == 16


def test_huge_length_in_a_file(small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path) -> None:
    _, data, _ = small
    frame = next(f for f in iter_frames(data, HEADER_SIZE) if f.header.kind == FrameKind.TABLE_DATA)
    at = frame.header.offset
    damaged = data[:at] + forged_frame_header(2**31) + data[at + FRAME_HEADER_SIZE :]
    target = tmp_path / "huge.dmp"
    target.write_bytes(damaged)
    with peak_memory() as peak, pytest.raises(CorruptDumpError) as caught:
        read_rows([target])
    assert peak() < MB
    assert caught.value.path == str(target)
    assert caught.value.offset == at + 16
    with peak_memory() as peak:
        report = verify_paths([target])
    assert peak() < MB
    assert any(f.offset == at + 16 for f in report.faults), report.faults


# --- sets: mixed, missing, newer -------------------------------------------------------------


def test_files_of_two_sets_mixed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_small_set(tmp_path / "a", "a.dmp", guid=GUID_A)
    b = write_small_set(tmp_path / "b", "b.dmp", guid=GUID_B)
    with pytest.raises(IncompleteSetError) as caught:
        DumpSetReader.open([a, b]).close()
    assert caught.value.path == str(b)
    assert caught.value.offset == 24  # the GUID
    report = verify_paths([a, b])
    assert [(f.path, f.offset) for f in report.faults] == [(str(b), 24)]


def test_same_names_from_two_runs_mixed(tmp_path: Path) -> None:
    """File 2 of another run with the same name sits next to file 1: the GUID tells them apart."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = write_multifile_set(tmp_path / "one", "run", guid=GUID_A)
    second = write_multifile_set(tmp_path / "two", "run", guid=GUID_B)
    second[1].replace(first[1])
    with pytest.raises(IncompleteSetError) as caught:
        DumpSetReader.open([first[0]]).close()
    assert caught.value.path == str(first[1])
    assert caught.value.offset == 24
    report = verify_paths([first[0]])
    assert (str(first[1]), 24) in [(f.path, f.offset) for f in report.faults]


def test_a_file_missing(tmp_path: Path) -> None:
    paths = write_multifile_set(tmp_path, "set")
    paths[1].unlink()
    for given_paths in ([paths[0]], [paths[0], paths[2]], [paths[2]]):
        with pytest.raises(IncompleteSetError) as caught:
            DumpSetReader.open(given_paths).close()
        assert caught.value.path == str(paths[0])
        assert caught.value.offset is None  # the whole set is at fault, not a byte
        assert paths[1].name in caught.value.reason
        report = verify_paths(given_paths)
        assert any(f.offset is None and paths[1].name in f.reason for f in report.faults)


def test_a_file_number_beyond_the_set(tmp_path: Path) -> None:
    """Section 9, rule 3: with set_file_count 3, a file that says it is number 4 (same GUID)
    is refused at offset 20 of that file, by the reader and by verify."""
    paths = write_multifile_set(tmp_path, "set")
    extra = tmp_path / "set-04.dmp"
    extra.write_bytes(rewrite_header(paths[2].read_bytes(), file_number=4))
    with pytest.raises(IncompleteSetError) as caught:
        DumpSetReader.open([*paths, extra]).close()
    assert caught.value.path == str(extra)
    assert caught.value.offset == 20
    report = verify_paths([*paths, extra])
    assert (str(extra), 20) in [(f.path, f.offset) for f in report.faults], report.faults


def test_an_unknown_encoding_is_refused_when_read(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    """Sections 4 and 11: a payload whose encoding the reader does not know (here 9) is
    refused with UnsupportedFeatureError at P + 6, not handed over to be decoded."""
    _, data, _ = small
    frame = next(f for f in iter_frames(data, HEADER_SIZE) if f.header.kind == FrameKind.TABLE_DATA)
    h = frame.header
    forged = encode_frame_header(
        h.kind,
        flags=h.flags,
        encoding=9,
        object_id=h.object_id,
        count=h.count,
        payload_length=h.payload_length,
        uncompressed_length=h.uncompressed_length,
        payload_crc=h.payload_crc,
    )
    target = tmp_path / "encoding.dmp"
    target.write_bytes(data[: h.offset] + forged + data[h.offset + FRAME_HEADER_SIZE :])
    with pytest.raises(UnsupportedFeatureError) as caught:
        read_rows([target])
    assert caught.value.path == str(target)
    assert caught.value.offset == h.offset + 6


def rewrite_header(data: bytes, **fields: int) -> bytes:
    """``data`` with prefix fields changed and the header checksum made valid again."""
    names = [
        "magic",
        "major",
        "minor",
        "header_size",
        "flags",
        "file_number",
        "guid",
        "created_us",
        "data_end",
        "index_position",
        "control_position",
        "body_length",
        "reserved",
    ]
    values = dict(zip(names, PREFIX.unpack_from(data, 0), strict=True))
    values.update(fields)
    head = bytearray(data[:HEADER_SIZE])
    PREFIX.pack_into(head, 0, *(values[n] for n in names))
    struct.pack_into("<I", head, HEADER_SIZE - 4, zlib.crc32(head[: HEADER_SIZE - 4]))
    return bytes(head) + data[HEADER_SIZE:]


@pytest.mark.parametrize("major", [2, 3, 0xFFFF])
def test_a_newer_major_version(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path, major: int
) -> None:
    _, data, _ = small
    target = tmp_path / "newer.dmp"
    target.write_bytes(rewrite_header(data, major=major))
    with pytest.raises(UnsupportedVersionError) as caught:
        DumpSetReader.open([target]).close()
    assert caught.value.path == str(target)
    assert caught.value.offset == 8
    report = verify_paths([target])
    assert [f.offset for f in report.faults] == [8]


def test_a_newer_minor_version_is_read(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    _, data, original = small
    target = tmp_path / "minor.dmp"
    target.write_bytes(rewrite_header(data, minor=9))
    assert same(read_rows([target]), original)
    assert verify_paths([target]).sound


def test_a_damaged_header_gives_a_dump_error_not_buffer_error(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    """Opening a file whose header is refused raises the DumpError, with file and offset.

    (The reader maps the file, and must close the map with the decoder's view of it still
    held by the exception's traceback.)
    """
    _, data, _ = small
    target = tmp_path / "bad.dmp"
    damaged = bytearray(data)
    damaged[200] ^= 0xFF  # header padding: the checksum fails
    target.write_bytes(damaged)
    with pytest.raises(CorruptDumpError) as caught:
        DumpSetReader.open([target]).close()
    assert caught.value.path == str(target)
    assert caught.value.offset == HEADER_SIZE - 4


# --- garbage ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def garbage_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pumpkit-garbage-") as d:
        yield Path(d)


def check_garbage(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        read_rows([path])
    except DumpError as exc:
        assert exc.path == str(path), repr(exc)
        assert exc.offset is not None and exc.offset >= 0, repr(exc)
        starts_like_a_dump = data and data[: len(MAGIC)] == MAGIC[: len(data)]
        if not starts_like_a_dump:
            assert isinstance(exc, NotADumpFileError), repr(exc)
            assert exc.offset == 0, repr(exc)
    report = verify_paths([path])
    assert report.faults
    assert any(f.offset is not None and 0 <= f.offset <= len(data) for f in report.faults)


GARBAGE_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@GARBAGE_SETTINGS
@given(st.binary(max_size=6000))
def test_random_bytes(garbage_dir: Path, data: bytes) -> None:
    check_garbage(garbage_dir / "random.dmp", data)


@GARBAGE_SETTINGS
@given(st.binary(max_size=6000))
def test_random_bytes_after_the_magic(garbage_dir: Path, data: bytes) -> None:
    check_garbage(garbage_dir / "magic.dmp", MAGIC + data)


@GARBAGE_SETTINGS
@given(st.binary(min_size=1, max_size=3000), st.booleans())
def test_random_bytes_after_a_sound_header(garbage_dir: Path, tail: bytes, clean: bool) -> None:
    source = garbage_dir / "header-source"
    if not source.exists():
        source.mkdir()
        write_small_set(source)
    head = (source / "small.dmp").read_bytes()[:HEADER_SIZE]
    if not clean:  # as a crash leaves it: no clean close, no index
        head = rewrite_header(head, flags=0, data_end=0, index_position=0, control_position=0)
    path = garbage_dir / "tail.dmp"
    check_garbage(path, head + tail)


def test_seeded_random_garbage(tmp_path: Path) -> None:
    rng = random.Random(20260101)
    for i in range(200):
        check_garbage(tmp_path / f"g{i % 3}.dmp", rng.randbytes(rng.randrange(0, 9000)))


def test_dumpfile_info_of_a_forged_creation_time(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    """A header (valid checksum) whose creation time no calendar holds: a DumpError or an
    answer, never a ValueError from ``datetime``."""
    from pumpkit.io.dumpset.info import get_dumpfile_info

    _, data, _ = small
    target = tmp_path / "forged.dmp"
    for created_us in (2**62, -(2**62), 2**63 - 1):
        target.write_bytes(rewrite_header(data, created_us=created_us))
        try:
            info = get_dumpfile_info(target)
        except DumpError as exc:
            assert exc.offset == 40, repr(exc)
        else:
            assert info.file_type == "pumpkit"


# --- an index that lies ----------------------------------------------------------------------


def test_an_index_entry_pointing_at_another_sound_frame_is_not_believed(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    """The INDEX frame rewritten (valid checksums) so one entry names another sound frame.

    Every checksum holds, so only cross-checking the index with the frames it names finds it.
    verify does; the reader must raise or give the rows that were written, not another table's
    rows or one batch twice.
    """
    _, data, original = small
    header = PREFIX.unpack_from(data, 0)
    index_at = header[9]
    index = decode_frame(data, index_at)
    entries = decode_index(index.payload)
    alpha, beta = (
        [e for e in entries if e.kind == FrameKind.TABLE_DATA and e.object_id == n] for n in (1, 2)
    )
    # The first batch of table alpha is listed where the batch of table beta lies.
    lie = {alpha[0].position: (beta[0].position, beta[0].length)}
    wrong = [
        msgspec.structs.replace(e, position=lie[e.position][0], length=lie[e.position][1])
        if e.position in lie
        else e
        for e in entries
    ]
    payload = encode_index(wrong)
    head = encode_frame_header(
        FrameKind.INDEX,
        flags=0,
        encoding=index.header.encoding,
        object_id=0,
        count=index.header.count,
        payload_length=len(payload),
        uncompressed_length=len(payload),
        payload_crc=zlib.crc32(payload),
    )
    end_frame = data[index_at + index.header.length :]
    assert parse_frame_header(end_frame).kind == FrameKind.END
    damaged = data[:index_at] + head + payload + end_frame
    damaged = rewrite_header(damaged, data_end=len(damaged))
    target = tmp_path / "lying.dmp"
    target.write_bytes(damaged)
    assert verify_paths([target]).faults
    try:
        got = read_rows([target])
    except DumpError:
        return
    assert same(got, original), f"the reader believed the index: {got} != {original}"


# --- verify's report -------------------------------------------------------------------------


def test_verify_faults_are_in_file_and_offset_order(
    small: tuple[Path, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    """VerifyReport's documented promise: 'the faults in file and offset order'."""
    _, data, _ = small
    frame = next(f for f in iter_frames(data, HEADER_SIZE) if f.header.kind == FrameKind.TABLE_DATA)
    damaged = bytearray(data)
    damaged[frame.header.offset + FRAME_HEADER_SIZE + 2] ^= 0xFF
    target = tmp_path / "order.dmp"
    target.write_bytes(damaged)
    faults = verify_paths([target]).faults
    assert len(faults) >= 2
    offsets = [f.offset for f in faults]
    assert offsets == sorted(offsets), faults  # type: ignore[type-var]


# --- memory ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_set() -> Iterator[tuple[Path, int, int]]:
    """50 TABLE_DATA frames of about 1 MB each (half compressed), in one file."""
    with tempfile.TemporaryDirectory(prefix="pumpkit-big-") as d:
        writer = DumpSetWriter(
            ["big.dmp"], directory=d, body=zstd_body("BIG"), guid=GUID_A, created=CREATED
        )
        writer.write_frame(FrameKind.METADATA, meta(1, "blobs"), object_id=1, count=1)
        rng = random.Random(50)
        checksum = 0
        for i in range(50):
            blob = rng.randbytes(MB - 64 * 1024) + bytes(64 * 1024)
            checksum = zlib.crc32(blob, checksum)
            writer.write_frame(
                FrameKind.TABLE_DATA,
                msgspec.msgpack.encode([[i, blob]]),
                object_id=1,
                count=1,
                compress=i % 2 == 0,
            )
        (path,) = writer.close()
        size = path.stat().st_size
        assert size > 45 * MB
        yield path, size, checksum


@pytest.mark.slow
def test_reading_a_big_set_keeps_memory_bounded(big_set: tuple[Path, int, int]) -> None:
    path, size, checksum = big_set
    got = 0
    rows = 0
    with peak_memory() as peak, DumpSetReader.open([path]) as reader:
        for obj in reader.objects():
            for fileid, position, length, _count, _nbytes in obj.frames:
                payload = reader.read(Location(fileid, position, length))
                for row in msgspec.msgpack.decode(payload):
                    got = zlib.crc32(row[1], got)
                    rows += 1
                del payload
    assert rows == 50
    assert got == checksum
    assert peak() < 16 * MB, f"peak {peak() / MB:.1f} MB for a {size / MB:.0f} MB set"


@pytest.mark.slow
def test_verifying_a_big_set_keeps_memory_bounded(big_set: tuple[Path, int, int]) -> None:
    path, size, _ = big_set
    with peak_memory() as peak:
        report = verify_paths([path])
    assert report.sound
    assert report.rows == 50
    assert peak() < 16 * MB, f"peak {peak() / MB:.1f} MB for a {size / MB:.0f} MB set"
