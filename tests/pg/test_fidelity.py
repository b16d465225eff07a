"""PostgreSQL to PostgreSQL at pg_dump's fidelity, on a database as rich as real ones
(``pumpkit.testing.pg_rich``: two schemas and public, extensions, partitions over two levels
with defaults, inheritance, functions, a procedure, an aggregate, an operator, a cast,
triggers and a constraint trigger, an event trigger, rules, materialized views populated or
not, a collation, a text-search configuration, domains, an enum, a foreign server and table,
row-level security, publications, owners, grants and default privileges, comments, large
objects, statistics, an unlogged table, replica identity, sequences, odd names).

The bar is pg_dump: the copy's ``pg_dump --schema-only`` (normalised) equals the source's,
every relation's rows are equal (count and md5), and the copy works.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from process_helpers import kill_runner, wait_until

import pumpkit
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.io.connectors.postgres.tools import tools_for
from pumpkit.testing.pg_rich import (
    normalized_schema,
    relation_fingerprints,
)

from .conftest import Rich, fresh_database

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(300), pytest.mark.slow]


async def export(url: str, directory: Path, home: Path, *, parallel: int = 2) -> list[Path]:
    status = await pumpkit.export_database(
        url, "rich%U.dmp", directory=directory, parallel=parallel, home=home, job_name="RICH_EXP"
    )
    assert status.state == "COMPLETED", status.errors
    assert status.error_count == 0, status.errors
    return sorted(directory.glob("rich*.dmp"))


async def assert_same(source: str, copy: str) -> None:
    assert await normalized_schema(copy) == await normalized_schema(source)
    assert await relation_fingerprints(copy) == await relation_fingerprints(source)


async def assert_it_works(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        # A trigger fires: the touch trigger sets "updated".
        await conn.execute(
            "UPDATE app.stock SET qty = qty + 1 WHERE item = (SELECT min(item) FROM app.stock)"
        )
        assert await conn.fetchval(
            "SELECT updated IS NOT NULL FROM app.stock WHERE item = (SELECT min(item) FROM app.stock)"
        )
        # The constraint trigger refuses a negative stock at commit.
        with pytest.raises(asyncpg.RaiseError, match="below zero"):
            async with conn.transaction():
                await conn.execute("INSERT INTO app.stock (item, qty) VALUES ('x-neg', -1)")
        # Functions, the aggregate, the operator and the cast run.
        assert await conn.fetchval("SELECT app.product(x) FROM (VALUES (2), (3), (7)) v(x)") == 42
        assert await conn.fetchval("SELECT 'happy'::app.mood::integer") == 2
        assert await conn.fetchval("SELECT 1.001 OPERATOR(app.=~=) 1.002")
        # A row inserted into the partitioned table lands in the right partition.
        where = await conn.fetchval(
            "INSERT INTO app.measurement (sensor, taken, value) VALUES (7, '2023-06-01', 1.5)"
            " RETURNING tableoid::regclass::text"
        )
        assert where == "app.measurement_2023"
        where = await conn.fetchval(
            "INSERT INTO app.orders (region, amount, placed) VALUES ('zz', 1, now())"
            " RETURNING tableoid::regclass::text"
        )
        assert where == "app.orders_rest"
        # The populated materialized view refreshes concurrently (it has a unique index);
        # the other one is still unpopulated, as in the source.
        await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY app.daily_totals")
        assert not await conn.fetchval(
            "SELECT relispopulated FROM pg_class WHERE oid = 'app.sensor_stats'::regclass"
        )
        # A large object reads back.
        data = await conn.fetchval("SELECT lo_get(424242)")
        assert bytes(data) == ("large object one " * 500).encode()
        # Serial and identity columns go on past the rows.
        top = await conn.fetchval("SELECT max(id) FROM app.audit_log")
        new = await conn.fetchval("INSERT INTO app.audit_log (what) VALUES ('x') RETURNING id")
        assert new > top
        top = await conn.fetchval("SELECT max(id) FROM app.customer")
        new = await conn.fetchval(
            "INSERT INTO app.customer (email, name) VALUES ('new@example.com', 'new') RETURNING id"
        )
        assert new > top
    finally:
        await conn.close()


async def test_a_rich_database_comes_back_as_pg_dump_sees_it(rich: Rich, tmp_path: Path) -> None:
    files = await export(rich.url, tmp_path, tmp_path / "home")
    async with fresh_database() as copy:
        status = await pumpkit.import_dump(
            files[0], copy, directory=tmp_path, parallel=2, home=tmp_path / "home"
        )
        assert status.state == "COMPLETED", status.errors
        assert status.error_count == 0, status.errors
        await assert_same(rich.url, copy)
        await assert_it_works(copy)


async def test_the_sqlfile_of_a_postgresql_dump_replays_with_psql(
    rich: Rich, tmp_path: Path
) -> None:
    files = await export(rich.url, tmp_path, tmp_path / "home")
    async with Session(tmp_path / "home") as s:
        h = await s.open("IMPORT", "FULL", job_name="RICH_SQL")
        await s.add_file(h, files[0].name, tmp_path)
        await s.add_file(h, "rich.sql", tmp_path, filetype="SQL")
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
    tools = await tools_for(rich.url)
    async with fresh_database() as empty:
        done = await anyio.run_process(
            [
                tools.psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--dbname",
                empty,
                "-f",
                str(tmp_path / "rich.sql"),
            ],
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert await normalized_schema(empty) == await normalized_schema(rich.url)


async def test_kill_9_during_the_partitioned_data_then_restart_is_exact(
    rich: Rich, tmp_path: Path
) -> None:
    files = await export(rich.url, tmp_path, tmp_path / "home", parallel=1)
    home = tmp_path / "home"
    async with fresh_database() as copy:
        async with Session(home) as s:
            h = await s.open("IMPORT", "FULL", job_name="RICH_IMP", database=copy)
            await s.add_file(h, files[0].name, tmp_path)
            await s.set_parallel(h, 1)
            await s.start_job(h, detached=True)
            pid = (await s._store.job("RICH_IMP")).owner_pid

            async def partition_loading() -> bool:
                if not await s._store.has_control_table("RICH_IMP"):
                    return True
                rows = await s._store.rows("RICH_IMP", object_types=["TABLE_DATA"])
                return any(r.done and "measurement" in (r.object_name or "") for r in rows)

            assert await wait_until(partition_loading, 120)
            await kill_runner(pid)
            if await s.state(h) is JobState.COMPLETED:
                pytest.skip("the import finished before the kill")
            await s.release(h)
            h = await s.attach("RICH_IMP")
            await s.start_job(h)
            assert await s.wait_for_job(h) == JobState.COMPLETED
            status = await s.final_status("RICH_IMP")
        assert status.error_count == 0, status.errors
        await assert_same(rich.url, copy)
