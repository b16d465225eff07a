"""SQL across engines (pumpkit.core.translate): SQLite's views, indexes, CHECKs and defaults
in PostgreSQL's SQL and back; what has no translation raises an error naming the object."""

from __future__ import annotations

import sqlite3

import pytest

from pumpkit.core.translate import (
    ForeignKey,
    foreign_key_of,
    foreign_key_sql,
    name_map,
    table_parts,
    translate_expression,
    translate_index,
    translate_view,
)
from pumpkit.core.typemap import SqliteColumn, pg_table
from pumpkit.errors import TranslationError

NAMES = name_map(["Album", "Artist", "Title", "Name", "ArtistId", "AlbumId", "Released"])


def test_bracketed_and_backtick_names_become_double_quoted_as_the_database_spells_them() -> None:
    sql = translate_view(
        "CREATE VIEW [album list] AS SELECT a.[title] AS t, `ar`.name AS artist"
        " FROM main.[album] a JOIN `Artist` ar ON ar.artistid = a.ArtistId ORDER BY artist",
        source="sqlite",
        target="postgres",
        name="album list",
        names=NAMES,
    )
    assert sql.startswith('CREATE VIEW "album list" AS SELECT "a"."Title" AS "t"')
    assert '"ar"."Name" AS "artist"' in sql
    assert 'FROM "Album" AS "a" JOIN "Artist" AS "ar"' in sql
    assert 'ON "ar"."ArtistId" = "a"."ArtistId"' in sql
    assert 'ORDER BY "artist"' in sql  # the output column's alias, not the table Artist
    assert "[" not in sql and "`" not in sql and "main" not in sql


def test_a_partial_expression_index_to_postgres_keeps_its_meaning() -> None:
    sql = translate_index(
        "CREATE UNIQUE INDEX [i] ON [Album] ([Title] COLLATE NOCASE, artistid DESC)"
        " WHERE Released = 1 AND length(title) > 2",
        source="sqlite",
        target="postgres",
        name="i",
        table="Album",
        names=NAMES,
        booleans=frozenset({"released"}),
    )
    assert sql == (
        'CREATE UNIQUE INDEX "i" ON "Album"(LOWER("Title"), "ArtistId" DESC)'
        ' WHERE "Released" = TRUE AND LENGTH("Title") > 2'
    )


def test_a_postgres_index_from_pg_dump_to_sqlite_runs_there() -> None:
    sql = translate_index(
        "CREATE INDEX track_long ON public.track USING btree (ms DESC, lower(title) COLLATE"
        ' "C") WHERE (ms > 300000);\nALTER INDEX public.track_long OWNER TO postgres;',
        source="postgres",
        target="sqlite",
        name="track_long",
        table="track",
    )
    assert sql == (
        'CREATE INDEX "track_long" ON "track"("ms" DESC, LOWER("title")) WHERE ("ms" > 300000)'
    )
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE track (ms INTEGER, title TEXT)")
    db.execute(sql)
    # INDEXED BY fails unless the partial index can serve the query.
    db.execute("INSERT INTO track VALUES (400001, 'a'), (5, 'b'), (NULL, 'c')")
    assert db.execute(
        "SELECT title FROM track INDEXED BY track_long WHERE ms > 300000"
    ).fetchall() == [("a",)]


def test_a_postgres_view_to_sqlite_gives_the_same_rows() -> None:
    sql = translate_view(
        "CREATE VIEW public.totals AS\n SELECT t.k,\n    (sum(t.v))::text AS total\n"
        "   FROM public.t\n  WHERE ((t.k)::text ~~ 'a%'::text)\n  GROUP BY t.k;",
        source="postgres",
        target="sqlite",
        name="totals",
    )
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE t (k TEXT, v INTEGER);"
        " INSERT INTO t VALUES ('ab', 1), ('ab', 2), ('b', 5), ('ac', 4);"
    )
    db.execute(sql)
    assert db.execute("SELECT * FROM totals ORDER BY k").fetchall() == [("ab", "3"), ("ac", "4")]


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("CREATE INDEX i ON public.t USING gin (v)", "a gin index has no SQLite counterpart"),
        ("CREATE INDEX i ON public.t USING btree (to_tsvector(v))", "function to_tsvector()"),
        ('CREATE INDEX i ON public.t USING btree (v COLLATE "de_DE")', "collation 'de_DE'"),
        ("CREATE VIEW public.i AS SELECT 1", "not one CREATE INDEX statement"),
        ("CREATE INDEX i ON public.t (", "does not parse"),
    ],
)
def test_what_has_no_translation_names_the_object_and_why(sql: str, why: str) -> None:
    with pytest.raises(TranslationError) as caught:
        translate_index(sql, source="postgres", target="sqlite", name="i", table="t")
    assert caught.value.what == "index 'i'"
    assert why.lower() in caught.value.reason.lower(), caught.value.reason


def test_an_unknown_sqlite_function_has_no_translation() -> None:
    with pytest.raises(TranslationError, match=r"(?i)view 'v': function datetime\(\)"):
        translate_view(
            "CREATE VIEW v AS SELECT datetime('now') AS d",
            source="sqlite",
            target="postgres",
            name="v",
        )


def test_expressions_both_ways() -> None:
    assert (
        translate_expression(
            "ifnull([a], 0) > 1 AND b IN ('x', 'y')",
            source="sqlite",
            target="postgres",
            what="a CHECK",
        )
        == "COALESCE(\"a\", 0) > 1 AND \"b\" IN ('x', 'y')"
    )
    assert (
        translate_expression("(a)::text", source="postgres", target="sqlite", what="x")
        == 'CAST(("a") AS TEXT)'
    )


