"""The tricky SQLite fixture has every promised feature; the comparator sees every change."""

from __future__ import annotations

import hashlib
import math
import shutil
import sqlite3
import struct
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpkit.testing.sqlite_fixtures import (
    APPLICATION_ID,
    GENERATED_COLUMNS_SUPPORTED,
    compare_databases,
    make_tricky_database,
    table_row_counts,
)

SMALL = {"big_blob_mb": 1, "rows": 200}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tricky") / "tricky.db"
    make_tricky_database(path, **SMALL)
    return path


@pytest.fixture
def copy(tricky: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copyfile(tricky, target)
    return target


def query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(path: Path, sql: str, params: tuple[object, ...] = ()) -> object:
    rows = query(path, sql, params)
    assert len(rows) == 1, rows
    return rows[0][0]


def execute(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def master(path: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    rows = query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master")
    return {
        (str(t), str(n)): (str(tbl), None if sql is None else str(sql)) for t, n, tbl, sql in rows
    }


def value(path: Path, label: str) -> object:
    return scalar(path, 'SELECT anything FROM "storage classes" WHERE label = ?', (label,))


# --------------------------------------------------------------------------------------------
# The fixture
# --------------------------------------------------------------------------------------------


def test_builds_the_same_bytes_every_time(tricky: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.db"
    make_tricky_database(again, **SMALL)
    assert compare_databases(tricky, again) == []
    assert (
        hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(tricky.read_bytes()).digest()
    )


def test_refuses_to_overwrite_and_bad_arguments(tricky: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        make_tricky_database(tricky)
    with pytest.raises(ValueError):
        make_tricky_database(tmp_path / "x.db", rows=-1)
    with pytest.raises(ValueError):
        make_tricky_database(tmp_path / "y.db", big_blob_mb=-1)


def test_integrity_pragmas_and_foreign_keys(tricky: Path) -> None:
    assert query(tricky, "PRAGMA integrity_check") == [("ok",)]
    assert query(tricky, "PRAGMA foreign_key_check") == []
    assert scalar(tricky, "PRAGMA user_version") == 42
    assert scalar(tricky, "PRAGMA application_id") == APPLICATION_ID == 0x50554D50


STORAGE = [
    ("null", "null"),
    ("int 0", "integer"),
    ("int -1", "integer"),
    ("int max", "integer"),
    ("int min", "integer"),
    ("real 0.0", "real"),
    ("real -0.0", "real"),
    ("real 1e308", "real"),
    ("real 5e-324", "real"),
    ("real inf", "real"),
    ("real -inf", "real"),
    ("text empty", "text"),
    ("blob empty", "blob"),
    ("text german", "text"),
    ("text japanese", "text"),
    ("text emoji", "text"),
    ("text rtl", "text"),
    ("text nul", "text"),
    ("text 1 MiB", "text"),
    ("blob small random", "blob"),
    ("blob big random", "blob"),
]


@pytest.mark.parametrize(("label", "storage_class"), STORAGE)
def test_every_storage_class_in_one_column(tricky: Path, label: str, storage_class: str) -> None:
    got = scalar(tricky, 'SELECT typeof(anything) FROM "storage classes" WHERE label = ?', (label,))
    assert got == storage_class


def test_special_values_are_stored_exactly(tricky: Path) -> None:
    assert value(tricky, "int 0") == 0
    assert value(tricky, "int -1") == -1
    assert value(tricky, "int max") == 2**63 - 1
    assert value(tricky, "int min") == -(2**63)
    negative_zero, zero = value(tricky, "real -0.0"), value(tricky, "real 0.0")
    assert isinstance(negative_zero, float) and math.copysign(1.0, negative_zero) == -1.0
    assert isinstance(zero, float) and math.copysign(1.0, zero) == 1.0
    assert value(tricky, "real 1e308") == 1e308
    assert value(tricky, "real 5e-324") == 5e-324
    assert value(tricky, "real inf") == math.inf
    assert value(tricky, "real -inf") == -math.inf
    assert value(tricky, "text empty") == ""
    assert value(tricky, "blob empty") == b""
    assert value(tricky, "null") is None
    for text in ("Grüße", "日本語", "🐍", "שלום"):
        assert (
            scalar(tricky, 'SELECT count(*) FROM "storage classes" WHERE anything = ?', (text,))
            == 1
        )
    # the NUL survives: length() stops at it, the bytes do not
    row = query(
        tricky,
        "SELECT length(anything), length(CAST(anything AS BLOB)), hex(anything)"
        " FROM \"storage classes\" WHERE label = 'text nul'",
    )
    assert row == [(1, 3, "610062")]
    assert value(tricky, "text nul") == "a\x00b"
    assert len(str(value(tricky, "text 1 MiB"))) == MIB
    assert len(bytes(value(tricky, "blob big random"))) == MIB  # type: ignore[arg-type]
    # all values distinct, exactly
    values = [v for (v,) in query(tricky, 'SELECT anything FROM "storage classes"')]
    signatures = {(type(v), struct.pack("<d", v) if isinstance(v, float) else v) for v in values}
    assert len(signatures) == len(values)
    assert (
        scalar(
            tricky,
            "SELECT count(*) FROM \"storage classes\" WHERE typeof(anything) = 'real'"
            " AND anything != anything",
        )
        == 0
    )  # no NaN


def test_type_affinity_surprises(tricky: Path) -> None:
    rows = dict(
        (str(label), (str(kind), v))
        for label, kind, v in query(
            tricky,
            "SELECT label, typeof(coalesce(t, i, n, r, b)), coalesce(t, i, n, r, b) FROM affinity",
        )
    )
    assert rows["text keeps 007"] == ("text", "007")
    assert rows["text gets int 7"] == ("text", "7")
    assert rows["text holds blob"] == ("blob", b"\x00\x01")
    assert rows["integer holds real 1.5"] == ("real", 1.5)
    assert rows["integer from text 42"] == ("integer", 42)
    assert rows["integer holds text"] == ("text", "abc")
    assert rows["numeric from text 3.0"] == ("integer", 3)
    assert rows["numeric keeps hex text"] == ("text", "0x10")
    assert rows["real from int 2"] == ("real", 2.0)
    assert rows["blob holds text"] == ("text", "hello")
    decl = {
        str(n): str(t)
        for n, t in query(tricky, "SELECT name, type FROM pragma_table_info('affinity')")
    }
    assert decl == {
        "id": "INTEGER",
        "label": "TEXT",
        "t": "TEXT",
        "i": "INTEGER",
        "n": "NUMERIC",
        "r": "REAL",
        "b": "BLOB",
    }


def test_names_that_need_quoting(tricky: Path) -> None:
    schema = master(tricky)
    tables = {name for kind, name in schema if kind == "table"}
    assert {"order", "my table", "we\"ird 'name'", "клиент", "storage classes"} <= tables
    assert ("index", 'idx "quoted"') in schema
    assert ("index", "uniq ключ") in schema
    assert ("index", "[idx] weird") in schema
    assert ("view", 'view "on" view') in schema
    assert ("view", "вид 'wide'") in schema
    assert ("trigger", "trg 'audit' [order]") in schema
    assert ("trigger", "триггер") in schema
    columns = {str(n) for (n,) in query(tricky, "SELECT name FROM pragma_table_info('order')")}
    assert {"select", "from", "ключ", "where", "group"} <= columns
    columns = {str(n) for (n,) in query(tricky, "SELECT name FROM pragma_table_info('my table')")}
    assert {"my column", 'a"b', "it's", "[br]", "日本", "  padded  "} == columns


def test_without_rowid_composite_key(tricky: Path) -> None:
    assert scalar(tricky, "SELECT wr FROM pragma_table_list('wr composite')") == 1
    pk = query(
        tricky, "SELECT name, type FROM pragma_table_info('wr composite') WHERE pk > 0 ORDER BY pk"
    )
    assert pk == [("k", "TEXT"), ("n", "INTEGER")]
    assert scalar(tricky, 'SELECT count(*) FROM "wr composite"') == 8
    assert scalar(tricky, "SELECT wr FROM pragma_table_list('wr nocase')") == 1
    assert scalar(tricky, "SELECT count(*) FROM \"wr nocase\" WHERE code IN ('ü', 'Ü')") == 2


def test_autoincrement_counter_ahead_of_the_data(tricky: Path) -> None:
    seq = scalar(tricky, "SELECT seq FROM sqlite_sequence WHERE name = 'autoinc'")
    top = scalar(tricky, "SELECT max(rowid) FROM autoinc")
    assert isinstance(seq, int) and isinstance(top, int) and seq > top
    assert "AUTOINCREMENT" in str(master(tricky)[("table", "autoinc")][1])


def test_rowids_that_a_copy_must_keep(tricky: Path) -> None:
    rowids = [r for (r,) in query(tricky, "SELECT rowid FROM gappy ORDER BY rowid")]
    assert rowids == [-3, 5, 1000, 2**62, 2**63 - 1]
    assert "INTEGER PRIMARY KEY" not in str(master(tricky)[("table", "gappy")][1])
    keys = [k for (k,) in query(tricky, 'SELECT rowid FROM "negative keys" ORDER BY rowid')]
    assert keys == [-(2**63), -10, -1, 0, 3]
    assert query(tricky, 'SELECT rowid = id FROM "negative keys"') == [(1,)] * 5
    # INTEGER PRIMARY KEY DESC is not a rowid alias
    assert query(tricky, 'SELECT rowid, id FROM "ipk desc" ORDER BY rowid') == [
        (3, 99),
        (10, 1),
        (20, -5),
    ]


def test_indexes_of_every_kind(tricky: Path) -> None:
    schema = master(tricky)

    def sql(name: str) -> str:
        return str(schema[("index", name)][1])

    assert sql("wide_c_int") == "CREATE INDEX wide_c_int ON wide (c_int)"
    assert sql("uniq ключ").startswith("CREATE UNIQUE INDEX")
    assert (
        scalar(tricky, "SELECT partial FROM pragma_index_list('wide') WHERE name = 'wide partial'")
        == 1
    )
    assert "lower(" in sql("my lower")
    assert query(tricky, "SELECT name, desc FROM pragma_index_xinfo('wide desc') WHERE key") == [
        ("c_int", 1),
        ("c_text", 0),
        ("id", 1),
    ]
    assert (
        scalar(tricky, "SELECT coll FROM pragma_index_xinfo('wide nocase') WHERE key") == "NOCASE"
    )
    assert query(tricky, "SELECT cid FROM pragma_index_xinfo('my lower') WHERE key") == [
        (-2,)
    ]  # expression


def test_views_triggers_and_the_audit_rows(tricky: Path, copy: Path) -> None:
    assert scalar(tricky, 'SELECT count(*) FROM "view ""on"" view"') == scalar(
        tricky, 'SELECT count(*) FROM "order view" WHERE qty > 1'
    )
    assert scalar(tricky, 'SELECT count(*) FROM "audit log"') == 3
    assert scalar(tricky, "SELECT count(*) FROM \"audit log\" WHERE tbl = 'order'") == 2
    execute(copy, 'INSERT INTO "order" ("ключ", qty) VALUES (\'new\', 1)')
    assert scalar(copy, 'SELECT count(*) FROM "audit log"') == 4


def test_check_and_foreign_key(tricky: Path, copy: Path) -> None:
    fk = query(copy, 'SELECT "table", "from", "to" FROM pragma_foreign_key_list(\'order\')')
    assert fk == [("клиент", "customer_id", "id")]
    assert scalar(tricky, "PRAGMA foreign_keys") == 0
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        execute(copy, 'INSERT INTO "order" ("ключ", qty) VALUES (\'negative\', -1)')


@pytest.mark.skipif(not GENERATED_COLUMNS_SUPPORTED, reason="SQLite < 3.31")
def test_generated_columns(tricky: Path) -> None:
    hidden = query(
        tricky, "SELECT name, hidden FROM pragma_table_xinfo('generated cols') WHERE hidden"
    )
    assert hidden == [("twice", 2), ("shout", 3)]  # VIRTUAL, STORED
    rows = query(tricky, 'SELECT a, twice, b, shout FROM "generated cols" ORDER BY rowid')
    assert rows[0] == (1, 2, "x", "X!")
    assert rows[1] == (None, None, "y", "Y!")


def test_wide_table_and_row_counts(tricky: Path) -> None:
    assert len(query(tricky, "SELECT * FROM pragma_table_info('wide')")) == 13
    counts = table_row_counts(tricky)
    assert counts["wide"] == 200
    assert counts["storage classes"] == len(query(tricky, 'SELECT 1 FROM "storage classes"'))
    assert counts["empty"] == 0
    assert counts["order"] == 42
    assert "sqlite_sequence" not in counts
    # mixed storage classes in the random columns
    kinds = {str(k) for (k,) in query(tricky, "SELECT DISTINCT typeof(c_any) FROM wide")}
    assert kinds == {"null", "integer", "real", "text", "blob"}


def test_default_sizes(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    make_tricky_database(path)
    assert (
        scalar(
            path,
            "SELECT max(length(anything)) FROM \"storage classes\" WHERE typeof(anything) = 'blob'",
        )
        == 10 * MIB
    )
    assert table_row_counts(path)["wide"] == 2000
    copy = tmp_path / "big copy.db"
    shutil.copyfile(path, copy)
    assert compare_databases(path, copy) == []


# --------------------------------------------------------------------------------------------
# The comparator
# --------------------------------------------------------------------------------------------


def test_a_copy_is_identical(tricky: Path, copy: Path) -> None:
    assert compare_databases(tricky, copy) == []
    assert compare_databases(copy, tricky) == []


MUTATIONS: dict[str, tuple[list[str], list[str]]] = {
    # name: (statements applied to the copy, strings one message must all contain)
    "int 1 becomes text '1'": (
        ["UPDATE \"storage classes\" SET anything = '1' WHERE label = 'int 1'"],
        ['table "storage classes"', "rowid", 'column "anything"', "(integer)", "(text"],
    ),
    "int 1 becomes real 1.0": (
        ["UPDATE \"storage classes\" SET anything = 1.0 WHERE label = 'int 1'"],
        ['table "storage classes"', "(real)"],
    ),
    "0.0 becomes -0.0": (
        ["UPDATE \"storage classes\" SET anything = -0.0 WHERE label = 'real 0.0'"],
        ['table "storage classes"', 'column "anything"', "-0.0"],
    ),
    "'' becomes NULL": (
        ["UPDATE \"storage classes\" SET anything = NULL WHERE label = 'text empty'"],
        ['table "storage classes"', "NULL"],
    ),
    "x'' becomes ''": (
        ["UPDATE \"storage classes\" SET anything = '' WHERE label = 'blob empty'"],
        ['table "storage classes"', "(blob, 0 bytes)", "(text, 0 bytes)"],
    ),
    "blob '1' becomes text '1'": (
        ["UPDATE \"storage classes\" SET anything = CAST(anything AS TEXT) WHERE label = 'blob 1'"],
        ['table "storage classes"', 'column "anything"'],
    ),
    "text after a NUL changes": (
        [
            "UPDATE \"storage classes\" SET anything = 'a' || char(0) || 'c' WHERE label = 'text nul'"
        ],
        ['table "storage classes"', 'column "anything"'],
    ),
    "one byte of the big blob changes": (
        [
            'UPDATE "storage classes" SET anything = CAST(substr(anything, 1, 1000)'
            " || CASE WHEN substr(anything, 1001, 1) = x'00' THEN x'01' ELSE x'00' END"
            " || substr(anything, 1002) AS BLOB)"
            " WHERE label = 'blob big random'",
        ],
        ['table "storage classes"', "a=x'", "b=x'", "(blob, 1048576 bytes)"],
    ),
    "a row is deleted": (
        ["DELETE FROM wide WHERE id = 17"],
        ['table "wide"', "rowid 17", "only in a"],
    ),
    "a row is added": (
        ["INSERT INTO wide (c_unique) VALUES ('new one')"],
        ['table "wide"', "only in b"],
    ),
    "a rowid changes": (
        ["UPDATE gappy SET rowid = 6 WHERE rowid = 5"],
        ['table "gappy"', "rowid 5", "only in a"],
    ),
    "an index is recreated differently": (
        [
            'DROP INDEX "wide partial"',
            'CREATE INDEX "wide partial" ON wide (c_real) WHERE c_real > 1',
        ],
        ['index "wide partial" on table "wide"', "sql differs"],
    ),
    "a trigger is dropped": (
        ["DROP TRIGGER \"trg 'audit' [order]\""],
        ['trigger "trg \'audit\' [order]" on table "order"', "only in a"],
    ),
    "a view is dropped": (
        ['DROP VIEW "view ""on"" view"'],
        ['view "view ""on"" view"', "only in a"],
    ),
    "sqlite_sequence is bumped": (
        ["UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'autoinc'"],
        ['table "sqlite_sequence"', "'autoinc'", 'column "seq"'],
    ),
    "user_version changes": (["PRAGMA user_version = 43"], ["user_version", "42", "43"]),
    "application_id changes": (["PRAGMA application_id = 7"], ["application_id"]),
    "an extra audit row": (
        ["INSERT INTO \"audit log\" (tbl, action) VALUES ('order', 'insert')"],
        ['table "audit log"', "only in b"],
    ),
    "a WITHOUT ROWID payload changes type": (
        ["UPDATE \"wr composite\" SET payload = CAST(payload AS BLOB) WHERE k = 'a' AND n = 1"],
        ['table "wr composite"', "primary key (k='a', n=1)", 'column "payload"'],
    ),
    "a WITHOUT ROWID row is deleted": (
        ["DELETE FROM \"wr nocase\" WHERE code = 'Ü' COLLATE BINARY"],
        ['table "wr nocase"', "only in a"],
    ),
    "a duplicate row disappears": (
        ['DELETE FROM "rowid shadow" WHERE _rowid_ = 3'],
        ['table "rowid shadow"', "2 time(s) in a, 1 in b"],
    ),
    "an integer becomes an equal real in a rowid-less comparison": (
        ['UPDATE "rowid shadow" SET v = 1.0 WHERE _rowid_ = 1'],
        ['table "rowid shadow"'],
    ),
    "a table is added": (
        ["CREATE TABLE extra (x)"],
        ['table "extra"', "only in b"],
    ),
    "a weird table's value changes": (
        ['UPDATE "we""ird \'name\'" SET "[z]" = \'[[\' WHERE "x y" = -1'],
        ['table "we""ird \'name\'"', "rowid -1", 'column "[z]"'],
    ),
    "a non-ASCII value changes": (
        ['UPDATE "order" SET "ключ" = \'ключ!\' WHERE "ключ" = \'k-3\''],
        ['table "order"', 'column "ключ"'],
    ),
}
if GENERATED_COLUMNS_SUPPORTED:
    MUTATIONS["a stored generated column follows its base"] = (
        ["UPDATE \"generated cols\" SET b = 'z' WHERE a = 1"],
        ['table "generated cols"', 'column "shout"'],
    )


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_every_single_change_is_reported(tricky: Path, copy: Path, name: str) -> None:
    statements, needles = MUTATIONS[name]
    execute(copy, *statements)
    differences = compare_databases(tricky, copy)
    assert differences, name
    assert any(all(n in message for n in needles) for message in differences), differences
    # and the other way round
    assert compare_databases(copy, tricky)


def test_triggers_created_before_the_data_double_the_audit_rows(tricky: Path, copy: Path) -> None:
    # what an importer that creates triggers first does: "order" comes out identical, but the
    # trigger writes audit rows of its own (and moves sqlite_sequence)
    execute(
        copy,
        'CREATE TEMP TABLE saved AS SELECT rowid AS r, * FROM "order"',
        'DELETE FROM "order"',
        'INSERT INTO "order" (rowid, "select", "from", "ключ", "where", customer_id, qty, "group")'
        ' SELECT r, "select", "from", "ключ", "where", customer_id, qty, "group" FROM saved',
    )
    assert query(copy, 'SELECT rowid, * FROM "order"') == query(
        tricky, 'SELECT rowid, * FROM "order"'
    )
    differences = compare_databases(tricky, copy)
    assert not any(m.startswith('table "order"') for m in differences)
    assert any(m.startswith('table "audit log"') and "only in b" in m for m in differences)
    assert any(m.startswith('table "sqlite_sequence"') for m in differences)


def test_statistics_and_pumpkit_tables_are_ignored(tricky: Path, copy: Path) -> None:
    execute(
        copy,
        "ANALYZE",
        "CREATE TABLE pumpkit_job (id INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT)",
        "CREATE INDEX pumpkit_job_state ON pumpkit_job (state)",
        "INSERT INTO pumpkit_job (state) VALUES ('done')",
    )
    assert scalar(copy, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'sqlite_stat%'") >= 1  # type: ignore[operator]
    assert compare_databases(tricky, copy) == []
    assert "pumpkit_job" not in table_row_counts(copy)


def test_at_most_max_per_table_messages(tricky: Path, copy: Path) -> None:
    execute(copy, "UPDATE wide SET c_default = c_default || '?'")
    differences = compare_databases(tricky, copy, max_per_table=5)
    assert len(differences) == 6
    assert differences[-1] == 'table "wide": 195 more difference(s) not shown'


def test_integrity_failure_is_reported(tricky: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    data = bytearray(tricky.read_bytes())
    # scribble over the second page (a b-tree page) but keep the header intact
    data[4096 + 8 : 4096 + 64] = b"\xff" * 56
    broken.write_bytes(bytes(data))
    differences = compare_databases(tricky, broken)
    assert any(m.startswith("integrity_check(b)") for m in differences), differences


def test_missing_file(tricky: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        compare_databases(tricky, tmp_path / "nope.db")


SPECIAL_VALUES: list[object] = [
    None,
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    0.0,
    -0.0,
    1.0,
    1.5,
    5e-324,
    math.inf,
    -math.inf,
    "",
    "1",
    "1.0",
    "0",
    "a\x00b",
    "a\x00c",
    "Grüße",
    "e\u0301",
    "\u00e9",
    b"",
    b"1",
    b"\x00",
    b"a\x00b",
]


def _one_value_db(directory: Path, name: str, v: object, key: object) -> Path:
    path = directory / name
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("CREATE TABLE w (k PRIMARY KEY, x) WITHOUT ROWID")
        conn.execute("INSERT INTO t (x) VALUES (?)", (v,))
        conn.execute("INSERT INTO w (k, x) VALUES (?, ?)", (key, v))
    return path


def _exactly_equal(x: object, y: object) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, float) and isinstance(y, float):
        return struct.pack("<d", x) == struct.pack("<d", y)
    return x == y


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SPECIAL_VALUES),
    st.sampled_from(SPECIAL_VALUES),
    st.sampled_from([1, "k", b"k", 2.5]),
)
def test_values_are_equal_exactly_when_identical(x: object, y: object, key: object) -> None:
    with tempfile.TemporaryDirectory() as directory:
        a = _one_value_db(Path(directory), "a.db", x, key)
        b = _one_value_db(Path(directory), "b.db", y, key)
        differences = compare_databases(a, b)
        if _exactly_equal(x, y):
            assert differences == []
        else:
            assert any(m.startswith('table "t" rowid 1 column "x"') for m in differences)
            assert any(
                m.startswith('table "w" primary key') and 'column "x"' in m for m in differences
            )
