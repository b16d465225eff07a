"""The binary COPY decoder against PostgreSQL itself, and fed whole, cut anywhere and broken.

Every kind is checked on a table of edge values (and seeded random ones where the text form
is subtle) against what the server says the values are: ``v::text`` under ISO dates, the
postgres interval style, UTC and round-trip float digits. Arrays of every kind (1-D with a
NULL, 2-D, empty, NULL) are checked against JSON built here from ``unnest`` and
``array_dims``. The error tests and the pure decoder tests need no server.
"""

from __future__ import annotations

import json
import math
import random
import re
import struct
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpkit.core.pgcopy import CopyDecoder, CopyFormatError, decoder_for, kind_of

SESSION = (
    "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC';"
    " SET extra_float_digits = 3"
)
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
INT_KINDS = {"int2", "int4", "int8", "oid"}
FLOAT_KINDS = {"float4", "float8"}

# kind -> (SQL type, SQL expressions of the values, set-up SQL)
CASES: dict[str, tuple[str, list[str], str]] = {
    "int2": ("int2", ["0", "1", "-1", "32767", "-32768"], ""),
    "int4": ("int4", ["0", "42", "2147483647", "-2147483648"], ""),
    "int8": ("int8", ["0", "-1", "9223372036854775807", "-9223372036854775808"], ""),
    "oid": ("oid", ["0", "1", "2147483648", "4294967295"], ""),
    "float4": (
        "float4",
        [
            "0",
            "'-0'",
            "1.1",
            "-123.456",
            "'3.4028235e38'",
            "'1e-45'",
            "'1.17549435e-38'",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
        ],
        "",
    ),
    "float8": (
        "float8",
        [
            "0",
            "'-0'",
            "0.1",
            "pi()",
            "'-1e300'",
            "'1.7976931348623157e308'",
            "'5e-324'",
            "'2.2250738585072014e-308'",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
        ],
        "",
    ),
    "numeric": (
        "numeric",
        [
            "0",
            "'0.0'",
            "'0.000'",
            "'-0'",
            "'-0.00'",
            "1",
            "-1",
            "'1.5'",
            "'-1.50'",
            "9999",
            "10000",
            "99999999",
            "100000000",
            "'0.0001'",
            "'0.00001'",
            "'-0.00010'",
            "'123456789.123456789'",
            "'1e-20'",
            "'-1e-20'",
            "'1e20'",
            "'1.000000000000000000001'",
            "'3.14159'::numeric(10, 8)",
            "12345.678::numeric(8, 2)",
            "'0.1'::numeric(20, 10)",
            "round(1::numeric / 3, 1000)",
            "'1e-1000'",
            "'-1e1000'",
            "('1' || repeat('0', 20000))::numeric",
            "repeat('9', 120)::numeric",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
        ],
        "",
    ),
    "bool": ("bool", ["true", "false", "true"], ""),
    "text": (
        "text",
        [
            "''",
            "'hello'",
            "'żółć 😀 中文 ﷽'",
            "E'tab\\there\\nnew line \\\\ back'",
            "'e\u0301'",
            "repeat('x', 100000)",
        ],
        "",
    ),
    "varchar": ("varchar(10)", ["''", "'abc'", "'ünïcødé'"], ""),
    "bpchar": ("char(5)", ["''", "'ab'", "'abcde'", "'ü'"], ""),
    "name": ("name", ["''", "'abc'", "repeat('n', 100)", "repeat('ż', 40)"], ""),
    "char": ('"char"', ["'a'", "''", "' '", "'Z'"], ""),
    "bytea": (
        "bytea",
        ["''", "'\\x00ff'", "'\\x5c78'", "E'\\\\000'", "decode(repeat('ab', 5000), 'hex')"],
        "",
    ),
    "date": (
        "date",
        [
            "'2000-01-01'",
            "'1999-12-31'",
            "'1970-01-01'",
            "'2024-02-29'",
            "'1600-02-29'",
            "'1900-03-01'",
            "'0001-01-01'",
            "'0001-12-31 BC'",
            "'0044-03-15 BC'",
            "'4713-01-01 BC'",
            "'9999-12-31'",
            "'10000-01-01'",
            "'5874897-12-31'",
            "'infinity'",
            "'-infinity'",
        ],
        "",
    ),
    "time": (
        "time",
        [
            "'00:00:00'",
            "'23:59:59.999999'",
            "'24:00:00'",
            "'12:34:56.5'",
            "'01:02:03.000001'",
            "'12:00:00.12'",
        ],
        "",
    ),
    "timetz": (
        "timetz",
        [
            "'12:00:00+02'",
            "'12:00:00-03:30'",
            "'00:00:00+00'",
            "'12:00:00+05:45'",
            "'12:00:00+14'",
            "'12:00:00+01:02:03'",
            "'23:59:59.999999-15:59'",
            "'24:00:00-15:59:59'",
            "'00:00:00.5+15:59:59'",
        ],
        "",
    ),
    "timestamp": (
        "timestamp",
        [
            "'2000-01-01 00:00:00'",
            "'1999-12-31 23:59:59.999999'",
            "'1970-01-01 00:00:00.5'",
            "'2024-02-29 13:14:15.0001'",
            "'0001-01-01 00:00:00'",
            "'0001-12-31 23:59:59 BC'",
            "'0044-03-15 12:00:00 BC'",
            "'4713-01-01 00:00:00 BC'",
            "'294276-12-31 23:59:59.999999'",
            "'infinity'",
            "'-infinity'",
        ],
        "",
    ),
    "timestamptz": (
        "timestamptz",
        [
            "'2000-01-01 00:00:00+00'",
            "'2024-06-01 12:00:00+05:30'",
            "'1999-12-31 23:59:59.999999-08'",
            "'1970-01-01 00:00:00.123456+01:02:03'",
            "'0044-03-15 12:00:00+00 BC'",
            "'4713-11-24 00:00:00+00 BC'",
            "'294276-12-31 23:59:59.999999+00'",
            "'infinity'",
            "'-infinity'",
        ],
        "",
    ),
    "interval": (
        "interval",
        [
            "'0'",
            "'1 year 2 mons 3 days 04:05:06.5'",
            "'-1 second'",
            "'-1 days +02:00:00'",
            "'1 day -00:00:01'",
            "'-1 years -2 mons +3 days -04:05:06'",
            "'1 mon -1 day'",
            "'-1 mon 1 day'",
            "'1 year'",
            "'-1 year'",
            "'1 mon'",
            "'-1 mon'",
            "'1 day'",
            "'100 hours'",
            "'0.000001 seconds'",
            "'-0.5 seconds'",
            "'3 years -2 mons 1 day 00:00:00.1'",
            "'-178956970 years -8 mons'",
            "'178956970 years 7 mons'",
            "'2147483647 days'",
            "'-2147483648 days'",
            "'2562047788:00:54.775807'",
            "'-2562047788:00:54.775807'",
        ],
        "",
    ),
    "uuid": (
        "uuid",
        [
            "'00000000-0000-0000-0000-000000000000'",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "gen_random_uuid()",
        ],
        "",
    ),
    "json": (
        "json",
        ["'{}'", "'[]'", '\'  {"a" : [1, 2.50, "x"]} \'', "'\"ü 😀\"'", "'null'", "'1e400'"],
        "",
    ),
    "jsonb": (
        "jsonb",
        ["'{}'", '\'{"b": 1, "a": [1, 2.50, "x"]}\'', "'\"ü 😀\"'", "'null'", "'1e40'"],
        "",
    ),
    "enum": (
        "mood",
        ["'sad'", "'ok'", "'happy 😀'", "'with space'"],
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy 😀', 'with space')",
    ),
}


