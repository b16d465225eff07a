"""bench_postgres: pumpkit export/import of a PostgreSQL database against pg_dump and pg_restore.

    python benchmarks/bench_postgres.py [--mb 300 | --quick] [--repeat 3] [--json FILE]
        [--server postgresql://postgres@127.0.0.1:5432] [--timeout S] [--keep-dumps]
        [--warmup 1] [--wait-quiet CORES] [--wait-max S]

The data is made with SQL in a new database ``bench_pg_src_<random>`` on the server: three
tables of mixed types, built from a hash of the row number (``hashint8extended``), so the
same ``--mb`` gives the same rows every time:

* ``orders``: bigint key, int customer, numeric(12,2), smallint, timestamptz, boolean,
  a text note of 30-100 characters (words from a 64-word list) and a jsonb document
  (NULL in every tenth row); a secondary index on ``(customer_id, placed)``;
* ``events``: twice as many rows: bigint key, bigint, int, timestamptz, boolean (some NULL),
  a short text, and a 32-byte bytea digest in every fourth row (random bytes);
* ``customers``: a tenth as many rows: int key, texts, timestamptz, boolean, numeric(12,2).

Primary keys and the index are built after the rows, then ``VACUUM ANALYZE``. ``--mb``
(default 300) is the aim for the sum of ``pg_total_relation_size`` (heap, TOAST and indexes)
of the three tables; the size reached is printed. ``--quick`` is ``--mb 30``, a smoke run.

The contenders, each its own child process, one after the other:

* export ``pumpkit``: ``pumpkit export --database URL --dumpfile 'pg%U.dmp' --directory D
  --parallel 2 --foreground --quiet --home <fresh dir>`` (zstd level 3, pumpkit's default);
* export ``pg_dump -Fc -Z0 | zstd -3``: ``bash -c 'set -o pipefail; pg_dump -Fc -Z0 -d URL |
  zstd -3 -T1 -q -c > FILE'``;
* export ``pg_dump -Fd -j2``: ``pg_dump -Fd -j2 -f DIR -d URL`` (its default compression,
  gzip level 6 per table file);
* import ``pumpkit``: ``pumpkit import --database NEWURL --dumpfile pg01.dmp --directory D
  --parallel 2 --foreground --quiet --home <fresh dir>`` of the set the same round exported;
* import ``pg_restore -j2``: ``pg_restore -j2 -d NEWURL DIR`` of the ``-Fd`` dump of the
  same round.

Each import goes into a fresh empty database (``CREATE DATABASE ... TEMPLATE template0``,
not timed), which is dropped after its check.

How it measures: with the launcher of ``bench_load.py`` (imported from there): a minimal
``python -S -I`` process forks and execs the command, reaps it with ``os.wait4``, and as
child subreaper also reaps any descendant that outlives its parent. Wall time is fork to the
last reaping. Client CPU is user+sys of the command and every descendant (a pipeline's both
sides, pg_dump's and pg_restore's ``-j`` worker processes, every pumpkit thread). Peak RSS
is ``ru_maxrss``: the largest peak of any single process in that tree, with the launcher's
floor (printed) for a command that peaks lower. The server's own work (the backends running
COPY, building indexes, writing WAL) is not in the client's rusage, but it is in the wall
time. When the server runs on this machine and its ``/proc`` is readable (``ServerCpu``):

* ``server CPU`` is the CPU time of the PostgreSQL server during the run (postmaster, its
  live children and, through its cutime, those it reaped), less what a 50 ms poll saw the
  backends of *other* databases use (a foreign backend shorter than a poll stays in);
* ``others' CPU`` is the rest of the machine: its busy time from ``/proc/stat`` less the
  client and the server. About 0 on a quiet machine; on 2 cores, up to twice the wall. A
  run where it averages more than 0.1 cores is listed in a warning at the end.

``--wait-quiet CORES`` waits before every run until the machine used fewer cores than that
over one second (at most ``--wait-max`` s in all). Before every timed run: ``os.sync()``
and a ``CHECKPOINT``, so no run pays for the previous run's dirty pages; both untimed.

Correctness, not timed: after every import, each table's ``count(*)`` and the set of index
and constraint definitions must equal the source's, and the target must hold no other table.
A pumpkit run must also end with "successfully completed" in its output.

Statistic: ``--warmup`` (default 1) untimed rounds, then ``--repeat N`` (default 3) measured
rounds; each round runs the exports and then the imports, in the listed order in the first,
third, ... round and reversed in the others. (The warm-up is there because the first import
on a server was 0.1-0.6 s slower than the next ones, whichever tool ran it.) The table gives
the best and the median wall time of each contender, and the CPU figures and dump size of
the median run (the faster middle one for an even count); peak RSS is the largest of all
runs. The ratios are pumpkit / reference of the median walls (best, and per round, beside),
and the verdicts use the median ratio. The goals (the issue): pumpkit export <= 1.0x
``pg_dump -Fc -Z0 | zstd -3`` and <= 0.4x ``pg_dump -Fd -j2``; pumpkit import <= 0.9x
``pg_restore -j2``; peak RSS < 200 MB for every pumpkit run.

Every database the script creates is dropped at the end, also on failure, Ctrl-C or SIGTERM;
dumps go to a scratch directory under ``benchmarks/out/`` (gitignored) that is removed. It is
a measurement, not a test: it exits 0 whatever the numbers are. MB = 10**6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_load import measure  # noqa: E402
from bench_sqlite import MB, TIMED_OUT, tail, tool_version  # noqa: E402

OUT = HERE / "out"
REPO = HERE.parent

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_MB = 300.0
QUICK_MB = 30.0
PARALLEL = 2

EXPORT_VS_FC_GOAL = 1.0  # pumpkit export wall / (pg_dump -Fc -Z0 | zstd -3) wall
EXPORT_VS_FD_GOAL = 0.4  # pumpkit export wall / pg_dump -Fd -j2 wall
IMPORT_GOAL = 0.9  # pumpkit import wall / pg_restore -j2 wall
RSS_GOAL_MB = 200.0  # peak RSS of every pumpkit run
CONTENDED = 0.1  # a run is flagged when the rest of the machine used more cores than this

# --- the data -----------------------------------------------------------------------------------

# pg_total_relation_size per "unit" (one orders row, two events rows, a tenth of a customers
# row), measured on PostgreSQL 15 with 200,000 orders: 274 + 2 * 116 + 0.1 * 132 bytes.
BYTES_PER_UNIT = 519
CHUNK_ORDERS = 250_000  # orders rows per INSERT (events: twice as many)
TABLES = ("customers", "orders", "events")

SCHEMA_SQL = """
CREATE TABLE customers (id integer NOT NULL, name text NOT NULL, email text NOT NULL,
  city text, created timestamptz NOT NULL, active boolean NOT NULL, credit numeric(12,2));
