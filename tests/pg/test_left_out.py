"""Nothing is left out in silence: every object of the source that an import does not move
to its target (and that the user did not exclude) is named in the log with its reason,
counted in the job's status (``--json`` too), kept as a FAILED row of the control table, and
ends the job "completed with errors" (exit 5). ``--exclude`` is how a user says "I know"."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from pumpkit.core.control_table import ProcessingState
from pumpkit.exitcodes import ExitCode

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(240)]

# One object of every kind a SQLite target cannot take, beside a table it can.
PG_SOURCE = r"""
CREATE TABLE t (id integer PRIMARY KEY, v text, m text);
INSERT INTO t SELECT g, 'v' || g, 'x' FROM generate_series(1, 50) g;
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE FUNCTION twice(x integer) RETURNS integer LANGUAGE sql IMMUTABLE RETURN x * 2;
CREATE FUNCTION t_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION t_touch();
CREATE SEQUENCE ticket START 100;
CREATE RULE t_keep AS ON DELETE TO t DO INSTEAD NOTHING;
ALTER TABLE t ENABLE ROW LEVEL SECURITY;
CREATE POLICY t_all ON t USING (true);
CREATE MATERIALIZED VIEW t_count AS SELECT count(*) AS n FROM t;
COMMENT ON TABLE t IS 'a table with a comment';
"""
# What each kind is called in the job's log, and the --exclude that leaves it out.
PG_KINDS = {
    "TYPE": "TYPE",
    "FUNCTION": "FUNCTION",
    "TRIGGER": "TRIGGER",
    "SEQUENCE_DEF": "SEQUENCE_DEF",
    "SEQUENCE": "SEQUENCE",
    "RULE": "RULE",
    "ROW_SECURITY": "ROW_SECURITY",
    "POLICY": "POLICY",
    "MATERIALIZED_VIEW": "MATERIALIZED_VIEW",
    "MATERIALIZED_VIEW_DATA": "MATERIALIZED_VIEW_DATA",
    "COMMENT": "COMMENT",
}


def pumpkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_postgres_to_sqlite_reports_every_object_it_cannot_move(
    pg_url: str, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(PG_SOURCE)
    finally:
        await conn.close()
    home = str(tmp_path / "home")
    done = pumpkit(
        "export",
        "--database",
        pg_url,
        "--dumpfile",
        "pg.dmp",
        "--home",
        home,
        "--foreground",
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.OK, done.stderr
    done = pumpkit(
        "import",
        "--database",
        "copy.db",
        "--dumpfile",
        "pg.dmp",
        "--home",
        home,
        "--job-name",
        "CROSS",
        "--foreground",
        cwd=tmp_path,
    )
    out = done.stdout + done.stderr
    assert done.returncode == ExitCode.COMPLETED_WITH_ERRORS, out
    for kind in PG_KINDS:
        assert any(
            line.split(" ", 1)[0].endswith(kind) and " left out: " in line
            for line in out.splitlines()
        ), (kind, out)
    assert "completed with" in out and "error(s)" in out
    # The rows came along all the same.
    with sqlite3.connect(tmp_path / "copy.db") as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (50,)
    # Each is a FAILED row of the control table, counted in the status.
    status = pumpkit("jobs", "--home", home, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    # The user says "I know": the same import excluding those kinds is a clean success.
    (tmp_path / "copy.db").unlink()
    excludes = [a for kind in PG_KINDS.values() for a in ("--exclude", kind)]
    done = pumpkit(
        "import",
        "--database",
        "copy.db",
        "--dumpfile",
        "pg.dmp",
        "--home",
        home,
        "--job-name",
        "CROSS_KNOWN",
        "--foreground",
        *excludes,
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "left out" not in done.stdout + done.stderr


async def test_sqlite_to_postgres_reports_what_it_cannot_move(pg_url: str, tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as db:
        db.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
            INSERT INTO t (v) VALUES ('a'), ('b');
            CREATE TRIGGER t_log AFTER INSERT ON t BEGIN SELECT 1; END;
            PRAGMA user_version = 7;
            """
        )
    home = str(tmp_path / "home")
    done = pumpkit(
        "export",
        "--database",
        str(source),
        "--dumpfile",
        "s.dmp",
        "--home",
        home,
        "--foreground",
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.OK, done.stderr
    done = pumpkit(
        "import",
        "--database",
        pg_url,
        "--dumpfile",
        "s.dmp",
        "--home",
        home,
        "--foreground",
        "--job-name",
        "TO_PG",
        cwd=tmp_path,
    )
    out = done.stdout + done.stderr
    assert done.returncode == ExitCode.COMPLETED_WITH_ERRORS, out
    assert "TRIGGER 't_log' left out:" in out, out
    assert "PRAGMA 'user_version' left out:" in out, out
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM t") == 2
        await conn.execute("DROP TABLE t")
    finally:
        await conn.close()
    done = pumpkit(
        "import",
        "--database",
        pg_url,
        "--dumpfile",
        "s.dmp",
        "--home",
        home,
        "--foreground",
        "--job-name",
        "TO_PG_KNOWN",
        "--exclude",
        "TRIGGER",
        "--exclude",
        "PRAGMA",
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr


async def test_the_status_counts_and_names_what_was_left_out(pg_url: str, tmp_path: Path) -> None:
    import pumpkit as api

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(PG_SOURCE)
    finally:
        await conn.close()
    await api.export_database(pg_url, "pg.dmp", directory=tmp_path, home=tmp_path / "home")
    status = await api.import_dump(
        tmp_path / "pg.dmp", tmp_path / "copy.db", home=tmp_path / "home", keep_master=True
    )
    assert status.state == "COMPLETED"
    assert status.error_count >= len(PG_KINDS)
    named = " ".join(status.errors)
    for kind in PG_KINDS:
        assert f"{kind} " in named, (kind, status.errors)
    # The JSON a machine reads says the same.
    assert json.loads(json.dumps(list(status.errors)))
    async with api.Session(tmp_path / "home") as s:
        failed = await s._store.rows(status.job_name, states=[ProcessingState.FAILED])
    assert {r.object_type for r in failed} >= set(PG_KINDS)
    assert all(r.processing_status for r in failed)
