"""Hostile dumps: a real export, rewritten as an attacker would, every checksum fixed.

Each case changes one object of a real dump of a real SQLite database (``craft.DumpCopy``),
checks that ``verify_paths`` still calls the set sound, and imports it into a target that
already holds a table of its own (``precious``). For every case:

* the import refuses it with an ``UnsafeDumpError`` that names the object, what was refused
  and why (the job stops, ``pumpkit`` would exit 1), or neutralises it (the import completes
  and the hostile text is only a name);
* nothing outside the target changes: the test lists the whole directory tree around the
  target (the dump's directory, an ``outside`` directory the attacks aim at) before and
  after, file by file with a hash of each;
* the target's own tables, indexes and views are unchanged, schema and rows (hashed);
* where the attack would read another table, the authorizer's record shows the denial:
  SQLite was told no before it read a byte.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from craft import DumpCopy

import pumpkit
from pumpkit import UnsafeDumpError
from pumpkit.cli.client import exit_code_for
from pumpkit.core.control_table import ControlRow
from pumpkit.core.plancheck import check_plan
from pumpkit.exitcodes import ExitCode
from pumpkit.io.connectors.sqlite import SqliteTarget
from pumpkit.io.dumpset.verify import verify_paths

SOURCE_SQL = """
CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE side (id INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER, b TEXT);
CREATE TABLE notes (n TEXT);
CREATE INDEX kv_v ON kv (v);
CREATE VIEW kv_view AS SELECT k, v FROM kv;
CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN
    INSERT INTO side (a, b) VALUES (new.k, 'audit');
END;
"""
TARGET_SQL = """
CREATE TABLE precious (id INTEGER PRIMARY KEY AUTOINCREMENT, secret TEXT NOT NULL);
CREATE INDEX precious_secret ON precious (secret);
CREATE VIEW precious_view AS SELECT secret FROM precious;
INSERT INTO precious (secret) VALUES ('gold'), ('silver'), ('the recipe');
"""
KV_DDL = "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real export of a real database: tables, data, an index, a view, a trigger, an
    AUTOINCREMENT counter."""
    directory = tmp_path_factory.mktemp("source")
    source = directory / "source.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.executescript(SOURCE_SQL)
        conn.executemany("INSERT INTO kv (v) VALUES (?)", [(f"value {i}",) for i in range(50)])
        conn.executemany("INSERT INTO notes VALUES (?)", [("a",), ("b",), ("c",)])
        conn.commit()
    export = partial(pumpkit.export_database, source, "clean.dmp", directory=directory)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # no event loop in this fixture
        status = pool.submit(anyio.run, partial(export, home=directory / "home")).result()
    assert status.state == "COMPLETED", status.errors
    return [directory / "clean.dmp"]


# --- the world around the target, before and after -------------------------------------------


@dataclass
class World:
    root: Path
    dump: Path
    target: Path
    outside: Path
    home: Path
    spare: Path  # a copy of the target for the direct checks, outside the watched tree

    @property
    def loot(self) -> Path:
        return self.outside / "loot.db"