CREATE TABLE orders (id bigint NOT NULL, customer_id integer NOT NULL,
  amount numeric(12,2) NOT NULL, status smallint NOT NULL, placed timestamptz NOT NULL,
  paid boolean NOT NULL, note text, attrs jsonb);
CREATE TABLE events (id bigint NOT NULL, order_id bigint NOT NULL, kind integer NOT NULL,
  at timestamptz NOT NULL, ok boolean, detail text, digest bytea);
"""

WORDS = (  # noqa: SIM905 (a word list reads better as one string)
    "order shipped delayed customer returned package priority standard express invoice paid"
    " pending review damaged replaced warehouse north south east west central fragile heavy"
    " small large blue red green black white steel wood glass paper cotton battery cable"
    " adapter screen keyboard mouse chair table lamp shelf box bag note call back requested"
    " refund partial full credit applied contact email phone address updated verified missing"
    " item"
).split()
assert len(WORDS) == 64


def _h(i: str, k: int, mod: int) -> str:
    """SQL for a pseudo-random integer in [0, mod) from the row number ``i`` and salt ``k``."""
    return f"(abs(hashint8extended({i}, {k})) % {mod})"


def _note_sql() -> str:
    words = " || ' ' || ".join(f"w[1 + {_h('i', k, 64)}]" for k in range(10, 26))
    return f"substr({words}, 1, 30 + {_h('i', 6, 71)}::int)"


def orders_sql(lo: int, hi: int, customers: int) -> str:
    array = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    return f"""
INSERT INTO orders
SELECT i, 1 + {_h("i", 1, customers)}, {_h("i", 2, 10_000_000)} / 100.0, {_h("i", 3, 7)},
  timestamptz '2020-01-01 00:00:00+00' + {_h("i", 4, 157_680_000)} * interval '1 second',
  hashint8extended(i, 5) % 3 <> 0,
  {_note_sql()},
  CASE WHEN i % 10 = 0 THEN NULL ELSE jsonb_build_object(
    'sku', 'SKU-' || {_h("i", 7, 50_000)}, 'qty', 1 + {_h("i", 8, 12)}, 'gift', i % 13 = 0,
    'tags', jsonb_build_array(w[1 + {_h("i", 26, 64)}], w[1 + {_h("i", 27, 64)}])) END
FROM generate_series({lo}, {hi}) AS g(i), (SELECT {array} AS w) AS words
"""


def events_sql(lo: int, hi: int, orders: int) -> str:
    return f"""
INSERT INTO events
SELECT i, 1 + {_h("i", 1, orders)}, {_h("i", 2, 40)},
  timestamptz '2020-01-01 00:00:00+00' + (i / 4) * interval '1 second'
    + {_h("i", 3, 1000)} * interval '1 millisecond',
  CASE WHEN i % 17 = 0 THEN NULL ELSE hashint8extended(i, 4) % 5 <> 0 END,
  'event ' || {_h("i", 5, 40)} || ' from host-' || {_h("i", 6, 300)},
  CASE WHEN i % 4 = 0 THEN sha256(int8send(i)) END
