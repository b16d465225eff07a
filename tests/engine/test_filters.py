"""Filters, CONTENT, TABLE_EXISTS_ACTION, ESTIMATE_ONLY, remaps and transforms against real
SQLite data: a job is defined with the filter, run, and the target compared with what SQLite
itself says the filter should give (the same condition run on the source).

Most filters are tried both ways: on the EXPORT (then a plain import of the filtered set) and
on the IMPORT of one unfiltered export of the same source.
"""

from __future__ import annotations

import concurrent.futures
import gc
import os
import random
import sqlite3
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import pumpkit
from pumpkit import InvalidArgumentError, JobState

ORDERS = 2000
CUSTOMERS = 50
LINES_PER_ORDER = 3
LINE_ORDERS = 500  # orders 1..500 have lines
AUDIT_KEPT = 1990  # the audit rows above this are deleted: the AUTOINCREMENT counter is ahead

SOURCE_DDL = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL, region TEXT);
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX idx_orders_region ON orders (region, amount);
CREATE TABLE order_lines (
    order_id INTEGER NOT NULL,
    line INTEGER NOT NULL,
    sku TEXT,
    qty INTEGER,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
CREATE INDEX order_lines_sku ON order_lines (sku);
CREATE TABLE customers (name TEXT PRIMARY KEY, country TEXT);
CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT, at REAL);
CREATE TRIGGER orders_audit AFTER INSERT ON orders
BEGIN
    INSERT INTO audit_log (what, at) VALUES ('order ' || new.id, new.amount);
END;
CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders WHERE amount > 500;
"""

TABLES = ("orders", "order_lines", "customers", "audit_log")

REMAP_MODULE = "pumpkit_test_filter_remaps"
REMAP_SOURCE = '''
"""REMAP_DATA functions of tests/engine/test_filters.py (imported by export workers too)."""

import pumpkit


def upper(value):
    if isinstance(value, list):
        raise TypeError("upper takes one value, it was given a list")
    return None if value is None else value.upper()


@pumpkit.batch_remap
def double(values):
    if not isinstance(values, list):
        raise TypeError(f"double takes a batch column, it was given {type(values).__name__}")
    return [None if v is None else v * 2 for v in values]


def boom(value):
    raise ValueError(f"cannot remap {value!r}")


NOT_A_FUNCTION = 42
'''


def build_source(path: Path) -> None:
    rnd = random.Random(20240611)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SOURCE_DDL)
        names = [f"cust{i:03d}" for i in range(CUSTOMERS)]
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?)",
            [(n, rnd.choice(["DE", "FR", "US"])) for n in names],
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [
                (
                    i,
                    rnd.choice(names),
                    round(rnd.uniform(1, 1000), 2),
                    rnd.choice(["north", "south", "east", "west"]),
                )
                for i in range(1, ORDERS + 1)
            ],
        )
        conn.executemany(
            "INSERT INTO order_lines VALUES (?, ?, ?, ?)",
            [
                (o, line, f"sku{rnd.randrange(100)}", rnd.randrange(1, 10))
                for o in range(1, LINE_ORDERS + 1)
                for line in range(1, LINES_PER_ORDER + 1)
            ],
        )
        conn.execute("DELETE FROM audit_log WHERE id > ?", (AUDIT_KEPT,))
        conn.commit()
    finally:
        conn.close()


# --- looking at databases ----------------------------------------------------------------------


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def schema(db: Path) -> dict[tuple[str, str], str]:
    """``(type, name) -> table`` of the user objects (not SQLite's own, not pumpkit's)."""
    return {
        (t, n): tbl
        for t, n, tbl in query(db, "SELECT type, name, tbl_name FROM sqlite_master")
        if not n.startswith(("sqlite_", "pumpkit_"))
    }


def rows(db: Path, table: str, where: str = "1", columns: str = "*") -> list[tuple[Any, ...]]:
    return query(db, f'SELECT {columns} FROM "{table}" WHERE {where} ORDER BY 1, 2')


def sequences(db: Path) -> dict[str, int]:
    if not query(db, "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"):
        return {}
    return dict(query(db, "SELECT name, seq FROM sqlite_sequence"))


def ddl_of(db: Path, name: str) -> str | None:
    found = query(db, "SELECT sql FROM sqlite_master WHERE name = ?", (name,))
    return found[0][0] if found else None


# --- running jobs -------------------------------------------------------------------------------

Call = tuple[Any, ...]  # ("metadata_filter", name, value[, target]) and the like


@dataclass
class Result:
    state: JobState
    lines: list[str]
    errors: tuple[str, ...] = ()
    # ResourceWarnings of objects the job left unclosed (anyio streams, files, connections).
    leaks: tuple[str, ...] = ()


async def run_job(
    home: Path,
    operation: str,
    database: Path,
    calls: Sequence[Call] = (),
    *,
    directory: Path | None = None,
    template: str | None = None,
    job_name: str,
) -> Result:
    """Define, start and wait for a job. What it leaves unclosed is collected here (and
    reported in ``leaks``), not in whichever later test the garbage collector runs in."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = await _run_job(
            home,
            operation,
            database,
            calls,
            directory=directory,
            template=template,
            job_name=job_name,
        )
        for _ in range(5):
            await anyio.lowlevel.checkpoint()  # the loop lets go of the finished tasks
        gc.collect()
    leaks = tuple(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))
    return Result(result.state, result.lines, result.errors, leaks)


