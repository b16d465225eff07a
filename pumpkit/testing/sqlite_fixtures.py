"""A deliberately nasty SQLite database, and a comparator that proves two databases identical.

These are test helpers for the export -> import round trip:

* :func:`make_tricky_database` builds, deterministically, a database that contains every
  storage class and value a naive dump tool gets wrong (``-0.0``, ``''`` vs ``NULL`` vs
  ``x''``, text with NUL characters, 2**63-1, huge blobs), type-affinity surprises, names that
  need quoting, WITHOUT ROWID tables, AUTOINCREMENT counters ahead of the data, rowids that a
  faithful copy must keep, every kind of index, views on views, triggers whose premature
  creation would double rows, CHECK and FOREIGN KEY constraints and generated columns.
* :func:`compare_databases` streams two databases side by side and returns human-readable
  differences (an empty list means identical): the schema (``sqlite_master``), every row of
  every table with its exact storage class, ``sqlite_sequence``, ``user_version``,
  ``application_id`` and ``integrity_check``.
* :func:`table_row_counts` counts the rows of every user table.

Only the standard library's :mod:`sqlite3` is used.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import random
import sqlite3
import struct
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

__all__ = ("compare_databases", "make_tricky_database", "table_row_counts")

StrPath: TypeAlias = "str | os.PathLike[str]"
Row: TypeAlias = "tuple[Any, ...]"

#: The seed of every random choice :func:`make_tricky_database` makes.
SEED: Final = 0x50554D50
#: ``PRAGMA application_id`` of the tricky database ("PUMP").
APPLICATION_ID: Final = 0x50554D50
#: ``PRAGMA user_version`` of the tricky database.
USER_VERSION: Final = 42
#: Generated columns (``GENERATED ALWAYS AS``) exist from SQLite 3.31.0 on.
GENERATED_COLUMNS_SUPPORTED: Final = sqlite3.sqlite_version_info >= (3, 31, 0)

_MIB: Final = 1024 * 1024
_FETCH: Final = 64  # rows per fetchmany(); rows may hold multi-megabyte blobs
_RESERVED_PREFIX: Final = "pumpkit_"


# --------------------------------------------------------------------------------------------
# The tricky database
# --------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


_WEIRD: Final = "we\"ird 'name'"  # table  "we""ird 'name'"
_CUSTOMER: Final = "клиент"  # non-ASCII parent table of the FOREIGN KEY

# (label, value) rows of the "storage classes" table, all in the untyped column "anything".
_FIXED_VALUES: Final[tuple[tuple[str, object], ...]] = (
    ("null", None),
    ("int 0", 0),
    ("int 1", 1),
    ("int -1", -1),
    ("int 2**53+1", 2**53 + 1),
    ("int max", 2**63 - 1),
    ("int min", -(2**63)),
    ("real 0.0", 0.0),
    ("real -0.0", -0.0),
    ("real 1.0", 1.0),
    ("real 1.5", 1.5),
    ("real 0.1", 0.1),
    ("real 1e308", 1e308),
    ("real 5e-324", 5e-324),
    ("real inf", float("inf")),
    ("real -inf", float("-inf")),
    ("text empty", ""),
    ("blob empty", b""),
    ("text 1", "1"),
    ("blob 1", b"1"),
    ("text 1.0", "1.0"),
    ("text null", "NULL"),
    ("text german", "Grüße"),
    ("text japanese", "日本語"),
    ("text emoji", "🐍"),
    ("text rtl", "שלום"),
    ("text combining", "e\u0301"),  # NFD: a tool that normalises Unicode changes it
    ("text nul", "a\x00b"),
    ("text only nul", "\x00"),
    ("text crlf", "line 1\r\nline 2\n\ttab"),
    ("text quotes", 'it\'s "quoted" [x] `y`'),
    ("text blob literal", "x'00'"),
    ("blob nul bytes", b"\x00" * 8),
    ("blob all bytes", bytes(range(256))),
    ("blob utf8 text", "Grüße".encode()),
)

_AFFINITY_ROWS: Final[tuple[tuple[str, str, object], ...]] = (
    # (label, column, value): what is inserted; the column's affinity may convert it
    ("text keeps 007", "t", "007"),  # stays text '007'
    ("text gets int 7", "t", 7),  # becomes text '7'
    ("text holds blob", "t", b"\x00\x01"),  # blobs are never converted
    ("integer holds real 1.5", "i", 1.5),  # not lossless, stays real
    ("integer from text 42", "i", "42"),  # becomes integer 42
    ("integer holds text", "i", "abc"),  # stays text
    ("integer from huge text", "i", "9223372036854775808"),  # becomes real 9.2e18
    ("numeric from text 3.0", "n", "3.0"),  # becomes integer 3
    ("numeric from text 1e3", "n", "1e3"),  # becomes integer 1000
    ("numeric from text 12.5", "n", "12.5"),  # becomes real 12.5
    ("numeric keeps hex text", "n", "0x10"),  # stays text
    ("numeric from padded text", "n", " 42 "),  # becomes integer 42
    ("real from int 2", "r", 2),  # stored as integer on disk, read as real 2.0
    ("blob holds text", "b", "hello"),  # stays text
    ("blob holds int", "b", 12),  # stays integer
)


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = "abcXYZ 019_-'\"äöüßéñ日本語한국어שלוםπ🐍😀\t\n\\%"
    return "".join(rng.choices(alphabet, k=n))


def _random_any(rng: random.Random) -> object:
    kind = rng.randrange(9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == 2:
        return rng.randint(-5, 5)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind == 4:
        return rng.choice([0.0, -0.0, 1.0, 1e-300, -1e300, float("inf")])
    if kind == 5:
        return _random_text(rng, rng.randrange(0, 24))
    if kind == 6:
        return rng.randbytes(rng.randrange(0, 24))
    if kind == 7:
        return rng.choice(["", b"", "1", b"1", "0", "a\x00b"])
    return str(rng.randint(0, 999)).zfill(4)  # number-looking text


def _wide_rows(rng: random.Random, rows: int) -> Iterator[tuple[object, ...]]:
    nocase_words = ["apple", "Apple", "APPLE", "Äpfel", "äpfel", "zebra", "Zebra", ""]
    for i in range(rows):
        rowid = i + 1 + (i // 50) * 7  # an INTEGER PRIMARY KEY with gaps
        c_int = rng.choice([None, rng.randint(-(2**63), 2**63 - 1), rng.randint(-1000, 1000)])
        c_real = rng.choice([None, rng.uniform(-1e9, 1e9), float(rng.randint(-9, 9)), -0.0])
        c_text = rng.choice([None, "", _random_text(rng, rng.randrange(1, 40))])
        c_blob = rng.choice([None, b"", rng.randbytes(rng.randrange(1, 64))])
        c_num = rng.choice([None, "1.50", "2", 3.0, "1e2", "abc", 7, rng.uniform(-10, 10)])
        c_bool = rng.choice([None, 0, 1, "true", "FALSE"])
        c_date = f"20{rng.randint(0, 39):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        c_json = json.dumps(
            {"i": i, "k": _random_text(rng, 5), "f": rng.random(), "n": None},
            ensure_ascii=False,
        )
        c_any = _random_any(rng)
        c_unique = f"u{i:06d}-" + rng.choice(["ä", "b", "C", "😀", "'", '"'])
        c_default = rng.choice(["dflt", "other"])
        c_nocase = rng.choice(nocase_words)
        yield (
            rowid,
            c_int,
            c_real,
            c_text,
            c_blob,
            c_num,
            c_bool,
            c_date,
            c_json,
            c_any,
            c_unique,
            c_default,
            c_nocase,
        )


def _schema_statements() -> list[str]:
    """CREATE statements for tables, in creation order (indexes, views, triggers come later)."""
    statements = [
        # every storage class in one untyped column
        'CREATE TABLE "storage classes" (\n'
        "    id INTEGER PRIMARY KEY,\n"
        "    label TEXT NOT NULL UNIQUE,\n"
        "    anything\n"
        ")",
        # type-affinity surprises
        "CREATE TABLE affinity (\n"
        "    id INTEGER PRIMARY KEY, label TEXT NOT NULL,\n"
        "    t TEXT, i INTEGER, n NUMERIC, r REAL, b BLOB\n"
        ")",
        # FOREIGN KEY parent (non-ASCII name, sorts after its child "order")
        f"CREATE TABLE {_q(_CUSTOMER)} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        # SQL keywords as names, CHECK, FOREIGN KEY; a rowid table without INTEGER PRIMARY KEY
        'CREATE TABLE "order" (\n'
        '    "select" INTEGER,\n'
        '    "from" TEXT,\n'
        '    "ключ" TEXT NOT NULL,\n'
        '    "where" REAL,\n'
        f"    customer_id INTEGER REFERENCES {_q(_CUSTOMER)}(id) ON DELETE CASCADE,\n"
        "    qty INTEGER NOT NULL DEFAULT 1 CHECK (qty >= 0),\n"
        '    "group" TEXT,\n'
        '    CONSTRAINT "code len" CHECK (length("from") <= 40)\n'
        ")",
        # the audit table the AFTER INSERT trigger on "order" writes to
        'CREATE TABLE "audit log" (\n'
        "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "    tbl TEXT NOT NULL,\n"
        "    action TEXT NOT NULL,\n"
        "    ref\n"
        ")",
        # spaces, quotes, brackets in table and column names
        'CREATE TABLE "my table" (\n'
        '    "my column" TEXT,\n'
        '    "a""b" INTEGER,\n'
        '    "it\'s" TEXT,\n'
        '    "[br]" BLOB,\n'
        '    "日本" TEXT,\n'
        '    "  padded  " TEXT\n'
        ")",
        f"CREATE TABLE {_q(_WEIRD)} (\n"
        '    "x y" INTEGER PRIMARY KEY,\n'
        '    "[z]" TEXT,\n'
        '    "a.b" TEXT\n'
        ")",
        # WITHOUT ROWID, composite primary key (text, int)
        'CREATE TABLE "wr composite" (\n'
        "    k TEXT NOT NULL,\n"
        "    n INTEGER NOT NULL,\n"
        "    payload,\n"
        "    PRIMARY KEY (k, n)\n"
        ") WITHOUT ROWID",
        # WITHOUT ROWID, NOCASE text primary key ('ü' and 'Ü' are distinct under NOCASE)
        'CREATE TABLE "wr nocase" (code TEXT PRIMARY KEY COLLATE NOCASE, v) WITHOUT ROWID',
        # AUTOINCREMENT whose sqlite_sequence is ahead of max(rowid)
        "CREATE TABLE autoinc (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
        # rowid table (no INTEGER PRIMARY KEY) with gappy, huge and negative rowids
        "CREATE TABLE gappy (v TEXT, n INTEGER)",
        # INTEGER PRIMARY KEY (rowid alias) with negative keys
        'CREATE TABLE "negative keys" (id INTEGER PRIMARY KEY, v)',
        # INTEGER PRIMARY KEY DESC is *not* a rowid alias: id and rowid are different things
        'CREATE TABLE "ipk desc" (id INTEGER PRIMARY KEY DESC, v TEXT)',
        # a column named rowid hides the rowid: compared as a multiset of rows, with duplicates
        'CREATE TABLE "rowid shadow" ("rowid" TEXT, v)',
        # ~12 columns of seeded random data
        "CREATE TABLE wide (\n"
        "    id INTEGER PRIMARY KEY,\n"
        "    c_int INTEGER,\n"
        "    c_real REAL,\n"
        "    c_text TEXT,\n"
        "    c_blob BLOB,\n"
        "    c_num NUMERIC,\n"
        "    c_bool BOOLEAN,\n"
        "    c_date DATE,\n"
        "    c_json TEXT,\n"
        "    c_any,\n"
        "    c_unique TEXT UNIQUE,\n"
        "    c_default TEXT NOT NULL DEFAULT 'dflt',\n"
        "    c_nocase TEXT COLLATE NOCASE\n"
        ")",
        "CREATE TABLE empty (a, b TEXT)",
    ]
    if GENERATED_COLUMNS_SUPPORTED:
        statements.append(
            'CREATE TABLE "generated cols" (\n'
            "    a INTEGER,\n"
            "    b TEXT,\n"
            "    twice INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL,\n"
            "    shout TEXT GENERATED ALWAYS AS (upper(b) || '!') STORED,\n"
            "    c TEXT\n"
            ")"
        )
    return statements


_INDEXES: Final = (
    # plain
    "CREATE INDEX wide_c_int ON wide (c_int)",
    # UNIQUE
    'CREATE UNIQUE INDEX "uniq ключ" ON "order" ("ключ")',
    # partial
    'CREATE INDEX "wide partial" ON wide (c_real) WHERE c_real IS NOT NULL AND c_real > 0',
    # expression
    'CREATE INDEX "my lower" ON "my table" (lower("my column"))',
    # descending multi-column
    'CREATE INDEX "wide desc" ON wide (c_int DESC, c_text ASC, id DESC)',
    # COLLATE NOCASE
    'CREATE INDEX "wide nocase" ON wide (c_text COLLATE NOCASE)',
    # quoted names
    'CREATE INDEX "idx ""quoted""" ON "order" ("select")',
    f'CREATE INDEX "[idx] weird" ON {_q(_WEIRD)} ("[z]", "a.b")',
    'CREATE INDEX "wr payload" ON "wr composite" (payload)',
)

