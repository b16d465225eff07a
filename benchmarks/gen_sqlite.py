"""gen_sqlite: a deterministic SQLite database for the export/import benchmarks.

    python benchmarks/gen_sqlite.py OUT.db [--scale 1.0] [--seed 20261120]

or, from Python, ``generate(path, scale)``. Scale 1 makes about 1 GB (10**9 bytes) and the
size is linear in the scale (0.01 is about 10 MB, for quick runs). The same scale, seed and
SQLite version give the same rows and the same file. The file holds:

* ``orders``: a wide table of 20 columns (integers, floats, short and medium texts, dates and
  timestamps as ISO text, nine nullable columns with about 10% NULLs, ``shipped_on`` more
  as unshipped orders have none) drawn from small
  vocabularies as real tables are, so its ``.dump`` text compresses about 3.8x with zstd -3;
  two indexes. About a third of the bytes.
* ``attachments``: rows with a 1-64 KB blob each, made of random segments and of segments
  repeated from a small pool (about 1.8x with zstd -3); a third of the bytes.
* ``events``: a narrow table (``id INTEGER PRIMARY KEY``, two small integers, a short text)
  of 10.6 million rows at scale 1, with one index; a third of the bytes with its index.
* a view (``recent_orders``) and a trigger (``orders_touch``, AFTER UPDATE).

Speed: rows come from generators straight into ``executemany``, in one transaction with
``journal_mode=OFF`` and ``synchronous=OFF``; indexes, the view and the trigger are created
after the rows (``PRAGMA threads`` lets SQLite sort for the indexes on two threads). The
narrow table's columns are drawn in C (``randbytes`` read as arrays, mapped through lookup
lists) so its 10.6 million rows at scale 1 cost about a microsecond each. Scale 1 takes
about 40 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import time
from array import array
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

GEN_VERSION = 1  # bump when the content changes (bench_sqlite caches files by it)
DEFAULT_SEED = 20261120

# Row counts at scale 1 (each table about a third of 10**9 bytes, indexes included).
WIDE_ROWS = 1_100_000
BLOB_ROWS = 9_550
NARROW_ROWS = 10_600_000
BLOB_MIN, BLOB_MAX = 1024, 64 * 1024

SCHEMA = (
    """CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    region_code INTEGER NOT NULL,
    quantity INTEGER,
    status_code INTEGER NOT NULL,
    tracking_no INTEGER,
    unit_price REAL NOT NULL,
    discount REAL,
    weight_kg REAL,
    score REAL NOT NULL,
    sku TEXT NOT NULL,
    country TEXT NOT NULL,
    status TEXT NOT NULL,
    email TEXT,
    full_name TEXT NOT NULL,
    street_address TEXT,
    comment TEXT,
    created_at TEXT NOT NULL,
    shipped_on TEXT,
    updated_at TEXT
)""",
    """CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    byte_size INTEGER NOT NULL,
    data BLOB NOT NULL
)""",
    """CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    tag TEXT NOT NULL
)""",
)
POST_SCHEMA = (
    "CREATE INDEX orders_customer_idx ON orders (customer_id)",
    "CREATE INDEX orders_created_idx ON orders (created_at)",
    "CREATE INDEX events_kind_amount_idx ON events (kind, amount)",
    """CREATE VIEW recent_orders AS
    SELECT id, customer_id, status, unit_price * quantity AS total, created_at
    FROM orders WHERE created_at >= '2025-01-01'""",
    """CREATE TRIGGER orders_touch AFTER UPDATE OF status ON orders
BEGIN
    UPDATE orders SET updated_at = strftime('%Y-%m-%d %H:%M:%S', 'now') WHERE id = NEW.id;