async def _run_job(
    home: Path,
    operation: str,
    database: Path,
    calls: Sequence[Call] = (),
    *,
    directory: Path | None = None,
    template: str | None = None,
    job_name: str,
) -> Result:
    async with pumpkit.Session(home) as s:
        h = await s.open(operation, "FULL", job_name=job_name, database=database)
        if template is not None:
            await s.add_file(h, template, directory=str(directory), reusefile=operation == "EXPORT")
        for method, *args in calls:
            await getattr(s, method)(h, *args)
        await s.start_job(h)
        state = await s.wait_for_job(h)
        lines = [t for _, _, t in await s._store.log_lines(job_name)]
        errors: tuple[str, ...] = ()
        if state != JobState.COMPLETED:
            # A stopped job keeps its control table: its status can be read at leisure.
            errors = (await s.final_status(job_name)).errors
    return Result(state, lines, errors)


@dataclass
class World:
    source: Path
    full: Path  # the directory of the unfiltered export full01.dmp...


def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("filters")
    source = base / "source.db"
    build_source(source)
    full = base / "full"
    full.mkdir()
    result = _in_thread(
        lambda: run_job(
            base / "home", "EXPORT", source, directory=full, template="full%U.dmp", job_name="FULL"
        )
    )
    assert result.state == JobState.COMPLETED, result.lines
    return World(source=source, full=full)


@pytest.fixture(scope="module")
def remap_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("remaps")
    (directory / f"{REMAP_MODULE}.py").write_text(textwrap.dedent(REMAP_SOURCE))
    return directory


@pytest.fixture
def remaps(remap_dir, monkeypatch) -> str:
    """The REMAP_DATA module, importable here and in the export's worker processes."""
    monkeypatch.syspath_prepend(str(remap_dir))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(remap_dir) + (os.pathsep + old if old else ""))
    return REMAP_MODULE


async def filtered(
    world: World,
    tmp_path: Path,
    direction: str,
    calls: Sequence[Call],
    *,
    import_calls: Sequence[Call] = (),
    target: Path | None = None,
) -> tuple[Path, Result]:
    """Apply ``calls`` on the export (then import plainly, plus ``import_calls``) or on the
    import of the unfiltered export; the target and the import's result."""
    home = tmp_path / "home"
    target = target or tmp_path / "target.db"
    if direction == "export":
        exported = await run_job(
            home,
            "EXPORT",
            world.source,
            calls,
            directory=tmp_path,
            template="part%U.dmp",
            job_name="EXP",
        )
        assert exported.state == JobState.COMPLETED, exported.lines
        directory, template, calls = tmp_path, "part%U.dmp", import_calls
    else:
        directory, template, calls = world.full, "full%U.dmp", [*calls, *import_calls]
    result = await run_job(
        home, "IMPORT", target, calls, directory=directory, template=template, job_name="IMP"
    )
    assert result.state == JobState.COMPLETED, (result.lines, result.errors)
    return target, result


BOTH = pytest.mark.parametrize("direction", ["export", "import"])

ALL_INDEXES = {
    ("index", "orders_customer"),
    ("index", "idx_orders_region"),
    ("index", "order_lines_sku"),
}
ORDERS_OBJECTS = {
    ("table", "orders"),
    ("index", "orders_customer"),
    ("index", "idx_orders_region"),
    ("trigger", "orders_audit"),
}
ORDER_LINES_OBJECTS = {("table", "order_lines"), ("index", "order_lines_sku")}


def assert_tables_complete(world: World, target: Path, tables: Sequence[str]) -> None:
    for table in tables:
        assert rows(target, table) == rows(world.source, table), table