_VIEWS: Final = (
    'CREATE VIEW "order view" AS\n'
    '    SELECT o."select", o."ключ", o.qty, c.name AS customer\n'
    f'    FROM "order" AS o JOIN {_q(_CUSTOMER)} AS c ON c.id = o.customer_id',
    # a view on a view
    'CREATE VIEW "view ""on"" view" AS SELECT * FROM "order view" WHERE qty > 1',
    "CREATE VIEW \"вид 'wide'\" AS SELECT id, c_int, c_text FROM wide WHERE c_int IS NOT NULL",
)

_TRIGGERS: Final = (
    # AFTER INSERT writing to the audit table: created before the data is loaded, it doubles rows
    'CREATE TRIGGER "trg \'audit\' [order]" AFTER INSERT ON "order"\n'
    "BEGIN\n"
    "    INSERT INTO \"audit log\" (tbl, action, ref) VALUES ('order', 'insert', NEW.\"ключ\");\n"
    "END",
    # INSTEAD OF trigger on a view (never fired by the fixture)
    'CREATE TRIGGER "триггер" INSTEAD OF INSERT ON "order view"\n'
    "BEGIN\n"
    '    INSERT INTO "order" ("select", "ключ", qty) VALUES (NEW."select", NEW."ключ", NEW.qty);\n'
    "END",
)


