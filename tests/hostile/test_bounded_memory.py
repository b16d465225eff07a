"""Bounded memory: import, verify, ls and cat stay under ``PEAK_RSS_BOUND`` whatever a dump claims.

The bombs (``bombs``) are real exports whose table's frames are replaced, every checksum
right. Each command runs in a child process of its own, whose peak RSS (VmHWM) is measured:

* the issue's bombs, frames of a few kilobytes to a few hundred that decompress to 255 MB
  each (1, 4 and 8 of them): refused before anything is decompressed (``DumpLimitError``);
* frames at the reader's limit (one 64 MiB row each; 1, 4 and 8 of them): a sound set, so
  ``verify`` calls it sound and the import loads every row, within the bound;
* frames whose row counts lie (4,294,967,295 rows claimed; more rows claimed than held), a
  row of nested values built to decode to many times its size, and a control table of
  millions of tiny values: refused.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from bombs import MB, batch_size, bomb, export_source, measure
from craft import DumpCopy

from pumpkit.core.limits import MAX_DATA_FRAME_BYTES, PEAK_RSS_BOUND, ROW_CHUNK_BYTES

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return export_source(tmp_path_factory.mktemp("source"))


def run(what: str, paths: list[Path], tmp_path: Path) -> dict[str, object]:
    result = measure(what, paths[0], tmp_path / "target.db", tmp_path / "home")
    peak = result["peak_rss"]
    assert isinstance(peak, int) and peak < PEAK_RSS_BOUND, (what, peak / MB, result)
    return result


def target_rows(tmp_path: Path) -> list[tuple[int, int]]:
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        return conn.execute("SELECT k, length(v) FROM kv ORDER BY k").fetchall()


@pytest.mark.parametrize("frames", [1, 4, 8])
def test_frames_that_decompress_to_255_mb_are_refused_before_decompressing(
    exported: list[Path], tmp_path: Path, frames: int
) -> None:
    paths = bomb(exported, tmp_path / "dump", frames, 255 * MB)
    assert sum(p.stat().st_size for p in paths) < frames * 400_000  # each frame < 400 KB
    report = run("verify", paths, tmp_path)
    assert report["sound"] is False
    faults = report["faults"]
    assert isinstance(faults, list)
    refused = [f for f in faults if "a reader takes at most" in f]
    assert len(refused) == frames and len(faults) == frames, faults  # nothing else is wrong
    assert all(f"{paths[0]}: offset " in f for f in refused)

    assert run("cat", paths, tmp_path)["exit"] != 0
    imported = run("import", paths, tmp_path)
    assert imported["state"] == "STOPPED"
    (error,) = imported["errors"]  # type: ignore[misc]
    assert f"{paths[0]}: offset " in error and "a reader takes at most" in error
    # The import checks the whole set before it changes the target (VERIFY, the default).
    assert target_tables(tmp_path) == []


@pytest.mark.parametrize("frames", [1, 4, 8])
def test_frames_at_the_limit_verify_and_import_within_the_bound(
    exported: list[Path], tmp_path: Path, frames: int
) -> None:
    size = MAX_DATA_FRAME_BYTES - batch_size(0)
    paths = bomb(exported, tmp_path / "dump", frames, size)
    report = run("verify", paths, tmp_path)
    assert report["sound"] is True, report
    listed = run("ls", paths, tmp_path)
    assert ["kv", frames] in listed["objects"]  # type: ignore[operator]
    assert run("cat", paths, tmp_path)["exit"] == 0  # JSON lines: each row as hex text
    imported = run("import", paths, tmp_path)
    assert imported["state"] == "COMPLETED", imported
    assert target_rows(tmp_path) == [(i, size) for i in range(1, frames + 1)]


def test_a_frame_claiming_4294967295_rows_is_refused_by_verify_and_import(
    exported: list[Path], tmp_path: Path
) -> None:
    paths = bomb(exported, tmp_path / "dump", 1, 1000, rows=4_294_967_295)
    report = run("verify", paths, tmp_path)
    assert report["sound"] is False
    assert any("claims 4,294,967,295 rows" in f for f in report["faults"])  # type: ignore[attr-defined]
    imported = run("import", paths, tmp_path)
    assert imported["state"] == "STOPPED"
    assert "claims 4,294,967,295 rows" in imported["errors"][0]  # type: ignore[index]
    assert target_tables(tmp_path) == []


def test_a_frame_claiming_more_rows_than_it_holds_is_refused_by_verify_and_import(
    exported: list[Path], tmp_path: Path
) -> None:
    paths = bomb(exported, tmp_path / "dump", 1, 1000, rows=1000)
    report = run("verify", paths, tmp_path)
    assert any("holds 1 rows, the frame says 1000" in f for f in report["faults"])  # type: ignore[attr-defined]
    imported = run("import", paths, tmp_path)
    assert imported["state"] == "STOPPED"
    assert "holds 1 rows, the frame says 1000" in imported["errors"][0]  # type: ignore[index]
    assert target_tables(tmp_path) == []


def nested(count: int) -> bytes:
    """One row ``(1, [[], [], ...])``: ``count`` empty arrays, a byte each in msgpack, that
    would decode to some 60 bytes each."""
    return b"\x91\x92\x01\xdd" + count.to_bytes(4, "big") + b"\x90" * count


def test_a_big_row_of_nested_values_is_refused_before_it_is_decoded(
    exported: list[Path], tmp_path: Path
) -> None:
    count = 32 * MB  # 32 MB of payload: some 2 GB decoded
    paths = bomb(exported, tmp_path / "dump", 1, 0, make=lambda i: nested(count))
    report = run("verify", paths, tmp_path)
    assert any("holds an array or map value" in f for f in report["faults"]), report  # type: ignore[attr-defined]
    imported = run("import", paths, tmp_path)
    assert imported["state"] == "STOPPED"
    assert "holds an array or map value" in imported["errors"][0]  # type: ignore[index]


def test_small_rows_of_nested_values_decode_a_chunk_at_a_time(
    exported: list[Path], tmp_path: Path
) -> None:
    """60 MB of rows of empty arrays, each row small: decoded a chunk at a time, so that the
    import stays within the bound and refuses the first value SQLite cannot bind."""
    per_row = 100
    rows = (60 * MB) // (per_row + 3)
    row = b"\x92\x01\xdc" + per_row.to_bytes(2, "big") + b"\x90" * per_row
    assert len(row) * 2 < ROW_CHUNK_BYTES

    def make(i: int) -> bytes:
        return b"\xdd" + rows.to_bytes(4, "big") + row * rows

    paths = bomb(exported, tmp_path / "dump", 1, 0, rows=rows, make=make)
    report = run("verify", paths, tmp_path)
    assert report["sound"] is True, report  # msgpack it is, and the count is right
    imported = run("import", paths, tmp_path)
    assert imported["state"] == "STOPPED"
    assert "kv" in imported["errors"][0]  # type: ignore[index]
    assert target_rows(tmp_path) == []


def test_a_control_table_of_millions_of_tiny_values_is_refused_before_it_is_decoded(
    exported: list[Path], tmp_path: Path
) -> None:
    """5,000,000 one-byte values in one cell: 5 MB that would decode to some 40 MB of
    pointers, or many times that as empty arrays; counted, and refused, before decoding."""
    dump = DumpCopy.read(exported)
    (job,) = [r for r in dump.rows if dump.get(r, "object_type") == "JOB"]
    dump.put(job, "processing_status", [[]] * 5_000_000)
    directory = tmp_path / "dump"
    directory.mkdir()
    paths = dump.write(directory)
    for what in ("verify", "ls", "import"):
        result = run(what, paths, tmp_path)
        said = json.dumps(result)
        assert "more than 4,000,000 values" in said, (what, result)
    assert not (tmp_path / "target.db").exists() or target_tables(tmp_path) == []


def target_tables(tmp_path: Path) -> list[tuple[str]]:
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        return conn.execute("SELECT name FROM sqlite_master").fetchall()