# --- seeded random values, as text PostgreSQL reads -------------------------------------------


def _random_numeric(rng: random.Random) -> str:
    whole = "".join(rng.choices("0123456789", k=rng.randrange(0, 40))) or "0"
    fraction = "".join(rng.choices("0123456789", k=rng.randrange(0, 40)))
    sign = rng.choice(["", "-"])
    return f"{sign}{whole}.{fraction}" if fraction or rng.random() < 0.5 else f"{sign}{whole}"


def _random_ymd(rng: random.Random, top: int) -> str:
    year = rng.choice([rng.randrange(1, 10000), rng.randrange(1, top)])
    bc = " BC" if year < 4713 and rng.random() < 0.2 else ""
    return f"{year:04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}{bc}"


def _random_hms(rng: random.Random) -> str:
    frac = rng.choice(["", f".{rng.randrange(1_000_000):06d}", f".{rng.randrange(10)}"])
    hms = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    return hms + frac


def _random_zone(rng: random.Random) -> str:
    sign = rng.choice("+-")
    return rng.choice(
        [
            f"{sign}{rng.randrange(16):02d}",
            f"{sign}{rng.randrange(16):02d}:{rng.randrange(60):02d}",
            f"{sign}{rng.randrange(16):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
        ]
    )


def _random_interval(rng: random.Random) -> str:
    def part() -> int:
        return rng.choice([0, 0, 1, -1, rng.randrange(-100, 100), rng.randrange(-(10**6), 10**6)])

    usecs = rng.choice([0, rng.randrange(-(10**12), 10**12), rng.randrange(-(10**17), 10**17)])
    return f"{part()} years {part()} mons {part()} days {usecs} microseconds"


