"""A rich PostgreSQL database, as real ones are, and the helpers that prove two of them equal.

pumpkit's own catalog sees tables, views, sequences and a few types; a real database also has
partitioned tables, functions, triggers, materialized views, extensions, grants... This
fixture has one of each kind pg_dump knows that a test server can make, so that a copy built
from ``pg_dump``'s schema plus pumpkit's rows can be compared with its source:

* :data:`RICH_SCHEMA` — the SQL, with the role names as psql variables (``:"owner"``,
  ``:"reader"``, so ``psql -v owner=... -v reader=...`` runs it); :func:`rich_schema` fills
  them in. It needs a superuser (the event
  trigger, the cast's function, the foreign server) and the extensions ``citext``,
  ``btree_gist``, ``pg_trgm`` and ``postgres_fdw``. Large objects (with their data) are made
  here too, with fixed oids.
* :func:`fill_rich` — SQL that adds rows: tens of thousands across the partitions, so that a
  table splits into granules; it refreshes the populated materialized view and advances the
  sequences.
* :class:`RichRoles`, :func:`create_rich_roles`, :func:`drop_rich_roles` — roles are
  cluster-wide, so each use makes its own with a unique suffix and drops them after.
* :func:`normalized_schema` and :func:`relation_fingerprints` — what "the same database"
  means in the tests.

Kept apart from :mod:`pumpkit.testing.pg_fixtures` (the varied table types of the round-trip
tests): this one is about the kinds of object, that one about the kinds of value.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import urllib.parse
import uuid

import anyio
import asyncpg
import msgspec

__all__ = (
    "RICH_LARGE_OBJECTS",
    "RICH_SCHEMA",
    "RichRoles",
    "create_rich_roles",
    "drop_rich_roles",
    "drop_roles",
    "fill_rich",
    "normalized_schema",
    "relation_fingerprints",
    "rich_schema",
)

#: The oids of the large objects :data:`RICH_SCHEMA` makes (pg_dump keeps a large object's oid).
RICH_LARGE_OBJECTS = (424242, 424243, 424244)


class RichRoles(msgspec.Struct, frozen=True):
    """The roles one use of the fixture owns: ``owner`` owns schema ``app`` and some of its
    objects, ``reader`` is granted rights on them."""

    owner: str
    reader: str

    @property
    def names(self) -> tuple[str, str]:
        return (self.owner, self.reader)


RICH_SCHEMA = r"""
CREATE EXTENSION citext;
CREATE EXTENSION btree_gist;
CREATE EXTENSION pg_trgm;
CREATE EXTENSION postgres_fdw;

CREATE SCHEMA app AUTHORIZATION :"owner";
CREATE SCHEMA hist;
COMMENT ON SCHEMA app IS 'the application''s objects';
GRANT USAGE ON SCHEMA app TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA app GRANT SELECT ON TABLES TO :"reader";
ALTER DEFAULT PRIVILEGES IN SCHEMA hist GRANT SELECT ON TABLES TO :"reader";

