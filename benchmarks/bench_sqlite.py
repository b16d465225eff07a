"""bench_sqlite: pumpkit export/import of a SQLite database against reference tools.

    python benchmarks/bench_sqlite.py [--scale 0.1] [--keep] [--json out.json]
                                      [--repeat 1] [--drop-caches] [--only reference,plain]

The database comes from ``gen_sqlite.py`` (scale 1 is about 1 GB) and is cached in
``benchmarks/data/`` by scale and generator version (that directory is gitignored). Each
path runs as its own child process, one after the other:

* reference export: ``sqlite3 DB .dump | zstd -3 -q -o dump.sql.zst``
* reference import: ``zstdcat dump.sql.zst | sqlite3 NEW.db``
* plain Python export (``--plain-export``, below): per table ``SELECT *``, ``fetchmany`` of
  about 1 MB of rows, ``msgspec.msgpack.encode``, ``ZstdCompressor(level=3).compress``,
  length-prefixed chunks in one file
* plain Python import (``--plain-import``): the tables from the original ``sqlite_master``
  SQL, chunks decompressed, decoded and ``executemany``-inserted, one transaction per table,
  then the indexes, views and triggers
* pumpkit export at parallel 1 and 2: ``anyio.run(pumpkit.export_database, DB,
  'bench%U.dmp', directory=..., parallel=P, home=<fresh temp dir>)`` in ``python -c``
* pumpkit import at parallel 1 and 2 (of the dump set the same parallel degree wrote) into
  a fresh file, ``pumpkit.import_dump``

How it measures: each command is forked and exec'd by a minimal launcher process
(``python -S -I -c ...``, started with ``subprocess.Popen``) that reaps it with
``os.wait4`` and hands back the exit status, the wall time from fork to reaping, and the
rusage. The launcher exists because Linux charges the spawning process's peak RSS to a
child's ``ru_maxrss`` at exec, and this script may be hundreds of MB after generating the
database; the launcher is about 8 MB, so a command whose own peak is lower shows about 8 MB
(the "RSS floor" printed at start, measured on ``true``). Python children include their
interpreter start-up and imports (tens of milliseconds) in the wall time. CPU time is user +
system from the rusage, which on Linux covers the command and every descendant it waited
for; a pipeline runs as ``bash -c 'set -o pipefail; A | B'`` and bash waits for both sides,
so the row shows the pipeline's total CPU. Peak RSS is ``ru_maxrss`` from the same rusage:
the largest peak of any single process in that tree (the command or a waited-for
descendant), not the sum of processes alive at the same time (for a pipeline, the larger of
the two sides). MB is 10**6 bytes, RSS included (ru_maxrss KiB * 1024 / 10**6).

By default the page cache is left as it is: the database was just generated or read, so
exports read it warm. ``--drop-caches`` runs ``sync; echo 3 > /proc/sys/vm/drop_caches``
before every timed run (needs root; a warning if that fails), for cold-read numbers.

Correctness is checked cheaply after every import (not timed): the row count of every table
and the set of ``sqlite_master`` (type, name, tbl_name, sql) rows must equal the source's.

The goals (the issue): pumpkit export at parallel 2 at most 0.45x the wall time of
``.dump | zstd -3`` and a smaller dump; pumpkit import at most 0.35x the wall time of
``zstdcat | sqlite3``; peak RSS below 200 MB for every pumpkit run. It is a measurement,
not a test: it exits 0 whatever the numbers are. When ``pumpkit.export_database`` or
``pumpkit.import_dump`` does not exist yet, those rows say "pumpkit engine not available
yet". With ``--repeat N`` every path runs N times and the run with the median wall time is
reported.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MB = 1_000_000
HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = HERE / "out"

EXPORT_GOAL = 0.45  # pumpkit export (parallel 2) wall / reference export wall
IMPORT_GOAL = 0.35  # pumpkit import wall / reference import wall
RSS_GOAL_MB = 200.0  # peak RSS of every pumpkit run
NOT_AVAILABLE = 75  # exit status of the pumpkit child when the engine API is missing
NOT_AVAILABLE_TEXT = "pumpkit engine not available yet"
TIMED_OUT = -1000  # exit code recorded for a run ended by --timeout

STEPS = ("reference", "plain", "pumpkit")

# --- the plain Python reference (runs in a child: --plain-export / --plain-import) --------

PLAIN_BATCH = 1 * MB  # target msgpack bytes per chunk
_CHUNK = struct.Struct("<BII")  # kind, table number, payload length
_SCHEMA, _ROWS = 0, 1


def plain_export(database: str, out: str, level: int = 3) -> None:
    """Every table of ``database`` as zstd-compressed msgpack chunks in the file ``out``."""
    import msgspec
    import zstandard

    encode = msgspec.msgpack.Encoder().encode
    compress = zstandard.ZstdCompressor(level=level).compress
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    schema = con.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
    ).fetchall()
    tables = [name for kind, name, _, _ in schema if kind == "table"]
    with open(out, "wb") as f:

        def chunk(kind: int, table_no: int, payload: bytes) -> None:
            f.write(_CHUNK.pack(kind, table_no, len(payload)))
            f.write(payload)

        chunk(_SCHEMA, 0, compress(encode(schema)))
        for table_no, table in enumerate(tables):
            cur = con.execute(f'SELECT * FROM "{table}"')
            n = 256
            while rows := cur.fetchmany(n):
                data = encode(rows)
                chunk(_ROWS, table_no, compress(data))
                # Next batch sized to about PLAIN_BATCH encoded bytes (at most 4x growth).
                n = max(1, min(4 * n, round(n * PLAIN_BATCH / max(1, len(data)))))
        f.flush()
        os.fsync(f.fileno())
    con.close()


def plain_import(dump: str, database: str) -> None:
    """Load a ``plain_export`` file into a new database ``database``."""
    import msgspec
    import zstandard

    decode = msgspec.msgpack.Decoder().decode
    decompress = zstandard.ZstdDecompressor().decompress
    con = sqlite3.connect(database, isolation_level=None)
    with open(dump, "rb") as f:

        def chunks() -> Any:
            while head := f.read(_CHUNK.size):
                kind, table_no, length = _CHUNK.unpack(head)
                yield kind, table_no, f.read(length)

        it = chunks()
        kind, _, payload = next(it)
        assert kind == _SCHEMA
        schema = decode(decompress(payload))
        tables = [(name, sql) for kind, name, _, sql in schema if kind == "table"]
        con.execute("BEGIN")
        for _, sql in tables:
            con.execute(sql)
        con.execute("COMMIT")
        inserts = []
        for name, _ in tables:
            ncols = len(con.execute(f'PRAGMA table_info("{name}")').fetchall())
            inserts.append(f'INSERT INTO "{name}" VALUES ({", ".join("?" * ncols)})')
        current = None
        for _kind, table_no, payload in it:
            if table_no != current:  # one transaction per table
                if current is not None:
                    con.execute("COMMIT")
                con.execute("BEGIN")
                current = table_no
            con.executemany(inserts[table_no], decode(decompress(payload)))
        if current is not None:
            con.execute("COMMIT")
    con.execute("BEGIN")  # indexes, then views and triggers, after the rows
    for kind, _, _, sql in schema:
        if kind != "table":
            con.execute(sql)
    con.execute("COMMIT")
    con.close()


# --- the pumpkit child ----------------------------------------------------------------------

PUMPKIT_CODE = f"""\
import functools, sys
import anyio, pumpkit
op, src, dst, directory, parallel, home = sys.argv[1:7]
fn = getattr(pumpkit, {{"export": "export_database", "import": "import_dump"}}[op], None)
if fn is None:
    print({NOT_AVAILABLE_TEXT!r}, file=sys.stderr)
    sys.exit({NOT_AVAILABLE})