RANDOM: dict[str, Callable[[random.Random], str]] = {
    "numeric": _random_numeric,
    "date": lambda rng: _random_ymd(rng, 5_874_897),
    "time": _random_hms,
    "timetz": lambda rng: _random_hms(rng) + _random_zone(rng),
    "timestamp": lambda rng: f"{_random_ymd(rng, 294_276)} {_random_hms(rng)}",
    "timestamptz": lambda rng: f"{_random_ymd(rng, 294_276)} {_random_hms(rng)}{_random_zone(rng)}",
    "interval": _random_interval,
    "float8": lambda rng: repr(struct.unpack(">d", rng.randbytes(8))[0]),
    "float4": lambda rng: repr(struct.unpack(">f", rng.randbytes(4))[0]),
}


# --- helpers ---------------------------------------------------------------------------------


async def copy_bytes(pg: asyncpg.Connection, query: str, *args: object) -> bytes:
    """The binary COPY stream of ``query``, as the server sent it."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(bytes(chunk))

    await pg.copy_from_query(query, *args, output=collect, format="binary")
    return b"".join(chunks)


def decode(stream: bytes, kinds: list[str], sizes: list[int] | None = None) -> list[tuple]:
    """Every row of ``stream``, fed whole or in chunks of the given sizes (cycled)."""
    decoder = CopyDecoder(kinds)
    rows: list[tuple] = []
    if sizes is None:
        rows += decoder.feed(stream)
    else:
        pos = 0
        k = 0
        while pos < len(stream):
            size = sizes[k % len(sizes)]
            rows += decoder.feed(stream[pos : pos + size])
            pos += size
            k += 1
    decoder.finish()
    assert decoder.rows == len(rows)
    return rows


def exact(value: object) -> object:
    """A comparable form that tells int from bool and -0.0 from 0.0."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, list | tuple):
        return [exact(v) for v in value]
    return (type(value).__name__, value)


def text_of(kind: str, column: str) -> str:
    # bpchar::text trims the padding; the type's output function (what format uses) keeps it.
    if kind == "bpchar":
        return f"CASE WHEN {column} IS NOT NULL THEN format('%s', {column}) END"
    return f"{column}::text"


def value_of(kind: str, column: str) -> str:
    # Only floats are fetched as values: asyncpg cannot make a date of year 10000.
    return column if kind in FLOAT_KINDS else "NULL"


def expected_scalar(kind: str, value: Any, text: str | None) -> object:
    if text is None:
        return None
    if kind in INT_KINDS:
        return int(text)
    if kind in FLOAT_KINDS:
        return "NaN" if math.isnan(value) else value
    if kind == "bool":
        return {"true": 1, "false": 0}[text]
    if kind == "bytea":
        return bytes.fromhex(text[2:])
    return text


def expected_element(kind: str, value: Any, text: str | None) -> object:
    if kind == "bytea" or text is None:
        return text  # bytea's text is PG's hex form '\x…'
    result = expected_scalar(kind, value, text)
    if isinstance(result, float) and math.isinf(result):
        return "Infinity" if result > 0 else "-Infinity"
    return result


def nest(flat: list[object], sizes: list[int]) -> list[object]:
    if len(sizes) <= 1:
        return list(flat)
    step = len(flat) // sizes[0]
    return [nest(flat[k * step : (k + 1) * step], sizes[1:]) for k in range(sizes[0])]


async def expected_arrays(pg: asyncpg.Connection, kind: str, source: str) -> list[tuple]:
    """(j, JSON) for each array ``a`` of ``source`` (columns j, a), built from unnest."""
    elements: dict[int, list[object]] = {}
    query = (
        f"SELECT s.j, {value_of(kind, 'e.v')} AS v, {text_of(kind, 'e.v')} AS t"
        f" FROM {source} AS s CROSS JOIN LATERAL unnest(s.a) WITH ORDINALITY AS e(v, n)"
        " ORDER BY s.j, e.n"
    )
    for record in await pg.fetch(query):
        elements.setdefault(record["j"], []).append(
            expected_element(kind, record["v"], record["t"])
        )
    rows = []
    query = f"SELECT j, a IS NULL AS missing, array_dims(a) AS dims FROM {source} ORDER BY j"
    for record in await pg.fetch(query):
        if record["missing"]:
            rows.append((record["j"], None))
            continue
        bounds = re.findall(r"\[(-?\d+):(-?\d+)\]", record["dims"] or "")
        sizes = [int(hi) - int(lo) + 1 for lo, hi in bounds]
        items = nest(elements.get(record["j"], []), sizes)
        rows.append((record["j"], json.dumps(items, separators=(",", ":"))))
    return rows


