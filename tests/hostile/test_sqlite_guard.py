"""The guard's two gates, action by action, as SQLite (3.40) reports them.

The first tests pin down exactly which authorizer actions each kind of CREATE makes, which
is what the guard's allowlist rests on (``sqlite_guard``'s docstring has the same table);
the others show how VACUUM INTO, ATTACH and load_extension meet the gates, that the gates
also guard ``describe_table``'s scratch database and the cross-engine DDL, and that the
authorizer is gone afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pumpkit import UnsafeDumpError
from pumpkit.io.connectors.base import ObjectDef, TableDef
from pumpkit.io.connectors.sqlite import SqliteTarget, describe_table
from pumpkit.io.connectors.sqlite.guard import (
    Declared,
    Denied,
    Scope,
    SqliteGuard,
    judge_create,
)

pytestmark = pytest.mark.skipif(
    sqlite3.sqlite_version_info[:2] != (3, 40), reason="the action lists are SQLite 3.40's"
)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A target with a table of its own holding rows (``precious``) and one of the import's
    (``kv``), also with rows."""
    with closing(sqlite3.connect(tmp_path / "t.db", isolation_level=None)) as c:
        c.executescript(
            "CREATE TABLE precious (x TEXT); INSERT INTO precious VALUES ('gold');"
            "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT);"
            "INSERT INTO kv (v) VALUES ('a'), ('b'), ('c');"
        )
        yield c


def guard_for(conn: sqlite3.Connection) -> SqliteGuard:
    return SqliteGuard(conn, Scope(tables={"kv"}, reserved=frozenset({"pumpkit_import_markers"})))


def actions(guard: SqliteGuard, sql: str, declared: Declared) -> list[tuple[object, ...]]:
    return [a.record()[:4] for a in guard.execute(sql, declared)]


MASTER_UPDATE = [
    ("SQLITE_UPDATE", "sqlite_master", column, "main")
    for column in ("type", "name", "tbl_name", "rootpage", "sql")
]
INSERT_MASTER = ("SQLITE_INSERT", "sqlite_master", None, "main")
READ_ROWID = ("SQLITE_READ", "sqlite_master", "ROWID", "main")


def test_create_table_reports_its_own_schema_rows_and_columns(conn: sqlite3.Connection) -> None:
    got = actions(
        guard_for(conn),
        "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT DEFAULT 'x' CHECK (length(b) < 5),"
        " c UNIQUE, d DEFAULT (upper('q')))",
        Declared("TABLE", "t"),
    )
    assert got == [
        INSERT_MASTER,
        ("SQLITE_CREATE_TABLE", "t", None, "main"),
        INSERT_MASTER,
        ("SQLITE_CREATE_INDEX", "sqlite_autoindex_t_1", "t", "main"),
        ("SQLITE_READ", "t", "c", "main"),
        INSERT_MASTER,
        ("SQLITE_FUNCTION", None, "length", None),
        ("SQLITE_READ", "t", "b", "main"),
        *MASTER_UPDATE,
        READ_ROWID,
    ]  # the DEFAULT's upper() is not reported: the guard compiles each DEFAULT itself


def test_the_first_autoincrement_table_also_makes_sqlite_sequence(conn: sqlite3.Connection) -> None:
    got = actions(
        guard_for(conn),
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
        Declared("TABLE", "t"),
    )
    assert got == [
        INSERT_MASTER,
        ("SQLITE_CREATE_TABLE", "t", None, "main"),
        *MASTER_UPDATE,
        READ_ROWID,
        INSERT_MASTER,
        ("SQLITE_CREATE_TABLE", "sqlite_sequence", None, "main"),
        *MASTER_UPDATE,
        READ_ROWID,
    ]


def test_create_index_on_a_table_with_rows(conn: sqlite3.Connection) -> None:
    guard = guard_for(conn)
    assert actions(guard, "CREATE INDEX i ON kv (v)", Declared("INDEX", "i", "kv")) == [
        INSERT_MASTER,
        ("SQLITE_CREATE_INDEX", "i", "kv", "main"),
        ("SQLITE_READ", "kv", "v", "main"),
        INSERT_MASTER,
        ("SQLITE_REINDEX", "i", None, "main"),
    ]
    partial_expression = actions(
        guard,
        "CREATE UNIQUE INDEX j ON kv (upper(v)) WHERE k > 1",
        Declared("INDEX", "j", "kv"),
    )
    assert partial_expression == [
        INSERT_MASTER,
        ("SQLITE_CREATE_INDEX", "j", "kv", "main"),
        ("SQLITE_READ", "kv", "k", "main"),
        ("SQLITE_FUNCTION", None, "upper", None),
        ("SQLITE_READ", "kv", "v", "main"),
        INSERT_MASTER,
        ("SQLITE_REINDEX", "j", None, "main"),
    ]


