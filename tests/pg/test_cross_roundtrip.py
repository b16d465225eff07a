"""SQLite -> PostgreSQL -> SQLite with pumpkit: a SQLite database with [bracketed] and
`backtick` names, foreign keys, CHECKs, defaults, partial and expression indexes, views and
AUTOINCREMENT comes back with the same schema objects (names, columns, keys, index and view
definitions compared by what they mean) and the same rows; in the PostgreSQL copy an INSERT
without a key works."""

from __future__ import annotations

import decimal
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import sqlglot
from sqlglot import exp

from pumpkit.exitcodes import ExitCode

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(240)]

SCHEMA = """
CREATE TABLE [Artist] (
    [ArtistId] INTEGER PRIMARY KEY AUTOINCREMENT,
    [Name] NVARCHAR(120) NOT NULL CHECK (length([Name]) > 0)
);
CREATE TABLE `Album` (
    `AlbumId` INTEGER PRIMARY KEY,
    `Title` TEXT NOT NULL DEFAULT 'untitled',
    `ArtistId` INTEGER NOT NULL REFERENCES [Artist] ([ArtistId]) ON DELETE CASCADE,
    `Price` REAL DEFAULT 9.99,
    `Rating` NUMERIC(3,1),
    Released BOOLEAN DEFAULT 0,
    CONSTRAINT [price_positive] CHECK (`Price` >= 0),
    UNIQUE (`Title`, `ArtistId`)
);
CREATE TABLE "track item" (
    id INTEGER PRIMARY KEY,
    album INTEGER,
    title TEXT,
    ms INTEGER CHECK (ms IS NULL OR ms > 0),
    FOREIGN KEY (album) REFERENCES Album (AlbumId) ON UPDATE CASCADE
);
CREATE INDEX [IFK_AlbumArtistId] ON [Album] ([ArtistId]);
CREATE INDEX `track_long` ON "track item" (ms DESC) WHERE ms > 300000;
CREATE INDEX [title lower] ON [track item] (lower(title), [album]);
CREATE UNIQUE INDEX album_title ON Album (Title, ArtistId) WHERE Released = 1;
CREATE VIEW [album view] AS
    SELECT a.[Title] AS title, ar.[Name] AS artist, count(t.id) AS tracks
    FROM [Album] a JOIN [Artist] ar ON ar.[ArtistId] = a.[ArtistId]
    LEFT JOIN [track item] t ON t.album = a.AlbumId
    GROUP BY a.AlbumId, a.Title, ar.Name;
CREATE VIEW `long tracks` AS
    SELECT title, ms / 1000.0 AS seconds FROM `track item` WHERE ms > 300000;
"""
# Rows each CHECK refuses, in both copies.
REFUSED = [
    "INSERT INTO Artist (Name) VALUES ('')",
    "INSERT INTO Album (Title, ArtistId, Price) VALUES ('x', 1, -1)",
    "INSERT INTO [track item] (album, title, ms) VALUES (1, 'x', 0)",
]
# What a move to PostgreSQL and back changes, on purpose (README, "Types across engines"):
# NUMERIC keeps its exact digits as TEXT; PostgreSQL's boolean comes back as INTEGER 0/1;
# an identity key is an AUTOINCREMENT key (it never hands out a value twice).
AFFINITY_CHANGES = {("Album", "Rating"): "TEXT", ("Album", "Released"): "INTEGER"}


def fill(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO Artist (Name) VALUES (?)", [(f"artist {i}",) for i in range(20)]
        )
        db.execute("DELETE FROM Artist WHERE ArtistId = 20")  # the counter stays at 20
        db.executemany(
            "INSERT INTO Album (Title, ArtistId, Price, Rating, Released) VALUES (?, ?, ?, ?, ?)",
            [(f"album {i}", i % 19 + 1, i * 1.25, f"{i % 10}.5", i % 2) for i in range(1, 41)],
        )
        db.executemany(
            'INSERT INTO "track item" (album, title, ms) VALUES (?, ?, ?)',
            [(i % 40 + 1, f"Track {i}", None if i % 7 == 0 else i * 12345) for i in range(1, 201)],
        )


def pumpkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def move(database: str, into: str, dumpfile: str, job: str, cwd: Path) -> None:
    home = str(cwd / "home")
    done = pumpkit(
        "export", "--database", database, "--dumpfile", dumpfile, "--home", home,
        "--job-name", f"{job}_EXP", "--foreground", cwd=cwd,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    done = pumpkit(
        "import", "--database", into, "--dumpfile", dumpfile, "--home", home,
        "--job-name", f"{job}_IMP", "--foreground", cwd=cwd,
    )  # fmt: skip
    # Nothing was left out: every object came along.
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "left out" not in done.stdout + done.stderr


def affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (its datatype document, 3.1)."""
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(w in upper for w in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper:
        return "BLOB"
    if any(w in upper for w in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def meaning(sql: str | None) -> str:
    """A SQLite expression or statement as what it means: parsed, names folded (SQLite's
    names are one name whatever their case or quotes), redundant parentheses gone."""
    if sql is None:
        return ""
    tree = sqlglot.parse_one(sql, read="sqlite")
    tree = tree.transform(lambda n: n.this if isinstance(n, exp.Paren) else n)
    for ident in tree.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
        ident.set("quoted", True)
    return tree.sql(dialect="sqlite")


def schema_of(path: Path) -> dict[str, object]:
    """What a SQLite database holds, by what it means."""
    with sqlite3.connect(path) as db:
        master = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite%' ORDER BY type, name"
        ).fetchall()
        out: dict[str, object] = {"objects": [(t, n.lower(), tb.lower()) for t, n, tb, _ in master]}
        for kind, name, _, sql in master:
            q = '"' + name.replace('"', '""') + '"'
            if kind == "table":
                out[f"columns {name}"] = [
                    (
                        r[1],
                        AFFINITY_CHANGES.get((name, r[1])) or affinity(r[2]),
                        bool(r[3]) or bool(r[5]),  # a key column is NOT NULL in PostgreSQL
                        meaning(r[4]),
                        r[5],
                    )
                    for r in db.execute(f"PRAGMA table_info({q})")
                ]
                out[f"foreign keys {name}"] = sorted(
                    (r[2].lower(), r[3], r[4], r[5], r[6])
                    for r in db.execute(f"PRAGMA foreign_key_list({q})")
                )
                out[f"uniques {name}"] = sorted(
                    [c[2] for c in db.execute(f"PRAGMA index_info({i[1]!r})")]
                    for i in db.execute(f"PRAGMA index_list({q})")
                    if i[3] == "u"
                )
            elif kind == "index":
                tree = sqlglot.parse_one(sql, read="sqlite")
                out[f"index {name.lower()}"] = meaning(tree.sql(dialect="sqlite"))
                out[f"index columns {name.lower()}"] = [
                    (r[2], r[3], r[4]) for r in db.execute(f"PRAGMA index_xinfo({q})") if r[5]
                ]
            elif kind == "view":
                out[f"view columns {name}"] = [r[1] for r in db.execute(f"PRAGMA table_info({q})")]
                out[f"view rows {name}"] = sorted(
                    db.execute(f"SELECT * FROM {q}").fetchall(), key=repr
                )
    return out


def rows_of(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite%' AND name NOT LIKE 'pumpkit%'"
            )
        ]
        return {
            t: sorted(
                tuple(
                    decimal.Decimal(str(v)) if c == "Rating" and v is not None else v
                    for c, v in zip(
                        [d[1] for d in db.execute(f'PRAGMA table_info("{t}")')], r, strict=True
                    )
                )
                for r in db.execute(f'SELECT * FROM "{t}"')
            )
            for t in tables
        }


def refused(path: Path) -> list[bool]:
    out = []
    with sqlite3.connect(path) as db:
        for sql in REFUSED:
            try:
                db.execute(sql)
            except sqlite3.IntegrityError as exc:
                out.append("CHECK" in str(exc))
            else:
                out.append(False)
            db.rollback()
    return out


async def check_postgres_copy(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        # The PostgreSQL copy has the keys, CHECKs, indexes and views, under their names.
        kinds = [
            r["contype"]
            for r in await conn.fetch(
                "SELECT contype::text FROM pg_constraint c"
                " JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'"
            )
        ]
        assert sorted(kinds) == ["c", "c", "c", "f", "f", "p", "p", "p", "u"]
        indexes = {
            r["indexname"]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            )
        }
        assert {"IFK_AlbumArtistId", "track_long", "title lower", "album_title"} <= indexes
        assert await conn.fetchval('SELECT count(*) FROM "long tracks"') == sum(
            1 for i in range(1, 201) if i % 7 and i * 12345 > 300000
        )
        # An INSERT without a key works: the identities are past the highest key (and past
        # the AUTOINCREMENT counter of Artist, whose row 20 was deleted).
        assert (
            await conn.fetchval(
                'INSERT INTO "Artist" ("Name") VALUES (\'new\') RETURNING "ArtistId"'
            )
            == 21
        )
        assert (
            await conn.fetchval('INSERT INTO "Album" ("ArtistId") VALUES (1) RETURNING "AlbumId"')
            == 41
        )
        row = await conn.fetchrow(
            "INSERT INTO \"track item\" (title) VALUES ('new') RETURNING id, ms"
        )
        assert tuple(row) == (201, None)
        # The defaults and the foreign keys work too.
        assert await conn.fetchval('SELECT "Title" FROM "Album" WHERE "AlbumId" = 41') == (
            "untitled"
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute('INSERT INTO "Album" ("ArtistId") VALUES (999)')
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute('INSERT INTO "Album" ("ArtistId", "Price") VALUES (1, -1)')
    finally:
        await conn.close()


async def test_sqlite_to_postgres_to_sqlite_keeps_schema_and_rows(
    pg_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source.db"
    fill(source)
    move(str(source), pg_url, "to_pg.dmp", "TO_PG", tmp_path)

    # Back to SQLite before anything writes to the PostgreSQL copy (a sequence's value is
    # not rolled back with a transaction).
    copy = tmp_path / "copy.db"
    move(pg_url, str(copy), "back.dmp", "BACK", tmp_path)
    await check_postgres_copy(pg_url)

    want, got = schema_of(source), schema_of(copy)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key], key
    assert rows_of(copy) == rows_of(source)
    assert refused(copy) == refused(source) == [True, True, True]
    with sqlite3.connect(copy) as db:
        # AUTOINCREMENT's counter came through PostgreSQL's sequence: 20 is not given again.
        assert db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'Artist'").fetchone() == (
            20,
        )
        assert db.execute("INSERT INTO Artist (Name) VALUES ('new')").lastrowid == 21
        assert db.execute("INSERT INTO \"track item\" (title) VALUES ('x')").lastrowid == 201


PG_TYPES = r"""
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE ty (
    id integer PRIMARY KEY, v tsvector, x xml, c citext, m macaddr, m8 macaddr8,
    b bit(5), vb varbit, r real, d double precision, n numeric(12,4) CHECK (n > -1000),
    label text DEFAULT 'none'::text
);
INSERT INTO ty VALUES
 (1, to_tsvector('english', 'The fat cats ate fat rats'), '<a>1</a>', 'MiXed',
  '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'10101', B'1101100', 1.5, 0.1,
  12.3400, 'one'),
 (2, $$'it''s' 'a\\b':3 'w':1A,2B,4C,5$$::tsvector, NULL, NULL, NULL, NULL, NULL, B'',
  -2.5e-3, 'NaN', -999.0001, DEFAULT),
 (3, ''::tsvector, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE INDEX ty_lower ON ty (lower(c::text)) WHERE c IS NOT NULL;
CREATE VIEW ty_text AS SELECT id, upper(label) AS shout FROM ty WHERE id < 3;
"""


async def test_postgres_types_in_sqlite_in_their_text_form(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(PG_TYPES)
        texts = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT id, v::text, x::text, c::text, m::text, m8::text, b::text, vb::text,"
                " n::text FROM ty ORDER BY id"
            )
        ]
        reals = [tuple(r) for r in await conn.fetch("SELECT r, d FROM ty ORDER BY id")]
    finally:
        await conn.close()
    home = str(tmp_path / "home")
    done = pumpkit(
        "export", "--database", pg_url, "--dumpfile", "ty.dmp", "--home", home,
        "--foreground", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    done = pumpkit(
        "import", "--database", "ty.db", "--dumpfile", "ty.dmp", "--home", home,
        "--foreground", "--exclude", "EXTENSION", "--exclude", "COMMENT", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "ty.db") as db:
        # Types SQLite lacks arrive as PostgreSQL's own text output; NUMERIC keeps its digits.
        assert (
            db.execute("SELECT id, v, x, c, m, m8, b, vb, n FROM ty ORDER BY id").fetchall()
            == texts
        )
        # REAL and double precision stay REAL (NaN as the text 'NaN': SQLite has no NaN).
        got = db.execute("SELECT r, d, typeof(r), typeof(d) FROM ty ORDER BY id").fetchall()
        assert [(r, d) for r, d, _, _ in got[:1]] == reals[:1]
        assert got[1][1] == "NaN" and got[1][2:] == ("real", "text")
        types = dict(db.execute("SELECT name, type FROM pragma_table_info('ty')").fetchall())
        assert (types["r"], types["d"], types["n"], types["v"]) == ("REAL", "REAL", "TEXT", "TEXT")
        # The CHECK, the default, the partial expression index and the view came along.
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("INSERT INTO ty (id, n) VALUES (9, '-5000')")
        db.execute("INSERT INTO ty (id) VALUES (10)")
        assert db.execute("SELECT label FROM ty WHERE id = 10").fetchone() == ("none",)
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'ty_lower'").fetchone()[0]
        assert "LOWER" in sql and "WHERE" in sql
        assert db.execute("SELECT * FROM ty_text ORDER BY id").fetchall() == [
            (1, "ONE"),
            (2, "NONE"),
        ]