# --- every kind against the server ------------------------------------------------------------


# A fresh database costs a few tenths of a second, so kinds share one per group.
GROUPS = {
    "numbers": ["int2", "int4", "int8", "oid", "float4", "float8", "numeric", "bool"],
    "text": ["text", "varchar", "bpchar", "name", "char", "bytea", "uuid", "json", "jsonb", "enum"],
    "time": ["date", "time", "timetz", "timestamp", "timestamptz", "interval"],
}


def test_every_kind_is_checked() -> None:
    grouped = [kind for kinds in GROUPS.values() for kind in kinds]
    assert sorted(grouped) == sorted(CASES)
    for kind in CASES:
        assert callable(decoder_for(kind))
        assert callable(decoder_for("_" + kind))


async def check_kind(pg: asyncpg.Connection, kind: str) -> None:
    """Values of ``kind`` and arrays of them, decoded, against the server's own text."""
    sql_type, literals, setup = CASES[kind]
    if setup:
        await pg.execute(setup)
    table, arrays = f"t_{kind}", f"arrays_{kind}"
    null_row = len(literals) + 1
    values = ", ".join(f"({i}, ({lit})::{sql_type})" for i, lit in enumerate(literals, 1))
    await pg.execute(
        f"CREATE TEMP TABLE {table} AS SELECT * FROM (VALUES {values},"
        f" ({null_row}, NULL::{sql_type})) AS s(i, v)"
    )
    if kind in RANDOM:
        rng = random.Random(f"pgcopy-{kind}")
        extra = [RANDOM[kind](rng) for _ in range(300)]
        await pg.execute(
            f"INSERT INTO {table} SELECT {null_row} + n::int4, v::{sql_type}"
            " FROM unnest($1::text[]) WITH ORDINALITY AS s(v, n)",
            extra,
        )

    stream = await copy_bytes(pg, f"SELECT i, v FROM {table} ORDER BY i")
    got = decode(stream, ["int4", kind])
    query = (
        f"SELECT i, {value_of(kind, 'v')} AS v, {text_of(kind, 'v')} AS t FROM {table} ORDER BY i"
    )
    want = [(r["i"], expected_scalar(kind, r["v"], r["t"])) for r in await pg.fetch(query)]
    assert exact(got) == exact(want), kind

    # Arrays of the kind: all values and a NULL (1-D); 2 x 2 with a NULL; empty; NULL.
    await pg.execute(
        f"CREATE TEMP TABLE {arrays} AS"
        f" SELECT 1 AS j, array_agg(v ORDER BY i) AS a FROM {table}"
        f" UNION ALL SELECT 2, '{{}}'::{sql_type}[]"
        f" UNION ALL SELECT 3, NULL::{sql_type}[]"
        " UNION ALL SELECT 4, array_agg(r ORDER BY k) FROM ("
        "  SELECT k, array_agg(v ORDER BY i) AS r FROM ("
        f"   SELECT (row_number() OVER (ORDER BY i) - 1) / 2 AS k, i, v FROM {table}"
        f"   WHERE i <= 3 OR i = {null_row}) AS q GROUP BY k) AS p"
    )
    stream = await copy_bytes(pg, f"SELECT j, a FROM {arrays} ORDER BY j")
    got = decode(stream, ["int4", "_" + kind])
    assert got == await expected_arrays(pg, kind, arrays), kind
    assert got[1][1] == "[]"
    assert json.loads(got[3][1])[1][1] is None  # the 2-D one holds the NULL


@pytest.mark.asyncio
@pytest.mark.parametrize("group", list(GROUPS))
async def test_kinds_match_postgres(pg: asyncpg.Connection, group: str) -> None:
    await pg.execute(SESSION)
    for kind in GROUPS[group]:
        await check_kind(pg, kind)


