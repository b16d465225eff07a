"""pg_dump and pg_restore as pumpkit's schema path, against the real server and tools.

The full-copy tests are the proof the integration stands on: a database rebuilt from only
:mod:`pumpkit.io.connectors.postgres.tools` (pre-data, then rows copied with binary COPY, then
post-data) has the same schema and the same rows as its source — and they show, in code,
what the integration must move itself besides the rows.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from pumpkit.errors import ConnectorError, DumpError, InvalidArgumentError
from pumpkit.io.connectors.postgres import tools as pgtools
from pumpkit.io.connectors.postgres.statements import one_statement_of, remap_sql
from pumpkit.io.connectors.postgres.tools import (
    OBJECT_PATHS,
    TocEntry,
    dump_schema,
    find_tools,
    read_toc,
    restore,
    script,
    tools_for,
)
from pumpkit.testing.pg_rich import (
    RICH_LARGE_OBJECTS,
    drop_roles,
    normalized_schema,
    relation_fingerprints,
)

from .conftest import ADMIN_DSN, fresh_database

pytestmark = pytest.mark.postgres


def fake_tool(directory: Path, name: str, version: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


# --- finding the tools ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_tools_of_the_servers_version_are_found(pg_url):
    tools = await tools_for(pg_url)
    assert tools.version[0] >= await pgtools.server_major(pg_url)
    for path in (tools.pg_dump, tools.pg_restore, tools.psql):
        assert os.path.isabs(path) and os.access(path, os.X_OK)


@pytest.mark.asyncio
async def test_tools_older_than_the_server_are_refused_with_the_package_to_install(
    pg_url, tmp_path
):
    for name in ("pg_dump", "pg_restore", "psql"):
        fake_tool(tmp_path, name, "12.3")
    major = await pgtools.server_major(pg_url)
    with pytest.raises(ConnectorError) as caught:
        await tools_for(pg_url, path=str(tmp_path), library_dirs=())
    message = str(caught.value)
    assert f"postgresql-client-{major}" in message
    assert f"{tmp_path}/pg_dump (12.3)" in message
    # Nothing ran and nothing was written: dump_schema asks for the tools first.
    with pytest.raises(ConnectorError, match=f"postgresql-client-{major}"):
        find_tools(major, path=str(tmp_path), library_dirs=())


def test_missing_tools_say_none_was_found(tmp_path):
    with pytest.raises(ConnectorError, match=r"found: none\. Install .*postgresql-client-15"):
        find_tools(15, path=str(tmp_path), library_dirs=())


def test_the_newest_fitting_install_wins_over_an_old_one_first_on_path(tmp_path):
    old, new, newer = tmp_path / "old", tmp_path / "lib" / "15" / "bin", tmp_path / "lib16"
    for directory, version in ((old, "12.3"), (new, "15.20"), (newer, "16.4")):
        directory.mkdir(parents=True)
        for name in ("pg_dump", "pg_restore", "psql"):
            fake_tool(directory, name, version)
    tools = find_tools(15, path=str(old), library_dirs=[str(tmp_path / "lib" / "*" / "bin")])
    assert tools.pg_dump == str(new / "pg_dump") and tools.version == (15, 20)
    both = find_tools(15, path=f"{old}{os.pathsep}{newer}", library_dirs=[str(new)])
    assert both.version == (16, 4)
    # pg_restore of another version than pg_dump's: that installation does not count.
    (newer / "pg_restore").unlink()
    fake_tool(newer, "pg_restore", "17.0")
    assert find_tools(15, path=str(newer), library_dirs=[str(new)]).version == (15, 20)


# --- what a schema-only archive holds -----------------------------------------------------------

# Every kind the rich fixture has, with the section pg_restore puts it in.
EXPECTED_KINDS = {
    ("SCHEMA", "pre-data"),
    ("EXTENSION", "pre-data"),
    ("COLLATION", "pre-data"),
    ("DOMAIN", "pre-data"),
    ("TYPE", "pre-data"),
    ("FUNCTION", "pre-data"),
    ("PROCEDURE", "pre-data"),
    ("AGGREGATE", "pre-data"),
    ("OPERATOR", "pre-data"),
    ("CAST", "pre-data"),
    ("TEXT SEARCH CONFIGURATION", "pre-data"),
    ("SERVER", "pre-data"),
    ("USER MAPPING", "pre-data"),
    ("TABLE", "pre-data"),
    ("FOREIGN TABLE", "pre-data"),
    ("TABLE ATTACH", "pre-data"),
    ("SEQUENCE", "pre-data"),
    ("SEQUENCE OWNED BY", "pre-data"),
    ("DEFAULT", "pre-data"),
    ("VIEW", "pre-data"),
    ("MATERIALIZED VIEW", "pre-data"),
    ("COMMENT", "pre-data"),
    ("ACL", "pre-data"),
    ("CONSTRAINT", "post-data"),
    ("FK CONSTRAINT", "post-data"),
    ("INDEX", "post-data"),
    ("INDEX ATTACH", "post-data"),
    ("STATISTICS", "post-data"),
    ("TRIGGER", "post-data"),
    ("RULE", "post-data"),
    ("POLICY", "post-data"),
    ("ROW SECURITY", "post-data"),
    ("PUBLICATION", "post-data"),
    ("PUBLICATION TABLE", "post-data"),
    ("PUBLICATION TABLES IN SCHEMA", "post-data"),
    ("DEFAULT ACL", "post-data"),
    ("EVENT TRIGGER", "post-data"),
}


def by_name(toc: list[TocEntry], desc: str, name: str) -> TocEntry:
    (entry,) = [e for e in toc if e.desc == desc and e.name == name]
    return entry


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_the_toc_of_the_rich_fixture_lists_every_kind_in_its_section(rich):
    archive = await dump_schema(rich.url)
    toc = await read_toc(archive)
    kinds = {(e.desc, e.section) for e in toc}
    assert kinds == EXPECTED_KINDS, kinds ^ EXPECTED_KINDS
    assert all(e.desc in OBJECT_PATHS for e in toc)
    assert all(not e.object_type_path.startswith("UNKNOWN") for e in toc)
    # What a schema-only archive leaves out: rows, sequence values, materialized views'
    # contents, large objects (even their metadata).
    assert not {"TABLE DATA", "SEQUENCE SET", "MATERIALIZED VIEW DATA", "BLOB", "BLOBS"} & {
        e.desc for e in toc
    }
    # Extensions' members are not dumped: citext's functions are the extension's business.
    assert not [e for e in toc if e.desc == "FUNCTION" and e.schema == "public"]
    # Names exactly, newlines and quotes and semicolons included, and each entry's table.
    assert by_name(toc, "VIEW", "two\nlines").schema == "public"
    odd = by_name(toc, "TABLE", 'Odd "Quoted" Table; DROP TABLE x')
    assert odd.owner == "postgres" and odd.catalog_oid == 1259
    assert by_name(toc, "INDEX", "odd index; name").table == "MixedCase"
    trigger = by_name(toc, "TRIGGER", "measurement measurement_touch")
    assert (trigger.table, trigger.own_name) == ("measurement", "measurement_touch")
    assert trigger.object_type_path == "SCHEMA/TABLE/TRIGGER"
    assert by_name(toc, "TABLE", "customer").owner == rich.roles.owner
    column_grant = by_name(toc, "ACL", "COLUMN customer.email")
    assert column_grant.table == "customer"
    assert column_grant.object_type_path == "SCHEMA/TABLE/COLUMN/GRANT"
    assert by_name(toc, "FK CONSTRAINT", "orders orders_customer_id_fkey").object_type_path == (
        "SCHEMA/TABLE/CONSTRAINT/REF_CONSTRAINT"
    )
    attach = by_name(toc, "TABLE ATTACH", "measurement_2024_h0")
    parts = {e.dump_id: e for e in toc}
    assert {parts[d].name for d in attach.dependencies or ()} == {
        "measurement_2024_h0",
        "measurement_2024",
    }
    assert by_name(toc, "EVENT TRIGGER", "pk_note_ddl").schema is None
    assert toc[-1].desc == "EVENT TRIGGER"  # last, so that it fires on nothing restored
    # Every dependency is an entry of the archive, and comes first in its order.
    position = {e.dump_id: i for i, e in enumerate(toc)}
    for e in toc:
        assert e.dependencies is not None
        for d in e.dependencies:
            if d in position:
                assert position[d] < position[e.dump_id], (e, parts[d])


@pytest.mark.asyncio
async def test_the_sections_dump_adds_large_objects_metadata_and_refreshes(rich):
    archive = await dump_schema(rich.url, sections=True)
    toc = await read_toc(archive)
    blobs = [e for e in toc if e.desc == "BLOB"]
    assert sorted(int(e.name) for e in blobs) == sorted(RICH_LARGE_OBJECTS)
    assert {e.section for e in blobs} == {"pre-data"}
    assert by_name(toc, "COMMENT", "LARGE OBJECT 424242").section == "pre-data"
    assert by_name(toc, "ACL", "LARGE OBJECT 424243").section == "pre-data"
    refreshes = [e for e in toc if e.desc == "MATERIALIZED VIEW DATA"]
    assert [(e.name, e.section) for e in refreshes] == [("daily_totals", "post-data")]
    assert not {"TABLE DATA", "SEQUENCE SET", "BLOBS"} & {e.desc for e in toc}
    plain = {(e.desc, e.name) for e in await read_toc(await dump_schema(rich.url))}
    assert {(e.desc, e.name) for e in toc} - plain == {
        (e.desc, e.name)
        for e in toc
        if e.desc in ("BLOB", "MATERIALIZED VIEW DATA") or "LARGE OBJECT" in e.name
    }


@pytest.mark.asyncio
async def test_quoting_all_identifiers_dumps_publics_default_comment(pg_url):
    """Why dump_schema does not quote every name by default: pg_dump 15 then dumps public's
    default comment, which only public's owner may restore, and COMMENT and ACL tags change."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE t (a int); GRANT SELECT ON t TO PUBLIC")
    finally:
        await conn.close()
    plain = {(e.desc, e.name) for e in await read_toc(await dump_schema(pg_url))}
    quoted = {
        (e.desc, e.name)
        for e in await read_toc(await dump_schema(pg_url, quote_all_identifiers=True))
    }
    assert plain ^ quoted == {
        ("ACL", "TABLE t"),
        ("ACL", 'TABLE "t"'),
        ("COMMENT", 'SCHEMA "public"'),
    }


