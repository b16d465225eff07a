"""``pumpkit cat``: the rows of a dump-file set, offline, equal the source's rows, in CSV,
JSON lines, Parquet and Arrow IPC; encrypted sets with ``--password``; ``--limit`` and
``--columns``; wrong uses with README's exit codes; memory that does not grow with the table.

The sources are SQLite databases: ``make_tricky_database`` (every storage class, NaN and
infinities, empty strings and NULLs, blobs, odd names, WITHOUT ROWID and rowid tables) and
generated tables for the memory test. A PostgreSQL dump is in tests/pg/test_cat.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from pumpkit.exitcodes import ExitCode
from pumpkit.testing.sqlite_fixtures import make_tricky_database

csv.field_size_limit(2**31 - 1)  # the tricky database has values of some megabytes


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"}
    done = subprocess.run(
        [sys.executable, "-m", "pumpkit", *map(str, args)],
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    # Decoded without newline translation: CSV's \r\n and a value's own \r stay as written.
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def export(db: Path, directory: Path, *more: object, dumpfile: str = "t%U.dmp") -> Path:
    done = run(
        "export", "--database", db, "--directory", directory, "--dumpfile", dumpfile,
        "--home", directory / "home", "--quiet", *more, cwd=directory,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    return directory / dumpfile.replace("%U", "01")


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tricky database and a set of it with two files and two workers."""
    directory = tmp_path_factory.mktemp("cat")
    db = directory / "tricky.db"
    make_tricky_database(db, big_blob_mb=0, rows=2000)
    first = export(db, directory, "--parallel", 2, "--filesize", "2MB", "--compression", "NONE")
    assert (directory / "t02.dmp").exists(), "the set should span files"
    return db, first


def source_rows(db: Path, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    schema, _, name = table.partition(".")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
        qname = '"' + name.replace('"', '""') + '"'
        return conn.execute(f"SELECT {quoted} FROM {schema}.{qname}").fetchall()
    finally:
        conn.close()


def tables_of(first: Path) -> list[str]:
    done = run("ls", "--json", first, cwd=first.parent)
    objects = json.loads(done.stdout)["objects"]
    return [f"{o['schema']}.{o['name']}" for o in objects if o["object_type"] == "TABLE"]


def _key(row: tuple[Any, ...]) -> str:
    return repr(tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row))


def same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    """Equal as multisets, NaN equal to NaN."""
    return sorted(map(_key, got)) == sorted(map(_key, want))


def as_json(value: Any) -> Any:
    """What README's table says a value is in JSON lines."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def as_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def cat_jsonl(first: Path, table: str, *more: object) -> tuple[list[str], list[tuple[Any, ...]]]:
    done = run("cat", first, table, "--format", "jsonl", *more, cwd=first.parent)
    assert done.returncode == ExitCode.OK, done.stderr
    objects = [json.loads(line) for line in done.stdout.split("\n") if line]
    columns = list(objects[0]) if objects else []
    return columns, [tuple(o.values()) for o in objects]


def columns_of(first: Path, table: str) -> list[str]:
    done = run("cat", first, table, "--limit", 0, cwd=first.parent)
    assert done.returncode == ExitCode.OK, done.stderr
    return next(csv.reader(io.StringIO(done.stdout)))


def test_cat_csv_and_jsonl_equal_the_source(tricky: tuple[Path, Path]) -> None:
    db, first = tricky
    tables = tables_of(first)
    assert len(tables) >= 4, tables
    checked = 0
    for table in tables:
        columns = columns_of(first, table)
        want = source_rows(db, table, columns)
        # JSON lines: every value, typed.
        got_columns, got = cat_jsonl(first, table)
        if want:
            assert got_columns == columns
        assert same_rows(got, [tuple(map(as_json, r)) for r in want]), table
        # CSV: the text of every value; NULL an empty field, an empty string "".
        done = run("cat", first, table, cwd=first.parent)
        assert done.returncode == ExitCode.OK, done.stderr
        parsed = list(csv.reader(io.StringIO(done.stdout, newline="")))
        assert parsed[0] == columns
        assert same_rows([tuple(r) for r in parsed[1:]], [tuple(map(as_csv, r)) for r in want])
        checked += len(want)
    assert checked > 2000


def test_cat_csv_tells_null_from_the_empty_string(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, s TEXT, b BLOB)")
        conn.execute("INSERT INTO e VALUES (1, '', x''), (2, NULL, NULL), (3, ' a,\"b\"', x'00ff')")
    conn.close()
    first = export(db, tmp_path)
    done = run("cat", first, "e", cwd=tmp_path)
    assert done.stdout.splitlines() == ["id,s,b", '1,"",\\x', "2,,", '3," a,""b""",\\x00ff']