ARRAY_CASES = [
    ("int4", "'{{{1,2},{3,4}},{{5,6},{7,NULL}}}'::int4[]"),  # 3-D
    ("int4", "'{{NULL,NULL}}'::int4[]"),
    ("int4", "'[0:2]={1,2,3}'::int4[]"),  # the lower bound is not kept
    ("int4", "'[-5:-4][3:4]={{1,2},{3,4}}'::int4[]"),
    ("int8", "ARRAY[[9223372036854775807], [-9223372036854775808]]"),
    ("text", "ARRAY['', 'NULL', NULL, 'a,b', 'q\"uo\\te', '{x}', 'żółć 😀']"),
    ("text", "ARRAY[ARRAY['a', NULL], ARRAY['', 'z']]"),
    ("numeric", "'{{NaN,Infinity},{-Infinity,-0.0010}}'::numeric[]"),
    ("float8", "'{NaN,Infinity,-Infinity,-0,0.1,1e308}'::float8[]"),
    ("bool", "'{{t,f},{NULL,t}}'::bool[]"),
    ("bytea", "ARRAY['\\x'::bytea, '\\x00ff', NULL]"),
    ("date", "'{infinity,-infinity,0044-03-15 BC,10000-01-01}'::date[]"),
    ("jsonb", "ARRAY['{\"a\": [1, \"x\"]}'::jsonb, 'null', NULL]"),
]


@pytest.mark.asyncio
async def test_arrays_of_many_shapes(pg: asyncpg.Connection) -> None:
    await pg.execute(SESSION)
    for kind, literal in ARRAY_CASES:
        await pg.execute(
            f"DROP TABLE IF EXISTS a1; CREATE TEMP TABLE a1 AS SELECT 1 AS j, {literal} AS a"
        )
        stream = await copy_bytes(pg, "SELECT j, a FROM a1")
        got = decode(stream, ["int4", "_" + kind])
        assert got == await expected_arrays(pg, kind, "a1"), literal
        if kind in ("int4", "int8", "text"):
            # For these, PostgreSQL's own array_to_json is the same JSON value.
            theirs = await pg.fetchval("SELECT array_to_json(a)::text FROM a1")
            assert json.loads(got[0][1]) == json.loads(theirs), literal
    assert decode(await copy_bytes(pg, "SELECT '[0:2]={1,2,3}'::int4[]"), ["_int4"]) == [
        ("[1,2,3]",)
    ]


@pytest.mark.asyncio
async def test_kind_of_names_every_column_type(pg: asyncpg.Connection) -> None:
    await pg.execute(CASES["enum"][2])
    columns = {kind: sql_type for kind, (sql_type, _, _) in CASES.items()}
    columns |= {"_" + kind: sql_type + "[]" for kind, sql_type in columns.items()}
    columns |= {"numeric_scaled": "numeric(10, 2)", "time_p": "timestamp(3) with time zone"}
    names = {kind: f"c{n}" for n, kind in enumerate(columns)}
    body = ", ".join(f"{names[kind]} {sql_type}" for kind, sql_type in columns.items())
    await pg.execute(f"CREATE TABLE every ({body})")
    records = await pg.fetch(
        "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod) AS sql,"
        " t.typtype::text, e.typtype::text AS element_typtype"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'"
        " WHERE a.attrelid = 'every'::regclass AND a.attnum > 0 ORDER BY a.attnum"
    )
    want = {"numeric_scaled": "numeric", "time_p": "timestamptz"}
    for kind, record in zip(columns, records, strict=True):
        expected = want.get(kind, kind)
        if record["typtype"] == "e":
            assert kind_of("enum") == expected
        elif record["element_typtype"] == "e":
            assert kind_of(record["typname"], element="enum") == expected
            assert kind_of("ARRAY", element="enum") == expected
        else:
            assert kind_of(record["typname"]) == expected, record["typname"]
            assert kind_of(record["sql"]) == expected, record["sql"]


# --- the same stream cut anywhere ------------------------------------------------------------

SMALL = (
    "SELECT * FROM (VALUES"
    " (1, 'ab'::text, 1.50::numeric, NULL::int8, '{{1,2},{3,NULL}}'::int4[], '12:00+05:30'::timetz),"
    " (2, '', 'NaN', -1, '{}', '00:00-15:59:59'),"
    " (3, NULL, '-0.0001', 9223372036854775807, NULL, NULL)) AS s"
)
SMALL_KINDS = ["int4", "text", "numeric", "int8", "_int4", "timetz"]