@pytest.mark.asyncio
async def test_the_schema_is_the_snapshots(pg_url):
    conn = await asyncpg.connect(pg_url)
    other = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE before_snapshot (a int)")
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
        await other.execute("CREATE TABLE after_snapshot (a int)")
        names = {e.name for e in await read_toc(await dump_schema(pg_url, snapshot))}
        assert "before_snapshot" in names and "after_snapshot" not in names
        await conn.execute("COMMIT")
    finally:
        await conn.close()
        await other.close()


@pytest.mark.asyncio
async def test_a_toc_that_cannot_be_read_falls_back_to_the_listing(rich, monkeypatch):
    archive = await dump_schema(rich.url)
    exact = await read_toc(archive)
    monkeypatch.setattr(pgtools, "_archive_toc", lambda data: None)
    listed = await read_toc(archive)
    assert [(e.dump_id, e.desc, e.section) for e in listed] == [
        (e.dump_id, e.desc, e.section) for e in exact
    ]
    assert all(e.dependencies is None and e.table is None for e in listed)
    # Names without spaces come through the listing alone; those with them cannot.
    assert by_name(listed, "TABLE", "customer").owner == rich.roles.owner
    assert by_name(listed, "VIEW", "two lines").schema == "public"


# --- the full copy: the schema/data split the integration will use ------------------------------