status = anyio.run(
    functools.partial(fn, src, dst, directory=directory, parallel=int(parallel), home=home)
)
print("status:", repr(status))
"""

# --- measuring a child ----------------------------------------------------------------------


@dataclass
class Run:
    path: str
    argv: list[str]
    wall: float = 0.0
    user: float = 0.0
    system: float = 0.0
    rss_mb: float = 0.0
    rc: int | None = None
    dump_bytes: int | None = None
    check: str = ""
    note: str = ""
    skipped: bool = False
    repeats: list[float] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def ok(self) -> bool:
        return not self.skipped and self.rc == 0 and self.check in ("", "ok")


# Linux charges the spawning process's peak RSS to a child's ru_maxrss when the child execs
# (exec_mmap records the old mm's high-water mark), and this parent can be hundreds of MB
# after generating the database. So every measured command is forked by a minimal launcher
# (``python -S -I``, about 8 MB), which times it and reports its wait4 rusage.
LAUNCHER = """\
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    f.write(repr((os.waitstatus_to_exitcode(status), wall, ru.ru_utime, ru.ru_stime,
                  ru.ru_maxrss)))
"""


def measure(
    argv: list[str], log: Path, timeout: float | None = None
) -> tuple[int, float, float, float, float]:
    """Run ``argv``; (exit code, wall s, user s, sys s, peak RSS MB) of it and descendants.

    After ``timeout`` seconds the launcher's process group (the launcher, the command and
    its descendants) gets SIGTERM, then SIGKILL; the exit code is then ``TIMED_OUT``.
    """
    result = log.with_suffix(".rusage")
    result.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-I", "-c", LAUNCHER, str(result), *argv]
    timed_out = False
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group, so a timeout can end it all
        )
        term_at = None if timeout is None else t0 + timeout
        kill_at = None
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if term_at is not None and now > term_at:
                timed_out, term_at, kill_at = True, None, now + 5
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            elif kill_at is not None and now > kill_at:
                kill_at = None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.02)
        outer_wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):  # stragglers in the group
            os.killpg(proc.pid, signal.SIGKILL)
        return TIMED_OUT, outer_wall, 0.0, 0.0, 0.0
    try:
        rc, wall, user, system, maxrss_kib = ast.literal_eval(result.read_text())
    except (OSError, ValueError, SyntaxError):  # the launcher itself failed
        return proc.returncode or 1, outer_wall, 0.0, 0.0, 0.0
    return rc, wall, user, system, maxrss_kib * 1024 / MB


_warned_drop = False


def drop_caches() -> None:
    global _warned_drop
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        if not _warned_drop:
            print(f"warning: cannot drop the page cache ({exc}); runs are warm", file=sys.stderr)
            _warned_drop = True


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


# --- correctness ----------------------------------------------------------------------------


def signature(path: Path) -> tuple[dict[str, int], set[tuple[Any, ...]]]:
    """(row count per table, sqlite_master rows) of the database at ``path``."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = set(
            con.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
                " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        )
        tables = sorted(name for kind, name, _, _ in schema if kind == "table")
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
    return counts, schema