def make_tricky_database(path: StrPath, *, big_blob_mb: int = 10, rows: int = 2000) -> None:
    """Create at ``path`` (which must not exist) a SQLite database full of edge cases.

    ``big_blob_mb`` is the size in MiB of the largest random blob (0 leaves it out) and
    ``rows`` the number of rows of the ``wide`` table. The content is the same on every
    run (every random choice is seeded), and so is the file with the same SQLite library.
    """
    if big_blob_mb < 0 or rows < 0:
        raise ValueError("big_blob_mb and rows must be >= 0")
    target = pathlib.Path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    rng = random.Random(SEED)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in _schema_statements():
            conn.execute(statement)
        _fill(conn, rng, big_blob_mb=big_blob_mb, rows=rows)
        for statement in (*_INDEXES, *_VIEWS, *_TRIGGERS):
            conn.execute(statement)
        # the trigger exists now: these inserts also write audit rows
        conn.executemany(
            'INSERT INTO "order" ("select", "from", "ключ", "where", customer_id, qty, "group")'
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (100, "after trigger", "k-100", None, 2, 5, "late"),
                (-100, "", "k--100", -0.5, None, 0, None),
            ],
        )
        conn.execute("COMMIT")
        conn.execute(f"PRAGMA user_version = {USER_VERSION}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    finally:
        conn.close()


def _fill(conn: sqlite3.Connection, rng: random.Random, *, big_blob_mb: int, rows: int) -> None:
    values: list[tuple[str, object]] = list(_FIXED_VALUES)
    values.append(("text 1 MiB", _random_text(rng, _MIB)))
    values.append(("blob small random", rng.randbytes(17)))
    values.append(("blob 4 KiB random", rng.randbytes(4096)))
    if big_blob_mb:
        values.append(("blob big random", rng.randbytes(big_blob_mb * _MIB)))
    conn.executemany('INSERT INTO "storage classes" (label, anything) VALUES (?, ?)', values)

    for label, column, value in _AFFINITY_ROWS:
        conn.execute(f"INSERT INTO affinity (label, {column}) VALUES (?, ?)", (label, value))

    conn.executemany(
        f"INSERT INTO {_q(_CUSTOMER)} (id, name) VALUES (?, ?)",
        [(1, "Ада"), (2, "O'Brien"), (3, 'say "hi"'), (-4, "negative")],
    )
    conn.executemany(
        'INSERT INTO "order" ("select", "from", "ключ", "where", customer_id, qty, "group")'
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                rng.randint(-50, 50),
                rng.choice(["", "x", "Grüße", None]),
                f"k-{i}",
                rng.choice([None, 0.25, -0.0, 1e-10]),
                rng.choice([None, 1, 2, 3, -4]),
                rng.randint(0, 5),
                rng.choice([None, "g1", "G1", "ג"]),
            )
            for i in range(40)
        ],
    )
    # an audit row that no trigger wrote (the trigger does not exist yet)
    conn.execute(
        "INSERT INTO \"audit log\" (tbl, action, ref) VALUES ('manual', 'note', ?)", (b"\x00",)
    )

    conn.executemany(
        'INSERT INTO "my table" ("my column", "a""b", "it\'s", "[br]", "日本", "  padded  ")'
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("Hello", 1, "it's", b"[", "日本", "  x  "),
            ("HELLO", 2, None, b"", "", " "),
            ("hello", -3, "", None, None, None),
        ],
    )
    conn.executemany(
        f'INSERT INTO {_q(_WEIRD)} ("x y", "[z]", "a.b") VALUES (?, ?, ?)',
        [(-1, "[", "a.b"), (0, "]", None), (7, "'", '"')],
    )
    conn.executemany(
        'INSERT INTO "wr composite" (k, n, payload) VALUES (?, ?, ?)',
        [
            ("a", 1, "one"),
            ("a", -1, -0.0),
            ("a", 2**63 - 1, b"max"),
            ("A", 1, None),
            ("", 0, ""),
            ("Grüße", -(2**63), b""),
            ("🐍", 3, 1.5),
            ("a\x00b", 4, "nul in key"),
        ],
    )
    conn.executemany(
        'INSERT INTO "wr nocase" (code, v) VALUES (?, ?)',
        [("abc", 1), ("XYZ", 2), ("ü", 3), ("Ü", 4), ("mixedCase", "m")],
    )

    conn.executemany("INSERT INTO autoinc (v) VALUES (?)", [(f"v{i}",) for i in range(1, 11)])
    conn.execute("DELETE FROM autoinc WHERE id > 6")  # sqlite_sequence says 10, max(id) is 6

    conn.executemany(
        "INSERT INTO gappy (rowid, v, n) VALUES (?, ?, ?)",
        [
            (5, "five", 5),
            (1000, "thousand", 1000),
            (2**62, "two to the 62", None),
            (-3, "negative", -3),
            (2**63 - 1, "max rowid", 0),
        ],
    )
    conn.executemany(
        'INSERT INTO "negative keys" (id, v) VALUES (?, ?)',
        [(-(2**63), "min"), (-10, "minus ten"), (-1, "minus one"), (0, "zero"), (3, "three")],
    )
    conn.executemany(
        'INSERT INTO "ipk desc" (rowid, id, v) VALUES (?, ?, ?)',
        [(10, 1, "a"), (20, -5, "b"), (3, 99, "c")],
    )
    conn.executemany(
        'INSERT INTO "rowid shadow" ("rowid", v) VALUES (?, ?)',
        [("r", 1), ("r", 1.0), ("r", 1), ("r", "1"), (None, None), (None, None)],
    )

    conn.executemany(
        "INSERT INTO wide (id, c_int, c_real, c_text, c_blob, c_num, c_bool, c_date, c_json,"
        " c_any, c_unique, c_default, c_nocase) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _wide_rows(rng, rows),
    )
    if GENERATED_COLUMNS_SUPPORTED:
        conn.executemany(
            'INSERT INTO "generated cols" (a, b, c) VALUES (?, ?, ?)',
            [(1, "x", "c1"), (None, "y", None), (-7, None, ""), (2**40, "grüße", "c4")],
        )