@pytest.mark.asyncio
async def test_stream_fed_in_pieces(pg: asyncpg.Connection) -> None:
    # Cut in two at every byte position, then byte by byte.
    stream = await copy_bytes(pg, SMALL)
    whole = decode(stream, SMALL_KINDS)
    assert len(whole) == 3
    assert whole[0] == (1, "ab", "1.50", None, "[[1,2],[3,null]]", "12:00:00+05:30")
    for cut in range(len(stream) + 1):
        decoder = CopyDecoder(SMALL_KINDS)
        rows = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        decoder.finish()
        assert rows == whole, cut
    assert decode(stream, SMALL_KINDS, sizes=[1]) == whole

    # A larger stream (fields of up to 6 kB) in random chunk sizes and buffer types.
    stream = await copy_bytes(
        pg,
        "SELECT i, repeat(chr(256 + i), i * 10) AS t, (i * 1.25)::numeric AS n,"
        " CASE WHEN i % 7 = 0 THEN NULL ELSE decode(repeat('ab', i * 50), 'hex') END AS b"
        " FROM generate_series(1, 120) AS i",
    )
    kinds = ["int4", "text", "numeric", "bytea"]
    whole = decode(stream, kinds)
    assert [row[0] for row in whole] == list(range(1, 121))
    as_buffer: dict[str, Callable[[bytes], Any]] = {
        "bytes": bytes,
        "bytearray": bytearray,
        "memoryview": memoryview,
    }

    @settings(deadline=None, max_examples=60)
    @given(
        sizes=st.lists(st.integers(1, 8000), min_size=1, max_size=20),
        buffer=st.sampled_from(sorted(as_buffer)),
    )
    def check(sizes: list[int], buffer: str) -> None:
        decoder = CopyDecoder(kinds)
        rows: list[tuple] = []
        pos = 0
        k = 0
        while pos < len(stream):
            size = sizes[k % len(sizes)]
            rows += decoder.feed(as_buffer[buffer](stream[pos : pos + size]))
            pos += size
            k += 1
        decoder.finish()
        assert rows == whole

    check()


# --- broken streams (no server needed) -------------------------------------------------------


def build(
    rows: list[list[bytes | None]],
    *,
    flags: int = 0,
    extension: bytes = b"",
    signature: bytes = SIGNATURE,
) -> bytes:
    """A binary COPY stream of rows whose fields are already in their send form."""
    out = [signature, struct.pack(">Ii", flags, len(extension)), extension]
    for row in rows:
        out.append(struct.pack(">h", len(row)))
        for field in row:
            out.append(b"\xff\xff\xff\xff" if field is None else struct.pack(">i", len(field)))
            out.append(field or b"")
    out.append(b"\xff\xff")
    return b"".join(out)


def i4(n: int) -> bytes:
    return struct.pack(">i", n)


TWO_ROWS = build([[i4(1), b"one"], [i4(2), None]])
HEADER = 19  # signature, flags, extension length


def test_well_formed_hand_built_stream() -> None:
    assert decode(TWO_ROWS, ["int4", "text"]) == [(1, "one"), (2, None)]
    with_extension = build([[i4(7), b""]], extension=b"future", flags=1 << 20)
    assert decode(with_extension, ["int4", "text"]) == [(7, "")]
    assert decode(build([[], []]), []) == [(), ()]


def test_bad_signature() -> None:
    decoder = CopyDecoder(["int4", "text"])
    with pytest.raises(CopyFormatError, match=r"byte offset 5.*signature") as info:
        decoder.feed(b"PGCOPX\n")
    assert info.value.offset == 5
    with pytest.raises(CopyFormatError, match="byte offset 5"):
        decoder.feed(b"more")  # the decoder stays failed
    with pytest.raises(CopyFormatError, match=r"byte offset 0.*signature"):
        CopyDecoder(["int4"]).feed(b"COPY")


def test_oid_flag_and_critical_flags() -> None:
    with pytest.raises(CopyFormatError, match=r"byte offset 11.*OIDs"):
        CopyDecoder(["int4"]).feed(build([], flags=1 << 16))
    with pytest.raises(CopyFormatError, match=r"byte offset 11.*critical"):
        CopyDecoder(["int4"]).feed(build([], flags=1 << 3))


def test_wrong_field_count() -> None:
    stream = build([[i4(1), b"x"], [i4(2), b"y", b"z"]])
    second = HEADER + 2 + 8 + 5  # the second tuple's count word
    decoder = CopyDecoder(["int4", "text"], columns=["id", "name"])
    with pytest.raises(
        CopyFormatError, match=f"byte offset {second}, row 2: .*3 fields.* 2 "
    ) as info:
        decoder.feed(stream)
    assert (info.value.offset, info.value.row, info.value.column) == (second, 2, None)


def test_truncated_stream_fails_at_finish() -> None:
    for cut in range(len(TWO_ROWS)):
        decoder = CopyDecoder(["int4", "text"])
        decoder.feed(TWO_ROWS[:cut])
        with pytest.raises(CopyFormatError, match=f"byte offset {cut}\\b") as info:
            decoder.finish()
        assert info.value.offset == cut
    decoder = CopyDecoder(["int4", "text"])
    decoder.feed(TWO_ROWS[: HEADER + 2 + 8])
    with pytest.raises(CopyFormatError, match=r"row 1, column 1: .*after 1 of 2 fields"):
        decoder.finish()
    with pytest.raises(CopyFormatError, match=r"byte offset 0: .*header"):
        CopyDecoder(["int4"]).finish()


