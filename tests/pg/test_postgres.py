"""PostgreSQL as source and target: exact round trips, cross-engine imports, crash restarts.

Every test makes its own databases (``conftest.py``); a round trip is checked the way the
issue says: ``pg_dump --schema-only`` of both databases and every table's rows.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

import pumpkit
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.io.dumpset.reader import DumpSetReader
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.pg_fixtures import VARIED_SCHEMA, fill_varied

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))
from process_helpers import kill_runner, wait_until

pytestmark = pytest.mark.postgres


def schema_dump(url: str) -> str:
    """``pg_dump --schema-only`` of ``url``, less the per-run ``\\restrict`` keys."""
    done = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--dbname", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return re.sub(r"^\\(un)?restrict \S+$", "", done.stdout, flags=re.M)


async def table_rows(url: str) -> dict[str, list[str]]:
    """Every user table's rows as text, sorted: the whole content of the database."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS t"
            " FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1"
        )
        out = {}
        for r in tables:
            rows = await conn.fetch(f"SELECT x::text AS v FROM {r['t']} x")
            out[r["t"]] = sorted(v["v"] for v in rows)
        for r in await conn.fetch(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) AS s"
            " FROM pg_sequences ORDER BY 1"
        ):
            value = await conn.fetchval(f"SELECT last_value::text || is_called::text FROM {r['s']}")
            out[r["s"]] = [value]
        return out
    finally:
        await conn.close()


async def load_varied(url: str, rows: int = 300) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(VARIED_SCHEMA)
        await conn.execute(fill_varied(rows))
    finally:
        await conn.close()