def test_the_source_is_what_the_tests_assume(world):
    assert set(schema(world.source)) == {
        ("table", "orders"),
        ("table", "order_lines"),
        ("table", "customers"),
        ("table", "audit_log"),
        ("index", "orders_customer"),
        ("index", "idx_orders_region"),
        ("index", "order_lines_sku"),
        ("trigger", "orders_audit"),
        ("view", "big_orders"),
    }
    counts = {t: query(world.source, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    assert counts == {
        "orders": ORDERS,
        "order_lines": LINE_ORDERS * LINES_PER_ORDER,
        "customers": CUSTOMERS,
        "audit_log": AUDIT_KEPT,
    }
    assert sequences(world.source) == {"audit_log": ORDERS}


# --- metadata filters -----------------------------------------------------------------------------

METADATA_CASES = {
    "exclude-index-type": (
        [("metadata_filter", "EXCLUDE_PATH_EXPR", "='INDEX'")],
        ALL_INDEXES,
    ),
    "exclude-trigger-and-sequence": (
        [("metadata_filter", "EXCLUDE_PATH_EXPR", "IN ('TRIGGER', 'SEQUENCE')")],
        {("trigger", "orders_audit")},
    ),
    "exclude-view-list": (
        [("metadata_filter", "EXCLUDE_PATH_LIST", "VIEW")],
        {("view", "big_orders")},
    ),
    "exclude-tables-like": (
        [("metadata_filter", "EXCLUDE_NAME_EXPR", "LIKE 'ORD%'")],
        ORDERS_OBJECTS | ORDER_LINES_OBJECTS,
    ),
    "exclude-one-index-by-name": (
        [("metadata_filter", "EXCLUDE_NAME_EXPR", "like 'idx%'", "INDEX")],
        {("index", "idx_orders_region")},
    ),
    "include-tables-like": (
        # expdp INCLUDE=TABLE:"LIKE 'ORD%'"
        [
            ("metadata_filter", "INCLUDE_PATH_EXPR", "= 'TABLE'"),
            ("metadata_filter", "NAME_EXPR", "LIKE 'ORD%'"),
        ],
        {("table", "customers"), ("table", "audit_log"), ("view", "big_orders")},
    ),
}


@BOTH
@pytest.mark.parametrize("case", list(METADATA_CASES))
@pytest.mark.asyncio
async def test_metadata_filter(world, tmp_path, direction, case):
    calls, left_out = METADATA_CASES[case]
    target, _ = await filtered(world, tmp_path, direction, calls)

    expected = {k: v for k, v in schema(world.source).items() if k not in left_out}
    assert schema(target) == expected
    tables = [name for kind, name in expected if kind == "table"]
    assert_tables_complete(world, target, tables)
    assert sorted(query(target, "SELECT name FROM sqlite_master WHERE type = 'table'")) == sorted(
        [(t,) for t in tables] + ([("sqlite_sequence",)] if "audit_log" in tables else [])
    )
    if "audit_log" not in tables:
        assert sequences(target) == {}
    elif case == "exclude-trigger-and-sequence":
        # The counter was not moved: SQLite set it from the rows the import inserted.
        assert sequences(target) == {"audit_log": AUDIT_KEPT}
    else:
        assert sequences(target) == {"audit_log": ORDERS}
    # The trigger is created after the rows, whatever the filter: no audit row was added.
    if "audit_log" in tables:
        assert len(rows(target, "audit_log")) == AUDIT_KEPT


@pytest.mark.asyncio
async def test_a_negated_include_path_expression_leaves_that_type_out(world, tmp_path):
    # Regression (found while writing this file, since fixed): INCLUDE_PATH_EXPR "!= 'INDEX'" should include every object type but INDEX; it
    # includes INDEX as well (pumpkit.core.selection.parse_path_expr: a negated expression
    # "matches" the type through its full path SCHEMA/TABLE/INDEX), so the indexes are
    # imported all the same.
    target, _ = await filtered(
        world, tmp_path, "import", [("metadata_filter", "INCLUDE_PATH_EXPR", "!= 'INDEX'")]
    )
    assert {k for k in schema(target) if k[0] == "index"} == set()


# --- data filters -------------------------------------------------------------------------------


@BOTH
@pytest.mark.asyncio
async def test_query_for_one_table(world, tmp_path, direction):
    condition = "amount > 500 AND region IN ('north', 'east')"
    target, _ = await filtered(
        world, tmp_path, direction, [("data_filter", "QUERY", condition, "orders")]
    )
    expected = rows(world.source, "orders", condition)
    assert 100 < len(expected) < ORDERS / 2
    assert rows(target, "orders") == expected
    assert_tables_complete(world, target, ["order_lines", "customers", "audit_log"])
    assert schema(target) == schema(world.source)


@BOTH
@pytest.mark.asyncio
async def test_query_for_every_table_and_a_tables_own_query(world, tmp_path, direction):
    target, _ = await filtered(
        world,
        tmp_path,
        direction,
        [
            ("metadata_filter", "NAME_LIST", ["orders", "audit_log"]),
            ("data_filter", "QUERY", "id % 3 = 0"),  # every table
            ("data_filter", "QUERY", "WHERE id <= 10", "AUDIT_LOG"),  # its own beats it
        ],
    )
    tables = {name for kind, name in schema(target) if kind == "table"}
    assert tables == {"orders", "audit_log"}
    assert rows(target, "orders") == rows(world.source, "orders", "id % 3 = 0")
    assert len(rows(target, "orders")) == ORDERS // 3
    assert rows(target, "audit_log") == rows(world.source, "audit_log", "id <= 10")
    assert len(rows(target, "audit_log")) == 10


@pytest.mark.asyncio
async def test_subquery_picks_rows_by_key(world, tmp_path):
    top = "WHERE region = 'north' ORDER BY amount DESC LIMIT 25"
    target, _ = await filtered(
        world,
        tmp_path,
        "export",
        [
            ("data_filter", "SUBQUERY", top, "orders"),
            ("data_filter", "SUBQUERY", "WHERE qty > 5 AND line = 2", "order_lines"),
            ("data_filter", "SUBQUERY", "WHERE country = 'DE'", "customers"),
        ],
    )
    assert rows(target, "orders") == rows(
        world.source, "orders", f"id IN (SELECT id FROM orders {top})"
    )
    assert len(rows(target, "orders")) == 25
    assert rows(target, "order_lines") == rows(world.source, "order_lines", "qty > 5 AND line = 2")
    assert rows(target, "customers") == rows(world.source, "customers", "country = 'DE'")
    assert_tables_complete(world, target, ["audit_log"])


@pytest.mark.asyncio
async def test_subquery_on_import_is_applied_or_refused(world, tmp_path):
    # Regression (found while writing this file, since fixed): a SUBQUERY data filter on an IMPORT job is accepted at the call and then silently
    # ignored: every row of order_lines is imported. (The README lists SUBQUERY for export
    # only; then the call should be refused while DEFINING, as every other filter mistake is.)
    target = tmp_path / "target.db"
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("IMPORT", "FULL", job_name="IMP", database=target)
        await s.add_file(h, "full%U.dmp", directory=str(world.full))
        try:
            await s.data_filter(h, "SUBQUERY", "WHERE qty > 5", "order_lines")
        except InvalidArgumentError:
            return  # refused while DEFINING: fine
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
    assert rows(target, "order_lines") == rows(world.source, "order_lines", "qty > 5")


@BOTH
@pytest.mark.asyncio
async def test_sample_takes_a_random_share_of_one_table(world, tmp_path, direction):
    target, _ = await filtered(
        world, tmp_path, direction, [("data_filter", "SAMPLE", 25, "orders")]
    )
    sampled = rows(target, "orders")
    # Binomial(2000, 0.25): mean 500, sd 19.4; this bound is more than 7 sd wide.
    assert 350 <= len(sampled) <= 650, len(sampled)
    source = set(rows(world.source, "orders"))
    assert set(sampled) <= source
    assert len(set(sampled)) == len(sampled)
    assert_tables_complete(world, target, ["order_lines", "customers", "audit_log"])


@BOTH
@pytest.mark.asyncio
async def test_include_rows_zero_moves_one_tables_definition_only(world, tmp_path, direction):
    target, _ = await filtered(
        world, tmp_path, direction, [("data_filter", "INCLUDE_ROWS", 0, "order_lines")]
    )
    assert schema(target) == schema(world.source)
    assert rows(target, "order_lines") == []
    assert ddl_of(target, "order_lines") == ddl_of(world.source, "order_lines")
    assert_tables_complete(world, target, ["orders", "customers", "audit_log"])


@BOTH
@pytest.mark.asyncio
async def test_content_metadata_only(world, tmp_path, direction):
    target, _ = await filtered(
        world, tmp_path, direction, [("set_parameter", "CONTENT", "METADATA_ONLY")]
    )
    assert schema(target) == schema(world.source)
    for name, _ in schema(world.source):
        assert ddl_of(target, name) == ddl_of(world.source, name)
    for table in TABLES:
        assert rows(target, table) == [], table
    assert sequences(target) == {"audit_log": ORDERS}


def precreate_tables(source: Path, target: Path, extra: str = "") -> None:
    """The source's tables (only: no index, trigger or view) in ``target``."""
    statements = [
        sql
        for (sql,) in query(source, "SELECT sql FROM sqlite_master WHERE type = 'table'")
        if not sql.startswith("CREATE TABLE sqlite_")
    ]
    conn = sqlite3.connect(target)
    try:
        conn.executescript(";\n".join(statements) + ";\n" + extra)
        conn.commit()
    finally:
        conn.close()


@BOTH
@pytest.mark.asyncio
async def test_content_data_only_loads_rows_into_existing_tables(world, tmp_path, direction):
    target = tmp_path / "target.db"
    precreate_tables(world.source, target, "INSERT INTO orders VALUES (9001, 'local', 1, 'x');")
    before = schema(target)
    assert set(before) == {("table", t) for t in TABLES}
    content = [("set_parameter", "CONTENT", "DATA_ONLY")]

    target, result = await filtered(
        world, tmp_path, direction, content, import_calls=content, target=target
    )

    assert schema(target) == before  # no index, trigger or view was created
    assert_tables_complete(world, target, ["order_lines", "customers", "audit_log"])
    assert rows(target, "orders") == [*rows(world.source, "orders"), (9001, "local", 1.0, "x")]
    # TABLE_EXISTS_ACTION defaults to APPEND under DATA_ONLY (as impdp).
    for table in TABLES:
        assert f'Table "{table}" exists: TABLE_EXISTS_ACTION=APPEND' in result.lines
    if direction == "export":
        # A DATA_ONLY set still describes its tables: a plain import creates them, bare.
        plain = await run_job(
            tmp_path / "home",
            "IMPORT",
            tmp_path / "plain.db",
            directory=tmp_path,
            template="part%U.dmp",
            job_name="PLAIN",
        )
        assert plain.state == JobState.COMPLETED, plain.lines
        assert set(schema(tmp_path / "plain.db")) == {("table", t) for t in TABLES}
        assert_tables_complete(world, tmp_path / "plain.db", TABLES)


@pytest.mark.asyncio
async def test_content_data_only_needs_the_tables(world, tmp_path):
    """A table missing from the target stops a DATA_ONLY import, naming it."""
    target = tmp_path / "target.db"
    precreate_tables(world.source, target, "DROP TABLE order_lines;")
    result = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        [("set_parameter", "CONTENT", "DATA_ONLY")],
        directory=world.full,
        template="full%U.dmp",
        job_name="IMP",
    )
    assert result.state == JobState.STOPPED
    assert any("'order_lines'" in e and "DATA_ONLY" in e for e in result.errors), result.errors


@pytest.mark.asyncio
async def test_content_data_only_with_truncate_replaces_the_targets_rows(world, tmp_path):
    """DATA_ONLY with TABLE_EXISTS_ACTION=TRUNCATE empties the existing table first (the
    action was once ignored under DATA_ONLY), keeping the source's rowids."""
    target = tmp_path / "target.db"
    precreate_tables(world.source, target, "INSERT INTO orders VALUES (999999, 'local', 1, 'x');")
    result = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        [
            ("set_parameter", "CONTENT", "DATA_ONLY"),
            ("set_parameter", "TABLE_EXISTS_ACTION", "TRUNCATE"),
        ],
        directory=world.full,
        template="full%U.dmp",
        job_name="IMP",
    )
    assert result.state == JobState.COMPLETED, result.errors
    assert rows(target, "orders") == rows(world.source, "orders")