def test_a_view_that_reads_other_tables_is_stored_not_run(conn: sqlite3.Connection) -> None:
    got = actions(
        guard_for(conn),
        "CREATE VIEW v AS SELECT * FROM precious JOIN kv",
        Declared("VIEW", "v"),
    )
    assert got == [
        INSERT_MASTER,
        ("SQLITE_CREATE_VIEW", "v", None, "main"),
        *MASTER_UPDATE,
        READ_ROWID,
    ]  # no READ of precious or kv: SQLite does not compile the SELECT of a new view


def test_a_trigger_is_stored_not_run(conn: sqlite3.Connection) -> None:
    got = actions(
        guard_for(conn),
        "CREATE TRIGGER tr AFTER INSERT ON kv BEGIN INSERT INTO kv (v) VALUES ('x'); END",
        Declared("TRIGGER", "tr", "kv"),
    )
    assert got == [
        ("SQLITE_CREATE_TRIGGER", "tr", "kv", "main"),
        INSERT_MASTER,
        INSERT_MASTER,
    ]


# --- VACUUM INTO, ATTACH, load_extension ---------------------------------------------------------


def test_vacuum_into_shows_nothing_to_the_parse_gate(conn: sqlite3.Connection, tmp_path: Path):
    copy = tmp_path / "copy.db"
    guard = guard_for(conn)
    with guard.authorized(lambda action: None) as record:
        conn.execute(f"EXPLAIN VACUUM INTO '{copy}'").fetchall()
    assert record == []  # compiled, it reports no action at all ...
    with pytest.raises(UnsafeDumpError, match="no action it would take: a VACUUM is one"):
        guard.execute(f"VACUUM INTO '{copy}'", Declared("VIEW", "v"))
    assert not copy.exists()


@pytest.mark.parametrize("statement", ["VACUUM INTO '{copy}'", "VACUUM"])
def test_vacuum_is_an_attach_when_it_runs_and_the_authorizer_denies_it(
    conn: sqlite3.Connection, tmp_path: Path, statement: str
) -> None:
    copy = tmp_path / "copy.db"
    guard = guard_for(conn)
    # Past the parse gate (as if it had failed), the run's authorizer still stops it.
    with pytest.raises(Denied) as info, guard.authorized(judge_create(Declared("VIEW", "v"))):
        conn.execute(statement.format(copy=copy))
    expected = str(copy) if "INTO" in statement else ""
    assert info.value.action.record() == ("SQLITE_ATTACH", expected, None, None, None)
    assert guard.denials == [info.value.action]
    assert not copy.exists()


def test_attach_is_refused_before_it_opens_a_file(conn: sqlite3.Connection, tmp_path: Path):
    loot = tmp_path / "loot.db"
    with pytest.raises(UnsafeDumpError) as info:
        guard_for(conn).execute(f"ATTACH DATABASE '{loot}' AS e", Declared("TABLE", "t"))
    assert info.value.action == ("SQLITE_ATTACH", str(loot), None, None, None)
    assert "would open a database file" in str(info.value)
    assert not loot.exists()
    assert conn.execute("PRAGMA database_list").fetchall() == [(0, "main", str(conn_path(conn)))]