-- types
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy', 'it''s complicated');
ALTER TYPE app.mood OWNER TO :"owner";
COMMENT ON TYPE app.mood IS 'how a customer feels';
CREATE DOMAIN app.email AS citext CONSTRAINT email_at CHECK (VALUE ~ '^[^@]+@[^@]+$');
CREATE DOMAIN app.posint AS integer CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE TYPE app.pair AS (a integer, b text);
CREATE COLLATION app.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TEXT SEARCH CONFIGURATION app.english_simple (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION app.english_simple ALTER MAPPING FOR asciiword WITH simple;

-- functions, a procedure, an aggregate, an operator, a cast
CREATE FUNCTION app.mood_rank(m app.mood) RETURNS integer LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE m WHEN 'sad' THEN 0 WHEN 'ok' THEN 1 ELSE 2 END $$;
ALTER FUNCTION app.mood_rank(app.mood) OWNER TO :"owner";
COMMENT ON FUNCTION app.mood_rank(app.mood) IS 'a mood as a number';
CREATE CAST (app.mood AS integer) WITH FUNCTION app.mood_rank(app.mood);
CREATE FUNCTION app.add_pos(a app.posint, b app.posint) RETURNS integer
    LANGUAGE sql IMMUTABLE RETURN a + b;
CREATE FUNCTION app.approx_eq(numeric, numeric) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS 'SELECT abs($1 - $2) < 0.01';
CREATE OPERATOR app.=~= (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = app.approx_eq,
    COMMUTATOR = OPERATOR(app.=~=));
CREATE AGGREGATE app.product(numeric) (SFUNC = numeric_mul, STYPE = numeric, INITCOND = '1');
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated := now();
    RETURN NEW;
END $$;
REVOKE EXECUTE ON FUNCTION app.touch() FROM PUBLIC;
CREATE FUNCTION app.check_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.qty < 0 THEN
        RAISE EXCEPTION 'stock of % below zero', NEW.item;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION app.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE DEBUG 'ddl: %', tg_tag;
END $$;

-- tables: identity, serial, generated, collations, domains, an exclusion constraint
CREATE TABLE app.customer (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email app.email NOT NULL UNIQUE,
    name text NOT NULL,
    nick text COLLATE app.nocase,
    mood app.mood DEFAULT 'ok',
    created timestamptz NOT NULL DEFAULT '2024-01-01 00:00+00',
    updated timestamptz
);
ALTER TABLE app.customer OWNER TO :"owner";
COMMENT ON TABLE app.customer IS 'who buys';
COMMENT ON COLUMN app.customer.nick IS 'compared without case';
CREATE INDEX customer_name_trgm ON app.customer USING gin (name gin_trgm_ops);
GRANT SELECT (id, email), UPDATE (nick) ON app.customer TO :"reader";

CREATE TABLE app.stock (
    item text PRIMARY KEY,
    qty integer NOT NULL,
    price numeric(10,2) NOT NULL DEFAULT 0,
    worth numeric GENERATED ALWAYS AS (qty * price) STORED,
    description text,
    search tsvector,
    updated timestamptz
);
CREATE INDEX stock_search ON app.stock USING gin (search);
ALTER TABLE app.stock REPLICA IDENTITY FULL;
CREATE CONSTRAINT TRIGGER stock_not_negative AFTER INSERT OR UPDATE ON app.stock
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.check_stock();
CREATE TRIGGER stock_touch BEFORE UPDATE ON app.stock FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE STATISTICS app.stock_qty_price (dependencies, ndistinct) ON qty, price FROM app.stock;

CREATE TABLE app.booking (
    id serial PRIMARY KEY,
    room integer NOT NULL,
    during tstzrange NOT NULL,
    CONSTRAINT booking_no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)
);

CREATE TABLE app.audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    what text
);
ALTER TABLE app.audit_log REPLICA IDENTITY USING INDEX audit_log_pkey;
CREATE RULE audit_log_keep AS ON DELETE TO app.audit_log DO INSTEAD NOTHING;

CREATE UNLOGGED TABLE app.cache (key text PRIMARY KEY, value bytea, hits app.posint DEFAULT 1);

CREATE TABLE app.note (
    id serial PRIMARY KEY,
    author text NOT NULL DEFAULT current_user,
    body text,
    pair app.pair
);
ALTER TABLE app.note ENABLE ROW LEVEL SECURITY;
CREATE POLICY note_own ON app.note USING (author = current_user);
CREATE POLICY note_read ON app.note FOR SELECT TO :"reader" USING (true);

-- partitioned tables: range over two levels (hash below) with a default, list, hash
CREATE TABLE app.measurement (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    sensor integer NOT NULL,
    taken date NOT NULL,
    value double precision,
    note text,
    updated timestamptz,
    PRIMARY KEY (id, taken, sensor)
) PARTITION BY RANGE (taken);
CREATE TABLE app.measurement_2023 PARTITION OF app.measurement
    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE app.measurement_2024 PARTITION OF app.measurement
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY HASH (sensor);
CREATE TABLE app.measurement_2024_h0 PARTITION OF app.measurement_2024
    FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE app.measurement_2024_h1 PARTITION OF app.measurement_2024
    FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE app.measurement_other PARTITION OF app.measurement DEFAULT;
