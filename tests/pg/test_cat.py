"""``pumpkit cat`` of a PostgreSQL dump: the binary COPY granules, cut anywhere across their
frames, decode to the values PostgreSQL itself shows (its text output in UTC and ISO style),
in JSON lines and in a Parquet file read back with pyarrow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow.parquet as pq
import pytest

from pumpkit.exitcodes import ExitCode

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE things (
    id bigint PRIMARY KEY,
    small int2,
    name text,
    amount numeric(12, 3),
    ratio float8,
    flag boolean,
    data bytea,
    born date,
    seen timestamptz,
    tags text[],
    feeling mood,
    doc jsonb
);
INSERT INTO things
SELECT i,
       (i % 30000)::int2,
       CASE WHEN i % 97 = 0 THEN NULL WHEN i % 89 = 0 THEN '' ELSE 'thing ' || i || repeat('x', i % 50) END,
       (i * 1.125)::numeric(12, 3),
       CASE WHEN i % 101 = 0 THEN 'NaN'::float8 ELSE i / 7.0 END,
       i % 3 = 0,
       CASE WHEN i % 5 = 0 THEN NULL ELSE decode(lpad(to_hex(i), 8, '0'), 'hex') END,
       DATE '2000-01-01' + (i % 9000),
       TIMESTAMPTZ '2020-01-01 00:00:00+00' + i * INTERVAL '37 seconds',
       ARRAY['a' || i, NULL, 'b'],
       (ARRAY['sad', 'ok', 'happy']::mood[])[1 + i % 3],
       jsonb_build_object('n', i, 'odd', i % 2 = 1)
FROM generate_series(1, 40000) AS i;
"""


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        timeout=300,
    )


def expected(record: asyncpg.Record) -> dict[str, Any]:
    """What README's type mapping says each value becomes, from PostgreSQL's own text."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("id", "small"):
            out[key] = None if value is None else int(value)
        elif key == "flag":
            out[key] = None if value is None else (1 if value == "true" else 0)
        elif key == "ratio":
            out[key] = value if value in (None, "NaN") else float(value)
        else:
            # Text as PostgreSQL writes it; bytea's hex output is \x..., the form cat gives a
            # BLOB; arrays and jsonb are compared as JSON by the caller.
            out[key] = value
    return out


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_cat_of_a_postgresql_dump_equals_the_source(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(SCHEMA)
        await conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        source = await conn.fetch(
            "SELECT id::text, small::text, name, amount::text, ratio::text, flag::text,"
            " CASE WHEN data IS NULL THEN NULL ELSE '\\x' || encode(data, 'hex') END AS data,"
            " born::text, seen::text, array_to_json(tags)::text AS tags, feeling::text,"
            " doc::text FROM things ORDER BY things.id"
        )
    finally:
        await conn.close()
    done = run(
        "export", "--database", pg_url, "--dumpfile", "pg%U.dmp", "--parallel", 2,
        "--home", tmp_path / "home", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr

    listed = json.loads(run("ls", "--json", tmp_path / "pg01.dmp", cwd=tmp_path).stdout)
    [things] = [o for o in listed["objects"] if o["name"] == "things"]
    assert len(things["frames"]) > 1, things  # COPY streams cut across frames

    done = run("cat", tmp_path / "pg%U.dmp", "public.things", "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == ExitCode.OK, done.stderr
    got = [json.loads(line) for line in done.stdout.split("\n") if line]
    assert len(got) == len(source) == 40000
    got.sort(key=lambda r: r["id"])
    want = [expected(r) for r in source]
    for g, w in zip(got, want, strict=True):
        g["tags"] = None if g["tags"] is None else json.loads(g["tags"])
        w["tags"] = None if w["tags"] is None else json.loads(w["tags"])
        g["doc"] = json.loads(g["doc"])
        w["doc"] = json.loads(w["doc"])
    bad = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    assert bad == [], bad[:3]

    # Parquet: the same values, typed.
    out = tmp_path / "things.parquet"
    done = run(
        "cat", tmp_path / "pg01.dmp", "things", "--format", "parquet", "--output", out,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stderr
    table = pq.read_table(out)
    assert table.num_rows == 40000
    types = {f.name: str(f.type) for f in table.schema}
    assert types["id"] == "int64" and types["data"] == "binary" and types["name"] == "string"
    ids = table.column("id").to_pylist()
    datas = table.column("data").to_pylist()
    by_id = dict(zip(ids, datas, strict=True))
    for w in want:
        blob = by_id[w["id"]]
        assert (None if blob is None else "\\x" + blob.hex()) == w["data"], w["id"]