def conn_path(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


@pytest.mark.parametrize(
    ("sql", "declared"),
    [
        ("CREATE TABLE t (a CHECK (load_extension(a)))", Declared("TABLE", "t")),
        ("CREATE TABLE t (a DEFAULT (load_extension('x.so')))", Declared("TABLE", "t")),
        ("CREATE INDEX i ON kv (load_extension(v))", Declared("INDEX", "i", "kv")),
        (
            "CREATE TRIGGER tr AFTER UPDATE ON kv BEGIN SELECT load_extension('x.so'); END",
            Declared("TRIGGER", "tr", "kv"),
        ),
        ("CREATE VIEW v AS SELECT fts3_tokenizer('simple')", Declared("VIEW", "v")),
    ],
)
def test_load_extension_and_friends_are_refused(conn: sqlite3.Connection, sql, declared):
    guard = guard_for(conn)
    with pytest.raises(UnsafeDumpError) as info:
        guard.execute(sql, declared)
    assert "load_extension()" in str(info.value) or "fts3_tokenizer()" in str(info.value)
    assert not conn.execute(
        "SELECT name FROM sqlite_master WHERE name IN ('t', 'i', 'tr', 'v')"
    ).fetchall(), "the savepoint was not rolled back"


def test_the_authorizer_is_removed_after_both_outcomes(conn: sqlite3.Connection, tmp_path: Path):
    guard = guard_for(conn)
    guard.execute("CREATE TABLE ok (a)", Declared("TABLE", "ok"))
    with pytest.raises(UnsafeDumpError):
        guard.execute("DROP TABLE precious", Declared("TABLE", "t"))
    # pumpkit's own statements are not judged: an ATTACH of its own goes through.
    conn.execute("ATTACH DATABASE ':memory:' AS mine")
    conn.execute("DETACH DATABASE mine")
    assert conn.execute("SELECT x FROM precious").fetchall() == [("gold",)]


def test_a_view_made_before_what_it_reads_is_checked_once_that_exists(conn: sqlite3.Connection):
    guard = guard_for(conn)
    guard.execute("CREATE VIEW early AS SELECT * FROM later", Declared("VIEW", "early"))
    assert [d.name for d, _ in guard.unchecked] == ["early"]  # inert: it cannot compile
    guard.execute("CREATE VIEW later AS SELECT 1 AS one", Declared("VIEW", "later"))
    assert guard.unchecked == []  # checked, and sound
    guard.execute(
        "CREATE VIEW bad AS SELECT load_extension(x) FROM later2", Declared("VIEW", "bad")
    )
    with pytest.raises(UnsafeDumpError, match=r"VIEW 'bad' refused.*load_extension.*dropped"):
        guard.execute("CREATE VIEW later2 AS SELECT 'x.so' AS x", Declared("VIEW", "later2"))
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "bad" not in names and {"early", "later", "later2"} <= names


# --- describe_table and the cross-engine paths ------------------------------------------------


def test_describe_table_runs_only_the_declared_create(tmp_path: Path) -> None:
    loot = tmp_path / "loot.db"
    columns, uniques = describe_table("CREATE TABLE t (a INTEGER NOT NULL, b UNIQUE)", "t")
    assert [c.name for c in columns] == ["a", "b"] and uniques == [["b"]]
    for ddl in (
        f"ATTACH DATABASE '{loot}' AS e",
        f"CREATE TABLE t (a); ATTACH DATABASE '{loot}' AS e",
        f"CREATE TABLE t (a DEFAULT (load_extension('{loot}')))",
        "CREATE TABLE u (a)",
    ):
        with pytest.raises(UnsafeDumpError, match="TABLE 't' refused"):
            describe_table(ddl, "t")
    assert not loot.exists()


@pytest.mark.asyncio
async def test_cross_engine_sqlite_ddl_passes_the_gates(tmp_path: Path) -> None:
    imp = await SqliteTarget.open(tmp_path / "t.db", "postgresql")
    try:
        table = TableDef(
            schema="public",
            name='we"ird',
            ddl="",
            columns=("id", "na me"),
            column_kinds=("int8", "text"),
            not_null=(True, False),
            primary_key=("id",),
        )
        await imp.create_table(table)
        good = ObjectDef(
            object_type="INDEX",
            schema="public",
            name="by_name",
            table='we"ird',
            ddl='CREATE INDEX by_name ON public."we""ird" USING btree ("na me")',
        )
        assert (await imp.create_object(good)).made
        # A PostgreSQL index name that is SQL to SQLite: the translation keeps it as text.
        hostile = ObjectDef(
            object_type="INDEX",
            schema="public",
            name="x;VACUUM",
            table='we"ird',
            ddl='CREATE INDEX x;VACUUM ON public."we""ird" USING btree ("na me")',
        )
        # The translation reads it as two statements and refuses it: the object is left out
        # with its reason (a failed row, exit 5), and nothing of it runs.
        refused = await imp.create_object(hostile)
        assert not refused.made
        assert refused.note and "does not parse" in refused.note, refused.note
    finally:
        await imp.close()
    with closing(sqlite3.connect(tmp_path / "t.db")) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    assert names == {'we"ird', "by_name"}