def compare(source: tuple[dict[str, int], set[tuple[Any, ...]]], path: Path) -> str:
    if not path.exists():
        return "MISMATCH: no database written"
    try:
        counts, schema = signature(path)
    except sqlite3.Error as exc:
        return f"MISMATCH: {exc}"
    src_counts, src_schema = source
    problems = [
        f"{table} {counts.get(table)} rows, want {src_counts.get(table)}"
        for table in sorted(set(src_counts) | set(counts))
        if src_counts.get(table) != counts.get(table)
    ]
    if schema != src_schema:
        missing = sorted(r[1] for r in src_schema - schema)
        extra = sorted(r[1] for r in schema - src_schema)
        problems.append(f"sqlite_master differs (missing {missing}, extra {extra})")
    return "ok" if not problems else "MISMATCH: " + "; ".join(problems)


# --- the benchmark --------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, db: Path, work: Path) -> None:
        self.args = args
        self.db = db
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.source = signature(db)
        self.runs: dict[str, Run] = {}

    def run(
        self,
        key: str,
        label: str,
        argv: list[str],
        *,
        prepare: Any = None,
        output: Path | None = None,
        imported: Path | None = None,
    ) -> Run:
        """Run one path ``--repeat`` times; keep the median-wall run."""
        results = []
        for i in range(self.args.repeat):
            if prepare is not None:
                argv = prepare(i)
            if imported is not None:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    Path(f"{imported}{suffix}").unlink(missing_ok=True)
            if self.args.drop_caches:
                drop_caches()
            log = self.logs / f"{key}-{i}.log"
            rc, wall, user, sys_, rss = measure(argv, log, self.args.timeout)
            r = Run(label, argv, wall, user, sys_, rss, rc)
            if rc == TIMED_OUT:
                r.note = f"TIMED OUT after {self.args.timeout:g}s"
                print(f"  {label}: timed out after {self.args.timeout:g}s; log tail:\n{tail(log)}")
                r.skipped = True
                self.runs[key] = r
                return r
            if rc == NOT_AVAILABLE and key.startswith("pumpkit"):
                r.note = NOT_AVAILABLE_TEXT
                r.skipped = True
                print(f"  {label}: {NOT_AVAILABLE_TEXT}")
                self.runs[key] = r
                return r
            if rc != 0 and rc != TIMED_OUT:
                r.note = f"FAILED (exit {rc})" + (f", log {log}" if self.args.keep else "")
                print(f"  {label}: failed with exit status {rc}; log tail:\n{tail(log, 25)}")
            if output is not None and output.is_file():
                r.dump_bytes = output.stat().st_size
            elif output is not None and output.is_dir():  # the dump-file set only
                r.dump_bytes = sum(f.stat().st_size for f in output.glob("bench*.dmp")) or None
            if imported is not None:
                r.check = compare(self.source, imported)
            if key.startswith("pumpkit") and rc == 0:
                status = [ln for ln in tail(log, 5).splitlines() if "status:" in ln]
                if status:
                    state = re.search(r"state='([^']*)'", status[-1])
                    r.note = "state " + state[1] if state else status[-1].strip()[:60]
            results.append(r)
            print(
                f"  {label} [{i + 1}/{self.args.repeat}]: {wall:.2f}s wall, {r.cpu:.2f}s CPU,"
                f" {rss:.0f} MB RSS{'' if not r.check else ', check ' + r.check}"
            )
        walls = [r.wall for r in results]
        best = sorted(results, key=lambda r: r.wall)[(len(results) - 1) // 2]
        best.repeats = walls
        if imported is not None and not self.args.keep:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{imported}{suffix}").unlink(missing_ok=True)
        self.runs[key] = best
        return best

    def skip(self, key: str, label: str, why: str) -> None:
        self.runs[key] = Run(label, [], note=why, skipped=True)

    def reference(self) -> None:
        dump = self.work / "dump.sql.zst"
        new = self.work / "ref_import.db"
        q = shlex.quote

        def export_argv(_: int) -> list[str]:
            dump.unlink(missing_ok=True)
            cmd = f"set -o pipefail; sqlite3 {q(str(self.db))} .dump | zstd -3 -q -o {q(str(dump))}"
            return ["bash", "-c", cmd]

        self.run(
            "ref_export", "reference export (.dump | zstd -3)", [], prepare=export_argv, output=dump
        )
        if not self.runs["ref_export"].ok:
            self.skip("ref_import", "reference import (zstdcat | sqlite3)", "no reference dump")
            return
        cmd = f"set -o pipefail; zstdcat {q(str(dump))} | sqlite3 {q(str(new))}"
        self.run(
            "ref_import", "reference import (zstdcat | sqlite3)", ["bash", "-c", cmd], imported=new
        )

    def plain(self) -> None:
        dump = self.work / "plain.dmp"
        new = self.work / "plain_import.db"
        me = [sys.executable, str(Path(__file__).resolve())]
        self.run(
            "plain_export",
            "plain Python export",
            [*me, "--plain-export", str(self.db), str(dump)],
            output=dump,
        )
        if not self.runs["plain_export"].ok:
            self.skip("plain_import", "plain Python import", "no plain dump")
            return
        self.run(
            "plain_import",
            "plain Python import",
            [*me, "--plain-import", str(dump), str(new)],
            imported=new,
        )

    def pumpkit(self) -> None:
        for p in (1, 2):
            directory = self.work / f"pumpkit_p{p}"

            def export_argv(i: int, p: int = p, directory: Path = directory) -> list[str]:
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
                home = tempfile.mkdtemp(prefix=f"home-export-p{p}-{i}-", dir=self.work)
                return [
                    sys.executable,
                    "-c",
                    PUMPKIT_CODE,
                    "export",
                    str(self.db),
                    "bench%U.dmp",
                    str(directory),
                    str(p),
                    home,
                ]

            self.run(
                f"pumpkit_export_p{p}",
                f"pumpkit export parallel={p}",
                [],
                prepare=export_argv,
                output=directory,
            )
        for p in (1, 2):
            directory = self.work / f"pumpkit_p{p}"
            new = self.work / f"pumpkit_import_p{p}.db"
            export = self.runs[f"pumpkit_export_p{p}"]
            label = f"pumpkit import parallel={p}"
            if not export.ok:
                self.skip(f"pumpkit_import_p{p}", label, export.note or "no pumpkit dump")
                continue

            def import_argv(i: int, p: int = p, directory: Path = directory, new: Path = new):
                home = tempfile.mkdtemp(prefix=f"home-import-p{p}-{i}-", dir=self.work)
                return [
                    sys.executable,
                    "-c",
                    PUMPKIT_CODE,
                    "import",
                    "bench%U.dmp",
                    str(new),
                    str(directory),
                    str(p),
                    home,
                ]

            self.run(f"pumpkit_import_p{p}", label, [], prepare=import_argv, imported=new)


# --- reporting ------------------------------------------------------------------------------

ORDER = (
    "ref_export",
    "plain_export",
    "pumpkit_export_p1",
    "pumpkit_export_p2",
    "ref_import",
    "plain_import",
    "pumpkit_import_p1",
    "pumpkit_import_p2",
)

SHORT = {
    "ref_export": "ref export",
    "ref_import": "ref import",
    "plain_export": "plain export",
    "plain_import": "plain import",
    **{f"pumpkit_{op}_p{p}": f"pumpkit {op} p{p}" for op in ("export", "import") for p in (1, 2)},
}


def ratios(runs: dict[str, Run]) -> list[dict[str, Any]]:
    """Wall-time ratios (numerator / denominator) with the goal where the issue sets one."""
    out = []

    def add(num: str, den: str, goal: float | None = None, what: str = "") -> None:
        a, b = runs.get(num), runs.get(den)
        value = a.wall / b.wall if a and b and a.ok and b.ok and b.wall > 0 else None
        out.append({"num": num, "den": den, "ratio": value, "goal": goal, "what": what})

    add("plain_export", "ref_export", what="plain Python vs .dump | zstd")
    add("plain_import", "ref_import", what="plain Python vs zstdcat | sqlite3")
    for p in (1, 2):
        add(f"pumpkit_export_p{p}", "ref_export", EXPORT_GOAL if p == 2 else None)
    for p in (1, 2):
        add(f"pumpkit_import_p{p}", "ref_import", IMPORT_GOAL if p == 2 else None)
    for p in (1, 2):
        add(f"pumpkit_export_p{p}", "plain_export", what="pumpkit vs plain Python loop")
        add(f"pumpkit_import_p{p}", "plain_import", what="pumpkit vs plain Python loop")
    return out


def goals(runs: dict[str, Run]) -> list[tuple[str, bool | None, str]]:
    """(goal, met or None when not measurable, detail)."""
    res: list[tuple[str, bool | None, str]] = []
    ref_e, ref_i = runs.get("ref_export"), runs.get("ref_import")
    pe2, pi2 = runs.get("pumpkit_export_p2"), runs.get("pumpkit_import_p2")
    goal = f"export parallel=2 <= {EXPORT_GOAL}x .dump|zstd -3 wall, and a smaller file"
    if ref_e and pe2 and ref_e.ok and pe2.ok and ref_e.dump_bytes and pe2.dump_bytes:
        r = pe2.wall / ref_e.wall
        smaller = pe2.dump_bytes < ref_e.dump_bytes
        detail = f"{r:.3f}x; {pe2.dump_bytes / MB:.1f} MB vs {ref_e.dump_bytes / MB:.1f} MB"
        res.append((goal, r <= EXPORT_GOAL and smaller, detail))
    else:
        res.append((goal, None, "not measured"))
    goal = f"import <= {IMPORT_GOAL}x zstdcat|sqlite3 wall (parallel=2; parallel=1 shown too)"
    if ref_i and pi2 and ref_i.ok and pi2.ok and pi2.check == "ok":
        r = pi2.wall / ref_i.wall
        p1 = runs.get("pumpkit_import_p1")
        more = f"; parallel=1 {p1.wall / ref_i.wall:.3f}x" if p1 and p1.ok else ""
        res.append((goal, r <= IMPORT_GOAL, f"{r:.3f}x{more}"))
    else:
        bad = pi2 is not None and pi2.check not in ("", "ok")
        res.append((goal, None, pi2.check if bad and pi2 else "not measured"))
    goal = f"peak RSS < {RSS_GOAL_MB:.0f} MB for every pumpkit run"
    pk = [r for k, r in runs.items() if k.startswith("pumpkit") and r.ok]
    if pk:
        worst = max(pk, key=lambda r: r.rss_mb)
        res.append((goal, worst.rss_mb < RSS_GOAL_MB, f"max {worst.rss_mb:.0f} MB ({worst.path})"))
    else:
        res.append((goal, None, "not measured"))
    return res


def print_report(runs: dict[str, Run], db_bytes: int, floor_mb: float) -> None:
    head = (
        f"{'path':<38} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>11} {'dump MB':>8}"
        f" {'check':<6} note"
    )
    print(head)
    print("-" * len(head))
    for key in ORDER:
        r = runs.get(key)
        if r is None:
            continue
        if r.skipped:
            print(f"{r.path:<38} {'-':>8} {'-':>8} {'-':>11} {'-':>8} {'':<6} {r.note}")
            continue
        dump = f"{r.dump_bytes / MB:.1f}" if r.dump_bytes is not None else ""
        check = r.check if len(r.check) <= 6 else "FAIL"
        print(
            f"{r.path:<38} {r.wall:>8.2f} {r.cpu:>8.2f} {r.rss_mb:>11.1f} {dump:>8}"
            f" {check:<6} {r.note}"
        )
        if r.check and r.check != "ok":
            print(f"    {r.check}")
    print(
        f"(database {db_bytes / MB:.1f} MB; MB = 10**6 bytes; RSS floor {floor_mb:.1f} MB:"
        " a command that peaks lower shows the floor)"
    )
    print()
    print("ratios (wall time):")
    for row in ratios(runs):
        num, den = runs.get(row["num"]), runs.get(row["den"])
        if num is None or den is None:
            continue
        value = f"{row['ratio']:.3f}x" if row["ratio"] is not None else "-"
        extra = f"goal <= {row['goal']}x" if row["goal"] is not None else row["what"]
        print(f"  {SHORT[row['num']]:<18} / {SHORT[row['den']]:<12} {value:>8}   {extra}")
    print()
    print("goals (issue):")
    for goal, met, detail in goals(runs):
        flag = "n/a    " if met is None else ("met    " if met else "NOT met")
        print(f"  [{flag}] {goal}: {detail}")


def tool_version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    return "?"


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python_sqlite": sqlite3.sqlite_version,
        "sqlite3_cli": tool_version(["sqlite3", "--version"]),
        "zstd_cli": tool_version(["zstd", "--version"]),
        "pumpkit": tool_version(
            [sys.executable, "-c", "import pumpkit; print(pumpkit.__version__)"]
        ),
    }
    with contextlib.suppress(ImportError):
        import msgspec
        import zstandard

        env["msgspec"] = msgspec.__version__
        env["zstandard"] = zstandard.__version__
    with contextlib.suppress(OSError):
        env["loadavg_at_start"] = os.getloadavg()
    return env


