"""Hostile file names: a set names its files only inside its own directory.

A header's ``set_files`` and the FILE rows of the control table an export copies into its
set are the dump's words about which files make the set. Each is a plain file name, resolved
only in the directory of the file that names it; ``../x``, ``/etc/passwd``, ``a/b``, a NUL and
an empty name are an ``UnsafeFileNameError`` naming the file and the offset of the field. The
crafted sets below are real exports with every checksum fixed up (``craft``); for each, the
import, ``verify``, ``ls`` and ``info`` refuse it, and no file outside the set is opened or
changed.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import sqlite3
from contextlib import closing
from functools import partial
from pathlib import Path

import anyio
import msgspec
import pytest
from craft import DumpCopy, rewrite_header

import pumpkit
from pumpkit import UnsafeFileNameError
from pumpkit.cli.client import exit_code_for
from pumpkit.core.dumpset import file_row_faults
from pumpkit.core.header import decode_header, file_name_fault
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.info import get_dumpfile_info
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths

BAD_NAMES = {
    "parent": "../elsewhere/evil02.dmp",
    "absolute": "/etc/passwd",
    "subdirectory": "a/b.dmp",
    "nul": "evil02.dmp\x00.txt",
    "empty": "",
    "dot-dot": "..",
    "dot": ".",
    "backslash": "..\\evil02.dmp",
    "line-break": "evil\n02.dmp",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_a_name_that_could_leave_its_directory_is_not_plain(name: str) -> None:
    assert file_name_fault(name) is not None


@pytest.mark.parametrize("name", ["clean.dmp", "x01.dmp", "exp%U.dmp", "a b.dmp", "é.dmp", "..x"])
def test_plain_names_pass(name: str) -> None:
    assert file_name_fault(name) is None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real export in two files (FILESIZE), so that its headers name two files."""
    directory = tmp_path_factory.mktemp("source")
    source = directory / "source.db"
    with closing(sqlite3.connect(source)) as conn:
        for table in ("kv", "kw", "kx"):
            conn.execute(f"CREATE TABLE {table} (k INTEGER PRIMARY KEY, v BLOB)")
            conn.executemany(
                f"INSERT INTO {table} (v) VALUES (?)", [(os.urandom(1000),) for _ in range(60)]
            )
        conn.commit()
    export = partial(
        pumpkit.export_database,
        source,
        "set%U.dmp",
        directory=directory,
        filesize="128KB",
        home=directory / "home",
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # no event loop in this fixture
        status = pool.submit(anyio.run, export).result()
    assert status.state == "COMPLETED", status.errors
    paths = sorted(directory.glob("set*.dmp"))
    assert len(paths) >= 2
    return paths


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def world(tmp_path: Path, exported: list[Path]) -> tuple[Path, Path, Path]:
    """A dump directory holding a copy of the set, an ``elsewhere`` directory beside it that
    holds a second copy of file 2 (what an attacker would point at), and an empty target."""
    dump = tmp_path / "dump"
    elsewhere = tmp_path / "elsewhere"
    dump.mkdir()
    elsewhere.mkdir()
    for p in exported:
        (dump / p.name).write_bytes(p.read_bytes())
    (elsewhere / "evil02.dmp").write_bytes(exported[1].read_bytes())
    return dump, elsewhere, tmp_path / "target.db"


def string_at(data: bytes, offset: int) -> str:
    """The msgpack string that starts at ``offset`` of ``data``."""
    return str(msgspec.msgpack.Decoder(str).decode(_one_value(data, offset)))


def _one_value(data: bytes, offset: int) -> bytes:
    b = data[offset]
    if 0xA0 <= b <= 0xBF:
        return data[offset : offset + 1 + (b & 0x1F)]
    width = {0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
    n = int.from_bytes(data[offset + 1 : offset + 1 + width], "big")
    return data[offset : offset + 1 + width + n]


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", list(BAD_NAMES), ids=list(BAD_NAMES))
async def test_a_header_naming_a_file_outside_is_refused_everywhere(
    world: tuple[Path, Path, Path], bad: str
) -> None:
    dump, _, target = world
    name = BAD_NAMES[bad]
    first = dump / "set01.dmp"
    header = decode_header(first.read_bytes())
    names = list(header.body.set_files)
    names[1] = name
    rewrite_header(first, set_files=tuple(names))  # the header's CRC fixed up
    data = first.read_bytes()
    before = snapshot(dump.parent)

    with pytest.raises(UnsafeFileNameError) as info:
        decode_header(data)
    offset = info.value.offset
    assert offset is not None and string_at(data, offset) == name, "the offset is the name's"
    assert "set_files[1]" in str(info.value)

    for attempt in (
        lambda: DumpSetReader.open([first]),
        lambda: get_dumpfile_info(first),
        lambda: DumpSetReader.open([first, dump / "set02.dmp"]),
    ):
        with pytest.raises(UnsafeFileNameError) as info:
            attempt()
        assert info.value.path == str(first) and info.value.offset == offset
        assert "\n" not in str(info.value)

    report = verify_paths([first])
    assert not report.sound
    assert any(f.path == str(first) and f.offset == offset for f in report.faults), report

    status = await pumpkit.import_dump(
        first, target, directory=dump, home=dump.parent / "home", job_name="HOSTILE_NAMES"
    )
    assert status.state == "STOPPED" and exit_code_for(status) == ExitCode.FAULT
    (line,) = [e for e in status.errors if "set_files[1]" in e]
    assert f"{first}: offset {offset}" in line, line
    assert snapshot(dump.parent) == {
        **before,
        **{k: v for k, v in snapshot(dump.parent).items() if k.startswith("home/")},
    }
    assert not any(k.startswith("home/") for k in before)
    with closing(sqlite3.connect(target)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_name_given_once_more_to_the_reader_is_still_checked(
    world: tuple[Path, Path, Path],
) -> None:
    """A header that names a sibling resolved outside its directory is refused even where
    the second gate (``set_member``) is the one that sees it: the name is checked again at
    the one place it becomes a path."""
    from pumpkit.io.dumpset.files import set_member

    dump, _, _ = world
    assert set_member(dump, "set02.dmp", path=dump / "set01.dmp") == dump / "set02.dmp"
    for name in BAD_NAMES.values():
        with pytest.raises(UnsafeFileNameError) as info:
            set_member(dump, name, path=dump / "set01.dmp", offset=80)
        assert (info.value.path, info.value.offset) == (str(dump / "set01.dmp"), 80)


FILE_ROW_ATTACKS = {
    "template-outside": ("user_file_name", "../elsewhere/evil%U.dmp"),
    "template-absolute": ("user_file_name", "/etc/passwd"),
    "template-empty": ("user_file_name", ""),
    "path-with-parent": ("file_name", "/tmp/../etc/passwd"),
    "path-nul": ("file_name", "/tmp/x\x00.dmp"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("attack", list(FILE_ROW_ATTACKS), ids=list(FILE_ROW_ATTACKS))
async def test_a_control_table_whose_file_rows_point_outside_is_refused(
    exported: list[Path], tmp_path: Path, attack: str
) -> None:
    column, value = FILE_ROW_ATTACKS[attack]
    dump = DumpCopy.read(exported)
    (row,) = [r for r in dump.rows if dump.get(r, "object_type") == "FILE"]
    dump.put(row, column, value)
    directory = tmp_path / "dump"
    directory.mkdir()
    paths = dump.write(directory)
    assert verify_paths(paths).sound  # every checksum holds: only the meaning is hostile
    faults = file_row_faults(dump.columns, dump.rows)
    assert [(f.column, f.name) for f in faults] == [(column, value)]
    control = next(
        (p, decode_header(p.read_bytes()).control_position)
        for p in paths
        if decode_header(p.read_bytes()).control_position
    )
    before = snapshot(tmp_path)

    with DumpSetReader.open(paths) as reader, pytest.raises(UnsafeFileNameError) as info:
        reader.objects()  # what `pumpkit ls` prints
    assert (info.value.path, info.value.offset) == (str(control[0]), control[1])
    assert f"column {column}" in str(info.value) and "(FILE)" in str(info.value)

    status = await pumpkit.import_dump(
        paths[0], tmp_path / "target.db", directory=directory, home=tmp_path / "home"
    )
    assert status.state == "STOPPED" and exit_code_for(status) == ExitCode.FAULT
    (line,) = [e for e in status.errors if "(FILE)" in e]
    assert f"{control[0]}: offset {control[1]}" in line, line
    assert "\n" not in line and "\x00" not in line
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("home/", "target"))}
    assert after == before
    with closing(sqlite3.connect(tmp_path / "target.db")) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.asyncio
async def test_a_relative_dump_file_name_with_a_directory_is_split_at_add_file(
    tmp_path: Path,
) -> None:
    """``sub/x.dmp`` given to an export is the file x.dmp in the folder sub: its FILE row,
    and the copy of it in the set, hold a plain name, so that the set imports."""
    source = tmp_path / "s.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'one')")
        conn.commit()
    (tmp_path / "sub").mkdir()
    status = await pumpkit.export_database(
        source, "sub/x.dmp", directory=tmp_path, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    dump = DumpCopy.read([tmp_path / "sub" / "x.dmp"])
    (row,) = [r for r in dump.rows if dump.get(r, "object_type") == "FILE"]
    assert dump.get(row, "user_file_name") == "x.dmp"
    assert dump.get(row, "user_directory") == str(tmp_path / "sub")
    imported = await pumpkit.import_dump(
        tmp_path / "sub" / "x.dmp", tmp_path / "t.db", home=tmp_path / "home2"
    )
    assert imported.state == "COMPLETED", imported.errors