@pytest.mark.asyncio
async def test_content_data_only_refuses_replace(world, tmp_path):
    target = tmp_path / "target.db"
    precreate_tables(world.source, target)
    result = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        [
            ("set_parameter", "CONTENT", "DATA_ONLY"),
            ("set_parameter", "TABLE_EXISTS_ACTION", "REPLACE"),
        ],
        directory=world.full,
        template="full%U.dmp",
        job_name="IMP",
    )
    assert result.state == JobState.STOPPED
    assert any("REPLACE" in e and "DATA_ONLY" in e for e in result.errors), result.errors


@pytest.mark.parametrize(
    "calls",
    [
        [("set_parameter", "TABLE_EXISTS_ACTION", "APPEND")],
        [("set_parameter", "CONTENT", "DATA_ONLY")],
    ],
    ids=["append", "data-only"],
)
@pytest.mark.asyncio
async def test_append_into_a_table_whose_hidden_rowids_overlap(world, tmp_path, calls):
    # Regression (found while writing this file, since fixed): customers (name TEXT PRIMARY KEY) has no INTEGER PRIMARY KEY: its rowid is hidden,
    # and the export carries it so that a copy keeps it. APPEND (and CONTENT=DATA_ONLY, whose
    # default is APPEND) inserts those rowids too, so appending into a table that already
    # holds a row fails on the hidden rowid although no declared key conflicts:
    #   "Job IMP failed: loading table 'customers' failed: UNIQUE constraint failed:
    #    customers.rowid"
    target = tmp_path / "target.db"
    precreate_tables(world.source, target, "INSERT INTO customers VALUES ('zz local', 'XX');")
    result = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        calls,
        directory=world.full,
        template="full%U.dmp",
        job_name="IMP",
    )
    assert result.state == JobState.COMPLETED, result.errors
    assert rows(target, "customers") == [*rows(world.source, "customers"), ("zz local", "XX")]