# --------------------------------------------------------------------------------------------
# Reading databases
# --------------------------------------------------------------------------------------------


class _Text(bytes):
    """A TEXT value as its raw bytes, so that text and blobs differ by Python type and
    invalid UTF-8 in a text value can be read and compared exactly."""

    __slots__ = ()


def _s(value: object) -> str:
    """A text value read through a :class:`_Text` connection as ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _open_ro(path: StrPath) -> sqlite3.Connection:
    target = pathlib.Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no such database: {target}")
    conn = sqlite3.connect(target.resolve().as_uri() + "?mode=ro", uri=True)
    conn.text_factory = _Text
    return conn


def _is_reserved(name: str) -> bool:
    return name.lower().startswith(_RESERVED_PREFIX)


def _is_ignored_entry(name: str, tbl_name: str) -> bool:
    return name.lower().startswith("sqlite_stat") or _is_reserved(name) or _is_reserved(tbl_name)


def _fetch(cursor: sqlite3.Cursor) -> Iterator[Row]:
    while batch := cursor.fetchmany(_FETCH):
        yield from batch


# --------------------------------------------------------------------------------------------
# Value formatting and exact comparison
# --------------------------------------------------------------------------------------------


def _fmt(value: object) -> str:
    """A short, unambiguous rendering of one value with its storage class."""
    if value is None:
        return "NULL"
    if isinstance(value, _Text):
        text = _s(value)
        shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
        return f"{shown} (text, {len(value)} bytes)"
    if isinstance(value, bytes):
        shown = value[:16].hex() + ("…" if len(value) > 16 else "")
        return f"x'{shown}' (blob, {len(value)} bytes)"
    if isinstance(value, float):
        return f"{value!r} (real)"
    if isinstance(value, int):
        return f"{value} (integer)"
    return repr(value)


def _brief(value: object) -> str:
    """A value without its storage class, for naming a key."""
    if value is None:
        return "NULL"
    if isinstance(value, _Text):
        text = _s(value)
        return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
    if isinstance(value, bytes):
        return "x'" + value[:16].hex() + ("…'" if len(value) > 16 else "'")
    return repr(value)


def _same(x: object, y: object) -> bool:
    """Exact equality: same storage class and value; reals compared bit for bit."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        assert isinstance(y, float)
        return struct.pack("<d", x) == struct.pack("<d", y)
    return x == y