async def export_pg(url: str, tmp_path: Path, *, parallel: int = 2) -> list[Path]:
    status = await pumpkit.export_database(
        url, "pg%U.dmp", directory=tmp_path, parallel=parallel, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    files = sorted(tmp_path.glob("pg*.dmp"))
    assert verify_paths(files).sound
    return files


# --- PostgreSQL to PostgreSQL -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("parallel", [1, 2])
async def test_round_trip_is_exact(pg_url, pg_url2, tmp_path, parallel):
    await load_varied(pg_url)
    files = await export_pg(pg_url, tmp_path, parallel=parallel)
    reader = DumpSetReader.open(files)
    try:
        assert reader.header.body.source_engine == "postgresql"
        assert reader.header.minor >= 2
    finally:
        reader.close()
    status = await pumpkit.import_dump(
        files[0], pg_url2, directory=tmp_path, parallel=parallel, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    assert status.completed_rows == status.total_rows > 0
    assert schema_dump(pg_url2) == schema_dump(pg_url)
    source, copy = await table_rows(pg_url), await table_rows(pg_url2)
    assert copy.keys() == source.keys()
    for name in source:
        assert copy[name] == source[name], name
    # Generated columns were recomputed (they are not in the dump), identity goes on.
    conn = await asyncpg.connect(pg_url2)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kinds WHERE twice <> i4::bigint * 2") == 0
        next_id = await conn.fetchval("INSERT INTO kinds (p) VALUES (3) RETURNING id")
        assert next_id == await conn.fetchval("SELECT max(id) FROM kinds")
        assert next_id > 300
    finally:
        await conn.close()


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_the_export_reads_one_snapshot(pg_url, tmp_path):
    """Rows changed once the export has begun are not in the dump, though most granules are
    read after the change: every worker reads the snapshot the coordinator exported."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, pad text);"
            " INSERT INTO t SELECT g, md5(g::text) || repeat('x', 160)"
            " FROM generate_series(1, 50000) g; ANALYZE t"
        )
        async with Session(tmp_path / "home") as s:
            h = await s.open("EXPORT", "FULL", job_name="SNAP", database=pg_url)
            await s.add_file(h, "snap%U.dmp", str(tmp_path))
            await s.set_parallel(h, 2)
            await s.set_parameter(h, "COMPRESSION_LEVEL", 19)  # slow: the writes land mid-way
            await s.start_job(h)

            async def one_done() -> bool:
                return await granules_done(s, "SNAP") > 0

            assert await wait_until(one_done, 60)
            await conn.execute("DELETE FROM t WHERE id % 2 = 0")
            await conn.execute("INSERT INTO t SELECT g, 'new' FROM generate_series(50001, 50500) g")
            await conn.execute("UPDATE t SET pad = 'changed' WHERE id % 7 = 1")
            total = len(await s._store.rows("SNAP", object_types=["TABLE_DATA"]))
            assert await granules_done(s, "SNAP") < total, "the export ended before the writes"
            assert await s.wait_for_job(h) == JobState.COMPLETED
        target = tmp_path / "copy.db"
        status = await pumpkit.import_dump(
            tmp_path / "snap01.dmp", target, directory=tmp_path, home=tmp_path / "home"
        )
        assert status.state == "COMPLETED", status.errors
        with sqlite3.connect(target) as db:
            got = db.execute(
                "SELECT count(*), sum(id % 2 = 0), sum(pad IN ('new', 'changed')) FROM t"
            ).fetchone()
        assert got == (50000, 25000, 0)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_filters_and_a_password_on_a_postgres_export(pg_url, pg_url2, tmp_path):
    """QUERY and EXCLUDE shape what a PostgreSQL export reads; its PGCOPY frames are
    encrypted like any other and import only with the password."""
    await load_varied(pg_url, rows=100)
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name="PG_FILTERED", database=pg_url)
        await s.add_file(h, "f%U.dmp", str(tmp_path))
        await s.data_filter(h, "QUERY", "WHERE amount > 100", "orders")
        await s.metadata_filter(h, "EXCLUDE_NAME_EXPR", "= 'kinds'")
        await s.metadata_filter(h, "EXCLUDE_PATH_EXPR", "IN ('VIEW', 'COMMENT')")
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", "night shift")
        await s.start_job(h)
        state = await s.wait_for_job(h)
        assert state == JobState.COMPLETED, await s._store.log_lines("PG_FILTERED")
    files = sorted(tmp_path.glob("f*.dmp"))
    reader = DumpSetReader.open(files)
    try:
        assert reader.encrypted
    finally:
        reader.close()
    refused = await pumpkit.import_dump(files[0], pg_url2, directory=tmp_path, home=home)
    assert refused.state == "STOPPED" and "ENCRYPTION_PASSWORD" in refused.errors[0], refused
    async with Session(home) as s:
        h = await s.open("IMPORT", "FULL", job_name="PG_FILTERED_IMP", database=pg_url2)
        await s.add_file(h, files[0].name, str(tmp_path))
        await s.set_parameter(h, "ENCRYPTION_PASSWORD", "night shift")
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
    conn = await asyncpg.connect(pg_url)
    copy = await asyncpg.connect(pg_url2)
    try:
        want = await conn.fetch("SELECT o::text FROM sales.orders o WHERE amount > 100 ORDER BY id")
        got = await copy.fetch("SELECT o::text FROM sales.orders o ORDER BY id")
        assert got == want and 0 < len(got) < await conn.fetchval(
            "SELECT count(*) FROM sales.orders"
        )
        assert await copy.fetchval("SELECT to_regclass('public.kinds')") is None
        assert await copy.fetchval("SELECT to_regclass('sales.big_orders')") is None
        assert await copy.fetchval("SELECT count(*) FROM sales.customer") == await conn.fetchval(
            "SELECT count(*) FROM sales.customer"
        )
    finally:
        await conn.close()
        await copy.close()


@pytest.mark.asyncio
async def test_a_bad_query_stops_the_export_before_any_row_naming_the_table(pg_url, tmp_path):
    await load_varied(pg_url, rows=20)
    async with Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="PG_BAD_QUERY", database=pg_url)
        await s.add_file(h, "b%U.dmp", str(tmp_path))
        await s.data_filter(h, "QUERY", "WHERE no_such_column > 1", "orders")
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.STOPPED
        log = [t for _, _, t in await s._store.log_lines("PG_BAD_QUERY")]
    failed = [t for t in log if "failed" in t]
    assert failed and "'orders'" in failed[0] and "no_such_column" in failed[0], log
    assert not list(tmp_path.glob("b*.dmp")), "no dump file before the filters are checked"


@pytest.mark.asyncio
async def test_subquery_on_a_table_of_many_granules(pg_url, tmp_path):
    """SUBQUERY's clause applies to every granule of a table split into several."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, pad text);"
            " INSERT INTO t SELECT g, repeat('z', 300) FROM generate_series(1, 40000) g; ANALYZE t"
        )
    finally:
        await conn.close()
    async with Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="PG_SUBQUERY", database=pg_url)
        await s.add_file(h, "q%U.dmp", str(tmp_path))
        await s.set_parallel(h, 2)
        await s.data_filter(h, "SUBQUERY", "WHERE id % 3 = 0", "t")
        await s.set_parameter(h, "KEEP_MASTER", 1)  # to count its granules after
        await s.start_job(h)
        state = await s.wait_for_job(h)
        assert state == JobState.COMPLETED, await s._store.log_lines("PG_SUBQUERY")
        granules = await s._store.rows("PG_SUBQUERY", object_types=["TABLE_DATA"])
        assert len(granules) > 1, "the table must split for the test to mean anything"
    target = tmp_path / "copy.db"
    status = await pumpkit.import_dump(
        tmp_path / "q01.dmp", target, directory=tmp_path, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT count(*), sum(id % 3 <> 0) FROM t").fetchone() == (13333, 0)


# --- across engines ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_postgres_to_sqlite_keeps_every_value_in_its_lossless_form(pg_url, tmp_path):
    await load_varied(pg_url, rows=50)
    files = await export_pg(pg_url, tmp_path)
    target = tmp_path / "copy.db"
    status = await pumpkit.import_dump(
        files[0], target, directory=tmp_path, parallel=2, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'"
        )
        expected = await conn.fetch(
            "SELECT id, n::text, dt::text, ts::text, tstz::text, iv::text, u::text, m::text,"
            " b, ok, i8, d FROM kinds ORDER BY id"
        )
    finally:
        await conn.close()
    with sqlite3.connect(target) as db:
        got = db.execute(
            "SELECT id, n, dt, ts, tstz, iv, u, m, b, ok, i8, d FROM kinds ORDER BY id"
        ).fetchall()
        types = dict(db.execute("SELECT name, type FROM pragma_table_info('kinds')").fetchall())
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert len(got) == len(expected) == 53
    for want, have in zip(expected, got, strict=True):
        ok = None if want["ok"] is None else int(want["ok"])
        d = want["d"]
        d = "NaN" if d is not None and d != d else d
        assert have == (*tuple(want)[:9], ok, want["i8"], d), (want, have)
    assert types["i8"] == "INTEGER" and types["n"] == "TEXT" and types["b"] == "BLOB"
    assert {"customer", "orders", 'Odd "Na"me', "empty_one", "orders_customer"} <= names
    assert not any(n.startswith("pumpkit_") for n in names)


def make_app_database(path: Path, rows: int = 500) -> None:
    """A SQLite database as applications write them: typed columns holding their types."""
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE users (
                id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
                score REAL DEFAULT 0.5, active BOOLEAN DEFAULT 1, born DATE,
                seen TIMESTAMP, balance DECIMAL(10,2), avatar BLOB, note VARCHAR(40), misc
            );
            CREATE TABLE events (user_id INTEGER NOT NULL, kind TEXT, at TEXT);
            CREATE INDEX events_user ON events (user_id, kind);
            CREATE VIEW high_scores AS SELECT id, name FROM users WHERE score > 10;
            CREATE VIEW flagged AS SELECT id FROM users WHERE active = 1;
            CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN SELECT 1; END;
            """
        )
        db.executemany(
            "INSERT INTO users (name, score, active, born, seen, balance, avatar, note, misc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f"user {i} ünïcode",
                    i / 7,
                    i % 2,
                    f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
                    f"2024-03-0{1 + i % 9} 12:{i % 60:02d}:00",
                    i * 1.25,
                    bytes([i % 256, 0, 255]),
                    f"note {i}",
                    [i, f"text {i}", i / 2, None][i % 4],
                )
                for i in range(rows)
            ],
        )
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?)",
            [(1 + i % rows, f"k{i % 5}", f"t{i}") for i in range(rows * 3)],
        )
        db.execute("DELETE FROM users WHERE id > ?", (rows - 10,))  # AUTOINCREMENT remembers


@pytest.mark.asyncio
async def test_sqlite_to_postgres_of_a_varied_database(pg_url, tmp_path):
    source = tmp_path / "app.db"
    make_app_database(source)
    status = await pumpkit.export_database(
        source, "sq%U.dmp", directory=tmp_path, parallel=2, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    status = await pumpkit.import_dump(
        tmp_path / "sq01.dmp", pg_url, directory=tmp_path, parallel=2, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    with sqlite3.connect(source) as db:
        users = db.execute("SELECT * FROM users ORDER BY id").fetchall()
        events = sorted(db.execute("SELECT * FROM events").fetchall())
        high = db.execute("SELECT count(*) FROM high_scores").fetchone()[0]
        flagged = db.execute("SELECT count(*) FROM flagged").fetchone()[0]
    conn = await asyncpg.connect(pg_url)
    try:
        got = await conn.fetch("SELECT * FROM users ORDER BY id")
        assert len(got) == len(users) == 490
        for want, have in zip(users, got, strict=True):
            assert have["id"] == want[0] and have["name"] == want[1]
            assert have["score"] == want[2] and have["active"] is bool(want[3])
            assert str(have["born"]) == want[4] and str(have["seen"]) == want[5]
            assert float(have["balance"]) == want[6] and have["avatar"] == want[7]
            assert have["note"] == want[8]
            assert have["misc"] == (None if want[9] is None else str(want[9]))
        got_events = sorted(tuple(r) for r in await conn.fetch("SELECT * FROM events"))
        assert got_events == events
        types = dict(
            await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = 'users'"
            )
        )
        assert types["id"] == "bigint" and types["active"] == "boolean"
        assert types["born"] == "date" and types["balance"] == "numeric"
        assert await conn.fetchval("SELECT count(*) FROM flagged") == flagged > 0
        # The AUTOINCREMENT counter carried over: the next id is past every id ever used.
        assert await conn.fetchval("INSERT INTO users (name) VALUES ('new') RETURNING id") == 501
        assert await conn.fetchval("SELECT count(*) FROM high_scores") == high > 0
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = 'events_user'")
            == 1
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO users (name) VALUES ('user 1 ünïcode')")
    finally:
        await conn.close()
    async with Session(tmp_path / "home") as s:
        log = [t for _, _, t in await s._store.log_lines("SYS_IMPORT_FULL_01")]
    assert any("TRIGGER 'users_touch' left out" in line for line in log), log
    # SQLite's 0 and 1 against a column PostgreSQL holds as boolean are translated.
    assert not any("VIEW 'flagged' left out" in line for line in log), log


@pytest.mark.asyncio
async def test_a_sqlite_value_postgres_cannot_take_is_a_clear_error(pg_url, tmp_path):
    source = tmp_path / "loose.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE loose (id INTEGER PRIMARY KEY, n INT)")
        db.executemany("INSERT INTO loose (n) VALUES (?)", [(1,), ("not a number",), (3,)])
    status = await pumpkit.export_database(
        source, "l%U.dmp", directory=tmp_path, home=tmp_path / "home"
    )
    assert status.state == "COMPLETED", status.errors
    status = await pumpkit.import_dump(
        tmp_path / "l01.dmp", pg_url, directory=tmp_path, home=tmp_path / "home"
    )
    assert status.state == "STOPPED"
    (error,) = status.errors
    assert "'loose'" in error and "'n'" in error and "not a number" in error, error
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM loose") == 0  # nothing half-loaded
    finally:
        await conn.close()


# --- crashes ------------------------------------------------------------------------------------


async def big_source(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, n numeric(12,2), t text, ts timestamptz);"
            " INSERT INTO big SELECT g, g / 3.0, md5(g::text) || repeat('y', 150),"
            "  TIMESTAMPTZ '2024-01-01 00:00+00' + g * INTERVAL '1 second'"
            " FROM generate_series(1, 400000) g;"
            " CREATE TABLE small (id serial PRIMARY KEY, v text);"
            " INSERT INTO small (v) SELECT 'v' || g FROM generate_series(1, 1000) g;"
            " CREATE INDEX big_t ON big (t); ANALYZE"
        )
    finally:
        await conn.close()


async def granules_done(s: Session, name: str) -> int:
    if not await s._store.has_control_table(name):
        return 0
    rows = await s._store.rows(name, object_types=["TABLE_DATA"])
    return sum(r.processing_state == "C" for r in rows)


async def kill_once_started(s: Session, name: str, h: int) -> None:
    """SIGKILL the job's runner once a granule of it is done; it must show NOT RUNNING."""
    pid = (await s._store.job(name)).owner_pid

    async def some_done() -> bool:
        return await granules_done(s, name) > 0

    assert await wait_until(some_done, 60)
    assert not await kill_runner(pid)
    assert await s.state(h) == JobState.NOT_RUNNING


async def restart(s: Session, name: str) -> None:
    h = await s.attach(name)
    await s.start_job(h)
    state = await s.wait_for_job(h)
    log = [t for _, _, t in await s._store.log_lines(name)]
    assert state == JobState.COMPLETED, log


@pytest.mark.asyncio
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_kill_9_during_export_and_import_then_restart_is_exact(pg_url, pg_url2, tmp_path):
    await big_source(pg_url)
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name="PG_EXP", database=pg_url)
        await s.add_file(h, "big%U.dmp", str(tmp_path))
        await s.set_parallel(h, 2)
        await s.set_parameter(h, "COMPRESSION_LEVEL", 9)  # slower: the kill lands mid-way
        await s.start_job(h, detached=True)
        await kill_once_started(s, "PG_EXP", h)
        total = len(await s._store.rows("PG_EXP", object_types=["TABLE_DATA"]))
        assert await granules_done(s, "PG_EXP") < total, "the export ended before the kill"
        await restart(s, "PG_EXP")
    files = sorted(tmp_path.glob("big*.dmp"))
    assert verify_paths(files).sound

    async with Session(home) as s:
        h = await s.open("IMPORT", "FULL", job_name="PG_IMP", database=pg_url2)
        await s.add_file(h, files[0].name, str(tmp_path))
        await s.set_parallel(h, 2)
        await s.start_job(h, detached=True)
        await kill_once_started(s, "PG_IMP", h)
        await restart(s, "PG_IMP")
    assert schema_dump(pg_url2) == schema_dump(pg_url)
    assert await table_rows(pg_url2) == await table_rows(pg_url)
    conn = await asyncpg.connect(pg_url2)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.pumpkit_import_markers')") is None
    finally:
        await conn.close()