FROM generate_series({lo}, {hi}) AS g(i)
"""


def customers_sql(n: int) -> str:
    return f"""
INSERT INTO customers
SELECT i, 'customer ' || i, 'user' || i || '@example' || (i % 50) || '.com',
  'city-' || {_h("i", 1, 2000)},
  timestamptz '2015-01-01 00:00:00+00' + {_h("i", 2, 315_360_000)} * interval '1 second',
  hashint8extended(i, 3) % 9 <> 0, {_h("i", 4, 100_000_000)} / 100.0
FROM generate_series(1, {n}) AS g(i)
"""


INDEX_SQL = """
ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE events ADD PRIMARY KEY (id);
CREATE INDEX orders_customer_placed ON orders (customer_id, placed);
"""

# --- talking to the server ----------------------------------------------------------------------


def with_db(server: str, database: str) -> str:
    """The URL ``server`` with its path set to ``database``."""
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def psql(url: str, sql: str) -> str:
    """Run ``sql`` with psql (stops at the first error); its unaligned output."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()}\n  SQL: {sql}")
    return out.stdout.strip()


class Databases:
    """The databases this script created; ``drop_all`` removes whatever is left of them."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.admin = with_db(server, "postgres")
        self.tag = secrets.token_hex(4)
        self.created: list[str] = []

    def create(self, name: str) -> str:
        # Recorded first: a CREATE that fails halfway is still dropped (IF EXISTS).
        self.created.append(name)
        psql(self.admin, f'CREATE DATABASE "{name}" TEMPLATE template0')
        return with_db(self.server, name)

    def drop(self, name: str) -> None:
        psql(self.admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            try:
                self.drop(name)
            except Exception as exc:
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


def generate(url: str, mb: float) -> dict[str, Any]:
    """Fill the empty database at ``url`` with about ``mb`` MB; (rows per table, bytes)."""
    units = max(1000, round(mb * MB / BYTES_PER_UNIT))
    customers = max(100, units // 10)
    counts = {"customers": customers, "orders": units, "events": 2 * units}
    t0 = time.perf_counter()
    psql(url, SCHEMA_SQL)
    psql(url, customers_sql(customers))
    for lo in range(1, units + 1, CHUNK_ORDERS):
        hi = min(units, lo + CHUNK_ORDERS - 1)
        psql(url, orders_sql(lo, hi, customers))
        psql(url, events_sql(2 * lo - 1, 2 * hi, units))
        print(f"  rows {hi:,} of {units:,} orders, {2 * hi:,} events", flush=True)
    psql(url, INDEX_SQL)
    psql(url, "VACUUM ANALYZE")
    sizes = dict(
        line.split("|")
        for line in psql(
            url,
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class"
            f" WHERE relname IN ({', '.join(repr(t) for t in TABLES)}) AND relkind = 'r'",
        ).splitlines()
    )
    return {
        "rows": counts,
        "bytes": {t: int(sizes[t]) for t in TABLES},
        "total_bytes": sum(int(sizes[t]) for t in TABLES),
        "seconds": time.perf_counter() - t0,
    }


def server_info(url: str) -> dict[str, str]:
    names = (
        "server_version",
        "shared_buffers",
        "max_wal_size",
        "wal_level",
        "fsync",
        "synchronous_commit",
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
        "autovacuum",
        "data_directory",
        "cluster_name",
    )
    rows = psql(
        url,
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN"
        f" ({', '.join(repr(n) for n in names)})",
    )
    return dict(line.split("|", 1) for line in rows.splitlines())


# --- the server's CPU time ----------------------------------------------------------------------


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (``/proc/stat``: all but idle
    and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuShare:
    """Who used the CPU during one run, in seconds (besides the client's own rusage)."""

    server: float  # the PostgreSQL server, less the backends of other databases
    other_sessions: float  # backends of other databases on the same server (as far as seen)
    machine: float  # the whole machine


class ServerCpu:
    """CPU time of the PostgreSQL server while a command runs, without other sessions.

    The server's total is exact: the postmaster's own time, its live children's (backends,
    parallel workers, checkpointer, WAL writer) and, through its cutime/cstime, that of the
    children it has reaped. A thread polls the postmaster's children every ``POLL`` seconds
    and keeps the time of the backends (and their parallel workers) of *other* databases;
    that is taken off. A foreign backend that lives less than one poll, or its last poll
    interval, stays in the server's figure, so it can only be too high, never too low.
    """

    POLL = 0.05

    def __init__(self, pid: int, cluster_name: str) -> None:
        self.pid = pid
        self.prefix = f"postgres: {cluster_name}: " if cluster_name else "postgres: "
        self.databases: dict[int, str | None] = {}  # pid -> database (None: not a backend)

    @classmethod
    def find(cls, url: str, info: dict[str, str]) -> ServerCpu | None:
        """A meter for the server at ``url``, or None when it is not on this machine or its
        ``/proc`` entries cannot be read."""
        host = urlsplit(url).hostname or "localhost"
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            return None
        try:
            pid_file = Path(info.get("data_directory", "")) / "postmaster.pid"
            meter = cls(int(pid_file.read_text().split()[0]), info.get("cluster_name", ""))
            meter.total()
            meter.children()
        except (OSError, ValueError, IndexError):
            return None
        return meter

    @staticmethod
    def _ticks(pid: int) -> int:
        """utime + stime + cutime + cstime of ``pid``."""
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on
        return sum(int(x) for x in fields[11:15])

    def children(self) -> list[int]:
        text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        return [int(x) for x in text.split()]

    def total(self) -> float:
        ticks = self._ticks(self.pid)
        for child in self.children():
            with contextlib.suppress(OSError, ValueError):  # gone in between
                ticks += self._ticks(child)
        return ticks / CLK_TCK

    def database(self, pid: int) -> str | None:
        """The database of backend ``pid`` (of its leader, for a parallel worker); None for
        the server's own processes and for a backend that has not logged in yet."""
        if pid in self.databases:
            return self.databases[pid]
        title = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
        title = title.strip()
        if not title.startswith(self.prefix):
            return None  # a new backend before its title is set: ask again next time
        rest = title[len(self.prefix) :]
        if rest.startswith("parallel worker for PID "):
            leader = int(rest.split()[-1])
            db = self.database(leader) if leader != pid else None
        else:
            words = rest.split()
            # "user database host(port) state" (PostgreSQL's ps display for a backend);
            # anything else is one of the server's own processes.
            backend = len(words) >= 3 and ("(" in words[2] or words[2] == "[local]")
            db = words[1] if backend else None
        self.databases[pid] = db
        return db

    @contextlib.contextmanager
    def measuring(self, ours: str) -> Any:
        """Measure the block; yields a list that holds one :class:`CpuShare` afterwards."""
        result: list[CpuShare] = []
        seen: dict[int, tuple[int, int]] = {}  # foreign pid -> (ticks at start, last ticks)
        self.databases.clear()  # a pid may have been reused since the last run
        at_start = set(self.children())

        def poll() -> None:
            for child in self.children():
                try:
                    db = self.database(child)
                    if db is None or db == ours:
                        continue
                    ticks = self._ticks(child)
                except (OSError, ValueError):
                    continue
                first = seen[child][0] if child in seen else (ticks if child in at_start else 0)
                seen[child] = (first, ticks)

        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.POLL):
                with contextlib.suppress(OSError, ValueError):
                    poll()

        poll()
        machine0, total0 = machine_busy(), self.total()
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield result
        finally:
            stop.set()
            thread.join()
            with contextlib.suppress(OSError, ValueError):
                poll()
            machine, total = machine_busy() - machine0, self.total() - total0
            others = sum(last - first for first, last in seen.values()) / CLK_TCK
            result.append(CpuShare(total - others, others, machine))


