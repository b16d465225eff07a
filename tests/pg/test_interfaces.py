"""The Source and Target interfaces are real: a LOAD job into a PostgreSQL table (with kill -9
and a restart: each input row exactly once) and an output module on a PostgreSQL export both
run through them, with nothing in the engine that knows which engine it talks to."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import asyncpg
import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from process_helpers import kill_runner, wait_until

import pumpkit
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

ROWS = 60_000


async def _target(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE SCHEMA app;"
            " CREATE TABLE app.people (id bigint PRIMARY KEY, name text NOT NULL,"
            "  born date, score numeric(6,2), ok boolean, pic bytea)"
        )
    finally:
        await conn.close()


def _input(path: Path, rows: int) -> Path:
    with open(path, "w") as fh:
        for i in range(1, rows + 1):
            born = f"19{i % 100:02d}-0{1 + i % 9}-1{i % 10}"
            fh.write(f"{i}|person {i}|{born}|{(i % 10000) / 100}|{'true' if i % 2 else 'false'}\n")
        fh.write(f"{rows + 1}|x||bad score|maybe\n")  # fails in the table: to the error table
    return path


async def _define_load(s: Session, name: str, url: str, data: Path, *, checkpoint: int) -> int:
    h = await s.open("LOAD", "TABLE", job_name=name, database=url)
    await s.set_parameter(h, "TARGET_TABLE", "app.people")
    await s.set_parameter(h, "INMOD", "pumpkit.io.inmods:DelimitedFile")
    await s.set_parameter(h, "INMOD_PARMS", str(data))
    await s.set_parameter(h, "CHECKPOINT", checkpoint)
    await s.set_parameter(h, "COLUMNS", "id,name,born,score,ok")
    return h


async def _loaded(url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0) FROM app.people"
        )
        return int(rows[0]), int(rows[1]), int(rows[2])
    finally:
        await conn.close()


async def _checkpoints(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('public.pumpkit_restart_log') IS NOT NULL")
        if not exists:
            return 0
        return int(await conn.fetchval("SELECT count(*) FROM public.pumpkit_restart_log"))
    finally:
        await conn.close()


async def test_a_load_into_postgresql(pg_url: str, tmp_path: Path) -> None:
    await _target(pg_url)
    data = _input(tmp_path / "people.txt", 3000)
    async with Session(tmp_path / "home") as s:
        h = await _define_load(s, "PGLOAD", pg_url, data, checkpoint=1000)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
        status = await s.final_status("PGLOAD")
    assert await _loaded(pg_url) == (3000, 3000, 3000 * 3001 // 2)
    assert status.error_count == 1  # the bad record is in the error table, not lost in silence
    conn = await asyncpg.connect(pg_url)
    try:
        row = await conn.fetchrow(
            "SELECT sequence, error FROM public.pumpkit_load_errors WHERE job_name = 'PGLOAD'"
        )
        person = await conn.fetchrow("SELECT * FROM app.people WHERE id = 7")
        restart_log = await conn.fetchval("SELECT to_regclass('public.pumpkit_restart_log')")
    finally:
        await conn.close()
    assert row["sequence"] == 3001 and "bad score" in row["error"], row["error"]
    assert person["name"] == "person 7" and str(person["born"]) == "1907-08-17"
    assert str(person["score"]) == "0.07" and person["ok"] is True
    assert restart_log is None  # the completed load forgot its restart log


async def test_a_load_into_postgresql_killed_and_restarted_loads_each_row_once(
    pg_url: str, tmp_path: Path
) -> None:
    await _target(pg_url)
    data = _input(tmp_path / "people.txt", ROWS)
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await _define_load(s, "PGLOAD_KILLED", pg_url, data, checkpoint=500)
        await s.start_job(h, detached=True)
        pid = (await s._store.job("PGLOAD_KILLED")).owner_pid
        assert await wait_until(lambda: _checkpoints(pg_url), 60, interval=0.01)
        await kill_runner(pid)
        state = await s.state(h)
        if state is JobState.COMPLETED:
            pytest.skip("the load finished before the kill")
        assert state is JobState.NOT_RUNNING
        killed_at = await _loaded(pg_url)
        assert 0 < killed_at[0] < ROWS
        await s.release(h)
        h = await s.attach("PGLOAD_KILLED")
        await s.start_job(h, detached=True)

        async def ended() -> bool:
            record = await s._store.job("PGLOAD_KILLED")
            return record is not None and record.state in ("COMPLETED", "STOPPED")

        assert await wait_until(ended, 120)
        log = [t for _, _, t in await s._store.log_lines("PGLOAD_KILLED")]
        assert (await s._store.job("PGLOAD_KILLED")).state == "COMPLETED", log
    assert await _loaded(pg_url) == (ROWS, ROWS, ROWS * (ROWS + 1) // 2)
    assert any(line.startswith("Restarting the load after checkpoint") for line in log), log


OUTMOD = textwrap.dedent(
    """
    import msgspec

    class Collect:
        async def initialize(self, parms):
            self.path, self.rows = parms, []
        async def receive(self, record):
            self.rows.append(msgspec.msgpack.decode(record))
        async def close(self):
            with open(self.path, "wb") as f:
                f.write(msgspec.msgpack.encode(self.rows))
    """
)


async def test_an_output_module_on_a_postgresql_export(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pg_outmod_for_test.py").write_text(OUTMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric, d date, b bytea);"
            " INSERT INTO t SELECT g, 'v' || g, g / 4.0, DATE '2020-01-01' + g,"
            "  decode(md5(g::text), 'hex') FROM generate_series(1, 5000) g"
        )
        expected = [
            ["t", [r["id"], r["v"], r["n"], r["d"], bytes(r["b"])]]
            for r in await conn.fetch(
                "SELECT id, v, n::text AS n, d::text AS d, b FROM t ORDER BY id"
            )
        ]
    finally:
        await conn.close()
    out = tmp_path / "rows.msgpack"
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="PG_OUTMOD", database=pg_url)
        await s.add_file(h, "beside.dmp", directory=tmp_path)
        await s.set_parameter(h, "OUTMOD", "pg_outmod_for_test:Collect")
        await s.set_parameter(h, "OUTMOD_PARMS", str(out))
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
    got = sorted(msgspec.msgpack.decode(out.read_bytes()), key=lambda r: r[1][0])
    assert got == expected
    sys.modules.pop("pg_outmod_for_test", None)
