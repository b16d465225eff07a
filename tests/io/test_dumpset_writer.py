"""The writer when its set is full: it refuses the frame having changed nothing, and file
numbers are handed out once each, however many threads roll at once while files are added."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import msgspec
import pytest

from pumpkit.core.frame import FrameKind, Location
from pumpkit.core.header import HEADER_SIZE, HeaderBody, decode_header
from pumpkit.errors import DumpSetFullError
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.io.dumpset.writer import DumpSetWriter

FILESIZE = 8192  # about fifteen of the frames below per file
BODY = HeaderBody(job_name="FULL", operation="EXPORT", job_mode="FULL")


def file_number(path: Path) -> int:
    with open(path, "rb") as fh:
        return decode_header(fh.read(HEADER_SIZE)).file_number


def fill(writer: DumpSetWriter, data: bytes) -> list[Location]:
    """Write ``data`` until the set is full; where each frame went."""
    locations = []
    while True:
        try:
            locations.append(writer.write_frame(FrameKind.TABLE_DATA, data, count=1))
        except DumpSetFullError:
            return locations


def test_a_full_set_refuses_a_frame_having_changed_nothing(tmp_path: Path) -> None:
    writer = DumpSetWriter(["only.dmp"], directory=tmp_path, body=BODY, filesize=FILESIZE)
    data = msgspec.msgpack.encode([["x" * 300]])  # one row (a TABLE_DATA frame: rows)
    written = fill(writer, data)
    assert written and {loc.fileid for loc in written} == {1}
    assert not writer.can_grow()
    before = (writer.paths, writer.durable_points, (tmp_path / "only.dmp").read_bytes())
    for _ in range(3):
        with pytest.raises(DumpSetFullError, match="ADD_FILE"):
            writer.write_frame(FrameKind.TABLE_DATA, data, count=1)
        after = (writer.paths, writer.durable_points, (tmp_path / "only.dmp").read_bytes())
        assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.dmp"]

    writer.add_template("next%U.dmp")
    assert writer.can_grow()
    again = writer.write_frame(FrameKind.TABLE_DATA, data, count=1)
    assert again.fileid == 2 and again.position == HEADER_SIZE
    paths = writer.close()
    assert [p.name for p in paths] == ["only.dmp", "next01.dmp"]
    assert [file_number(p) for p in paths] == [1, 2]
    report = verify_paths(paths)
    assert report.sound, [str(f) for f in report.faults]
    assert report.rows == len(written) + 1


def test_the_control_table_is_written_again_after_a_full_set(tmp_path: Path) -> None:
    """A refused control table is not counted as written: the same call succeeds later."""
    writer = DumpSetWriter(["only.dmp"], directory=tmp_path, body=BODY, filesize=FILESIZE)
    fill(writer, msgspec.msgpack.encode(["x" * 300]))
    doc = {"table": "FULL", "columns": ["object_type"], "rows": [["JOB"]]}
    with pytest.raises(DumpSetFullError):
        writer.write_control_table(msgspec.msgpack.encode(doc), count=1)
    writer.add_template("last.dmp")
    location = writer.write_control_table(msgspec.msgpack.encode(doc), count=1)
    assert location.fileid == 2
    paths = writer.close()
    with DumpSetReader.open(paths[:1]) as reader:
        control = reader.control_table()
        assert control is not None and msgspec.msgpack.decode(control) == doc


THREADS = 8
FRAMES = 120


def test_threads_rolling_while_files_are_added_number_each_file_once(tmp_path: Path) -> None:
    """Many threads write into a set whose only file fills at once, while another thread adds
    a file name every millisecond (plain names, and once a %U template): every thread that
    finds the set full waits for the next name and writes the same frame again. The set ends
    with file numbers 1..N, each once, sound, with every frame where its location says."""
    writer = DumpSetWriter(["first.dmp"], directory=tmp_path, body=BODY, filesize=FILESIZE)
    added = threading.Condition()
    done = threading.Event()
    fulls = [0] * THREADS
    written: list[list[tuple[Location, bytes]]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def add_files() -> None:
        k = 0
        while not done.is_set():
            k += 1
            writer.add_template(f"many%U-{k}.dmp" if k == 25 else f"add{k:04d}.dmp")
            with added:
                added.notify_all()
            time.sleep(0.001)

    def write(thread: int) -> None:
        rng = random.Random(thread)
        try:
            for seq in range(FRAMES):
                data = msgspec.msgpack.encode([[thread, seq, "p" * rng.randrange(40, 400)]])
                while True:
                    try:
                        location = writer.write_frame(
                            FrameKind.TABLE_DATA, data, object_id=thread + 1, count=1
                        )
                        break
                    except DumpSetFullError:
                        fulls[thread] += 1
                        with added:
                            added.wait(timeout=0.05)
                written[thread].append((location, data))
        except BaseException as exc:
            errors.append(exc)

    adder = threading.Thread(target=add_files)
    writers = [threading.Thread(target=write, args=(t,)) for t in range(THREADS)]
    adder.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    done.set()
    adder.join(timeout=10)
    assert not errors, errors
    paths = writer.close()

    assert sum(fulls) > THREADS, fulls  # the set was found full, often, by several threads
    numbers = [file_number(p) for p in paths]
    assert numbers == list(range(1, len(paths) + 1)), numbers
    assert len(paths) > 30
    assert sorted(tmp_path.glob("*.dmp")) == sorted(paths)  # no file made and left out
    report = verify_paths(paths)
    assert report.sound, [str(f) for f in report.faults][:10]
    assert report.files == len(paths) and report.rows == THREADS * FRAMES
    by_thread = {t: [loc for loc, _ in frames] for t, frames in enumerate(written)}
    assert all(len(set(locs)) == FRAMES for locs in by_thread.values())
    with DumpSetReader.open(paths[:1]) as reader:
        assert reader.file_numbers == numbers
        for frames in written:
            for location, data in frames:
                assert bytes(reader.read(location)) == data