CREATE INDEX measurement_sensor ON app.measurement (sensor, taken);
CREATE TRIGGER measurement_touch BEFORE UPDATE ON app.measurement
    FOR EACH ROW EXECUTE FUNCTION app.touch();
COMMENT ON TABLE app.measurement IS 'partitioned by range, then by hash';

CREATE TABLE app.orders (
    id bigserial,
    region text NOT NULL,
    customer_id integer REFERENCES app.customer (id),
    amount numeric(12,2) NOT NULL CONSTRAINT orders_amount_check CHECK (amount >= 0),
    placed timestamptz NOT NULL,
    PRIMARY KEY (id, region)
) PARTITION BY LIST (region);
ALTER TABLE app.orders OWNER TO :"owner";
CREATE TABLE app.orders_eu PARTITION OF app.orders FOR VALUES IN ('eu', 'uk');
CREATE TABLE app.orders_us PARTITION OF app.orders FOR VALUES IN ('us');
CREATE TABLE app.orders_rest PARTITION OF app.orders DEFAULT;
GRANT SELECT, INSERT ON app.orders TO :"reader";

CREATE TABLE app.session (
    id uuid PRIMARY KEY,
    customer_id integer,
    data jsonb
) PARTITION BY HASH (id);
CREATE TABLE app.session_0 PARTITION OF app.session FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE app.session_1 PARTITION OF app.session FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE app.session_2 PARTITION OF app.session FOR VALUES WITH (MODULUS 3, REMAINDER 2);

-- table inheritance (the parent has rows of its own)
CREATE TABLE hist.event (id bigint NOT NULL, at timestamptz NOT NULL, kind text, payload jsonb);
CREATE TABLE hist.event_2023 (CONSTRAINT event_2023_at CHECK (at < '2024-01-01 00:00+00'))
    INHERITS (hist.event);
CREATE TABLE hist.event_login (who text) INHERITS (hist.event);
CREATE INDEX event_at ON hist.event (at);

CREATE PROCEDURE hist.archive_before(cutoff timestamptz) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hist.event_2023 SELECT * FROM ONLY hist.event WHERE at < cutoff;
    DELETE FROM ONLY hist.event WHERE at < cutoff;
END $$;

-- sequences
CREATE SEQUENCE app.ticket_no AS bigint START WITH 1000 INCREMENT BY 5 CACHE 1;
CREATE SEQUENCE hist.countdown AS smallint INCREMENT BY -1 MINVALUE -100 MAXVALUE 10 START 10;
GRANT USAGE ON SEQUENCE app.ticket_no TO :"reader";

-- views, a rule on a view, materialized views (one populated with a unique index, one not)
CREATE VIEW app.big_orders AS
    SELECT o.id, o.region, o.amount, c.email FROM app.orders o
    JOIN app.customer c ON c.id = o.customer_id WHERE o.amount > 900;
CREATE VIEW app.stock_view AS SELECT item, qty FROM app.stock;
CREATE RULE stock_view_insert AS ON INSERT TO app.stock_view
    DO INSTEAD INSERT INTO app.stock (item, qty) VALUES (NEW.item, NEW.qty);
CREATE MATERIALIZED VIEW app.daily_totals AS
    SELECT (placed AT TIME ZONE 'UTC')::date AS day, region, sum(amount) AS total, count(*) AS n
    FROM app.orders GROUP BY 1, 2;
CREATE UNIQUE INDEX daily_totals_key ON app.daily_totals (day, region);
CREATE MATERIALIZED VIEW app.sensor_stats AS
    SELECT sensor, avg(value) AS mean, count(*) AS n FROM app.measurement GROUP BY sensor
    WITH NO DATA;

-- a foreign server and table
CREATE SERVER pk_loopback FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '127.0.0.1', port '5432', dbname 'postgres');
CREATE USER MAPPING FOR :"owner" SERVER pk_loopback OPTIONS (user 'postgres');
CREATE FOREIGN TABLE app.remote_setting (name text, setting text) SERVER pk_loopback
    OPTIONS (schema_name 'pg_catalog', table_name 'pg_settings');