async def copy_rows(source: str, target: str) -> int:
    """Every table's own rows (leaf partitions, inheritance parents and children) by binary
    COPY; how many tables."""
    src, dst = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        tables = await src.fetch(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2"
        )
        for t in tables:
            buffer = io.BytesIO()
            await src.copy_from_table(
                t["relname"], schema_name=t["nspname"], output=buffer, format="binary"
            )
            buffer.seek(0)
            await dst.copy_to_table(
                t["relname"], schema_name=t["nspname"], source=buffer, format="binary"
            )
        return len(tables)
    finally:
        await src.close()
        await dst.close()


async def copy_sequences(source: str, target: str) -> None:
    src, dst = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        for s in await src.fetch(
            "SELECT format('%I.%I', schemaname, sequencename) AS name FROM pg_sequences"
        ):
            row = await src.fetchrow(f"SELECT last_value, is_called FROM {s['name']}")
            assert row is not None
            await dst.execute(
                "SELECT setval($1::regclass, $2, $3)",
                s["name"],
                row["last_value"],
                row["is_called"],
            )
    finally:
        await src.close()
        await dst.close()


async def copy_large_objects(source: str, target: str, *, metadata: bool) -> None:
    """Each large object's bytes; with ``metadata``, first the object itself, its owner,
    comment and grants (a schema-only archive has none of them)."""
    src, dst = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        for lo in await src.fetch(
            "SELECT m.oid::bigint AS oid, r.rolname AS owner, lo_get(m.oid) AS data,"
            " obj_description(m.oid, 'pg_largeobject') AS comment, m.lomacl::text[] AS acl"
            " FROM pg_largeobject_metadata m JOIN pg_roles r ON r.oid = m.lomowner ORDER BY 1"
        ):
            oid = lo["oid"]
            if metadata:
                await dst.execute(f"SELECT lo_create({oid})")
                await dst.execute(f'ALTER LARGE OBJECT {oid} OWNER TO "{lo["owner"]}"')
                if lo["comment"] is not None:
                    await dst.execute(f"COMMENT ON LARGE OBJECT {oid} IS $${lo['comment']}$$")
                for grant in await src.fetch(
                    "SELECT g.rolname AS grantee, a.privilege_type FROM pg_largeobject_metadata m,"
                    " aclexplode(m.lomacl) a JOIN pg_roles g ON g.oid = a.grantee"
                    " WHERE m.oid = $1 AND a.grantee <> m.lomowner",
                    oid,
                ):
                    await dst.execute(
                        f"GRANT {grant['privilege_type']} ON LARGE OBJECT {oid}"
                        f' TO "{grant["grantee"]}"'
                    )
            await dst.execute("SELECT lo_put($1, 0, $2)", oid, lo["data"])
    finally:
        await src.close()
        await dst.close()