def wait_quiet(threshold: float, budget: list[float]) -> float:
    """Wait until the machine used less than ``threshold`` cores over one second, spending
    at most ``budget[0]`` seconds in all (it is decreased); the last second's cores."""
    while True:
        t0, b0 = time.perf_counter(), machine_busy()
        time.sleep(1.0)
        dt = time.perf_counter() - t0
        cores = (machine_busy() - b0) / dt
        if cores < threshold or budget[0] <= 0:
            return cores
        budget[0] -= dt


# --- correctness --------------------------------------------------------------------------------


def signature(url: str) -> dict[str, Any]:
    """Row count per table, index and constraint definitions, and the tables of ``url``."""
    tables = sorted(
        psql(
            url,
            "SELECT schemaname || '.' || tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        ).splitlines()
    )
    counts: dict[str, int] = {}
    if tables:
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
        counts = {k: int(v) for k, v in (line.split("|") for line in psql(url, sql).splitlines())}
    indexes = sorted(
        psql(url, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'").split("\n")
    )
    constraints = sorted(
        psql(
            url,
            "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        ).split("\n")
    )
    return {"counts": counts, "indexes": indexes, "constraints": constraints}


def compare(source: dict[str, Any], url: str) -> str:
    """'ok', or what differs between the imported database at ``url`` and the source."""
    try:
        got = signature(url)
    except RuntimeError as exc:
        return f"MISMATCH: {exc}"
    problems = []
    want = source["counts"]
    for table in sorted(set(want) | set(got["counts"])):
        if table not in want:
            problems.append(f"extra table {table}")
        elif want[table] != got["counts"].get(table):
            problems.append(f"{table} {got['counts'].get(table)} rows, want {want[table]}")
    for what in ("indexes", "constraints"):
        missing = sorted(set(source[what]) - set(got[what]))
        extra = sorted(set(got[what]) - set(source[what]))
        if missing or extra:
            problems.append(f"{what} differ (missing {missing}, extra {extra})")
    return "ok" if not problems else "MISMATCH: " + "; ".join(problems)


# --- the runs -----------------------------------------------------------------------------------

EXPORTS = ("pumpkit_export", "fc_zstd", "fd_j2")
IMPORTS = ("pumpkit_import", "pg_restore")
LABELS = {
    "pumpkit_export": f"pumpkit export --parallel {PARALLEL}",
    "fc_zstd": "pg_dump -Fc -Z0 | zstd -3 -T1",
    "fd_j2": f"pg_dump -Fd -j{PARALLEL}",
    "pumpkit_import": f"pumpkit import --parallel {PARALLEL}",
    "pg_restore": f"pg_restore -j{PARALLEL} (from -Fd)",
}


@dataclass
class Run:
    key: str
    round: int
    wall: float = 0.0
    cpu: float = 0.0  # client: user+sys of the command and its descendants
    server_cpu: float | None = None  # the server, less other databases' backends
    others_cpu: float | None = None  # the rest of the machine: all but client and server
    other_sessions_cpu: float | None = None  # part of others_cpu: other databases' backends
    rss_mb: float = 0.0
    rc: int | None = None
    dump_bytes: int | None = None
    check: str = ""
    note: str = ""
    busy_before: float | None = None  # cores busy in the second before (--wait-quiet)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.check in ("", "ok")


def dir_bytes(path: Path, pattern: str = "*") -> int | None:
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.glob(pattern) if f.is_file()) or None


def pumpkit_cli() -> list[str]:
    exe = Path(sys.executable).parent / "pumpkit"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pumpkit"]


class Bench:
    def __init__(self, args: argparse.Namespace, dbs: Databases, source_url: str, work: Path):
        self.args = args
        self.dbs = dbs
        self.source_url = source_url
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.source = signature(source_url)
        self.server_cpu: ServerCpu | None = None
        self.runs: list[Run] = []
        self.wait_budget = [args.wait_max]

    @staticmethod
    def tag(rnd: int) -> str:
        """How files and databases of round ``rnd`` are named (negative: a warm-up round)."""
        return f"w{-rnd}" if rnd < 0 else f"r{rnd + 1}"

    def measured(self, key: str, rnd: int, argv: list[str], database: str) -> Run:
        """Run ``argv`` (which works in ``database``) once, measured; a failure is printed
        with the tail of its log."""
        os.sync()
        psql(self.dbs.admin, "CHECKPOINT")
        log = self.logs / f"{key}-{self.tag(rnd)}.log"
        run = Run(key, rnd)
        if self.args.wait_quiet is not None:
            run.busy_before = wait_quiet(self.args.wait_quiet, self.wait_budget)
        if self.server_cpu is not None:
            with self.server_cpu.measuring(database) as share:
                m = measure(argv, log, self.args.timeout)
            run.server_cpu = share[0].server
            run.other_sessions_cpu = share[0].other_sessions
            run.others_cpu = share[0].machine - share[0].server - m.user - m.system
        else:
            m = measure(argv, log, self.args.timeout)
        run.rc, run.wall, run.cpu, run.rss_mb = m.rc, m.wall, m.user + m.system, m.rss_mb
        if m.rc == TIMED_OUT:
            run.note = f"TIMED OUT after {self.args.timeout:g}s"
        elif m.rc != 0:
            run.note = f"FAILED (exit {m.rc})"
        elif key.startswith("pumpkit") and "successfully completed" not in log.read_text(
            errors="replace"
        ):
            run.rc, run.note = 1, "FAILED (no 'successfully completed' in its output)"
        if run.note:
            print(f"  {LABELS[key]}: {run.note}; {shlex.join(argv)}\n  log tail:\n{tail(log, 25)}")
        return run

    def report(self, run: Run) -> None:
        """Print ``run``; keep it unless it belongs to a warm-up round."""
        if run.round >= 0:
            self.runs.append(run)
            which = f"{run.round + 1}/{self.args.repeat}"
        else:
            which = "warm-up"
        server = "" if run.server_cpu is None else f", server {run.server_cpu:.2f}s"
        others = "" if run.others_cpu is None else f", others {run.others_cpu:.2f}s"
        before = "" if run.busy_before is None else f" (before: {run.busy_before:.2f} cores busy)"
        size = "" if run.dump_bytes is None else f", {run.dump_bytes / MB:.1f} MB dump"
        check = f", check {run.check}" if run.check else ""
        print(
            f"  [{which}] {LABELS[run.key]:<34} {run.wall:7.2f}s wall,"
            f" CPU {run.cpu:.2f}s{server}{others}, {run.rss_mb:.0f} MB RSS{size}{check}{before}",
            flush=True,
        )

    def home(self, what: str, rnd: int) -> str:
        return tempfile.mkdtemp(prefix=f"home-{what}-{self.tag(rnd)}-", dir=self.work)

    def export(self, key: str, rnd: int) -> Run:
        url = self.source_url
        if key == "pumpkit_export":
            out = self.work / f"pumpkit-{self.tag(rnd)}"
            out.mkdir()
            argv = [
                *pumpkit_cli(),
                "export",
                "--database",
                url,
                "--dumpfile",
                "pg%U.dmp",
                "--directory",
                str(out),
                "--parallel",
                str(PARALLEL),
                "--foreground",
                "--quiet",
                "--home",
                self.home("export", rnd),
            ]
            pattern = "pg*.dmp"
        elif key == "fc_zstd":
            out = self.work / f"fc-{self.tag(rnd)}.dump.zst"
            q = shlex.quote
            cmd = (
                f"set -o pipefail; pg_dump -Fc -Z0 -d {q(url)} | zstd -3 -T1 -q -c > {q(str(out))}"
            )
            argv = ["bash", "-c", cmd]
            pattern = "*"
        else:
            out = self.work / f"fd-{self.tag(rnd)}"
            argv = ["pg_dump", "-Fd", f"-j{PARALLEL}", "-f", str(out), "-d", url]
            pattern = "*"
        run = self.measured(key, rnd, argv, urlsplit(url).path.lstrip("/"))
        run.dump_bytes = dir_bytes(out, pattern)
        self.report(run)
        return run

    def import_(self, key: str, rnd: int) -> Run:
        name = f"bench_pg_dst_{self.dbs.tag}_{key}_{self.tag(rnd)}"
        url = self.dbs.create(name)
        try:
            if key == "pumpkit_import":
                argv = [
                    *pumpkit_cli(),
                    "import",
                    "--database",
                    url,
                    "--dumpfile",
                    "pg01.dmp",
                    "--directory",
                    str(self.work / f"pumpkit-{self.tag(rnd)}"),
                    "--parallel",
                    str(PARALLEL),
                    "--foreground",
                    "--quiet",
                    "--home",
                    self.home("import", rnd),
                ]
            else:
                dump = self.work / f"fd-{self.tag(rnd)}"
                argv = ["pg_restore", f"-j{PARALLEL}", "-d", url, str(dump)]
            run = self.measured(key, rnd, argv, name)
            if run.rc != TIMED_OUT:
                run.check = compare(self.source, url)
            self.report(run)
            if run.check not in ("", "ok"):
                print(f"    {run.check}")
        finally:
            self.dbs.drop(name)
        return run

    def rounds(self) -> None:
        """``--warmup`` untimed rounds, then ``--repeat`` measured ones."""
        for rnd in [-w for w in range(self.args.warmup, 0, -1)] + list(range(self.args.repeat)):
            flip = rnd % 2 == 1 and rnd > 0
            if rnd < 0:
                print("warm-up round (not counted)", flush=True)
            else:
                print(f"round {rnd + 1} of {self.args.repeat}", flush=True)
            done = {}
            for key in reversed(EXPORTS) if flip else EXPORTS:
                done[key] = self.export(key, rnd)
            sources = {"pumpkit_import": "pumpkit_export", "pg_restore": "fd_j2"}
            for key in reversed(IMPORTS) if flip else IMPORTS:
                if done[sources[key]].ok:
                    self.import_(key, rnd)
                else:
                    print(f"  {LABELS[key]}: skipped, its export failed")
            if not self.args.keep_dumps:
                tag = self.tag(rnd)
                for path in (self.work / f"pumpkit-{tag}", self.work / f"fd-{tag}"):
                    shutil.rmtree(path, ignore_errors=True)
                (self.work / f"fc-{tag}.dump.zst").unlink(missing_ok=True)
                for path in self.work.glob(f"home-*-{tag}-*"):
                    shutil.rmtree(path, ignore_errors=True)


# --- reporting ----------------------------------------------------------------------------------


@dataclass
class Summary:
    key: str
    n: int  # successful runs
    failed: int
    best: float | None = None
    median: float | None = None
    cpu: float | None = None  # of the median run
    server_cpu: float | None = None
    others_cpu: float | None = None
    rss_mb: float | None = None  # the largest of all runs
    dump_bytes: int | None = None
    check: str = ""


def summarize(runs: list[Run]) -> dict[str, Summary]:
    out = {}
    for key in (*EXPORTS, *IMPORTS):
        mine = [r for r in runs if r.key == key]
        good = sorted((r for r in mine if r.ok), key=lambda r: r.wall)
        s = Summary(key, len(good), len(mine) - len(good))
        if good:
            mid = good[(len(good) - 1) // 2]
            s.best, s.median = good[0].wall, statistics.median(r.wall for r in good)
            s.cpu, s.server_cpu, s.others_cpu = mid.cpu, mid.server_cpu, mid.others_cpu
            s.dump_bytes = mid.dump_bytes
            s.rss_mb = max(r.rss_mb for r in mine)
        if mine and key in IMPORTS:
            s.check = "ok" if all(r.check == "ok" for r in mine) else "FAIL"
        elif mine:
            s.check = "ok" if not s.failed else "FAIL"
        out[key] = s
    return out


def paired(runs: list[Run], num: str, den: str) -> list[float]:
    """pumpkit / reference wall of each round where both ran."""
    walls = {(r.key, r.round): r.wall for r in runs if r.ok}
    rounds = sorted({r.round for r in runs})
    return [
        walls[(num, i)] / walls[(den, i)] for i in rounds if (num, i) in walls and (den, i) in walls
    ]


def goals(runs: list[Run], sums: dict[str, Summary]) -> list[dict[str, Any]]:
    out = []
    for num, den, goal in (
        ("pumpkit_export", "fc_zstd", EXPORT_VS_FC_GOAL),
        ("pumpkit_export", "fd_j2", EXPORT_VS_FD_GOAL),
        ("pumpkit_import", "pg_restore", IMPORT_GOAL),
    ):
        a, b = sums[num], sums[den]
        row: dict[str, Any] = {"num": num, "den": den, "goal": goal, "met": None}
        if a.median and b.median and a.best and b.best:
            row["ratio"] = a.median / b.median
            row["best_ratio"] = a.best / b.best
            row["per_round"] = paired(runs, num, den)
            row["met"] = row["ratio"] <= goal
        out.append(row)
    rss = [r for r in runs if r.key.startswith("pumpkit")]
    worst = max(rss, key=lambda r: r.rss_mb) if rss else None
    out.append(
        {
            "num": "rss",
            "goal": RSS_GOAL_MB,
            "met": None if worst is None else worst.rss_mb < RSS_GOAL_MB,
            "worst_mb": None if worst is None else worst.rss_mb,
            "worst": None if worst is None else LABELS[worst.key],
        }
    )
    return out


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def cell(text: str) -> str:
    """``text`` for a Markdown table cell (a pipe would end the cell)."""
    return text.replace("|", "\\|")


def markdown(runs: list[Run], sums: dict[str, Summary], floor_mb: float) -> str:
    lines = [
        "| contender | wall s best | wall s median | client CPU s | server CPU s"
        " | others' CPU s | peak RSS MB | dump MB | runs | check |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key in (*EXPORTS, *IMPORTS):
        s = sums[key]
        dump = "" if s.dump_bytes is None else f"{s.dump_bytes / MB:.1f}"
        runs_text = f"{s.n}" + (f" (+{s.failed} failed)" if s.failed else "")
        lines.append(
            f"| {cell(LABELS[key])} | {fmt(s.best)} | {fmt(s.median)} | {fmt(s.cpu)}"
            f" | {fmt(s.server_cpu)} | {fmt(s.others_cpu)} | {fmt(s.rss_mb, '.1f')}"
            f" | {dump} | {runs_text} | {s.check} |"
        )
    lines += [
        "",
        "| goal (issue) | pumpkit / reference, median | best | per round | verdict |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for g in goals(runs, sums):
        if g["num"] == "rss":
            verdict = "n/a" if g["met"] is None else ("met" if g["met"] else "**not met**")
            worst = "-" if g["worst_mb"] is None else f"{g['worst_mb']:.1f} MB ({g['worst']})"
            lines.append(
                f"| peak RSS < {RSS_GOAL_MB:.0f} MB, every pumpkit run | {worst} | | | {verdict} |"
            )
            continue
        what = cell(f"{LABELS[g['num']].split(' --')[0]} <= {g['goal']}x {LABELS[g['den']]}")
        if g["met"] is None:
            lines.append(f"| {what} | - | - | - | n/a (a side failed) |")
            continue
        per = ", ".join(f"{x:.3f}" for x in g["per_round"])
        verdict = "met" if g["met"] else "**not met**"
        if (g["best_ratio"] <= g["goal"]) != g["met"]:
            verdict += f" (best: {'met' if g['best_ratio'] <= g['goal'] else 'not met'})"
        lines.append(f"| {what} | {g['ratio']:.3f}x | {g['best_ratio']:.3f}x | {per} | {verdict} |")
    lines += [
        "",
        f"(MB = 10**6 bytes; wall s of {max((s.n for s in sums.values()), default=0)} run(s);"
        " CPU s and dump MB of the median run; peak RSS the largest of"
        f" all runs, the launcher's floor {floor_mb:.1f} MB; ratios of the median walls)",
    ]
    return "\n".join(lines)


def code_state() -> dict[str, Any]:
    """HEAD, uncommitted files under pumpkit/, and a digest of pumpkit/**/*.py."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "pumpkit").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    state: dict[str, Any] = {"digest": digest.hexdigest()[:12]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(REPO)]
        state["head"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        state["dirty"] = len(
            subprocess.run(
                [*git, "status", "--porcelain", "--", "pumpkit"], capture_output=True, text=True
            ).stdout.splitlines()
        )
    return state


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--mb", type=float, default=DEFAULT_MB, help="MB of table data to make")
    size.add_argument("--quick", action="store_true", help=f"a smoke run: --mb {QUICK_MB:g}")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds before them (default 1)"
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="server URL without database")
    parser.add_argument(
        "--timeout", type=float, help="seconds per run before it is ended (default max(300, 3*MB))"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="CORES",
        help="before every run, wait until the machine used fewer cores than this for 1 s",
    )
    parser.add_argument(
        "--wait-max", type=float, default=600.0, help="seconds of --wait-quiet in all (600)"
    )
    parser.add_argument("--workdir", type=Path, default=OUT, help="where the scratch dir goes")
    parser.add_argument("--keep-dumps", action="store_true", help="keep the scratch directory")
    parser.add_argument("--json", type=Path, help="write every run to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.mb = QUICK_MB
    args.repeat = max(1, args.repeat)
    if args.timeout is None:
        args.timeout = max(300.0, 3.0 * args.mb)

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # so that the finally blocks drop the databases

    signal.signal(signal.SIGTERM, terminate)
    try:
        run(args)
    except Exception:
        traceback.print_exc()
        print("bench_postgres: the measurement failed (exit status stays 0)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    dbs = Databases(args.server)
    admin_info = server_info(dbs.admin)
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pg_dump": tool_version(["pg_dump", "--version"]),
        "pg_restore": tool_version(["pg_restore", "--version"]),
        "zstd_cli": tool_version(["zstd", "--version"]),
        "pumpkit": tool_version([*pumpkit_cli(), "--version"]),
        "server": admin_info,
        "loadavg_at_start": os.getloadavg(),
        "code_at_start": code_state(),
    }
    print(
        f"bench_postgres: about {args.mb:g} MB, {args.warmup} warm-up and {args.repeat}"
        f" measured round(s), parallel {PARALLEL};"
        f" server {args.server}, PostgreSQL {admin_info.get('server_version')}"
    )
    print(
        f"python {env['python']}, {env['pg_dump']}, {env['zstd_cli']}, {env['cpus']} cpus,"
        f" loadavg {env['loadavg_at_start']}, code {env['code_at_start']}"
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_postgres-", dir=args.workdir))
    bench: Bench | None = None
    data: dict[str, Any] = {}
    floor_mb = 0.0
    try:
        name = f"bench_pg_src_{dbs.tag}"
        source_url = dbs.create(name)
        print(f"generating {name} ...", flush=True)
        data = generate(source_url, args.mb)
        print(
            f"generated {data['total_bytes'] / MB:.1f} MB (pg_total_relation_size: "
            + ", ".join(f"{t} {data['bytes'][t] / MB:.1f} MB" for t in TABLES)
            + "; rows: "
            + ", ".join(f"{t} {data['rows'][t]:,}" for t in TABLES)
            + f") in {data['seconds']:.1f}s",
            flush=True,
        )
        bench = Bench(args, dbs, source_url, work)
        bench.server_cpu = ServerCpu.find(args.server, admin_info)
        if bench.server_cpu is None:
            print("server CPU: not measured (the server is not local or /proc is not readable)")
        floor_mb = measure(["true"], bench.logs / "floor.log").rss_mb
        print(f"RSS floor (the launcher, measured on `true`): {floor_mb:.1f} MB", flush=True)
        bench.rounds()
    finally:
        dbs.drop_all()
        if args.keep_dumps:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    env["loadavg_at_end"] = os.getloadavg()
    env["code_at_end"] = code_state()
    sums = summarize(bench.runs)
    print()
    print(
        f"table data {data['total_bytes'] / MB:.1f} MB (pg_total_relation_size of"
        f" {', '.join(TABLES)}), {sum(data['rows'].values()):,} rows"
    )
    print()
    print(markdown(bench.runs, sums, floor_mb))
    print()
    print(f"load average at start {env['loadavg_at_start']}, at end {env['loadavg_at_end']}")
    busy = [r for r in bench.runs if r.others_cpu is not None and r.others_cpu > CONTENDED * r.wall]
    if busy:
        print(
            f"WARNING: {len(busy)} of {len(bench.runs)} runs shared the machine (others used more"
            f" than {CONTENDED} cores on average): "
            + ", ".join(f"{LABELS[r.key]} round {r.round + 1} {r.others_cpu:.2f}s" for r in busy)
        )
    if env["code_at_end"]["digest"] != env["code_at_start"]["digest"]:
        print(
            f"WARNING: pumpkit's code changed during the run ({env['code_at_start']} ->"
            f" {env['code_at_end']}); the pumpkit rows mix two versions"
        )
    if args.json:
        doc = {
            "benchmark": "bench_postgres",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "config": {
                "mb": args.mb,
                "repeat": args.repeat,
                "warmup": args.warmup,
                "server": args.server,
                "timeout": args.timeout,
                "wait_quiet": args.wait_quiet,
                "wait_max": args.wait_max,
                "rss_floor_mb": floor_mb,
            },
            "data": data,
            "environment": env,
            "runs": [{**asdict(r), "label": LABELS[r.key], "ok": r.ok} for r in bench.runs],
            "summary": {k: asdict(s) for k, s in sums.items()},
            "goals": goals(bench.runs, sums),
            "total_seconds": time.perf_counter() - started,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