-- publications
CREATE PUBLICATION pk_pub FOR TABLE app.customer, app.stock WITH (publish = 'insert, update');
CREATE PUBLICATION pk_pub_hist FOR TABLES IN SCHEMA hist WITH (publish = 'insert');

-- odd names
CREATE TABLE public."Odd ""Quoted"" Table; DROP TABLE x" (
    "Mixed Case" text,
    "with space" integer,
    "semi;colon" text
);
CREATE TABLE public."MixedCase" (id integer PRIMARY KEY, "Value" text);
CREATE INDEX "odd index; name" ON public."MixedCase" ("Value");
CREATE VIEW public.U&"two\000alines" AS SELECT id FROM public."MixedCase";
COMMENT ON TABLE public."MixedCase" IS 'a comment;
on two lines';

-- large objects, with data, an owner, a comment and a grant
SELECT lo_from_bytea(424242, convert_to(repeat('large object one ', 500), 'UTF8'));
SELECT lo_from_bytea(424243, '\x00ff00ff'::bytea);
SELECT lo_from_bytea(424244, ''::bytea);
ALTER LARGE OBJECT 424242 OWNER TO :"owner";
COMMENT ON LARGE OBJECT 424242 IS 'text, repeated';
GRANT SELECT ON LARGE OBJECT 424243 TO :"reader";

-- last: an event trigger (it would fire on the DDL above)
CREATE EVENT TRIGGER pk_note_ddl ON ddl_command_end EXECUTE FUNCTION app.note_ddl();
"""


def rich_schema(roles: RichRoles) -> str:
    """:data:`RICH_SCHEMA` for ``roles`` (which must exist: :func:`create_rich_roles`)."""
    return RICH_SCHEMA.replace(':"owner"', _ident(roles.owner)).replace(
        ':"reader"', _ident(roles.reader)
    )


def fill_rich(rows: int = 40_000) -> str:
    """SQL that adds rows to :data:`RICH_SCHEMA`'s tables: ``rows`` measurements over the
    range, hash and default partitions, half as many orders over the list partitions, and
    the rest in proportion; it refreshes ``app.daily_totals`` and advances ``app.ticket_no``."""
    orders = max(10, rows // 2)
    customers = max(10, rows // 20)
    return f"""
INSERT INTO app.customer (email, name, nick, mood, updated)
SELECT 'c' || g || '@example.com', 'customer ' || g || ' ' || md5(g::text), 'Nick' || (g % 50),
       (ARRAY['sad', 'ok', 'happy', 'it''s complicated'])[1 + g % 4]::app.mood,
       CASE WHEN g % 3 = 0 THEN NULL ELSE TIMESTAMPTZ '2024-02-01 00:00+00' + g * INTERVAL '1 minute' END
FROM generate_series(1, {customers}) AS g;
INSERT INTO app.measurement (sensor, taken, value, note)
SELECT g % 97, DATE '2023-01-01' + (g % 900), g / 7.0, CASE WHEN g % 5 = 0 THEN 'n' || g END
FROM generate_series(1, {rows}) AS g;
INSERT INTO app.orders (region, customer_id, amount, placed)
SELECT (ARRAY['eu', 'uk', 'us', 'jp', 'br'])[1 + g % 5], 1 + g % {customers}, (g % 1000) + 0.25,
       TIMESTAMPTZ '2024-01-01 00:00+00' + g * INTERVAL '17 minutes'