@pytest.mark.asyncio
async def test_a_failed_import_leaves_no_stream_unclosed(world, tmp_path):
    # Regression (found while writing this file, since fixed): when the import's writer fails (here on a real key conflict in the first table)
    # while readers have granules queued for it, the per-granule anyio memory streams that
    # were queued (or being handed over) are never closed; the garbage collector then warns
    # "Unclosed <MemoryObjectReceiveStream ...>" / "Unclosed <MemoryObjectSendStream ...>"
    # (pumpkit.engine.control._import_data: read() creates send/receive before
    # ready_send.send(); items left in ready_send's buffer are dropped unclosed). Under
    # filterwarnings=error this surfaces as an unraisable-exception failure of some later,
    # unrelated test. At parallel 2 it happened in 20 runs out of 20.
    target = tmp_path / "target.db"
    precreate_tables(world.source, target, "INSERT INTO orders VALUES (1, 'local', 1, 'x');")
    result = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        [("set_parameter", "CONTENT", "DATA_ONLY"), ("set_parallel", 2)],
        directory=world.full,
        template="full%U.dmp",
        job_name="IMP",
    )
    assert result.state == JobState.STOPPED
    assert any("'orders'" in e and "UNIQUE constraint failed" in e for e in result.errors)
    assert result.leaks == ()


# --- TABLE_EXISTS_ACTION ---------------------------------------------------------------------------

LOCAL_ORDERS = [(5001, "local a", 1.5, "here", "mine"), (5002, "local b", 2.5, "there", "mine")]


@pytest.mark.parametrize("action", [None, "SKIP", "APPEND", "TRUNCATE", "REPLACE"])
@pytest.mark.asyncio
async def test_table_exists_action(world, tmp_path, action):
    target = tmp_path / "target.db"
    conn = sqlite3.connect(target)
    try:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL,"
            " region TEXT, note TEXT)"
        )
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", LOCAL_ORDERS)
        conn.commit()
    finally:
        conn.close()
    local_ddl = ddl_of(target, "orders")
    calls = [] if action is None else [("set_parameter", "TABLE_EXISTS_ACTION", action)]

    target, result = await filtered(world, tmp_path, "import", calls, target=target)

    source_orders = rows(world.source, "orders")
    with_note = [(*r, None) for r in source_orders]
    others = {k: v for k, v in schema(world.source).items() if v != "orders" and k[0] != "view"}
    assert_tables_complete(world, target, ["order_lines", "customers"])
    # The trigger on orders is never fired by the load: audit_log is the source's.
    assert_tables_complete(world, target, ["audit_log"])
    if action in (None, "SKIP"):
        assert rows(target, "orders") == LOCAL_ORDERS
        assert ddl_of(target, "orders") == local_ddl
        assert {k: v for k, v in schema(target).items() if k[0] != "view"} == {
            **others,
            ("table", "orders"): "orders",
        }
        assert 'Table "orders" exists: skipped with its data (TABLE_EXISTS_ACTION=SKIP)' in (
            result.lines
        )
    elif action == "APPEND":
        assert rows(target, "orders") == sorted(with_note + LOCAL_ORDERS)
        assert ddl_of(target, "orders") == local_ddl
    elif action == "TRUNCATE":
        assert rows(target, "orders") == with_note
        assert ddl_of(target, "orders") == local_ddl
        assert 'Table "orders" truncated' in result.lines
    else:
        assert rows(target, "orders") == source_orders
        assert ddl_of(target, "orders") == ddl_of(world.source, "orders")
        assert schema(target) == schema(world.source)
        assert 'Table "orders" replaced' in result.lines
    if action is not None and action != "SKIP":
        assert f'Table "orders" exists: TABLE_EXISTS_ACTION={action}' in result.lines