def _rows_same(a: Row, b: Row) -> bool:
    """:func:`_same` for every column, fast when the rows are equal."""
    if a != b:  # 1 == 1.0 and _Text(b'1') == b'1': a necessary condition only
        return all(_same(x, y) for x, y in zip(a, b, strict=True))  # False, or NaN
    types = tuple(map(type, a))
    if types != tuple(map(type, b)):
        return False
    if float in types:
        # equal reals of equal type differ only as 0.0 and -0.0
        for x, y in zip(a, b, strict=True):
            if x == 0.0 and type(x) is float and math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
    return True


def _signature(row: Row) -> tuple[object, ...]:
    """A hashable form of a row that is equal exactly when the rows are :func:`_same`."""
    out: list[object] = []
    for v in row:
        if isinstance(v, float):
            out.append((float, struct.pack("<d", v)))
        else:
            out.append((type(v), v))
    return tuple(out)


def _order_key(value: object) -> tuple[int, Any]:
    """The position of a value in SQLite's ORDER BY ... COLLATE BINARY ordering."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, _Text):
        return (2, value)  # bytes order of UTF-8 is BINARY collation
    return (3, value)


# --------------------------------------------------------------------------------------------
# Comparing one table
# --------------------------------------------------------------------------------------------

_Kind = Literal["rowid", "primary key", "all columns", "sequence"]


@dataclass(frozen=True)
class _Plan:
    kind: _Kind
    sql: str
    columns: tuple[str, ...]  # of the result rows
    key_idx: tuple[int, ...]  # positions in a result row of the ordering key


def _xinfo(conn: sqlite3.Connection, table: str) -> list[tuple[str, int, int]]:
    """(name, pk ordinal, hidden) of every column, generated ones included."""
    rows = conn.execute("SELECT name, pk, hidden FROM pragma_table_xinfo(?)", (table,))
    return [(_s(name), int(pk), int(hidden)) for name, pk, hidden in rows]


def _without_rowid(conn: sqlite3.Connection, table: str, names: set[str]) -> bool:
    try:
        row = conn.execute(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", (table,)
        ).fetchone()
    except sqlite3.OperationalError:  # SQLite < 3.37: try to read the rowid
        row = None
    if row is not None:
        return bool(row[0])
    for alias in ("rowid", "_rowid_", "oid"):
        if alias not in names:
            try:
                conn.execute(f"SELECT {alias} FROM {_q(table)} LIMIT 0")
            except sqlite3.OperationalError:
                return True
            return False
    return False


def _plan(conn: sqlite3.Connection, table: str) -> _Plan:
    if table == "sqlite_sequence":
        sql = (
            "SELECT name, seq FROM sqlite_sequence WHERE name NOT LIKE 'pumpkit\\_%' ESCAPE '\\'"
            " ORDER BY name COLLATE BINARY"
        )
        return _Plan("sequence", sql, ("name", "seq"), (0,))
    info = _xinfo(conn, table)
    visible = [name for name, _pk, hidden in info if hidden != 1]
    lowered = {name.lower() for name, _pk, _hidden in info}
    src = _q(table)
    if _without_rowid(conn, table, lowered):
        pk = [name for name, ordinal, _h in sorted(info, key=lambda c: c[1]) if ordinal > 0]
        order = ", ".join(f"{_q(n)} COLLATE BINARY" for n in pk)
        sql = f"SELECT * FROM {src} ORDER BY {order}"
        return _Plan("primary key", sql, tuple(visible), tuple(visible.index(n) for n in pk))
    if lowered.isdisjoint({"rowid", "_rowid_", "oid"}):
        sql = f"SELECT rowid, * FROM {src} ORDER BY rowid"
        return _Plan("rowid", sql, ("rowid", *visible), (0,))
    order = ", ".join(f"{_q(n)} COLLATE BINARY" for n in visible)
    sql = f"SELECT * FROM {src} ORDER BY {order}"
    return _Plan("all columns", sql, tuple(visible), tuple(range(len(visible))))


# A group: the distinct rows (with their counts) that share one ordering key.
_Group: TypeAlias = "list[tuple[Row, int]]"


def _groups(
    rows: Iterator[Row], key: Callable[[Row], Any], unique: bool
) -> Iterator[tuple[Any, _Group]]:
    if unique:
        for row in rows:
            yield key(row), [(row, 1)]
        return
    for k, members in itertools.groupby(rows, key):
        counts: dict[tuple[object, ...], list[Any]] = {}
        for row in members:
            entry = counts.setdefault(_signature(row), [row, 0])
            entry[1] += 1
        yield k, [(entry[0], entry[1]) for entry in counts.values()]


class _Reporter:
    """Collects the differences of one table, at most ``limit`` of them in full."""

    def __init__(self, table: str, plan: _Plan, limit: int) -> None:
        self.table = table
        self.plan = plan
        self.limit = limit
        self.messages: list[str] = []
        self.suppressed = 0

    def add(self, message: str) -> None:
        if len(self.messages) < self.limit:
            self.messages.append(f"table {_q(self.table)} {message}")
        else:
            self.suppressed += 1

    def ident(self, row: Row) -> str:
        plan = self.plan
        if plan.kind == "rowid":
            return f"rowid {row[0]}"
        if plan.kind == "sequence":
            return f"name {_brief(row[0])}"
        parts = ", ".join(f"{plan.columns[i]}={_brief(row[i])}" for i in plan.key_idx)
        if plan.kind == "primary key":
            return f"primary key ({parts})"
        return f"row ({parts})"

    def only(self, side: str, group: _Group) -> None:
        for row, count in group:
            extra = f" ({count} times)" if count > 1 else ""
            self.add(f"{self.ident(row)}: row only in {side}{extra}: {_row_text(row)}")

    def compare(self, ga: _Group, gb: _Group) -> None:
        if len(ga) == 1 and len(gb) == 1 and ga[0][1] == gb[0][1] == 1:
            ra, rb = ga[0][0], gb[0][0]
            if not _rows_same(ra, rb):
                for column, x, y in zip(self.plan.columns, ra, rb, strict=True):
                    if not _same(x, y):
                        self.add(f"{self.ident(ra)} column {_q(column)}: a={_fmt(x)}, b={_fmt(y)}")
            return
        in_a = {_signature(row): (row, count) for row, count in ga}
        in_b = {_signature(row): (row, count) for row, count in gb}
        for sig, (row, count) in in_a.items():
            other = in_b.get(sig, (row, 0))[1]
            if other != count:
                self.add(f"{self.ident(row)}: {count} time(s) in a, {other} in b")
        for sig, (row, count) in in_b.items():
            if sig not in in_a:
                self.add(f"{self.ident(row)}: 0 time(s) in a, {count} in b")

    def finish(self) -> list[str]:
        if self.suppressed:
            self.messages.append(
                f"table {_q(self.table)}: {self.suppressed} more difference(s) not shown"
            )
        return self.messages


def _row_text(row: Row) -> str:
    return "(" + ", ".join(_fmt(v) for v in row) + ")"


def _compare_table(
    ca: sqlite3.Connection, cb: sqlite3.Connection, table: str, limit: int
) -> list[str]:
    plan_a, plan_b = _plan(ca, table), _plan(cb, table)
    if plan_a.kind != plan_b.kind or plan_a.columns != plan_b.columns:
        return [
            f"table {_q(table)}: rows not comparable: a is keyed by {plan_a.kind} with columns"
            f" {list(plan_a.columns)}, b by {plan_b.kind} with columns {list(plan_b.columns)}"
        ]
    reporter = _Reporter(table, plan_a, limit)
    if plan_a.kind == "rowid":
        key: Callable[[Row], Any] = _rowid_key
    else:
        idx = plan_a.key_idx

        def key(row: Row) -> Any:
            return tuple(_order_key(row[i]) for i in idx)

    unique = plan_a.kind in ("rowid", "primary key")
    with closing(ca.execute(plan_a.sql)) as cur_a, closing(cb.execute(plan_b.sql)) as cur_b:
        _merge(
            _groups(_fetch(cur_a), key, unique),
            _groups(_fetch(cur_b), key, unique),
            reporter,
        )
    return reporter.finish()


def _rowid_key(row: Row) -> Any:
    return row[0]


def _merge(
    side_a: Iterator[tuple[Any, _Group]],
    side_b: Iterator[tuple[Any, _Group]],
    reporter: _Reporter,
) -> None:
    """Walk two key-ordered streams of groups in lockstep."""
    item_a = next(side_a, None)
    item_b = next(side_b, None)
    while item_a is not None and item_b is not None:
        (ka, ga), (kb, gb) = item_a, item_b
        if ka == kb:
            reporter.compare(ga, gb)
            item_a, item_b = next(side_a, None), next(side_b, None)
        elif ka < kb:
            reporter.only("a", ga)
            item_a = next(side_a, None)
        else:
            reporter.only("b", gb)
            item_b = next(side_b, None)
    while item_a is not None:
        reporter.only("a", item_a[1])
        item_a = next(side_a, None)
    while item_b is not None:
        reporter.only("b", item_b[1])
        item_b = next(side_b, None)


# --------------------------------------------------------------------------------------------
# Comparing databases
# --------------------------------------------------------------------------------------------

_Entry: TypeAlias = "tuple[str, str | None]"  # (tbl_name, sql)


def _schema(conn: sqlite3.Connection) -> dict[tuple[str, str], _Entry]:
    entries: dict[tuple[str, str], _Entry] = {}
    for kind, name, tbl_name, sql in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
    ):
        name_s, tbl_s = _s(name), _s(tbl_name)
        if _is_ignored_entry(name_s, tbl_s):
            continue
        entries[(_s(kind), name_s)] = (tbl_s, None if sql is None else _s(sql))
    return entries


def _describe(kind: str, name: str, tbl_name: str) -> str:
    if kind in ("table", "view") and name == tbl_name:
        return f"{kind} {_q(name)}"
    return f"{kind} {_q(name)} on table {_q(tbl_name)}"


def _compare_schema(
    schema_a: dict[tuple[str, str], _Entry], schema_b: dict[tuple[str, str], _Entry]
) -> list[str]:
    out: list[str] = []
    for kind, name in sorted(schema_a.keys() | schema_b.keys()):
        entry_a, entry_b = schema_a.get((kind, name)), schema_b.get((kind, name))
        if entry_b is None:
            assert entry_a is not None
            out.append(f"schema: {_describe(kind, name, entry_a[0])} only in a: {entry_a[1]!r}")
        elif entry_a is None:
            out.append(f"schema: {_describe(kind, name, entry_b[0])} only in b: {entry_b[1]!r}")
        elif entry_a[0] != entry_b[0]:
            out.append(
                f"schema: {kind} {_q(name)} belongs to table {_q(entry_a[0])} in a,"
                f" {_q(entry_b[0])} in b"
            )
        elif entry_a[1] != entry_b[1]:
            out.append(
                f"schema: {_describe(kind, name, entry_a[0])} sql differs:"
                f" a={entry_a[1]!r}, b={entry_b[1]!r}"
            )
    return out


def _pragma_value(conn: sqlite3.Connection, pragma: str) -> object:
    row = conn.execute(f"PRAGMA {pragma}").fetchone()
    return None if row is None else row[0]


def _integrity(conn: sqlite3.Connection) -> list[str]:
    try:
        return [_s(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [f"error: {exc}"]


def compare_databases(a: StrPath, b: StrPath, *, max_per_table: int = 20) -> list[str]:
    """Every difference between the SQLite databases at ``a`` and ``b``; ``[]`` if identical.

    Compared: ``sqlite_master`` entries (type, name, tbl_name, sql, not rootpage; leaving out
    ``sqlite_stat*`` and anything named or on a table named ``pumpkit_*``); every row of every
    table present on both sides, with its exact storage class (``1``, ``1.0``, ``'1'`` and
    ``x'31'`` differ, reals are compared bit for bit so ``-0.0`` is not ``0.0``): rowid tables
    by rowid, WITHOUT ROWID tables by primary key, ``sqlite_sequence`` by name (its
    ``pumpkit_*`` rows left out), tables with a column named rowid, _rowid_ or oid as a
    multiset of rows; ``PRAGMA user_version`` and ``application_id``; and ``PRAGMA
    integrity_check`` must say ``ok`` on both. Both databases are opened read-only and
    streamed in lockstep; at most ``max_per_table`` differences of a table are spelled out.
    """
    out: list[str] = []
    with closing(_open_ro(a)) as ca, closing(_open_ro(b)) as cb:
        for side, conn in (("a", ca), ("b", cb)):
            result = _integrity(conn)
            if result != ["ok"]:
                out.append(f"integrity_check({side}): " + "; ".join(result[:5]))
        for pragma in ("user_version", "application_id"):
            va, vb = _pragma_value(ca, pragma), _pragma_value(cb, pragma)
            if va != vb:
                out.append(f"pragma {pragma}: a={va}, b={vb}")
        schema_a, schema_b = _schema(ca), _schema(cb)
        out.extend(_compare_schema(schema_a, schema_b))
        for (kind, name), (_tbl, sql) in sorted(schema_a.items()):
            if kind != "table" or ("table", name) not in schema_b:
                continue
            if sql is not None and sql.upper().startswith("CREATE VIRTUAL"):
                continue  # its content lives in shadow tables, which are compared
            try:
                out.extend(_compare_table(ca, cb, name, max_per_table))
            except sqlite3.DatabaseError as exc:
                out.append(f"table {_q(name)}: cannot be read: {exc}")
    return out


def table_row_counts(path: StrPath) -> dict[str, int]:
    """``{table: number of rows}`` for every ordinary table of the database at ``path``.

    Left out: SQLite's internal ``sqlite_*`` tables, ``pumpkit_*`` tables and virtual tables.
    """
    with closing(_open_ro(path)) as conn:
        tables = [
            (_s(name), _s(sql or b""))
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        counts: dict[str, int] = {}
        for name, sql in tables:
            if name.lower().startswith("sqlite_") or _is_reserved(name):
                continue
            if sql.upper().startswith("CREATE VIRTUAL"):
                continue
            (count,) = conn.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()
            counts[name] = int(count)
        return counts