FROM generate_series(1, {orders}) AS g;
INSERT INTO app.session (id, customer_id, data)
SELECT md5('s' || g)::uuid, 1 + g % {customers}, jsonb_build_object('n', g, 'tags', ARRAY['a', 'b'])
FROM generate_series(1, {max(10, rows // 8)}) AS g;
INSERT INTO app.stock (item, qty, price, description, search)
SELECT 'item ' || g, g % 40, (g % 300) / 4.0, d, to_tsvector('english', d)
FROM generate_series(1, {max(10, rows // 40)}) AS g,
     LATERAL (SELECT 'The quick brown fox ' || g || ' jumps over the lazy dogs of '
                     || (ARRAY['Paris', 'Rome', 'Oslo'])[1 + g % 3] AS d) AS t;
INSERT INTO app.booking (room, during)
SELECT g % 10, tstzrange(TIMESTAMPTZ '2024-01-01 00:00+00' + (g / 10) * INTERVAL '1 hour',
                         TIMESTAMPTZ '2024-01-01 00:00+00' + (g / 10 + 1) * INTERVAL '1 hour')
FROM generate_series(0, 999) AS g;
INSERT INTO app.audit_log (at, what)
SELECT TIMESTAMPTZ '2024-03-01 00:00+00' + g * INTERVAL '1 second', 'event ' || g
FROM generate_series(1, 500) AS g;
INSERT INTO app.cache (key, value) SELECT 'k' || g, decode(md5(g::text), 'hex')
FROM generate_series(1, 200) AS g;
INSERT INTO app.note (author, body, pair)
SELECT 'author' || (g % 3), 'note ' || g, ROW(g, 'p' || g)::app.pair
FROM generate_series(1, 100) AS g;
INSERT INTO hist.event (id, at, kind, payload)
SELECT g, TIMESTAMPTZ '2023-06-01 00:00+00' + g * INTERVAL '3 hours', 'k' || (g % 4), jsonb_build_object('g', g)
FROM generate_series(1, {max(10, rows // 10)}) AS g;
CALL hist.archive_before(TIMESTAMPTZ '2024-01-01 00:00+00');
INSERT INTO hist.event_login (id, at, kind, who)
SELECT g, TIMESTAMPTZ '2024-02-01 00:00+00' + g * INTERVAL '1 minute', 'login', 'user' || g
FROM generate_series(1, 300) AS g;
INSERT INTO public."Odd ""Quoted"" Table; DROP TABLE x" VALUES ('a', 1, 'x;y'), (NULL, NULL, NULL),
    ('tab	and
newline', -1, '');
INSERT INTO public."MixedCase" SELECT g, 'V' || g FROM generate_series(1, 50) AS g;
SELECT nextval('app.ticket_no') FROM generate_series(1, 3);
REFRESH MATERIALIZED VIEW app.daily_totals;
ANALYZE;
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_rich_roles(admin_url: str, prefix: str = "pk") -> RichRoles:
    """Two new roles with a unique suffix (NOLOGIN: nobody signs in as them)."""
    suffix = uuid.uuid4().hex[:10]
    roles = RichRoles(owner=f"{prefix}_owner_{suffix}", reader=f"{prefix}_reader_{suffix}")
    conn = await asyncpg.connect(admin_url)
    try:
        for name in roles.names:
            await conn.execute(f"CREATE ROLE {_ident(name)} NOLOGIN")
    finally:
        await conn.close()
    return roles


async def drop_rich_roles(admin_url: str, roles: RichRoles) -> None:
    """Drop ``roles`` (see :func:`drop_roles`)."""
    await drop_roles(admin_url, roles.names)


async def drop_roles(admin_url: str, names: tuple[str, ...]) -> None:
    """Drop the roles ``names``: first, in every database of the cluster that holds
    something they own or were granted (``pg_shdepend`` says which), ``DROP OWNED``; then the
    roles. Missing roles are no error; the databases may have been dropped already."""
    conn = await asyncpg.connect(admin_url)
    try:
        databases = [
            r["datname"]
            for r in await conn.fetch(
                "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid"
                " JOIN pg_roles r ON r.oid = s.refobjid"
                " WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname = ANY($1::text[])",
                list(names),
            )
        ]
    finally:
        await conn.close()
    base = admin_url.rpartition("/")[0]
    for database in databases:
        present = None
        with contextlib.suppress(asyncpg.InvalidCatalogNameError):
            present = await asyncpg.connect(f"{base}/{urllib.parse.quote(database)}")
        if present is None:
            continue  # dropped in between
        try:
            existing = [
                r["rolname"]
                for r in await present.fetch(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(names)
                )
            ]
            # One role a statement: DROP OWNED BY a, b fails ("could not find tuple for
            # default ACL") when a's default privileges grant to b.
            for name in existing:
                await present.execute(f"DROP OWNED BY {_ident(name)} CASCADE")
        finally:
            await present.close()
    conn = await asyncpg.connect(admin_url)
    try:
        for name in names:
            await conn.execute(f"DROP ROLE IF EXISTS {_ident(name)}")
    finally:
        await conn.close()


# --- what "the same database" means -------------------------------------------------------

# Lines of pg_dump's text output that differ between two dumps of equal databases: the
# per-run key of \restrict (pg_dump 13.22, 14.19, 15.14, 16.10, 17.6 and later) and the
# versions in the header (equal on one server, different across servers).
_VARYING = re.compile(
    r"^(\\(un)?restrict \S+|-- Dumped (from database|by pg_dump) version .*)$", re.M
)


async def normalized_schema(url: str, *, pg_dump: str = "pg_dump") -> str:
    """The schema of ``url`` as pg_dump writes it in text, less the lines that vary between
    two dumps of equal databases (the ``\\restrict`` keys and the version comments); nothing
    else is changed, so owners, grants and comments count.

    It is ``pg_dump --section=pre-data --section=post-data``: ``--schema-only`` and two more
    kinds of line, because ``--schema-only`` leaves out large objects even with ``--blobs``
    (pg_dump counts them as data): the large objects' metadata (``lo_create``, owner,
    comment, grants), and a ``REFRESH MATERIALIZED VIEW`` for each populated materialized
    view — so two schemas are equal only if the same views are populated."""

    def run() -> str:
        done = subprocess.run(
            [
                pg_dump,
                "--section=pre-data",
                "--section=post-data",
                "--no-password",
                "--dbname",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_dump of {url} failed: {done.stderr.strip()}")
        return done.stdout

    return _VARYING.sub("", await anyio.to_thread.run_sync(run))


async def relation_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """``name -> (count, md5)`` of everything that holds rows, so that two databases compare
    by value without moving the rows:

    * every table, partition and inheritance child, read with ``ONLY`` (a partitioned
      table's own rows are none; an inheritance parent's are its own), keyed by its
      qualified name; materialized views the same, or ``(-1, "not populated")``;
    * every sequence as ``(last_value, md5 of "last_value is_called")``, keyed
      ``"sequence <name>"``;
    * every large object as ``(length, md5 of its bytes)``, keyed ``"large object <oid>"``.

    The md5 is of the rows' text forms sorted in the "C" collation, each row's text being
    PostgreSQL's own output of the row value. Foreign tables are left out (their rows live
    elsewhere), and so are tables of extensions."""
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, tuple[int, str]] = {}
        rels = await conn.fetch(
            "SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind::text AS kind,"
            " c.relispopulated FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'm', 'S')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "  AND d.objid = c.oid AND d.deptype = 'e')"
            " ORDER BY 1"
        )
        for r in rels:
            name = r["name"]
            if r["kind"] == "S":
                row = await conn.fetchrow(f"SELECT last_value, is_called FROM {name}")
                assert row is not None
                text = f"{row['last_value']} {row['is_called']}"
                out[f"sequence {name}"] = (int(row["last_value"]), _md5(text))
                continue
            if r["kind"] == "m" and not r["relispopulated"]:
                out[name] = (-1, "not populated")
                continue
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t, E'\\n' ORDER BY t"
                f" COLLATE \"C\"), '')) AS h FROM (SELECT x::text AS t FROM ONLY {name} x) s"
            )
            assert row is not None
            out[name] = (int(row["n"]), str(row["h"]))
        for r in await conn.fetch(
            "SELECT oid::bigint AS oid, length(lo_get(oid)) AS n, md5(lo_get(oid)) AS h"
            " FROM pg_largeobject_metadata ORDER BY oid"
        ):
            out[f"large object {r['oid']}"] = (int(r["n"]), str(r["h"]))
        return out
    finally:
        await conn.close()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