# --- ESTIMATE_ONLY -----------------------------------------------------------------------------


@pytest.mark.parametrize("with_file", [False, True])
@pytest.mark.asyncio
async def test_estimate_only_writes_no_file_and_logs_each_table(world, tmp_path, with_file):
    result = await run_job(
        tmp_path / "home",
        "EXPORT",
        world.source,
        [
            ("set_parameter", "ESTIMATE_ONLY", 1),
            ("metadata_filter", "EXCLUDE_NAME_EXPR", "= 'customers'"),
        ],
        directory=tmp_path if with_file else None,
        template="est%U.dmp" if with_file else None,
        job_name="EST",
    )
    assert result.state == JobState.COMPLETED, result.lines
    assert not list(tmp_path.glob("*.dmp"))
    assert any(line.startswith("Estimate (STATISTICS): 3 tables,") for line in result.lines)
    counts = {t: query(world.source, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    for table in ("orders", "order_lines", "audit_log"):
        assert any(line.startswith(f"  {table}: {counts[table]} rows,") for line in result.lines), (
            table,
            result.lines,
        )
    assert not any("customers:" in line for line in result.lines)
    assert not any(line.startswith("Metadata written") for line in result.lines)


# --- remaps and transforms -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_remap_table_renames_the_table_its_indexes_and_trigger(world, tmp_path):
    target, _ = await filtered(
        world, tmp_path, "import", [("metadata_remap", "REMAP_TABLE", "orders", "orders_v2")]
    )
    expected = {k: v for k, v in schema(world.source).items() if v != "orders"}
    expected.update(
        {
            ("table", "orders_v2"): "orders_v2",
            ("index", "orders_v2_customer"): "orders_v2",
            ("index", "idx_orders_v2_region"): "orders_v2",
            ("trigger", "orders_v2_audit"): "orders_v2",
        }
    )
    expected[("view", "big_orders")] = "big_orders"  # views are not rewritten
    assert schema(target) == expected
    assert rows(target, "orders_v2") == rows(world.source, "orders")
    assert ddl_of(target, "orders_v2") == ddl_of(world.source, "orders").replace(
        "CREATE TABLE orders", 'CREATE TABLE "orders_v2"'
    )
    assert ddl_of(target, "orders_v2_customer") == (
        'CREATE INDEX "orders_v2_customer" ON "orders_v2" (customer)'
    )
    assert_tables_complete(world, target, ["order_lines", "customers", "audit_log"])
    # The renamed trigger fires on the new table.
    conn = sqlite3.connect(target)
    try:
        conn.execute("INSERT INTO orders_v2 (id, customer, amount) VALUES (9999, 'x', 1)")
        assert conn.execute("SELECT what FROM audit_log ORDER BY id DESC LIMIT 1").fetchone() == (
            "order 9999",
        )
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_remap_table_without_renaming_indexes(world, tmp_path):
    target, _ = await filtered(
        world,
        tmp_path,
        "import",
        [
            ("metadata_remap", "REMAP_TABLE", "orders", "archive"),
            ("metadata_transform", "RENAME_INDEXES", 0),
        ],
    )
    got = schema(target)
    assert ("table", "orders") not in got
    for kind, name in ORDERS_OBJECTS - {("table", "orders")}:
        assert got[(kind, name)] == "archive"
    assert rows(target, "archive") == rows(world.source, "orders")


@pytest.mark.asyncio
async def test_remap_table_next_to_the_original_with_a_query_on_the_source_name(world, tmp_path):
    target, _ = await filtered(world, tmp_path, "import", [])
    second = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        [
            ("metadata_remap", "REMAP_TABLE", "orders", "orders_2024"),
            ("data_filter", "QUERY", "amount > 900", "orders"),  # names the source table
        ],
        directory=world.full,
        template="full%U.dmp",
        job_name="IMP2",
    )
    assert second.state == JobState.COMPLETED, second.lines
    got = schema(target)
    for kind, name in ORDERS_OBJECTS:
        assert got[(kind, name)] == "orders"
        assert got[(kind, name.replace("orders", "orders_2024"))] == "orders_2024"
    assert rows(target, "orders") == rows(world.source, "orders")
    assert rows(target, "orders_2024") == rows(world.source, "orders", "amount > 900")
    # The other tables existed already: skipped, not doubled.
    assert_tables_complete(world, target, ["order_lines", "customers", "audit_log"])


@pytest.mark.asyncio
async def test_omit_storage_drops_without_rowid(world, tmp_path):
    target, _ = await filtered(
        world, tmp_path, "import", [("metadata_transform", "OMIT_STORAGE", 1)]
    )
    assert "WITHOUT ROWID" in ddl_of(world.source, "order_lines")
    assert "WITHOUT ROWID" not in ddl_of(target, "order_lines")
    assert ("order_lines", 0) in [(r[1], r[4]) for r in query(target, "PRAGMA table_list")]
    assert_tables_complete(world, target, TABLES)


@BOTH
@pytest.mark.asyncio
async def test_remap_data_per_value_and_per_batch(world, tmp_path, direction, remaps):
    target, _ = await filtered(
        world,
        tmp_path,
        direction,
        [
            ("metadata_remap", "REMAP_DATA", "orders.customer", f"{remaps}:upper"),
            ("metadata_remap", "REMAP_DATA", "ORDERS.amount", f"{remaps}:double"),
        ],
    )
    expected = [(i, c.upper(), a * 2, r) for i, c, a, r in rows(world.source, "orders")]
    assert rows(target, "orders") == expected
    assert_tables_complete(world, target, ["order_lines", "customers", "audit_log"])


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ("orders", "{m}:upper", ["table.column", "'orders'"]),
        ("orders.customer", "{m}.upper", ["module:function", ".upper'"]),
        ("orders.customer", "{m}:nothere", ["orders.customer", "has no 'nothere'"]),
        (
            "orders.customer",
            "pumpkit_no_such_module_here:f",
            ["cannot import 'pumpkit_no_such_module_here'"],
        ),
    ],
)
@pytest.mark.parametrize("operation", ["EXPORT", "IMPORT"])
@pytest.mark.asyncio
async def test_remap_data_with_a_bad_spec_is_refused_at_the_call(
    world, tmp_path, remaps, operation, old, new, needles
):
    database = world.source if operation == "EXPORT" else tmp_path / "t.db"
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open(operation, "FULL", job_name="J", database=database)
        with pytest.raises(InvalidArgumentError) as info:
            await s.metadata_remap(h, "REMAP_DATA", old, new.format(m=remaps))
        for needle in needles:
            assert needle in str(info.value), (needle, str(info.value))
        assert await s.state(h) == JobState.DEFINING
        assert await s._filter_entries("J") == []  # nothing was stored
        await s.metadata_remap(h, "REMAP_DATA", "orders.customer", f"{remaps}:upper")
        assert len(await s._filter_entries("J")) == 1
        await s.stop_job(h)


