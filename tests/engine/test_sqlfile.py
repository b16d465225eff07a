"""SQLFILE: an import that writes the DDL it would run into a SQL file, and touches no database.

The SQL file, run with the ``sqlite3`` shell into an empty database, must give the schema a
normal import of the same set gives (``sqlite_master``: type, name, tbl_name, sql - tables,
indexes, triggers, views), the same ``sqlite_sequence`` and the same ``user_version`` and
``application_id``; with REMAP_TABLE and EXCLUDE filters too, which the SQL file must reflect.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.testing.sqlite_fixtures import compare_databases, make_tricky_database

SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"

pytestmark = pytest.mark.skipif(not Path(SQLITE3).exists(), reason="no sqlite3 shell")


def run_async(fn, *args):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


async def _export(source: Path, directory: Path) -> None:
    async with Session(directory / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="SRC_EXPORT", database=source)
        await s.add_file(h, "set.dmp", directory=str(directory))
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> tuple[Path, Path]:
    """(source database, its one-file dump) - shared, never written to by the tests."""
    directory = tmp_path_factory.mktemp("sqlsrc")
    source = directory / "tricky.db"
    make_tricky_database(source, big_blob_mb=0, rows=300)
    run_async(_export, source, directory)
    return source, directory / "set.dmp"


def master(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"), key=repr)


def settings(path: Path) -> tuple:
    with closing(sqlite3.connect(path)) as conn:
        has_seq = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
        ).fetchone()
        seq = sorted(conn.execute("SELECT name, seq FROM sqlite_sequence")) if has_seq else []
        return (
            seq,
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA application_id").fetchone()[0],
        )


def run_sql_file(sql: Path, database: Path) -> None:
    assert not database.exists()
    with open(sql, "rb") as fh:
        done = subprocess.run(
            [SQLITE3, "-bail", str(database)], stdin=fh, capture_output=True, timeout=60
        )
    assert done.returncode == 0 and not done.stderr, (done.returncode, done.stderr.decode())


def listing(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if "home" not in p.parts}


async def job_log(s: Session, name: str) -> list[str]:
    return [t for _, _, t in await s._store.log_lines(name)]


async def run_import(
    s: Session,
    name: str,
    dump: Path,
    *,
    database: Path | None = None,
    sql: Path | None = None,
    remaps: list[tuple[str, str]] = (),
    excludes: list[tuple[str, object, str | None]] = (),
) -> None:
    h = await s.open("IMPORT", "FULL", job_name=name, database=database)
    await s.add_file(h, dump.name, directory=str(dump.parent))
    if sql is not None:
        await s.add_file(h, sql.name, directory=str(sql.parent), filetype="SQL")
    for old, new in remaps:
        await s.metadata_remap(h, "REMAP_TABLE", old, new)
    for filter_name, value, path in excludes:
        await s.metadata_filter(h, filter_name, value, path)
    await s.start_job(h)
    state = await s.wait_for_job(h)
    assert state == JobState.COMPLETED, await job_log(s, name)


async def sqlfile_and_import(
    dump: Path, work: Path, *, with_database: bool = False, **filters
) -> tuple[Path, Path, list[str]]:
    """The SQL file job (no database, or a database that must stay absent) then a normal
    import with the same filters; returns (sqlfile database, imported database, log)."""
    work.mkdir()
    sql = work / "ddl.sql"
    untouched = work / "never.db"
    before = listing(work)
    async with Session(work / "home") as s:
        await run_import(
            s, "SQLFILE", dump, database=untouched if with_database else None, sql=sql, **filters
        )
        log = await job_log(s, "SQLFILE")
        after = listing(work)
        imported = work / "imported.db"
        await run_import(s, "NORMAL", dump, database=imported, **filters)
    # The SQLFILE job wrote the SQL file and nothing else: no database, no journal.
    assert after - before == {"ddl.sql"}, after - before
    assert not untouched.exists()
    from_sql = work / "from_sql.db"
    run_sql_file(sql, from_sql)
    return from_sql, imported, log


@pytest.mark.asyncio
@pytest.mark.parametrize("with_database", [False, True], ids=["no-database", "database-given"])
async def test_sqlfile_gives_the_schema_an_import_gives(dump, tmp_path, with_database):
    source, dumpfile = dump
    from_sql, imported, log = await sqlfile_and_import(
        dumpfile, tmp_path / "w", with_database=with_database
    )
    assert any("SQL file" in t and "no database changed" in t for t in log), log
    schema = master(from_sql)
    assert schema == master(imported)
    assert schema == master(source)
    kinds = {row[0] for row in schema}
    assert kinds == {"table", "index", "trigger", "view"}, kinds
    assert settings(from_sql) == settings(imported) == settings(source)
    # The import itself is exact (so the comparison above is with a faithful schema).
    assert compare_databases(source, imported) == []
    text = (tmp_path / "w" / "ddl.sql").read_text("utf-8")
    assert "INSERT INTO sqlite_sequence" in text
    with closing(sqlite3.connect(from_sql)) as conn:
        rows = conn.execute("SELECT count(*) FROM wide").fetchone()[0]
    assert rows == 0, "a SQL file holds DDL, no rows"


@pytest.mark.asyncio
async def test_sqlfile_reflects_remap_table(dump, tmp_path):
    _, dumpfile = dump
    remaps = [("wide", "wide2"), ("autoinc", "auto inc 2")]
    from_sql, imported, _ = await sqlfile_and_import(dumpfile, tmp_path / "w", remaps=remaps)
    schema = master(from_sql)
    assert schema == master(imported)
    tables = {name for kind, name, _, _ in schema if kind == "table"}
    assert {"wide2", "auto inc 2"} <= tables
    assert not {"wide", "autoinc"} & tables
    # The indexes went with their table (and, RENAME_INDEXES being on, were renamed).
    on_wide = {name for kind, name, tbl, _ in schema if kind == "index" and tbl == "wide2"}
    assert "wide2_c_int" in on_wide and len(on_wide) >= 5, on_wide
    assert not any(tbl == "wide" for kind, _, tbl, _ in schema if kind == "index")
    assert settings(from_sql) == settings(imported)
    sequences = dict(settings(from_sql)[0])
    assert "auto inc 2" in sequences and "autoinc" not in sequences, sequences
    text = (tmp_path / "w" / "ddl.sql").read_text("utf-8")
    assert "CREATE TABLE wide2" in text or 'CREATE TABLE "wide2"' in text
    assert "CREATE TABLE wide " not in text and "CREATE TABLE wide(" not in text


@pytest.mark.asyncio
async def test_sqlfile_reflects_exclude_filters(dump, tmp_path):
    _, dumpfile = dump
    excludes = [
        ("EXCLUDE_NAME_LIST", ["gappy", "order"], "TABLE"),
        ("EXCLUDE_PATH_EXPR", "IN ('VIEW')", None),
    ]
    from_sql, imported, _ = await sqlfile_and_import(dumpfile, tmp_path / "w", excludes=excludes)
    schema = master(from_sql)
    assert schema == master(imported)
    names = {name for _, name, _, _ in schema}
    owners = {tbl for _, _, tbl, _ in schema}
    assert not {"gappy", "order"} & names
    assert "order" not in owners, "the excluded table's indexes and triggers went with it"
    assert not any(kind == "view" for kind, *_ in schema)
    assert not any(kind == "trigger" for kind, *_ in schema)  # both triggers hang on 'order'
    assert {"wide", "autoinc", "клиент"} <= names
    assert settings(from_sql) == settings(imported)
    text = (tmp_path / "w" / "ddl.sql").read_text("utf-8")
    assert "gappy" not in text
    assert "CREATE VIEW" not in text