def test_trailing_garbage() -> None:
    with pytest.raises(CopyFormatError, match=f"byte offset {len(TWO_ROWS)}: bytes after"):
        CopyDecoder(["int4", "text"]).feed(TWO_ROWS + b"\x00")
    decoder = CopyDecoder(["int4", "text"])
    assert decoder.feed(TWO_ROWS) == [(1, "one"), (2, None)]
    decoder.finish()
    decoder.finish()  # finishing twice is fine
    with pytest.raises(CopyFormatError, match=f"byte offset {len(TWO_ROWS)}: bytes after"):
        decoder.feed(b"x")
    with pytest.raises(CopyFormatError, match="bytes after"):
        decoder.finish()


def test_unknown_kind() -> None:
    with pytest.raises(CopyFormatError, match=r"byte offset 0, column 1 \(cash\): .*'money'"):
        CopyDecoder(["int4", "money"], columns=["id", "cash"])
    with pytest.raises(CopyFormatError, match="'__int4'"):
        decoder_for("__int4")
    with pytest.raises(CopyFormatError, match="'money'"):
        kind_of("money")
    with pytest.raises(ValueError, match="2 column names for 1"):
        CopyDecoder(["int4"], columns=["a", "b"])


def test_bad_field_names_row_and_column() -> None:
    stream = build([[i4(1), b"\x01{}"], [i4(2), b"\x02{}"]])
    field = HEADER + 2 + 8 + 7 + 2 + 8
    with pytest.raises(
        CopyFormatError, match=f"byte offset {field}, row 2, column 1 \\(doc\\): .*jsonb version 2"
    ) as info:
        CopyDecoder(["int4", "jsonb"], columns=["id", "doc"]).feed(stream)
    assert (info.value.row, info.value.column, info.value.column_name) == (2, 1, "doc")
    for kind, data in [
        ("int4", b"\x00\x01"),
        ("text", b"\xff"),
        ("bool", b""),
        ("uuid", b"x" * 15),
        ("numeric", struct.pack(">hhHH", 0, 0, 0x1234, 0)),
        ("numeric", struct.pack(">hhHHH", 1, 0, 0, 0, 10000)),
        ("numeric", struct.pack(">hhHH", 2, 0, 0, 0)),
        ("time", struct.pack(">q", -1)),
        ("_int4", struct.pack(">iiI", 7, 0, 23)),
        ("_int4", struct.pack(">iiIii", 1, 0, 23, 2, 1) + i4(4) + i4(1)),
        ("_int4", struct.pack(">iiI", 0, 0, 23) + b"x"),
        ("_int4", struct.pack(">iiIii", 1, 0, 23, 1, 1) + i4(-2)),
        ("_int4", struct.pack(">iiIii", 1, 2, 23, 1, 1) + i4(-1)),
    ]:
        bad = build([[data]])
        with pytest.raises(CopyFormatError, match=f"byte offset {HEADER + 2}, row 1, column 0"):
            CopyDecoder([kind]).feed(bad)
    with pytest.raises(CopyFormatError, match="field length -2"):
        CopyDecoder(["int4"]).feed(SIGNATURE + bytes(8) + b"\x00\x01" + i4(-2))


# --- decoders alone: forms the server does not send, and buffers ------------------------------


def numeric(weight: int, sign: int, dscale: int, *digits: int) -> bytes:
    return struct.pack(f">hhHH{len(digits)}H", len(digits), weight, sign, dscale, *digits)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (numeric(0, 0, 0), "0"),
        (numeric(0, 0x4000, 2), "0.00"),
        (numeric(-1, 0x4000, 2, 5), "0.00"),  # cut to zero: no sign, as numeric_recv does
        (numeric(0, 0, 2, 1, 2345), "1.23"),  # cut, not rounded
        (numeric(1, 0, 0, 0, 5), "5"),  # a leading zero digit
        (numeric(2, 0x4000, 1, 12), "-1200000000.0"),
        (numeric(-3, 0, 14, 7), "0.00000000000700"),
        (numeric(-3, 0, 3, 7), "0.000"),
        (numeric(0, 0xD000, 0), "Infinity"),
        (numeric(0, 0xF000, 0), "-Infinity"),
        (numeric(0, 0xC000, 0), "NaN"),
    ],
)
def test_numeric_forms(data: bytes, text: str) -> None:
    assert decoder_for("numeric")(data) == text
    assert decoder_for("numeric")(memoryview(data)) == text