# --- main -----------------------------------------------------------------------------------


def database_for(args: argparse.Namespace) -> tuple[Path, float | None]:
    """The cached database for ``--scale`` (generated if missing); (path, generation s)."""
    if args.db is not None:
        return args.db.resolve(), None
    sys.path.insert(0, str(HERE))
    gen = importlib.import_module("gen_sqlite")
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"sqlite-s{args.scale:g}-v{gen.GEN_VERSION}.db"
    if path.exists() and not args.regenerate:
        return path, None
    tmp = path.with_name(path.name + ".tmp")
    print(f"generating {path} (scale {args.scale:g}) ...")
    t0 = time.perf_counter()
    gen.generate(tmp, args.scale, verbose=True)
    took = time.perf_counter() - t0
    os.replace(tmp, path)
    print(f"generated {path.stat().st_size / MB:.1f} MB in {took:.1f}s")
    return path, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1, help="database scale (1 ~ 1 GB)")
    parser.add_argument("--db", type=Path, help="use this database instead of a generated one")
    parser.add_argument("--regenerate", action="store_true", help="regenerate the cached db")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path (median reported)")
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help=f"comma-separated subset of {','.join(STEPS)} (default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds per run before it is ended (default max(120, 900 * scale))",
    )
    parser.add_argument("--drop-caches", action="store_true", help="drop page cache per run")
    parser.add_argument("--keep", action="store_true", help="keep dumps and imported databases")
    parser.add_argument("--workdir", type=Path, default=OUT, help="where the run directory goes")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--plain-export", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--plain-import", nargs=2, metavar=("IN", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_export:  # child modes: errors propagate to the exit status
        plain_export(*args.plain_export)
        return 0
    if args.plain_import:
        plain_import(*args.plain_import)
        return 0
    args.repeat = max(1, args.repeat)
    if args.timeout is None:
        args.timeout = max(120.0, 900.0 * args.scale)
    try:
        run(args)
    except Exception:
        traceback.print_exc()
        print("bench_sqlite: the measurement failed (exit status stays 0)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> None:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(STEPS)
    if unknown:
        raise SystemExit(f"--only: unknown {sorted(unknown)}; choose from {STEPS}")
    env = environment()
    db, gen_seconds = database_for(args)
    db_bytes = db.stat().st_size
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench_sqlite-s{args.scale:g}-", dir=args.workdir))
    print(
        f"bench_sqlite: {db} ({db_bytes / MB:.1f} MB), {args.repeat} run(s) per path,"
        f" page cache {'dropped before each run' if args.drop_caches else 'warm'}"
    )
    print(
        f"python {env['python']} (sqlite {env['python_sqlite']}), {env['sqlite3_cli']},"
        f" {env['zstd_cli']}, {env['cpus']} cpus, loadavg {env.get('loadavg_at_start')}"
    )
    started = time.perf_counter()
    bench = Bench(args, db, work)
    floor_mb = measure(["true"], bench.logs / "floor.log")[4]
    print(f"RSS floor (the launcher, measured on `true`): {floor_mb:.1f} MB")
    try:
        if "reference" in only:
            bench.reference()
        if "plain" in only:
            bench.plain()
        if "pumpkit" in only:
            bench.pumpkit()
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_report(bench.runs, db_bytes, floor_mb)
    if args.json:
        doc = {
            "benchmark": "bench_sqlite",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "config": {
                "scale": args.scale,
                "database": str(db),
                "database_bytes": db_bytes,
                "generation_seconds": gen_seconds,
                "repeat": args.repeat,
                "drop_caches": args.drop_caches,
                "only": only,
                "rss_floor_mb": floor_mb,
            },
            "environment": env,
            "runs": {
                k: {**asdict(r), "cpu": r.cpu, "ok": r.ok} | {"median_of": r.repeats}
                for k, r in bench.runs.items()
            },
            "ratios": ratios(bench.runs),
            "goals": [{"goal": g, "met": m, "detail": d} for g, m, d in goals(bench.runs)],
            "total_seconds": time.perf_counter() - started,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