END""",
)

# --- vocabularies ----------------------------------------------------------------------------

_WORDS = (  # noqa: SIM905
    "the a of and to in for on with by from at as is was are be this that it not or have "
    "order item customer delivery package shipped returned refund payment invoice address "
    "please note call before leave door front back gate side neighbour office reception "
    "fragile glass handle care urgent express standard priority gift wrap message card "
    "blue red green black white grey large small medium extra pack box bag set pair kit "
    "cable charger adapter case cover screen keyboard mouse monitor lamp chair desk shelf "
    "book pen paper notebook bottle cup mug plate bowl towel shirt shoe sock hat coat "
    "damaged missing late early wrong size colour replaced exchanged confirmed cancelled "
    "thanks thank you good great fast slow fine ok again soon today tomorrow monday friday"
).split()
_FIRST = (  # noqa: SIM905
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa "
    "Anthony Betty Mark Margaret Paul Sandra Steven Ashley Andrew Emily Joshua Donna Kevin "
    "Michelle Brian Carol George Amanda Edward Melissa Ronald Deborah Timothy Stephanie Jason"
).split()
_LAST = (  # noqa: SIM905
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter"
).split()
_STREETS = (  # noqa: SIM905
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Church High Station Mill "
    "River Bridge Market Victoria Green Spring Sunset Meadow Forest Valley Highland"
).split()
_STREET_KINDS = ("St", "Ave", "Rd", "Lane", "Blvd", "Way", "Drive", "Court")
_CITIES = (  # noqa: SIM905
    "Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison "
    "Georgetown Arlington Ashland Burlington Manchester Oxford Dover Milton Newport Auburn"
).split()
_COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "CA", "NL", "IT", "ES", "SE", "PL", "AU")
_DOMAINS = ("example.com", "mail.example.org", "post.example.net", "inbox.example.io")
_STATUSES = ("new", "paid", "packed", "shipped", "delivered", "returned")
_MIMES = (
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("txt", "text/plain"),
    ("bin", "application/octet-stream"),
)
_EPOCH_DAY = 738_000  # proleptic ordinal of 2021-07-29; orders span five years from it


def _dates() -> list[str]:
    from datetime import date

    return [date.fromordinal(_EPOCH_DAY + d).isoformat() for d in range(5 * 366 + 60)]


def _times() -> list[str]:
    return [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


# --- the tables ------------------------------------------------------------------------------


def _wide_rows(rng: random.Random, n: int) -> Iterator[tuple[Any, ...]]:
    dates, times = _dates(), _times()
    words, first, last = _WORDS, _FIRST, _LAST
    streets, kinds, cities = _STREETS, _STREET_KINDS, _CITIES
    countries, domains, statuses = _COUNTRIES, _DOMAINS, _STATUSES
    rnd, randrange, choice, choices = rng.random, rng.randrange, rng.choice, rng.choices
    n_customers = max(10, n // 6)
    n_days = 5 * 366
    prices = [round(rng.lognormvariate(3, 1), 2) for _ in range(2000)]
    for i in range(1, n + 1):
        day = i * n_days // (n + 1)
        sec = randrange(86400)
        status_code = randrange(6)
        f, la = choice(first), choice(last)
        cust = randrange(1, n_customers)
        yield (
            i,
            cust,
            cust % 97 + 1,
            None if rnd() < 0.1 else randrange(1, 20),
            status_code,
            None if rnd() < 0.1 else 1_000_000_000 + randrange(100_000_000),
            choice(prices),
            None if rnd() < 0.1 else round(randrange(0, 31) / 100, 2),
            None if rnd() < 0.1 else round(rnd() * 30, 1),
            round(rnd() * 5, 3),
            f"SKU-{randrange(20000):05d}",
            choice(countries),
            statuses[status_code],
            None if rnd() < 0.1 else f"{f.lower()}.{la.lower()}{cust % 100}@{choice(domains)}",
            f"{f} {la}",
            None
            if rnd() < 0.1
            else f"{randrange(1, 999)} {choice(streets)} {choice(kinds)}, {choice(cities)}",
            None if rnd() < 0.1 else " ".join(choices(words, k=randrange(4, 24))),
            f"{dates[day]} {times[sec]}",
            None if status_code < 3 or rnd() < 0.1 else dates[day + randrange(1, 9)],
            None if rnd() < 0.1 else f"{dates[day + randrange(0, 60)]} {times[randrange(86400)]}",
        )


def _blob_rows(rng: random.Random, n: int, n_orders: int) -> Iterator[tuple[Any, ...]]:
    # A pool of segments that recur across blobs (headers, palettes, boilerplate) plus fresh
    # random bytes: about 40% of each blob is random, so zstd -3 gets about 1.8x.
    pool = [rng.randbytes(rng.randrange(256, 4096)) for _ in range(64)]
    randbytes, randrange, rnd = rng.randbytes, rng.randrange, rng.random
    for i in range(1, n + 1):
        size = randrange(BLOB_MIN, BLOB_MAX + 1)
        parts: list[bytes] = []
        have = 0
        while have < size:
            seg = pool[randrange(64)] if rnd() < 0.6 else randbytes(randrange(256, 4096))
            parts.append(seg)
            have += len(seg)
        data = b"".join(parts)[:size]
        ext, mime = _MIMES[randrange(len(_MIMES))]
        yield (i, randrange(1, max(2, n_orders)), f"file_{i:07d}.{ext}", mime, size, data)


def _narrow_rows(rng: random.Random, n: int) -> Iterator[tuple[Any, ...]]:
    # kind: 0-15, skewed; amount: 0-9999, mostly small; tag: 2000 short words.
    kinds = [min(15, int(rng.expovariate(0.35))) for _ in range(256)]
    amounts = [min(9999, int(rng.expovariate(1 / 300))) for _ in range(65536)]
    short = [w for w in _WORDS if len(w) <= 4]
    vocab = [f"{rng.choice(short)}{k}" for k in range(2000)]
    tags = [vocab[min(1999, int(rng.expovariate(1 / 250)))] for _ in range(65536)]
    block = 1 << 16
    for start in range(1, n + 1, block):
        m = min(block, n + 1 - start)
        k = rng.randbytes(m)
        a = array("H", rng.randbytes(2 * m))
        t = array("H", rng.randbytes(2 * m))
        yield from zip(
            range(start, start + m),
            map(kinds.__getitem__, k),
            map(amounts.__getitem__, a),
            map(tags.__getitem__, t),
            strict=True,
        )


def _insert(
    db: sqlite3.Connection, table: str, ncols: int, rows: Iterator[Any], chunk_rows: int
) -> None:
    sql = f"INSERT INTO {table} VALUES ({', '.join('?' * ncols)})"
    while True:  # executemany in slices: bounded memory, and no per-row Python loop here
        chunk = list(islice(rows, chunk_rows))
        if not chunk:
            return
        db.executemany(sql, chunk)


def counts(scale: float) -> dict[str, int]:
    """Rows per table at ``scale``."""
    return {
        "orders": max(10, round(WIDE_ROWS * scale)),
        "attachments": max(2, round(BLOB_ROWS * scale)),
        "events": max(10, round(NARROW_ROWS * scale)),
    }


def generate(
    path: str | os.PathLike[str],
    scale: float = 1.0,
    *,
    seed: int = DEFAULT_SEED,
    verbose: bool = False,
) -> dict[str, int]:
    """Write the benchmark database to ``path`` (replaced if it exists); rows per table."""
    path = Path(path)
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    n = counts(scale)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")  # 256 MB: index builds sort in memory
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA threads=2")
        db.execute("BEGIN")
        for sql in SCHEMA:
            db.execute(sql)
        steps = (
            ("orders", 20, 20_000, lambda: _wide_rows(random.Random(seed * 3 + 1), n["orders"])),
            (
                "attachments",
                6,
                64,
                lambda: _blob_rows(random.Random(seed * 3 + 2), n["attachments"], n["orders"]),
            ),
            ("events", 4, 100_000, lambda: _narrow_rows(random.Random(seed * 3 + 3), n["events"])),
        )
        for table, ncols, chunk_rows, make in steps:
            t0 = time.perf_counter()
            _insert(db, table, ncols, make(), chunk_rows)
            if verbose:
                print(f"  {table}: {n[table]} rows in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        for sql in POST_SCHEMA:
            db.execute(sql)
        db.execute("COMMIT")
        if verbose:
            print(f"  indexes, view, trigger in {time.perf_counter() - t0:.1f}s")
    except BaseException:
        db.close()
        path.unlink(missing_ok=True)
        raise
    db.close()
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the database file to write (replaced)")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 is about 1 GB")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    t0 = time.perf_counter()
    n = generate(args.out, args.scale, seed=args.seed, verbose=True)
    size = args.out.stat().st_size
    print(
        f"{args.out}: {size / 1e6:.1f} MB, {sum(n.values())} rows"
        f" ({', '.join(f'{k} {v}' for k, v in n.items())}) in {time.perf_counter() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