async def refresh_populated(source: str, target: str) -> list[str]:
    src, dst = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        names = [
            r["name"]
            for r in await src.fetch(
                "SELECT format('%I.%I', schemaname, matviewname) AS name FROM pg_matviews"
                " WHERE ispopulated ORDER BY 1"
            )
        ]
        for name in names:
            await dst.execute(f"REFRESH MATERIALIZED VIEW {name}")
        return names
    finally:
        await src.close()
        await dst.close()


@pytest.mark.asyncio
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sections", [False, True], ids=["schema-only", "sections"])
async def test_a_copy_from_the_toolkit_and_copy_is_exact(rich, pg_url2, sections):
    """pre-data, rows, post-data: the same schema and the same rows.

    With ``--schema-only`` the copy must itself set every sequence, make every large object
    (with its owner, comment, grants) and write its bytes, and refresh the populated
    materialized views. With the sections dump, pg_restore does the large objects' metadata
    and the refreshes; the rows, the sequences and the large objects' bytes are left."""
    archive = await dump_schema(rich.url, sections=sections)
    toc = await read_toc(archive)
    pre = await restore(archive, pg_url2, section="pre-data", jobs=2, toc=toc)
    assert pre.ok, pre.failed
    assert await copy_rows(rich.url, pg_url2) == 21
    await copy_sequences(rich.url, pg_url2)
    await copy_large_objects(rich.url, pg_url2, metadata=not sections)
    if not sections:
        assert await refresh_populated(rich.url, pg_url2) == ["app.daily_totals"]
    post = await restore(archive, pg_url2, section="post-data", jobs=2, toc=toc)
    assert post.ok, post.failed
    assert post.entries == len(toc)
    source, copy = await normalized_schema(rich.url), await normalized_schema(pg_url2)
    assert copy == source
    expected = await relation_fingerprints(rich.url)
    assert await relation_fingerprints(pg_url2) == expected
    assert expected["app.sensor_stats"] == (-1, "not populated")
    assert expected["app.measurement_2024_h0"][0] > 5000  # rows enough for granules


# --- restore collects failures per entry --------------------------------------------------------