@pytest.mark.asyncio
async def test_remap_data_function_failing_stops_the_export_naming_it(world, tmp_path, remaps):
    result = await run_job(
        tmp_path / "home",
        "EXPORT",
        world.source,
        [("metadata_remap", "REMAP_DATA", "customers.country", f"{remaps}:boom")],
        directory=tmp_path,
        template="boom%U.dmp",
        job_name="BOOM",
    )
    assert result.state == JobState.STOPPED
    assert any(
        f"{remaps}:boom" in e and "'customers'" in e and "ValueError" in e for e in result.errors
    ), result.errors


# --- mistakes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "condition", "table", "needles"),
    [
        ("QUERY", "no_such_column > 1", "orders", ["'orders'", "no such column: no_such_column"]),
        (
            "SUBQUERY",
            "WHERE nope = 2",
            "order_lines",
            ["SUBQUERY", "'order_lines'", "no such column: nope"],
        ),
    ],
)
@pytest.mark.asyncio
async def test_a_bad_data_filter_stops_the_export_before_any_row(
    world, tmp_path, name, condition, table, needles
):
    result = await run_job(
        tmp_path / "home",
        "EXPORT",
        world.source,
        [("data_filter", name, condition, table)],
        directory=tmp_path,
        template="bad%U.dmp",
        job_name="BAD",
    )
    assert result.state == JobState.STOPPED
    assert any(all(n in e for n in needles) for e in result.errors), result.errors
    assert not any(line.startswith("Metadata written") for line in result.lines), result.lines
    assert not list(tmp_path.glob("bad*.dmp"))  # not a byte of the dump was written


@pytest.mark.asyncio
async def test_a_bad_query_stops_the_import_naming_the_table(world, tmp_path):
    target = tmp_path / "target.db"
    result = await run_job(
        tmp_path / "home",
        "IMPORT",
        target,
        [("data_filter", "QUERY", "no_such_column > 1", "orders")],
        directory=world.full,
        template="full%U.dmp",
        job_name="BADIMP",
    )
    assert result.state == JobState.STOPPED
    assert any("'orders'" in e and "no_such_column" in e for e in result.errors), result.errors
    if ("table", "orders") in schema(target):
        assert rows(target, "orders") == []  # the failed granule was rolled back


