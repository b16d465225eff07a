"""A PostgreSQL dump's schema archive under the job's options: REMAP_SCHEMA and REMAP_TABLE
rewrite its statements through PostgreSQL's parser, TABLE mode takes a table with its
partitions and dependents only, and ROLE imports as a role with only the rights it needs
(a crafted archive cannot drop a table it has nothing to do with)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

import pumpkit
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.testing.pg_rich import drop_roles

from .conftest import ADMIN_DSN, fresh_database

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

SOURCE = r"""
CREATE SCHEMA shop;
CREATE TYPE shop.state AS ENUM ('new', 'paid');
CREATE FUNCTION shop.double(x integer) RETURNS integer LANGUAGE sql IMMUTABLE RETURN x * 2;
CREATE TABLE shop.item (id integer PRIMARY KEY, name text NOT NULL, state shop.state DEFAULT 'new');
CREATE INDEX item_name ON shop.item (name);
CREATE TABLE shop.sale (
    id bigint GENERATED ALWAYS AS IDENTITY, item_id integer REFERENCES shop.item (id),
    at date NOT NULL, qty integer CHECK (qty > 0), PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE shop.sale_2023 PARTITION OF shop.sale FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE shop.sale_rest PARTITION OF shop.sale DEFAULT;
CREATE VIEW shop.paid AS SELECT * FROM shop.item WHERE state = 'paid';
CREATE TABLE public.other (x integer);
INSERT INTO shop.item SELECT g, 'item ' || g, CASE WHEN g % 2 = 0 THEN 'paid' ELSE 'new' END::shop.state
    FROM generate_series(1, 200) g;
INSERT INTO shop.sale (item_id, at, qty)
    SELECT 1 + g % 200, DATE '2023-06-01' + g % 400, 1 + g % 5 FROM generate_series(1, 2000) g;
INSERT INTO public.other SELECT generate_series(1, 10);
"""


async def _make(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _export(url: str, tmp_path: Path, **kwargs: object) -> Path:
    status = await pumpkit.export_database(
        url, "a%U.dmp", directory=tmp_path, home=tmp_path / "home", **kwargs
    )
    assert status.state == "COMPLETED" and status.error_count == 0, status.errors
    return tmp_path / "a01.dmp"


async def test_remap_schema_and_table_rewrite_the_archive(pg_url: str, tmp_path: Path) -> None:
    await _make(pg_url, SOURCE)
    dump = await _export(pg_url, tmp_path)
    async with fresh_database() as copy:
        async with Session(tmp_path / "home") as s:
            h = await s.open("IMPORT", "FULL", job_name="REMAPPED", database=copy)
            await s.add_file(h, dump.name, tmp_path)
            await s.metadata_remap(h, "REMAP_SCHEMA", "shop", "store")
            await s.metadata_remap(h, "REMAP_TABLE", "item", "article")
            await s.start_job(h)
            assert await s.wait_for_job(h) == JobState.COMPLETED
            status = await s.final_status("REMAPPED")
        assert status.error_count == 0, status.errors
        conn = await asyncpg.connect(copy)
        try:
            assert await conn.fetchval("SELECT count(*) FROM store.article") == 200
            assert await conn.fetchval("SELECT count(*) FROM store.sale") == 2000
            assert await conn.fetchval("SELECT count(*) FROM store.sale_2023") > 0
            assert await conn.fetchval("SELECT to_regnamespace('shop')") is None
            assert await conn.fetchval("SELECT store.double(21)") == 42
            assert await conn.fetchval("SELECT count(*) FROM store.paid") == 100
            # The foreign key follows the renamed table; the identity goes on.
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await conn.execute(
                    "INSERT INTO store.sale (item_id, at, qty) VALUES (999, '2023-02-02', 1)"
                )
            new = await conn.fetchval(
                "INSERT INTO store.sale (item_id, at, qty) VALUES (1, '2023-02-02', 1) RETURNING id"
            )
            assert new > 2000
        finally:
            await conn.close()


async def test_table_mode_takes_a_table_with_its_partitions_and_dependents(
    pg_url: str, tmp_path: Path
) -> None:
    await _make(pg_url, SOURCE)
    dump = await _export(pg_url, tmp_path, tables=["sale", "item"])
    async with fresh_database() as copy:
        status = await pumpkit.import_dump(dump, copy, home=tmp_path / "home")
        assert status.state == "COMPLETED" and status.error_count == 0, status.errors
        conn = await asyncpg.connect(copy)
        try:
            tables = {
                r[0]
                for r in await conn.fetch(
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n"
                    " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v')"
                    " AND n.nspname IN ('shop', 'public')"
                )
            }
            assert tables == {"shop.item", "shop.sale", "shop.sale_2023", "shop.sale_rest"}
            assert await conn.fetchval("SELECT count(*) FROM shop.sale") == 2000
            indexes = {
                r[0]
                for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'shop'"
                )
            }
            assert "item_name" in indexes and "item_pkey" in indexes
        finally:
            await conn.close()


async def test_a_role_with_only_the_rights_it_needs_cannot_drop_an_unrelated_table(
    pg_url: str, tmp_path: Path
) -> None:
    """The dump is crafted: refreshing its materialized view runs a function that drops a
    table it has nothing to do with. Imported as a role that may only create in the schema,
    the table survives and the import names the entry that failed and why."""
    await _make(
        pg_url,
        "CREATE FUNCTION public.innocent() RETURNS int LANGUAGE plpgsql AS $$"
        " BEGIN EXECUTE 'DROP TABLE IF EXISTS public.victim'; RETURN 1; END $$;"
        " CREATE MATERIALIZED VIEW public.looks_harmless AS SELECT public.innocent() AS n;"
        " CREATE TABLE public.kept (x integer); INSERT INTO public.kept VALUES (1)",
    )
    dump = await _export(pg_url, tmp_path)
    role = f"pk_import_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        async with fresh_database() as copy:
            await _make(
                copy,
                "CREATE TABLE public.victim (precious text); INSERT INTO public.victim VALUES ('x');"
                f' GRANT CREATE ON SCHEMA public TO "{role}"',
            )
            async with Session(tmp_path / "home") as s:
                h = await s.open("IMPORT", "FULL", job_name="AS_ROLE", database=copy)
                await s.add_file(h, dump.name, tmp_path)
                await s.set_parameter(h, "ROLE", role)
                await s.set_parameter(h, "NO_OWNER", 1)
                await s.start_job(h)
                assert await s.wait_for_job(h) == JobState.COMPLETED
                status = await s.final_status("AS_ROLE")
            conn = await asyncpg.connect(copy)
            try:
                assert await conn.fetchval("SELECT count(*) FROM public.victim") == 1
                assert await conn.fetchval("SELECT count(*) FROM public.kept") == 1
                owner = await conn.fetchval(
                    "SELECT tableowner FROM pg_tables WHERE tablename = 'kept'"
                )
                assert owner == role
            finally:
                await conn.close()
            assert status.error_count >= 1
            assert any(
                "MATERIALIZED_VIEW_DATA looks_harmless" in e
                and "must be owner of table victim" in e
                for e in status.errors
            ), status.errors
    finally:
        await admin.close()
        await drop_roles(ADMIN_DSN, (role,))


async def test_the_command_line_takes_remap_schema_role_and_no_owner(
    pg_url: str, tmp_path: Path
) -> None:
    """impdp's and pg_restore's habits on the command line: ``--remap-schema``, ``--role`` and
    ``--no-owner`` reach the job (a parfile's REMAP_SCHEMA/ROLE/NO_OWNER lines as well)."""
    await _make(pg_url, SOURCE)
    await _export(pg_url, tmp_path)
    role = f"pk_cli_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        async with fresh_database() as copy:
            await _make(copy, f'GRANT CREATE ON DATABASE "{copy.rsplit("/", 1)[1]}" TO "{role}"')
            parfile = tmp_path / "imp.par"
            parfile.write_text(f"REMAP_SCHEMA=shop:store\nROLE={role}\n")
            env = {**os.environ, "PUMPKIT_HOME": str(tmp_path / "home")}
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pumpkit",
                    "import",
                    "--database",
                    copy,
                    "--dumpfile",
                    "a01.dmp",
                    "--directory",
                    str(tmp_path),
                    "--parfile",
                    str(parfile),
                    "--no-owner",
                    "--exclude",
                    "TABLE:\"= 'other'\"",
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=150,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            conn = await asyncpg.connect(copy)
            try:
                assert await conn.fetchval("SELECT count(*) FROM store.sale") == 2000
                owners = {
                    r[0]
                    for r in await conn.fetch(
                        "SELECT tableowner FROM pg_tables WHERE schemaname = 'store'"
                    )
                }
                assert owners == {role}
            finally:
                await conn.close()
    finally:
        await admin.close()
        await drop_roles(ADMIN_DSN, (role,))
