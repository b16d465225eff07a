"""Export then import gives the same database: schema text, every row, rowids, settings."""

from __future__ import annotations

import sqlite3

import pytest

import pumpkit
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases, make_tricky_database


@pytest.fixture(scope="module")
def tricky(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "tricky.db"
    make_tricky_database(path)  # 10 MB blob, 2000 wide rows, every nasty name and value
    return path


@pytest.mark.asyncio
@pytest.mark.parametrize(("parallel", "filesize"), [(1, None), (2, None), (2, "11MB")])
async def test_round_trip_is_exact(tricky, tmp_path, parallel, filesize):
    home = tmp_path / "home"
    status = await pumpkit.export_database(
        tricky, "exp%U.dmp", directory=tmp_path, parallel=parallel, home=home, filesize=filesize
    )
    assert status.state == "COMPLETED", status.errors
    files = sorted(tmp_path.glob("exp*.dmp"))
    assert verify_paths(files).sound
    if filesize:
        assert len(files) >= 2, "FILESIZE must roll over to more files"
    target = tmp_path / "copy.db"
    status = await pumpkit.import_dump(
        files[0], target, directory=tmp_path, parallel=parallel, home=home
    )
    assert status.state == "COMPLETED", status.errors
    assert status.completed_rows == status.total_rows > 0
    assert compare_databases(tricky, target) == []
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not any(n.startswith("pumpkit_") for n in names), "markers must be dropped"


@pytest.mark.asyncio
async def test_dump_lists_every_table_with_its_rows(tricky, tmp_path):
    status = await pumpkit.export_database(
        tricky, "one.dmp", directory=tmp_path, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED"
    with sqlite3.connect(tricky) as conn:
        tables = {
            name: conn.execute(
                f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"'
            ).fetchone()[0]
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    with DumpSetReader.open([tmp_path / "one.dmp"]) as reader:
        listed = {o.name: o.rows for o in reader.objects() if o.object_type == "TABLE"}
        assert reader.control_table() is not None
    assert listed == tables


@pytest.mark.asyncio
async def test_table_mode_exports_only_the_named_tables(tricky, tmp_path):
    status = await pumpkit.export_database(
        tricky, "t.dmp", directory=tmp_path, home=tmp_path / "home", tables=["wide", "autoinc"]
    )
    assert status.state == "COMPLETED", status.errors
    target = tmp_path / "t.db"
    status = await pumpkit.import_dump(tmp_path / "t.dmp", target, home=tmp_path / "home")
    assert status.state == "COMPLETED", status.errors
    with sqlite3.connect(target) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"wide", "autoinc", "sqlite_sequence"}
        assert conn.execute("SELECT count(*) FROM wide").fetchone()[0] == 2000