def test_forms_the_server_does_not_send() -> None:
    char = decoder_for("char")
    assert [char(b"\xe9"), char(b"\x00"), char(b"a")] == ["é", "", "a"]
    interval = decoder_for("interval")
    extreme = struct.pack(">qii", 2**63 - 1, 2**31 - 1, 2**31 - 1)
    assert interval(extreme) == "infinity"  # PostgreSQL 17's infinite interval
    assert interval(struct.pack(">qii", -(2**63), -(2**31), -(2**31))) == "-infinity"
    assert interval(struct.pack(">qii", -(2**63), 0, 0)) == "-2562047788:00:54.775808"
    # Beyond datetime's years 1-9999: the Gregorian calendar repeats every 146097 days (400
    # years), so a day 400 * k years away has the same month and day.
    date = decoder_for("date")
    for days, text in [(0, "2000-01-01"), (-1, "1999-12-31"), (59, "2000-02-29")]:
        for k in (-5000, -10, -5, -4, 5, 10, 5000):
            year = 2000 + 400 * k - (days < 0)
            shifted = f"{year:04d}{text[4:]}" if year > 0 else f"{1 - year:04d}{text[4:]} BC"
            assert date(i4(days + 146_097 * k)) == shifted
    assert decoder_for("timestamp")(struct.pack(">q", -(2**63) + 1)).endswith(" BC")
    assert (
        decoder_for("_float4")(
            struct.pack(">iiIii", 1, 1, 700, 3, 1)
            + i4(4)
            + struct.pack(">f", math.inf)
            + i4(4)
            + struct.pack(">f", math.nan)
            + i4(-1)
        )
        == '["Infinity","NaN",null]'
    )
    assert decoder_for("_bool")(struct.pack(">iiI", 0, 0, 16)) == "[]"


SAMPLES: list[tuple[str, bytes, object]] = [
    ("int2", b"\xff\xfe", -2),
    ("oid", b"\xff\xff\xff\xff", 4294967295),
    ("float4", struct.pack(">f", 1.1), struct.unpack(">f", struct.pack(">f", 1.1))[0]),
    ("float8", struct.pack(">d", math.nan), "NaN"),
    ("float8", struct.pack(">d", -math.inf), -math.inf),
    ("bool", b"\x02", 1),
    ("bool", b"\x00", 0),
    ("text", "żółć".encode(), "żółć"),
    ("bytea", b"\x00\x01", b"\x00\x01"),
    ("uuid", bytes(range(16)), "00010203-0405-0607-0809-0a0b0c0d0e0f"),
    ("jsonb", b"\x01[1]", "[1]"),
    ("date", i4(0), "2000-01-01"),
    ("time", struct.pack(">q", 1), "00:00:00.000001"),
    ("timetz", struct.pack(">qi", 0, -3600), "00:00:00+01"),
    ("timestamptz", struct.pack(">q", -1), "1999-12-31 23:59:59.999999+00"),
    ("interval", struct.pack(">qii", 0, 0, 0), "00:00:00"),
    ("_bytea", struct.pack(">iiIii", 1, 0, 17, 1, 1) + i4(2) + b"\x00\xff", '["\\\\x00ff"]'),
]


@pytest.mark.parametrize(("kind", "data", "value"), SAMPLES)
@pytest.mark.parametrize("as_buffer", [bytes, memoryview], ids=["bytes", "memoryview"])
def test_decoders_take_bytes_and_memoryview(
    kind: str, data: bytes, value: object, as_buffer: Callable[[bytes], Any]
) -> None:
    assert exact(decoder_for(kind)(as_buffer(data))) == exact(value)


def test_kind_of_spellings() -> None:
    spellings = {
        "integer": "int4",
        "INT4": "int4",
        "pg_catalog.int8": "int8",
        "character varying(20)": "varchar",
        "character(3)": "bpchar",
        "char(3)": "bpchar",
        "char": "char",
        '"char"': "char",
        "double precision": "float8",
        "float(10)": "float4",
        "float(30)": "float8",
        "timestamp(3) without time zone": "timestamp",
        "time(0) with time zone": "timetz",
        "interval day to second(2)": "interval",
        "numeric(10,2)[]": "_numeric",
        "text[][]": "_text",
        "_uuid": "_uuid",
        "enum": "enum",
    }
    assert {name: kind_of(name) for name in spellings} == spellings
    assert kind_of("ARRAY", element="integer") == "_int4"
    with pytest.raises(CopyFormatError, match="not an array"):
        kind_of("int4", element="int4")