@pytest.mark.parametrize(
    ("method", "args", "needles"),
    [
        ("metadata_filter", ("NAME_EXPR", "LIKE ORD%"), ["name expression", "LIKE ORD%"]),
        ("metadata_filter", ("EXCLUDE_NAME_EXPR", "IN ('A', 'B'"), ["ends where ) was expected"]),
        ("metadata_filter", ("NAME_EXPR", "BETWEEN 'A' AND 'B'"), ["'BETWEEN'"]),
        ("metadata_filter", ("EXCLUDE_PATH_EXPR", "= 'INDX'"), ["'INDX'", "valid types"]),
        ("metadata_filter", ("INCLUDE_PATH_EXPR", "LIKE 'Z%'"), ["selects no object type"]),
        ("metadata_filter", ("NAME_EXPR", "= 'a'", "WIDGET"), ["'WIDGET'", "valid types"]),
        ("metadata_filter", ("SCHEMA_LIST", "other"), ["'other'", "main"]),
        (
            "metadata_filter",
            ("NAME_CLAUSE", "= 'a'"),
            ["unknown name 'NAME_CLAUSE'", "EXCLUDE_NAME_EXPR", "INCLUDE_PATH_EXPR"],
        ),
        ("data_filter", ("QUERY", "a = 1; DROP TABLE orders", "orders"), ["without ';'"]),
        ("data_filter", ("SAMPLE", 0, "orders"), ["above 0 and at most 100"]),
        ("data_filter", ("INCLUDE_ROWS", 5), ["INCLUDE_ROWS takes 0 or 1"]),
        ("data_filter", ("LIMIT", 5), ["unknown name 'LIMIT'", "SUBQUERY"]),
        ("metadata_transform", ("OMIT_STORAGE", 3), ["takes 0 or 1"]),
        ("metadata_transform", ("SHRINK", 1), ["unknown name 'SHRINK'", "OMIT_STORAGE"]),
        ("metadata_remap", ("REMAP_DATA", "orders.customer", ""), ["needs an old and a new"]),
        ("metadata_remap", ("REMAP_COLUMN", "a", "b"), ["unknown name 'REMAP_COLUMN'"]),
        ("metadata_remap", ("REMAP_TABLE", "orders", "o2"), ["REMAP_TABLE applies to an import"]),
    ],
)
@pytest.mark.asyncio
async def test_a_bad_filter_is_refused_at_the_call_while_defining(
    world, tmp_path, method, args, needles
):
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=world.source)
        await s.metadata_filter(h, "EXCLUDE_PATH_EXPR", "= 'VIEW'")
        with pytest.raises(InvalidArgumentError) as info:
            await getattr(s, method)(h, *args)
        for needle in needles:
            assert needle in str(info.value), (needle, str(info.value))
        assert await s.state(h) == JobState.DEFINING
        assert len(await s._filter_entries("J")) == 1  # the refused call left nothing behind
        await s.stop_job(h)


@pytest.mark.asyncio
async def test_remap_table_mistakes_on_an_import(world, tmp_path):
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("IMPORT", "FULL", job_name="I", database=tmp_path / "t.db")
        with pytest.raises(InvalidArgumentError, match="needs an old and a new value"):
            await s.metadata_remap(h, "REMAP_TABLE", "orders", "")
        with pytest.raises(InvalidArgumentError, match="takes 0 or 1"):
            await s.metadata_transform(h, "RENAME_INDEXES", "yes")
        await s.metadata_remap(h, "REMAP_TABLE", "orders", "o2")
        assert await s._filter_entries("I") == [
            ("METADATA_REMAP:REMAP_TABLE", ["orders", "o2"], None)
        ]
        await s.stop_job(h)


@pytest.mark.asyncio
async def test_include_after_exclude_is_refused_and_the_job_stays_usable(world, tmp_path):
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=world.source)
        await s.metadata_filter(h, "EXCLUDE_NAME_EXPR", "LIKE 'ORD%'")
        with pytest.raises(InvalidArgumentError, match="INCLUDE and EXCLUDE"):
            await s.metadata_filter(h, "INCLUDE_PATH_EXPR", "= 'TABLE'")
        with pytest.raises(InvalidArgumentError, match="INCLUDE and EXCLUDE"):
            await s.metadata_filter(h, "INCLUDE_PATH_LIST", ["TABLE", "VIEW"])
        assert await s.state(h) == JobState.DEFINING
        await s.metadata_filter(h, "EXCLUDE_PATH_EXPR", "= 'VIEW'")  # more EXCLUDE is fine
        assert [e[0] for e in await s._filter_entries("J")] == [
            "METADATA_FILTER:EXCLUDE_NAME_EXPR",
            "METADATA_FILTER:EXCLUDE_PATH_EXPR",
        ]
        # CONTENT is checked together with the filters too.
        with pytest.raises(InvalidArgumentError, match="allowed values"):
            await s.set_parameter(h, "CONTENT", "EVERYTHING")
        await s.stop_job(h)


@pytest.mark.asyncio
async def test_parameter_mistakes_name_the_valid_choices(world, tmp_path):
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=world.source)
        with pytest.raises(InvalidArgumentError) as info:
            await s.set_parameter(h, "TABLE_EXIST_ACTION", "SKIP")
        message = str(info.value)
        assert "'TABLE_EXIST_ACTION'" in message and "valid parameters:" in message
        for name in ("CONTENT", "ESTIMATE_ONLY", "TABLE_EXISTS_ACTION", "COMPRESSION"):
            assert name in message
        with pytest.raises(InvalidArgumentError) as info:
            await s.set_parameter(h, "CONTENT", "SOME")
        assert "allowed values: ALL, DATA_ONLY, METADATA_ONLY" in str(info.value)
        with pytest.raises(InvalidArgumentError, match="not valid for an EXPORT job"):
            await s.set_parameter(h, "TABLE_EXISTS_ACTION", "APPEND")
        with pytest.raises(InvalidArgumentError, match="from 0 to 1"):
            await s.set_parameter(h, "ESTIMATE_ONLY", 2)
        await s.stop_job(h)
        h = await s.open("IMPORT", "FULL", job_name="I", database=tmp_path / "t.db")
        with pytest.raises(InvalidArgumentError) as info:
            await s.set_parameter(h, "TABLE_EXISTS_ACTION", "MERGE")
        assert "allowed values: SKIP, APPEND, TRUNCATE, REPLACE" in str(info.value)
        with pytest.raises(InvalidArgumentError, match="not valid for an IMPORT job"):
            await s.set_parameter(h, "ESTIMATE_ONLY", 1)
        await s.stop_job(h)
