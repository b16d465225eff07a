"""A parallel export reads one committed state while the application keeps writing, and its
control table can be read with plain SQL during the job and after it (KEEP_MASTER)."""

from __future__ import annotations

import sqlite3
import threading
import time

import anyio
import pytest

import pumpkit
from pumpkit.core import planner
from pumpkit.io.dumpset.reader import DumpSetReader


def _make_source(path, rows):
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, pad TEXT);"
            "CREATE TABLE b (id INTEGER PRIMARY KEY, pad TEXT);"
            "CREATE TABLE counter (n INTEGER);"
        )
        pad = "x" * 200
        conn.executemany("INSERT INTO a VALUES (?, ?)", ((i, pad) for i in range(1, rows + 1)))
        conn.executemany("INSERT INTO b VALUES (?, ?)", ((i, pad) for i in range(1, rows + 1)))
        conn.execute("INSERT INTO counter VALUES (?)", (rows,))


def _keep_writing(path, stop: threading.Event, committed: list[int]):
    """One transaction at a time: a row into a, a row into b, the counter up; so any
    consistent state has count(a) == count(b) == counter."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    n = conn.execute("SELECT n FROM counter").fetchone()[0]
    while not stop.is_set():
        n += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO a VALUES (?, 'new')", (n,))
        conn.execute("INSERT INTO b VALUES (?, 'new')", (n,))
        conn.execute("UPDATE counter SET n = ?", (n,))
        conn.execute("COMMIT")
        committed.append(n)
    conn.close()


@pytest.mark.asyncio
async def test_parallel_export_sees_one_state_while_the_source_is_written(tmp_path, monkeypatch):
    source = tmp_path / "live.db"
    _make_source(source, 60_000)
    # Small granules: many reads at different moments, by both workers.
    monkeypatch.setattr(planner, "DEFAULT_GRANULE_BYTES", 256 * 1024)
    monkeypatch.setattr("pumpkit.io.connectors.sqlite.source.DEFAULT_GRANULE_BYTES", 256 * 1024)
    stop = threading.Event()
    committed: list[int] = []
    writer = threading.Thread(target=_keep_writing, args=(source, stop, committed))
    writer.start()
    try:
        while len(committed) < 50:
            await anyio.sleep(0.01)
        before = committed[-1]
        status = await pumpkit.export_database(
            source, "live.dmp", directory=tmp_path, parallel=2, home=tmp_path / "home"
        )
        after_export = committed[-1]
        while committed[-1] < after_export + 50:
            await anyio.sleep(0.01)
    finally:
        stop.set()
        writer.join()
    assert status.state == "COMPLETED", status.errors
    with DumpSetReader.open([tmp_path / "live.dmp"]) as reader:
        granules = {o.name: len(o.frames) for o in reader.objects()}
    assert granules["a"] > 4 and granules["b"] > 4, "the test needs many reads"

    target = tmp_path / "copy.db"
    status = await pumpkit.import_dump(tmp_path / "live.dmp", target, home=tmp_path / "home")
    assert status.state == "COMPLETED", status.errors
    with sqlite3.connect(target) as conn:
        count_a = conn.execute("SELECT count(*) FROM a").fetchone()[0]
        count_b = conn.execute("SELECT count(*) FROM b").fetchone()[0]
        counter = conn.execute("SELECT n FROM counter").fetchone()[0]
        max_a = conn.execute("SELECT max(id) FROM a").fetchone()[0]
    # One state: the three agree, and it is a state from the start of the export.
    assert count_a == count_b == counter == max_a
    assert before <= counter < after_export
    assert committed[-1] > counter + 50, "the application kept writing during and after"


@pytest.mark.asyncio
async def test_control_table_is_plain_sql_during_and_after_the_job(tmp_path):
    source = tmp_path / "src.db"
    _make_source(source, 20_000)
    home = tmp_path / "home"
    seen_during: list[tuple] = []
    async with pumpkit.Session(home) as session:
        h = await session.open("EXPORT", "FULL", job_name="NIGHTLY", database=source)
        await session.add_file(h, "n%U.dmp", directory=tmp_path)
        await session.set_parameter(h, "KEEP_MASTER", 1)
        store_file = home / "pumpkit.db"
        with sqlite3.connect(store_file) as conn:
            # Created at OPEN, with the master table's column names.
            columns = [r[1] for r in conn.execute('PRAGMA table_info("NIGHTLY")')]
            for name in (
                "process_order",
                "object_type_path",
                "object_schema",
                "object_name",
                "processing_state",
                "dump_fileid",
                "dump_position",
                "dump_length",
                "completed_rows",
                "completed_bytes",
                "size_estimate",
            ):
                assert name in columns
        await session.start_job(h)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(store_file, timeout=10) as conn:
                seen_during = conn.execute(
                    'SELECT object_type, object_name, processing_state FROM "NIGHTLY"'
                    " WHERE process_order > 0"
                ).fetchall()
            if seen_during:
                break
            await anyio.sleep(0.01)
        assert await session.wait_for_job(h) == pumpkit.JobState.COMPLETED
    assert {"TABLE", "TABLE_DATA"} <= {r[0] for r in seen_during}
    with sqlite3.connect(store_file) as conn:
        rows = conn.execute(
            "SELECT object_name, sum(completed_rows), min(processing_state), max(processing_state)"
            " FROM \"NIGHTLY\" WHERE object_type = 'TABLE_DATA' GROUP BY object_name"
        ).fetchall()
        located = conn.execute(
            "SELECT count(*) FROM \"NIGHTLY\" WHERE object_type = 'TABLE_DATA'"
            " AND (dump_fileid IS NULL OR dump_position IS NULL OR dump_length IS NULL)"
        ).fetchone()[0]
    assert sorted(rows) == [
        ("a", 20_000, "C", "C"),
        ("b", 20_000, "C", "C"),
        ("counter", 1, "C", "C"),
    ]
    assert located == 0