def test_table_parts_of_a_sqlite_table() -> None:
    parts = table_parts(
        "CREATE TABLE [t] (id INTEGER PRIMARY KEY, a TEXT CHECK (length(a) > 2) DEFAULT 'x',"
        " b REAL DEFAULT (datetime('now')), c INT REFERENCES [p](id) ON DELETE CASCADE"
        " DEFERRABLE INITIALLY DEFERRED, CONSTRAINT ck CHECK (b > 0),"
        " CONSTRAINT fk2 FOREIGN KEY (a, b) REFERENCES `q` (x, y), UNIQUE (a, c))",
        source="sqlite",
        target="postgres",
        table="t",
    )
    assert [(c.name, c.sql) for c in parts.checks] == [(None, 'LENGTH("a") > 2'), ("ck", '"b" > 0')]
    assert parts.defaults[0] == ("a", "'x'", None)
    assert parts.defaults[1].sql is None and "datetime()" in (parts.defaults[1].why or "").lower()
    assert parts.foreign_keys == (
        ForeignKey(
            None, ("c",), "p", ("id",), ("ON DELETE CASCADE", "DEFERRABLE", "INITIALLY DEFERRED")
        ),
        ForeignKey("fk2", ("a", "b"), "q", ("x", "y"), ()),
    )
    assert parts.uniques == ((None, ("a", "c")),)
    assert foreign_key_sql(parts.foreign_keys[0], table="t") == (
        'CONSTRAINT "t_c_fkey" FOREIGN KEY ("c") REFERENCES "p" ("id") ON DELETE CASCADE'
        " DEFERRABLE INITIALLY DEFERRED"
    )


def test_a_foreign_key_of_pg_dump() -> None:
    fk = foreign_key_of(
        "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_customer_fkey FOREIGN KEY"
        " (customer_id) REFERENCES public.customer(id) ON DELETE SET NULL;",
        source="postgres",
        what="x",
    )
    assert fk == ForeignKey(
        "orders_customer_fkey", ("customer_id",), "customer", ("id",), ("ON DELETE SET NULL",)
    )
    with pytest.raises(TranslationError, match="adds no FOREIGN KEY"):
        foreign_key_of("ALTER TABLE ONLY public.t OWNER TO x;", source="postgres", what="x")


def test_pg_table_has_checks_and_defaults_apart_and_foreign_keys_for_after_the_rows() -> None:
    ddl = (
        "CREATE TABLE [Album] ([AlbumId] INTEGER PRIMARY KEY, [Title] TEXT NOT NULL"
        " DEFAULT 'untitled', Released BOOLEAN DEFAULT 0, Made TEXT DEFAULT (julianday('now')),"
        " [ArtistId] INTEGER REFERENCES [artist], CHECK (released IN (0, 1)))"
    )
    columns = [
        SqliteColumn("AlbumId", "INTEGER", False, None, 1, 0),
        SqliteColumn("Title", "TEXT", True, "'untitled'", 0, 0),
        SqliteColumn("Released", "BOOLEAN", False, "0", 0, 0),
        SqliteColumn("Made", "TEXT", False, "julianday('now')", 0, 0),
        SqliteColumn("ArtistId", "INTEGER", False, None, 0, 0),
    ]
    made = pg_table(
        'public."Album"', "Album", columns, [], ddl, name_map(["Artist"], [c.name for c in columns])
    )
    assert '"AlbumId" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL' in made.create
    assert made.types == ["bigint", "text", "boolean", "text", "bigint"]
    assert [sql for _, sql in made.after] == [
        'ALTER TABLE public."Album" ALTER COLUMN "Title" SET DEFAULT \'untitled\'',
        'ALTER TABLE public."Album" ALTER COLUMN "Released" SET DEFAULT false',
        'ALTER TABLE public."Album" ADD CHECK ("Released" IN (0, 1))',
    ]
    assert made.foreign_keys == [
        (
            "Album_ArtistId_fkey",
            'ALTER TABLE public."Album" ADD CONSTRAINT "Album_ArtistId_fkey" FOREIGN KEY'
            ' ("ArtistId") REFERENCES "Artist"',
        )
    ]
    assert len(made.notes) == 1 and "column 'Made' left out" in made.notes[0]
    assert "julianday()" in made.notes[0].lower()


def test_a_table_sqlglot_cannot_read_whole_loses_only_the_element_it_cannot_read() -> None:
    parts = table_parts(
        "CREATE TABLE public.ty (\n    id integer NOT NULL,\n    vb bit varying,\n"
        "    vc bit varying(3) DEFAULT B'101'::bit varying,\n    n numeric(12,4),\n"
        "    label text DEFAULT 'none'::text,\n"
        "    CONSTRAINT ty_n_check CHECK ((n > (-1000)::numeric))\n);\n"
        "ALTER TABLE public.ty OWNER TO postgres;",
        source="postgres",
        target="sqlite",
        table="ty",
        numerics=frozenset({"n"}),
    )
    assert parts.defaults == (("label", "'none'", None),)
    # numeric is text of exact digits in SQLite: the CHECK compares it as a number.
    assert parts.checks == (("ty_n_check", 'CAST("n" AS REAL) > CAST((-1000) AS REAL)', None),)
    assert len(parts.lost) == 1 and parts.lost[0].startswith("vc: its definition does not parse")
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE ty (n TEXT CHECK ({parts.checks[0].sql}))")
    db.execute("INSERT INTO ty VALUES ('12.3400')")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO ty VALUES ('-5000')")