@pytest.fixture
def world(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path / "world"
    for part in ("dump", "target", "outside"):
        (root / part).mkdir(parents=True)
    (root / "outside" / "keep.txt").write_text("an unrelated file next to the target\n")
    target = root / "target" / "target.db"
    with closing(sqlite3.connect(target)) as conn:
        conn.executescript(TARGET_SQL)
        conn.commit()
    spare = tmp_path_factory.mktemp("spare") / "target.db"
    shutil.copyfile(target, spare)
    return World(root, root / "dump", target, root / "outside", tmp_path / "home", spare)


def tree(world: World) -> dict[str, str]:
    """Every directory and file under the world's root, each file with its hash; the target
    itself is left out (its own tables are compared by :func:`own_objects`)."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(world.root):
        base = Path(directory)
        for d in dirs:
            found[str((base / d).relative_to(world.root)) + "/"] = "dir"
        for f in files:
            path = base / f
            if path == world.target:
                continue
            found[str(path.relative_to(world.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def own_objects(database: Path, names: set[str] | None = None) -> dict[tuple[str, str], str]:
    """``(type, name) -> hash`` of the schema entry and, for a table, every row."""
    with closing(sqlite3.connect(database)) as conn:
        entries = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        result = {}
        for type_, name, sql in entries:
            if names is not None and name not in names:
                continue
            digest = hashlib.sha256(repr(sql).encode())
            if type_ == "table":
                rows = conn.execute(f'SELECT * FROM "{name}" ORDER BY 1').fetchall()
                digest.update(repr(rows).encode())
            result[(type_, name)] = digest.hexdigest()
    return result


PREEXISTING = {"precious", "precious_secret", "precious_view"}


def counter_of_precious(database: Path) -> list[tuple[Any, ...]]:
    """The target's own AUTOINCREMENT counter (the dump's tables may add theirs)."""
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT * FROM sqlite_sequence WHERE name = 'precious'").fetchall()


def names_in(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}


# --- the cases --------------------------------------------------------------------------------

Edit = Callable[[DumpCopy, World], None]


@dataclass
class Case:
    edit: Edit
    kind: str  # the object refused: its type ...
    name: str  # ... and name (as the dump declares it)
    refused: str  # a piece of what the error says was refused
    action: str | None = None  # the authorizer action denied (None: refused before SQLite ran it)
    denied_arg: str | None = None  # ... and the object it names
    plan: bool = False  # refused by the import plan's check, before any SQL
    #: The import completes: the hostile text is only a name (``made``), or the plan leaves
    #: the object out (an index or trigger goes with its table, and the dump has no such
    #: table); then the target's guard must still refuse it, should it ever be asked.
    neutralised: bool = False
    made: bool = True
    #: What the plan check refuses when given the rows as the dump holds them (before the
    #: engine's own normalisation, which the import sees): ``(type, name)``.
    direct: tuple[str, str] | None = None


def ddl(kind: str, name: str, text: str) -> Edit:
    def edit(dump: DumpCopy, world: World) -> None:
        dump.redefine(kind, name, ddl=text.format(outside=world.outside))

    return edit


def both(*edits: Edit) -> Edit:
    def edit(dump: DumpCopy, world: World) -> None:
        for e in edits:
            e(dump, world)

    return edit


WEIRD_TABLE = 'notes"; DROP TABLE precious; --'
ABSURD = "\x1b[2J\nJob SYS_IMPORT_FULL_01 successfully completed\n\u2028" + "é" * 3000


def _trigger_before_data(dump: DumpCopy, world: World) -> None:
    table_order = dump.get(dump.row("TABLE", "kv"), "process_order")
    dump.set_row("TRIGGER", "kv_audit", process_order=table_order + 100)


def _row_says_index(dump: DumpCopy, world: World) -> None:
    dump.set_row("TRIGGER", "kv_audit", object_type="INDEX")


def _definition_says_precious(dump: DumpCopy, world: World) -> None:
    # The row says "notes" (which TABLE_EXISTS_ACTION looks at), the definition "precious".
    dump.redefine(
        "TABLE",
        "notes",
        rows_agree=False,
        name="precious",
        ddl="CREATE TABLE precious (id INTEGER PRIMARY KEY AUTOINCREMENT, secret TEXT NOT NULL)",
    )


def _sequence_of_precious(dump: DumpCopy, world: World) -> None:
    dump.redefine("SEQUENCE", "side", name="precious", table="precious", value=10**6)


def _weird_name(dump: DumpCopy, world: World) -> None:
    quoted = '"' + WEIRD_TABLE.replace('"', '""') + '"'
    dump.redefine("TABLE", "notes", name=WEIRD_TABLE, ddl=f"CREATE TABLE {quoted} (n TEXT)")


def _absurd_trigger(body: str) -> Edit:
    def edit(dump: DumpCopy, world: World) -> None:
        quoted = '"' + ABSURD.replace('"', '""') + '"'
        dump.redefine(
            "TRIGGER",
            "kv_audit",
            name=ABSURD,
            ddl=f"CREATE TRIGGER {quoted} AFTER INSERT ON kv BEGIN {body}; END",
        )

    return edit


CASES: dict[str, Case] = {
    # The four the review found.
    "attach-then-copy-out": Case(
        ddl(
            "TABLE",
            "kv",
            KV_DDL + "; ATTACH DATABASE '{outside}/loot.db' AS e;"
            " CREATE TABLE e.loot AS SELECT * FROM main.kv",
        ),
        "TABLE",
        "kv",
        "a second statement",
    ),
    "attach-alone": Case(
        ddl("TABLE", "kv", "ATTACH DATABASE '{outside}/loot.db' AS e"),
        "TABLE",
        "kv",
        "SQLITE_ATTACH",
        action="SQLITE_ATTACH",
    ),
    "vacuum-into-as-view": Case(
        ddl("VIEW", "kv_view", "VACUUM INTO '{outside}/copy.db'"),
        "VIEW",
        "kv_view",
        "no CREATE VIEW",
    ),
    "drop-table-as-trigger": Case(
        ddl("TRIGGER", "kv_audit", "DROP TABLE precious"),
        "TRIGGER",
        "kv_audit",
        'SQLITE_DROP_TABLE "precious"',
        action="SQLITE_DROP_TABLE",
        denied_arg="precious",
    ),
    "table-creates-another-name": Case(
        ddl("TABLE", "kv", "CREATE TABLE IF NOT EXISTS precious (k INTEGER PRIMARY KEY, v TEXT)"),
        "TABLE",
        "kv",
        "creates TABLE 'precious'",
    ),
    # load_extension wherever SQL may call a function.
    "load-extension-in-a-view": Case(
        ddl("VIEW", "kv_view", "CREATE VIEW kv_view AS SELECT load_extension('{outside}/x.so')"),
        "VIEW",
        "kv_view",
        "load_extension()",
    ),
    "load-extension-in-a-default": Case(
        ddl(
            "TABLE",
            "side",
            "CREATE TABLE side (id INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER,"
            " b TEXT DEFAULT (load_extension('{outside}/x.so')))",
        ),
        "TABLE",
        "side",
        "load_extension()",
        action="SQLITE_FUNCTION",
        denied_arg="load_extension",
    ),
    "load-extension-in-a-trigger": Case(
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN"
            " SELECT load_extension('{outside}/x.so'); END",
        ),
        "TRIGGER",
        "kv_audit",
        "load_extension()",
        action="SQLITE_FUNCTION",
        denied_arg="load_extension",
    ),
    "trigger-on-the-marker-table": Case(
        lambda dump, world: dump.redefine(
            "TRIGGER",
            "kv_audit",
            table="pumpkit_import_markers",
            ddl="CREATE TRIGGER kv_audit AFTER INSERT ON pumpkit_import_markers"
            " BEGIN DELETE FROM kv; END",
        ),
        "TRIGGER",
        "kv_audit",
        "a trigger on 'pumpkit_import_markers'",
        neutralised=True,
        made=False,
    ),
    "trigger-said-on-kv-made-on-the-markers": Case(
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TRIGGER kv_audit AFTER DELETE ON pumpkit_import_markers"
            " BEGIN DELETE FROM kv; END",
        ),
        "TRIGGER",
        "kv_audit",
        "creates TRIGGER 'kv_audit' on 'pumpkit_import_markers'",
    ),
    "pragma-writable-schema": Case(
        ddl("TABLE", "side", "PRAGMA writable_schema = ON"),
        "TABLE",
        "side",
        "SQLITE_PRAGMA writable_schema",
        action="SQLITE_PRAGMA",
        denied_arg="writable_schema",
    ),
    "replace-into-sqlite-master": Case(
        both(
            ddl("TABLE", "notes", "PRAGMA writable_schema = 1"),
            ddl(
                "INDEX",
                "kv_v",
                "REPLACE INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES"
                " ('table', 'precious', 'precious', 2, 'CREATE TABLE precious (hacked)')",
            ),
        ),
        "TABLE",
        "notes",
        "SQLITE_PRAGMA writable_schema",
        action="SQLITE_PRAGMA",
    ),
    "replace-into-sqlite-master-alone": Case(
        ddl(
            "INDEX",
            "kv_v",
            "REPLACE INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES"
            " ('table', 'precious', 'precious', 2, 'CREATE TABLE precious (hacked)')",
        ),
        "INDEX",
        "kv_v",
        "sqlite_master may not be modified",
    ),
    "quoted-name-with-drop": Case(_weird_name, "TABLE", WEIRD_TABLE, "", neutralised=True),
    "unquoted-name-with-drop": Case(
        ddl("TABLE", "notes", "CREATE TABLE notes (n TEXT); DROP TABLE precious; --"),
        "TABLE",
        "notes",
        "a second statement",
    ),
    "index-on-a-table-of-the-target": Case(
        lambda dump, world: dump.redefine(
            "INDEX", "kv_v", table="precious", ddl="CREATE INDEX kv_v ON precious (secret)"
        ),
        "INDEX",
        "kv_v",
        "an index on 'precious'",
        neutralised=True,
        made=False,
    ),
    "index-said-on-kv-made-on-the-target": Case(
        ddl("INDEX", "kv_v", "CREATE INDEX kv_v ON precious (secret)"),
        "INDEX",
        "kv_v",
        'SQLITE_READ "precious"."secret"',
        action="SQLITE_READ",
        denied_arg="precious",
    ),
    "create-table-as-select-from-the-target": Case(
        ddl("TABLE", "side", "CREATE TABLE side AS SELECT * FROM precious"),
        "TABLE",
        "side",
        'SQLITE_READ "precious"',
        action="SQLITE_READ",
        denied_arg="precious",
    ),
    "view-that-reads-the-target-when-made": Case(
        ddl("VIEW", "kv_view", "CREATE TABLE kv_view AS SELECT secret FROM precious"),
        "VIEW",
        "kv_view",
        'SQLITE_READ "precious"."secret"',
        action="SQLITE_READ",
        denied_arg="precious",
    ),
    "trigger-that-reads-the-target-when-made": Case(
        ddl("TRIGGER", "kv_audit", "CREATE TABLE kv_audit AS SELECT secret FROM precious"),
        "TRIGGER",
        "kv_audit",
        'SQLITE_READ "precious"."secret"',
        action="SQLITE_READ",
        denied_arg="precious",
    ),
    "trigger-that-writes-the-target-when-fired": Case(
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN"
            " UPDATE precious SET secret = 'pwned'; END",
        ),
        "TRIGGER",
        "kv_audit",
        'SQLITE_UPDATE "precious"."secret" (by "kv_audit")',
        action="SQLITE_UPDATE",
        denied_arg="precious",
    ),
    "temp-table": Case(
        ddl("TABLE", "side", "CREATE TEMP TABLE side (id INTEGER PRIMARY KEY, a, b)"),
        "TABLE",
        "side",
        "database 'temp'",
        action="SQLITE_INSERT",
        denied_arg="sqlite_temp_master",
    ),
    "temp-trigger": Case(
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TEMP TRIGGER kv_audit AFTER DELETE ON kv BEGIN DELETE FROM kv; END",
        ),
        "TRIGGER",
        "kv_audit",
        "database 'temp'",
        action="SQLITE_CREATE_TEMP_TRIGGER",
    ),
    "trailing-sql-after-a-comment": Case(
        ddl("TABLE", "notes", "CREATE TABLE notes (n TEXT) -- the end\n; DROP TABLE precious"),
        "TABLE",
        "notes",
        "a second statement",
    ),
    "second-statement-after-a-backslash-quote": Case(
        ddl(
            "TABLE",
            "notes",
            "CREATE TABLE notes (n TEXT DEFAULT 'it\\'); DROP TABLE precious; --')",
        ),
        "TABLE",
        "notes",
        "a second statement",
    ),
    "second-statement-after-a-double-quoted-apostrophe": Case(
        ddl(
            "TABLE",
            "notes",
            "CREATE TABLE notes (n TEXT DEFAULT \"it's\"); DROP TABLE precious; --'",
        ),
        "TABLE",
        "notes",
        "a second statement",
    ),
    "delete-as-index": Case(
        ddl("INDEX", "kv_v", "DELETE FROM precious"),
        "INDEX",
        "kv_v",
        'SQLITE_DELETE "precious"',
        action="SQLITE_DELETE",
        denied_arg="precious",
    ),
    "update-as-view": Case(
        ddl("VIEW", "kv_view", "UPDATE precious SET secret = 'pwned'"),
        "VIEW",
        "kv_view",
        'SQLITE_UPDATE "precious"."secret"',
        action="SQLITE_UPDATE",
        denied_arg="precious",
    ),
    "insert-as-table": Case(
        ddl("TABLE", "notes", "INSERT INTO precious (secret) VALUES ('planted')"),
        "TABLE",
        "notes",
        'SQLITE_INSERT "precious"',
        action="SQLITE_INSERT",
        denied_arg="precious",
    ),
    "drop-index-as-index": Case(
        ddl("INDEX", "kv_v", "DROP INDEX precious_secret"),
        "INDEX",
        "kv_v",
        'SQLITE_DROP_INDEX "precious_secret"',
        action="SQLITE_DROP_INDEX",
        denied_arg="precious_secret",
    ),
    "absurd-trigger-name": Case(
        _absurd_trigger("INSERT INTO side (a, b) VALUES (new.k, 'audit')"),
        "TRIGGER",
        ABSURD,
        "",
        neutralised=True,
    ),
    "absurd-trigger-name-that-deletes": Case(
        _absurd_trigger("DELETE FROM precious"),
        "TRIGGER",
        ABSURD,
        'SQLITE_DELETE "precious"',
        action="SQLITE_DELETE",
        denied_arg="precious",
    ),
    "trigger-ordered-before-the-data": Case(
        _trigger_before_data, "TRIGGER", "kv_audit", "before table data", plan=True
    ),
    "row-and-definition-disagree": Case(
        _row_says_index,
        "TRIGGER",
        "kv_audit",
        "a control-table row that says 'INDEX' where its definition says 'TRIGGER'",
        plan=True,
    ),
    "table-renamed-under-its-rows": Case(
        # The engine names a TABLE row after its definition: under SKIP the existing
        # "precious" is left alone, and the rows labelled "notes" belong to no table.
        _definition_says_precious,
        "TABLE_DATA",
        "notes",
        "rows of a table the plan does not define",
        plan=True,
        direct=("TABLE", "precious"),
    ),
    "sequence-of-a-table-of-the-target": Case(
        _sequence_of_precious,
        "SEQUENCE",
        "precious",
        "setting the counter of table 'precious'",
    ),
    # -- more of the same kind, each a way round a gate that the cases above do not try ----
    "load-extension-in-a-check": Case(
        ddl(
            "TABLE",
            "side",
            "CREATE TABLE side (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " a INTEGER CHECK (load_extension('{outside}/x.so') IS NULL), b TEXT)",
        ),
        "TABLE",
        "side",
        "load_extension()",
        action="SQLITE_FUNCTION",
        denied_arg="load_extension",
    ),
    "load-extension-in-a-generated-column": Case(
        ddl(
            "TABLE",
            "side",
            "CREATE TABLE side (id INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER,"
            " b TEXT AS (load_extension('{outside}/x.so')))",
        ),
        "TABLE",
        "side",
        "load_extension()",
        action="SQLITE_FUNCTION",
        denied_arg="load_extension",
    ),
    "load-extension-in-an-index-expression": Case(
        # An index is built over the rows already loaded: its expression would run at once.
        ddl("INDEX", "kv_v", "CREATE INDEX kv_v ON kv (load_extension('{outside}/x.so'))"),
        "INDEX",
        "kv_v",
        "load_extension()",
        action="SQLITE_FUNCTION",
        denied_arg="load_extension",
    ),
    "fts3-tokenizer-in-a-view": Case(
        # fts3_tokenizer() hands out a C pointer: code execution where it is allowed.
        ddl("VIEW", "kv_view", "CREATE VIEW kv_view AS SELECT fts3_tokenizer('simple')"),
        "VIEW",
        "kv_view",
        "fts3_tokenizer()",
    ),
    "view-that-reads-the-markers": Case(
        ddl("VIEW", "kv_view", "CREATE VIEW kv_view AS SELECT * FROM pumpkit_import_markers"),
        "VIEW",
        "kv_view",
        'SQLITE_READ "pumpkit_import_markers"',
        action="SQLITE_READ",
        denied_arg="pumpkit_import_markers",
    ),
    "trigger-that-empties-the-markers-when-fired": Case(
        # Were it to run, a restarted import would load committed granules twice.
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN"
            " DELETE FROM pumpkit_import_markers; END",
        ),
        "TRIGGER",
        "kv_audit",
        'SQLITE_DELETE "pumpkit_import_markers"',
        action="SQLITE_DELETE",
        denied_arg="pumpkit_import_markers",
    ),
    "trigger-that-resets-the-targets-counter-when-fired": Case(
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN"
            " UPDATE sqlite_sequence SET seq = 0 WHERE name = 'precious'; END",
        ),
        "TRIGGER",
        "kv_audit",
        'SQLITE_UPDATE "sqlite_sequence"."seq"',
        action="SQLITE_UPDATE",
        denied_arg="sqlite_sequence",
    ),
    "instead-of-trigger-on-a-view-of-the-target": Case(
        ddl(
            "TRIGGER",
            "kv_audit",
            "CREATE TRIGGER kv_audit INSTEAD OF INSERT ON precious_view BEGIN"
            " DELETE FROM precious; END",
        ),
        "TRIGGER",
        "kv_audit",
        "creates TRIGGER 'kv_audit' on 'precious_view'",
    ),
    "view-named-as-a-view-of-the-target": Case(
        ddl("VIEW", "kv_view", "CREATE VIEW precious_view AS SELECT 1"),
        "VIEW",
        "kv_view",
        "view precious_view already exists",
    ),
}


# --- the test ---------------------------------------------------------------------------------


def crafted(exported: list[Path], world: World, case: Case) -> list[Path]:
    dump = DumpCopy.read(exported)
    case.edit(dump, world)
    paths = dump.write(world.dump)
    report = verify_paths(paths)
    assert report.sound, report  # every checksum holds: only the meaning is hostile
    return paths


@pytest.mark.asyncio
@pytest.mark.parametrize("case_id", list(CASES))
async def test_hostile_dump(exported: list[Path], world: World, case_id: str) -> None:
    case = CASES[case_id]
    paths = crafted(exported, world, case)
    before_tree = tree(world)
    before_own = own_objects(world.target, PREEXISTING)
    before_counter = counter_of_precious(world.target)
    assert before_counter == [("precious", 3)]

    status = await pumpkit.import_dump(
        paths[0], world.target, directory=world.dump, home=world.home, job_name="HOSTILE"
    )

    assert tree(world) == before_tree, "something outside the target changed"
    assert not world.loot.exists()
    assert own_objects(world.target, PREEXISTING) == before_own, "the target's own changed"
    assert counter_of_precious(world.target) == before_counter
    text = "\n".join(status.log_lines)
    assert "\x1b" not in text and "\u2028" not in text, "a dump's name reached the log raw"
    if case.neutralised:
        assert status.state == "COMPLETED", status.errors
        assert exit_code_for(status) == ExitCode.OK
        assert (case.name in names_in(world.target)) == case.made
        if not case.made:
            await direct_check(exported, world, case)
        return
    assert status.state == "STOPPED", status
    assert exit_code_for(status) == ExitCode.FAULT
    (line,) = [e for e in status.errors if "unsafe dump" in e]
    assert f"{case.kind} {printable_repr(case.name)} refused" in line, line
    assert case.refused in line, line
    assert "\n" not in line
    if not case.plan:
        # The dump file and the offset of the object's METADATA frame.
        assert f"{paths[0]}: offset " in line, line
    await direct_check(exported, world, case)


def printable_repr(name: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in repr(name))


async def direct_check(exported: list[Path], world: World, case: Case) -> None:
    """The same object through the target's API on a copy of the target: the error is an
    ``UnsafeDumpError`` with the object's type and name, and the authorizer's record holds
    the denial (SQLite never read or wrote what it names)."""
    dump = DumpCopy.read(exported)
    case.edit(dump, world)
    if case.plan:
        rows = [
            msgspec.convert(dict(zip(dump.columns, r, strict=True)), ControlRow)
            for r in dump.rows
            if (r[dump.columns.index("process_order")] or 0) > 0
        ]
        with pytest.raises(UnsafeDumpError) as info:
            check_plan(rows, {})
        refused = (info.value.object_type, info.value.object_name)
        assert refused == (case.direct or (case.kind, case.name))
        return
    target = SqliteTarget(world.spare, "sqlite")
    try:
        error = replay(dump, target, case)
        assert isinstance(error, UnsafeDumpError)
        assert (error.object_type, error.object_name) == (case.kind, case.name)
        assert case.refused in str(error)
        if case.action is None:
            assert error.action is None
        else:
            assert error.action is not None and error.action[0] == case.action, error.action
            if case.denied_arg is not None:
                assert case.denied_arg in error.action[1:3], error.action
            assert target.guard.denials, "the authorizer recorded no denial"
            assert target.guard.denials[0][0] == getattr(sqlite3, case.action)
    finally:
        target.conn.close()
    assert own_objects(world.spare, PREEXISTING) == own_objects(world.target, PREEXISTING)
    assert counter_of_precious(world.spare) == [("precious", 3)]


def replay(dump: DumpCopy, target: SqliteTarget, case: Case) -> UnsafeDumpError | None:
    """Make the dump's objects in order, as an import does, up to the case's object."""
    rows = sorted(
        (r for r in dump.rows if (dump.get(r, "process_order") or 0) > 0),
        key=lambda r: dump.get(r, "process_order"),
    )
    kinds = {dump.get(r, "object_type") for r in rows}
    assert kinds >= {"TABLE", "INDEX", "VIEW", "TRIGGER"}
    definitions = [
        (dump.get(r, "object_type"), msgspec.msgpack.decode(dump.get(r, "metadata")))
        for r in rows
        if dump.get(r, "object_type") != "TABLE_DATA" and dump.get(r, "metadata")
    ]
    target.guard.scope.widen(
        [d["name"] for k, d in definitions if k == "TABLE"],
        [d["name"] for k, d in definitions if k == "VIEW"],
    )
    target._ensure_markers()
    for kind, definition in definitions:
        try:
            make(target, kind, definition)
        except UnsafeDumpError as exc:
            return exc
    return None


def make(target: SqliteTarget, kind: str, definition: dict[str, Any]) -> None:
    if kind == "SEQUENCE":
        target._set_sequence(definition["table"], int(definition["value"] or 0))
    elif kind != "PRAGMA":
        target._execute_ddl(
            definition["ddl"], kind, definition["name"], definition.get("table", "")
        )


# --- SQLFILE: it writes SQL and runs none ------------------------------------------------------

SQLITE3 = shutil.which("sqlite3")


def _sqlfile_attacks(dump: DumpCopy, world: World) -> None:
    for case in ("attach-then-copy-out", "vacuum-into-as-view", "drop-table-as-trigger"):
        CASES[case].edit(dump, world)
    # The setting's name went into the SQL file unquoted: an injection of its own.
    injected = f"user_version = 1; ATTACH DATABASE '{world.outside}/p.db' AS p; --"
    dump.redefine("PRAGMA", "user_version", name=injected)


@pytest.mark.asyncio
async def test_sqlfile_of_a_hostile_dump_runs_nothing_and_names_what_it_refused(
    exported: list[Path], world: World
) -> None:
    dump = DumpCopy.read(exported)
    _sqlfile_attacks(dump, world)
    paths = dump.write(world.dump)
    assert verify_paths(paths).sound
    sql = world.outside / "ddl.sql"
    before_tree = tree(world)
    before_own = own_objects(world.target, PREEXISTING)

    async with pumpkit.Session(world.home) as s:
        h = await s.open("IMPORT", "FULL", job_name="SQLFILE", database=world.target)
        await s.add_file(h, paths[0].name, directory=str(world.dump))
        await s.add_file(h, sql.name, directory=str(sql.parent), filetype="SQL")
        await s.start_job(h)
        assert await s.wait_for_job(h) == pumpkit.JobState.COMPLETED
        log = [t for _, _, t in await s._store.log_lines("SQLFILE")]

    # It wrote the SQL file and nothing else; the target was not even opened.
    after = tree(world)
    assert set(after) - set(before_tree) == {"outside/ddl.sql"}
    assert {k: v for k, v in after.items() if k != "outside/ddl.sql"} == before_tree
    assert own_objects(world.target, PREEXISTING) == before_own
    assert any("refused by the guard" in line for line in log), log
    text = sql.read_text()
    refused = [line for line in text.splitlines() if line.startswith("-- REFUSED")]
    for kind, name in [
        ("TABLE", "kv"),
        ("VIEW", "kv_view"),
        ("TRIGGER", "kv_audit"),
        ("INDEX", "kv_v"),  # on kv, which it refused: SQLite cannot compile it
        ("PRAGMA", "user_version = 1; ATTACH"),
    ]:
        assert any(f"unsafe dump: {kind} " in r and name in r for r in refused), (kind, refused)
    # No statement outside a comment attaches, vacuums or drops; the good ones are there.
    statements = [line for line in text.splitlines() if line and not line.startswith("--")]
    assert not [s for s in statements if any(w in s for w in ("ATTACH", "VACUUM", "DROP"))]
    assert any(s.startswith("CREATE TABLE side") for s in statements)
    assert any(s.startswith("CREATE TABLE notes") for s in statements)
    # Run by the sqlite3 shell (which would run anything), the file changes nothing outside.
    if SQLITE3 is not None:
        scratch = world.dump / "from-sql.db"
        with open(sql, "rb") as fh:
            done = subprocess.run(
                [SQLITE3, "-bail", str(scratch)], stdin=fh, capture_output=True, timeout=60
            )
        assert done.returncode == 0, done.stderr
        assert set(tree(world)) - set(after) == {"dump/from-sql.db"}
        assert names_in(scratch) >= {"side", "notes"}


# --- what the guard lets through, and says so ---------------------------------------------------


def _names_precious_and_writes_it(dump: DumpCopy, world: World) -> None:
    dump.redefine(
        "TABLE",
        "notes",
        name="precious",
        ddl="CREATE TABLE precious (id INTEGER PRIMARY KEY AUTOINCREMENT, secret TEXT NOT NULL)",
    )
    dump.redefine(
        "TRIGGER",
        "kv_audit",
        ddl="CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN"
        " UPDATE precious SET secret = 'pwned'; END",
    )


@pytest.mark.asyncio
async def test_a_trigger_may_write_a_table_its_dump_names_and_the_log_says_so(
    exported: list[Path], world: World
) -> None:
    """The documented limit (docs/trust.md): a dump that names a table the target already has
    (skipped under TABLE_EXISTS_ACTION=SKIP) may store a trigger that writes to it when it
    fires later. It never fires during the import, and the job's log names what it writes."""
    dump = DumpCopy.read(exported)
    _names_precious_and_writes_it(dump, world)
    paths = dump.write(world.dump)
    before_tree = tree(world)
    before_own = own_objects(world.target, PREEXISTING)

    status = await pumpkit.import_dump(
        paths[0], world.target, directory=world.dump, home=world.home, job_name="NAMED"
    )

    assert status.state == "COMPLETED", status.errors
    assert tree(world) == before_tree
    assert own_objects(world.target, PREEXISTING) == before_own
    assert 'Table "precious" exists: skipped with its data (TABLE_EXISTS_ACTION=SKIP)' in (
        status.log_lines
    )
    assert (
        "TRIGGER 'kv_audit' made; it writes 'precious', which the target had already and this"
        " import left alone"
    ) in status.log_lines