@pytest.mark.asyncio
async def test_restore_collects_every_failed_entry_and_goes_on(pg_url, pg_url2):
    gone = f"pk_gone_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE ROLE "{gone}"')
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "CREATE TABLE owned (a int); CREATE TABLE plain (b int);"
                f' ALTER TABLE owned OWNER TO "{gone}";'
                f' GRANT SELECT ON plain TO "{gone}";'
                " CREATE VIEW later AS SELECT b FROM plain;"
                " COMMENT ON VIEW later IS 'after the failures'"
            )
        finally:
            await conn.close()
        archive = await dump_schema(pg_url)
    finally:
        await drop_roles(ADMIN_DSN, (gone,))
        await admin.close()
    toc = await read_toc(archive)
    result = await restore(archive, pg_url2, toc=toc)
    assert result.errors_ignored == len(result.failed) == 2
    failed = {(f.desc, f.name): f for f in result.failed}
    assert failed.keys() == {("TABLE", "owned"), ("ACL", "TABLE plain")}
    owner = failed["TABLE", "owned"]
    assert owner.dump_id == by_name(toc, "TABLE", "owned").dump_id
    assert owner.message == f'role "{gone}" does not exist'
    assert owner.command is not None and "OWNER TO" in owner.command
    conn = await asyncpg.connect(pg_url2)
    try:  # the entries after the failures were restored
        assert await conn.fetchval("SELECT obj_description('later'::regclass)") == (
            "after the failures"
        )
    finally:
        await conn.close()
    # The same with a chosen list of entries, given in any order, and in parallel.
    async with fresh_database() as third:
        ids = [by_name(toc, "TABLE", "plain").dump_id, by_name(toc, "TABLE", "owned").dump_id]
        some = await restore(archive, third, entries=ids[::-1], jobs=2, toc=toc)
        assert [(f.desc, f.name) for f in some.failed] == [("TABLE", "owned")]
        assert some.entries == 2
    with pytest.raises(InvalidArgumentError, match="not in the archive"):
        await restore(archive, pg_url2, entries=[999999], toc=toc)


@pytest.mark.asyncio
async def test_a_restore_that_cannot_connect_raises(pg_url):
    archive = await dump_schema(pg_url)
    tools = await tools_for(pg_url)
    with pytest.raises(ConnectorError, match="pg_restore into"):
        await restore(archive, pg_url + "_no_such_database", tools=tools)