def test_cat_parquet_and_arrow_read_back_equal_the_source(
    tricky: tuple[Path, Path], tmp_path: Path
) -> None:
    db, first = tricky
    tables = tables_of(first)
    for fmt in ("parquet", "arrow"):
        out = tmp_path / fmt
        out.mkdir()
        done = run("cat", first, "--format", fmt, "--output", out, cwd=tmp_path)
        assert done.returncode == ExitCode.OK, done.stderr
        for table in tables:
            path = out / f"{table}.{fmt}"
            if fmt == "parquet":
                read = pq.read_table(path)
            else:
                with ipc.open_file(path) as reader:
                    read = reader.read_all()
            columns = read.schema.names
            want = source_rows(db, table, columns)
            types = {f.name: str(f.type) for f in read.schema}
            got = [tuple(r[c] for c in columns) for r in read.to_pylist()]
            expected = []
            for row in want:
                values = []
                for c, v in zip(columns, row, strict=True):
                    if types[c] == "string" and v is not None:
                        v = as_csv(v)  # a column of mixed storage classes is text
                    elif types[c] == "double" and isinstance(v, int):
                        v = float(v)
                    values.append(v)
                expected.append(tuple(values))
            assert same_rows(got, expected), (fmt, table, types)


def test_cat_limit_and_columns(tricky: tuple[Path, Path]) -> None:
    _, first = tricky
    table = tables_of(first)[0]
    columns = columns_of(first, table)
    picked = [columns[-1], columns[0]]
    got_columns, rows = cat_jsonl(first, table, "--limit", 7, "--columns", ",".join(picked))
    assert got_columns == picked
    assert len(rows) == 7


def test_cat_of_an_encrypted_set(tmp_path: Path) -> None:
    db = tmp_path / "tricky.db"
    make_tricky_database(db, big_blob_mb=0, rows=500)
    first = export(db, tmp_path, "--encryption-password", "s3cret pass")
    table = "main.wide"
    refused = run("cat", first, table, cwd=tmp_path)
    assert refused.returncode == ExitCode.FAULT
    assert "ENCRYPTION_PASSWORD" in refused.stderr and "Traceback" not in refused.stderr
    wrong = run("cat", first, table, "--password", "not it", cwd=tmp_path)
    assert wrong.returncode == ExitCode.FAULT
    assert "wrong ENCRYPTION_PASSWORD" in wrong.stderr
    columns, got = cat_jsonl(first, table, "--password", "s3cret pass")
    want = source_rows(db, table, columns)
    assert len(want) == 500
    assert same_rows(got, [tuple(map(as_json, r)) for r in want])


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["{set}", "no_such_table"], ExitCode.USAGE, ("no table 'no_such_table'", "main.")),
        (["{set}", "wide", "--columns", "nope"], ExitCode.USAGE, ("no column 'nope'",)),
        (["{set}"], ExitCode.USAGE, ("name one", "--output DIRECTORY")),
        (["{set}", "wide", "--format", "parquet"], ExitCode.USAGE, ("--output",)),
        (["{set}", "wide", "--limit", "-1"], ExitCode.USAGE, ("--limit",)),
        (["{dir}/missing01.dmp"], ExitCode.NO_INPUT, ("missing01.dmp",)),
        (["{dir}/notes.txt"], ExitCode.NOT_A_DUMP, ("notes.txt", "not a pumpkit dump file")),
    ],
)
def test_cat_wrong_use(
    tricky: tuple[Path, Path], tmp_path: Path, args: list[str], code: int, words: tuple[str, ...]
) -> None:
    _, first = tricky
    (tmp_path / "notes.txt").write_text("not a dump\n")
    argv = [a.replace("{set}", str(first)).replace("{dir}", str(tmp_path)) for a in args]
    done = run("cat", *argv, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


# -- memory ------------------------------------------------------------------------------------


def _make_table(path: Path, megabytes: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, a TEXT, n REAL, b BLOB)")
        filler = "x" * 180
        rows = megabytes * 4096  # about 256 bytes a row
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?, ?)",
            ((i, f"{i}{filler}", i / 7, i.to_bytes(8, "little") * 4) for i in range(rows)),
        )
    conn.close()


def _peak_rss_of_cat(first: Path, *args: object) -> int:
    """Peak resident memory (bytes) of one ``pumpkit cat`` process, from its own rusage."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpkit", "cat", str(first), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return usage.ru_maxrss * 1024  # kilobytes on Linux


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cat_memory_does_not_grow_with_the_table(tmp_path: Path) -> None:
    sizes = {"small": 10, "large": 120}
    peaks: dict[str, dict[str, int]] = {}
    for label, megabytes in sizes.items():
        directory = tmp_path / label
        directory.mkdir()
        db = directory / "big.db"
        _make_table(db, megabytes)
        assert db.stat().st_size > megabytes * 2**20 * 0.8
        for compression in ("ALL", "NONE"):
            first = export(
                db, directory, "--compression", compression, "--compression-level", 1,
                dumpfile=f"{compression}%U.dmp",
            )  # fmt: skip
            peaks.setdefault(label, {})[f"csv {compression}"] = _peak_rss_of_cat(
                first, "--output", "/dev/null"
            )
        peaks[label]["parquet"] = _peak_rss_of_cat(
            directory / "ALL01.dmp", "--format", "parquet", "--output", directory / "big.parquet"
        )
    print(f"\npeak RSS, bytes: {peaks}")
    for what, small in peaks["small"].items():
        large = peaks["large"][what]
        # Twelve times the rows, and not even 30 MB more memory: a frame at a time.
        assert large < small + 30 * 2**20, (what, small, large)