# --- the script ---------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_the_script_replays_with_psql_into_an_empty_database(rich, pg_url2):
    archive = await dump_schema(rich.url)
    text = await script(archive)
    assert text.count("\\restrict ") == 1 and "\\unrestrict " in text
    tools = await tools_for(pg_url2)
    done = subprocess.run(
        [tools.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", pg_url2, "-f", "-"],
        input=text.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    # The replayed schema is the source's, less what a schema-only archive leaves out.
    replayed = await read_toc(await dump_schema(pg_url2))
    assert [(e.desc, e.schema, e.name) for e in replayed] == [
        (e.desc, e.schema, e.name) for e in await read_toc(archive)
    ]
    one = by_name(replayed, "TABLE", "customer").dump_id
    alone = await script(await dump_schema(pg_url2), [one])
    assert "CREATE TABLE" in alone and "ALTER TABLE" in alone and "CREATE INDEX" not in alone


# --- --role -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_restore_as_a_role_cannot_drop_an_unrelated_table(pg_url, pg_url2):
    """The archive is crafted: refreshing its materialized view runs a function that drops
    a table it has nothing to do with. As the superuser the restore does drop it; as a role
    with only the rights it needs (CREATE on the schema) it cannot, and the failure is
    reported against the entry."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "CREATE FUNCTION public.innocent() RETURNS int LANGUAGE plpgsql AS $$"
            " BEGIN EXECUTE 'DROP TABLE IF EXISTS public.victim'; RETURN 1; END $$;"
            " CREATE MATERIALIZED VIEW public.looks_harmless AS SELECT public.innocent() AS n"
        )
    finally:
        await conn.close()
    archive = await dump_schema(pg_url, sections=True)
    toc = await read_toc(archive)
    assert by_name(toc, "MATERIALIZED VIEW DATA", "looks_harmless").section == "post-data"
    restricted = f"pk_restore_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE ROLE "{restricted}" NOLOGIN')
    try:
        async with fresh_database() as as_superuser:
            await make_victim(as_superuser)
            result = await restore(archive, as_superuser, toc=toc)
            assert result.ok, result.failed
            assert not await victim_exists(as_superuser)
        await make_victim(pg_url2)
        target = await asyncpg.connect(pg_url2)
        try:
            await target.execute(f'GRANT CREATE ON SCHEMA public TO "{restricted}"')
        finally:
            await target.close()
        result = await restore(archive, pg_url2, role=restricted, no_owner=True, toc=toc)
        assert await victim_exists(pg_url2)
        (failure,) = result.failed
        assert (failure.desc, failure.name) == ("MATERIALIZED VIEW DATA", "looks_harmless")
        assert failure.dump_id == by_name(toc, "MATERIALIZED VIEW DATA", "looks_harmless").dump_id
        assert failure.message.startswith("must be owner of table victim")
        target = await asyncpg.connect(pg_url2)
        try:  # what it may do, it did, as that role
            owner = await target.fetchval(
                "SELECT matviewowner FROM pg_matviews WHERE matviewname = 'looks_harmless'"
            )
            assert owner == restricted
        finally:
            await target.close()
    finally:
        await drop_roles(ADMIN_DSN, (restricted,))
        await admin.close()


async def make_victim(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE public.victim (precious text); INSERT INTO victim VALUES ('x')"
        )
    finally:
        await conn.close()


async def victim_exists(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT to_regclass('public.victim') IS NOT NULL"))
    finally:
        await conn.close()


# --- renaming through the parser ----------------------------------------------------------------

# Statements as pg_dump 15 writes them with --quote-all-identifiers, and what REMAP_SCHEMA
# app:crm with REMAP_TABLE app.orders:purchases make of them.
REMAPS = [
    (
        'CREATE TABLE "app"."orders" ("id" bigint DEFAULT "nextval"(\'"app"."orders_id_seq"\'::"regclass") NOT NULL, "mood" "app"."mood", "happy" "text" DEFAULT \'app.orders\'::"text");',
        "CREATE TABLE crm.purchases (id bigint DEFAULT nextval(CAST('\"crm\".\"orders_id_seq\"' AS regclass)) NOT NULL, mood crm.mood, happy text DEFAULT CAST('app.orders' AS text));\n",
    ),
    (
        'CREATE INDEX "orders_placed" ON "app"."orders" USING "btree" ("placed" DESC);',
        "CREATE INDEX orders_placed ON crm.purchases (placed DESC);\n",
    ),
    (
        'CREATE VIEW "app"."big" AS\n SELECT "orders"."id", "app"."orders"."amount"\n   FROM "app"."orders"\n  WHERE ("orders"."amount" > (900)::numeric);',
        "CREATE VIEW crm.big AS SELECT purchases.id, crm.purchases.amount FROM crm.purchases WHERE purchases.amount > CAST(900 AS numeric);\n",
    ),
    (
        'CREATE FUNCTION "app"."add"("a" "app"."posint", "b" integer) RETURNS integer\n    LANGUAGE "sql" IMMUTABLE\n    RETURN ("a" + "b");',
        "CREATE FUNCTION crm.add(a crm.posint, b integer) RETURNS integer LANGUAGE sql IMMUTABLE RETURN a + b;\n",
    ),
    (
        'CREATE FUNCTION "app"."body"() RETURNS bigint\n    LANGUAGE "sql"\n    AS $$ SELECT count(*) FROM app.orders $$;',
        "CREATE FUNCTION crm.body() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM app.orders $$;\n",
    ),
    (
        'CREATE TRIGGER "touch" BEFORE UPDATE ON "app"."orders" FOR EACH ROW EXECUTE FUNCTION "app"."touch"();',
        "CREATE TRIGGER touch BEFORE UPDATE ON crm.purchases FOR EACH ROW EXECUTE PROCEDURE crm.touch();\n",
    ),
    (
        'CREATE SEQUENCE "app"."orders_id_seq"\n    START WITH 1\n    INCREMENT BY 1\n    CACHE 1;\nALTER SEQUENCE "app"."orders_id_seq" OWNED BY "app"."orders"."id";',
        "CREATE SEQUENCE crm.orders_id_seq START WITH 1 INCREMENT BY 1 CACHE 1;\nALTER SEQUENCE crm.orders_id_seq OWNED BY crm.purchases.id;\n",
    ),
    (
        'ALTER TABLE ONLY "app"."orders"\n    ADD CONSTRAINT "orders_customer_fkey" FOREIGN KEY ("customer_id") REFERENCES "app"."customer"("id");',
        "ALTER TABLE ONLY crm.purchases ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES crm.customer (id);\n",
    ),
    (
        'COMMENT ON TABLE "app"."orders" IS \'app.orders: who bought\';\nCOMMENT ON COLUMN "app"."orders"."id" IS \'id\';\nCOMMENT ON CONSTRAINT "c" ON "app"."orders" IS \'c\';\nCOMMENT ON SCHEMA "app" IS \'s\';',
        "COMMENT ON TABLE crm.purchases IS 'app.orders: who bought';\nCOMMENT ON COLUMN crm.purchases.id IS 'id';\nCOMMENT ON CONSTRAINT c ON crm.purchases IS 'c';\nCOMMENT ON SCHEMA crm IS 's';\n",
    ),
    (
        'GRANT SELECT,INSERT ON TABLE "app"."orders" TO "reader";\nGRANT USAGE ON SCHEMA "app" TO "reader";\nGRANT SELECT("id") ON TABLE "app"."orders" TO "reader";\nREVOKE ALL ON FUNCTION "app"."touch"() FROM PUBLIC;\nALTER DEFAULT PRIVILEGES FOR ROLE "owner" IN SCHEMA "app" GRANT SELECT ON TABLES TO "reader";',
        "GRANT SELECT, INSERT ON TABLE crm.purchases TO reader;\nGRANT USAGE ON SCHEMA crm TO reader;\nGRANT SELECT (id) ON TABLE crm.purchases TO reader;\nREVOKE ALL PRIVILEGES ON FUNCTION crm.touch () FROM PUBLIC;\nALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA crm GRANT SELECT ON TABLES TO reader;\n",
    ),
    (
        'CREATE SCHEMA "app";\nALTER SCHEMA "app" OWNER TO "owner";\nCREATE EXTENSION IF NOT EXISTS "citext" WITH SCHEMA "app";',
        "CREATE SCHEMA crm;\nALTER SCHEMA crm OWNER TO owner;\nCREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA crm;\n",
    ),
]


@pytest.mark.parametrize(
    ("before", "after"),
    REMAPS,
    ids=[r[0].split('"')[0].strip() + str(i) for i, r in enumerate(REMAPS)],
)
def test_remapping_goes_through_the_parser(before, after):
    got = remap_sql(before, schemas={"app": "crm"}, tables={("app", "orders"): "purchases"})
    assert got == after


def test_remapping_keeps_meta_commands_and_leaves_other_names_alone():
    text = "\\restrict abc\nSELECT 1;\nCREATE TABLE app2.t (app int);\n\\unrestrict abc\n"
    assert remap_sql(text, schemas={"app": "crm"}) == (
        "\\restrict abc\nSELECT 1;\nCREATE TABLE app2.t (app integer);\n\\unrestrict abc\n"
    )
    with pytest.raises(DumpError, match="parser"):
        remap_sql("CREATE TABLE (", schemas={"app": "crm"})


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_a_remapped_script_replays_as_the_renamed_source(rich, pg_url2):
    """The whole rich schema, remapped, equals the source after ALTER ... RENAME: the
    parser-level rewrite and PostgreSQL agree on every statement pg_dump writes."""
    text = await script(await dump_schema(rich.url))
    renamed = remap_sql(text, schemas={"app": "crm"}, tables={("app", "orders"): "purchases"})
    tools = await tools_for(pg_url2)
    done = subprocess.run(
        [tools.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", pg_url2, "-f", "-"],
        input=renamed.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    conn = await asyncpg.connect(rich.url)
    try:
        await conn.execute(
            "ALTER SCHEMA app RENAME TO crm; ALTER TABLE crm.orders RENAME TO purchases"
        )
        # The large objects and the populated view are not in a schema-only script.
        await conn.execute(
            "SELECT lo_unlink(oid) FROM pg_largeobject_metadata;"
            " REFRESH MATERIALIZED VIEW crm.daily_totals WITH NO DATA"
        )
    finally:
        await conn.close()
    assert await normalized_schema(pg_url2) == await normalized_schema(rich.url)


ONE_STATEMENT_OK = [
    ('CREATE TABLE "app"."t" (a int)', "TABLE", ("app", "t")),
    ("CREATE TABLE app.t PARTITION OF app.p DEFAULT", "TABLE", ("app", "t")),
    ('CREATE UNIQUE INDEX "i" ON "app"."t" (a)', "INDEX", ("app", "i")),
    ("CREATE VIEW app.v AS SELECT 1", "VIEW", ("app", "v")),
    ("CREATE MATERIALIZED VIEW app.m AS SELECT 1 WITH NO DATA", "MATERIALIZED VIEW", ("app", "m")),
    ("CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "FUNCTION", ("app", "f")),
    ("CREATE PROCEDURE app.p() LANGUAGE sql AS ''", "PROCEDURE", ("app", "p")),
    (
        "CREATE TRIGGER tr AFTER INSERT ON app.t FOR EACH ROW EXECUTE FUNCTION app.f()",
        "TRIGGER",
        ("app", "tr"),
    ),
    ("CREATE SEQUENCE app.s", "SEQUENCE", ("app", "s")),
    (
        "ALTER TABLE ONLY app.t ADD CONSTRAINT t_pkey PRIMARY KEY (a)",
        "CONSTRAINT",
        ("app", "t_pkey"),
    ),
    ("CREATE TYPE app.e AS ENUM ('a')", "TYPE", ("app", "e")),
    ("CREATE TYPE app.c AS (a int)", "TYPE", ("app", "c")),
    ("CREATE DOMAIN app.d AS int", "DOMAIN", ("app", "d")),
    ('CREATE SCHEMA "Odd Schema"', "SCHEMA", "Odd Schema"),
    (
        'CREATE TABLE "app"."Odd ""Quoted"" Table; DROP TABLE x" (a int);',
        "TABLE",
        ("app", 'Odd "Quoted" Table; DROP TABLE x'),
    ),
]


@pytest.mark.parametrize(("sql", "kind", "name"), ONE_STATEMENT_OK)
def test_one_statement_of_accepts_what_it_declares(sql, kind, name):
    assert one_statement_of(sql, kind, name) is not None


ONE_STATEMENT_REFUSED = [
    (
        "CREATE TABLE app.t (a int); DROP TABLE app.victim",
        "TABLE",
        ("app", "t"),
        "one statement, not 2",
    ),
    ("DROP TABLE app.t", "TABLE", ("app", "t"), "DropStmt, not a CREATE TABLE"),
    ("CREATE TABLE app.other (a int)", "TABLE", ("app", "t"), "creates 'app.other' instead"),
    ("CREATE TABLE t (a int)", "TABLE", ("app", "t"), "does not name the schema"),
    ("CREATE TABLE App.T (a int)", "TABLE", ("App", "T"), "creates 'app.t' instead"),
    ("CREATE TABLE app.t AS SELECT app.f()", "TABLE", ("app", "t"), "not a CREATE TABLE"),
    ("CREATE VIEW app.t AS SELECT 1", "TABLE", ("app", "t"), "ViewStmt, not a CREATE TABLE"),
    ("CREATE SCHEMA s CREATE TABLE x (a int)", "SCHEMA", "s", "not a CREATE SCHEMA"),
    ("CREATE INDEX i ON other.t (a)", "INDEX", ("app", "i"), "creates 'other.i' instead"),
    (
        "CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "PROCEDURE",
        ("app", "f"),
        "not a CREATE PROCEDURE",
    ),
    (
        "ALTER TABLE app.t ADD CONSTRAINT c CHECK (a > 0), DROP COLUMN b",
        "CONSTRAINT",
        ("app", "c"),
        "not a CREATE CONSTRAINT",
    ),
    ("\\! rm -rf /\nCREATE TABLE app.t (a int)", "TABLE", ("app", "t"), "meta-command"),
    ("CREATE TABLE app.t (", "TABLE", ("app", "t"), "parser refuses"),
]


@pytest.mark.parametrize(("sql", "kind", "name", "why"), ONE_STATEMENT_REFUSED)
def test_one_statement_of_refuses_anything_else(sql, kind, name, why):
    with pytest.raises(DumpError, match=why):
        one_statement_of(sql, kind, name)


def test_one_statement_of_knows_its_kinds():
    with pytest.raises(InvalidArgumentError, match="kind 'RULE'"):
        one_statement_of("CREATE RULE r AS ON INSERT TO app.t DO NOTHING", "RULE", ("app", "r"))
