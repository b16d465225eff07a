"""bench_load: ``pumpkit load`` of a delimited file against ``sqlite3 .import`` of the same file.

    python benchmarks/bench_load.py [--scale 1] [--repeat 1] [--json FILE] [--keep]
        [--checkpoints 1000,10000,100000] [--no-detached] [--no-plain]
        [--wait-load 1.2] [--wait-max 600] [--profile]

The input is a '|'-delimited text file made from a fixed seed and cached in
``benchmarks/data/`` (gitignored) by scale and generator version: scale 1 is about 10**9 bytes
(10.05 million lines) and the size is linear in the scale. A line looks like
``1234|lena.moreau70|west screen paid missing glass|73155.14|716210|2020-06-06`` (id, short
text, medium text of 4-11 words, a price, an integer, an ISO date). There are no empty fields
and no quotes, so both paths load exactly the same values (``sqlite3 .import`` would keep an
empty field as '' where VARTEXT makes it NULL, and it reads '"' as a CSV quote). The target
is a new database holding only ``CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT,
c REAL, d INTEGER, e TEXT)``, made (untimed) before every run. Each path runs as its own
child process, one after the other:

* reference: ``sqlite3 -batch -bail -init /dev/null -cmd '.mode list' -cmd '.separator |'
  NEW.db '.import FILE t'``; the table exists, so every line is data (no header is skipped).
* plain Python loop (``--plain-load``, ``--no-plain`` skips it): what a minimal Python loader
  costs with pumpkit's transactions: 10,000 lines at a time, ``bytes.decode`` and
  ``str.split`` per line, one ``executemany`` per transaction with a restart-log row,
  ``synchronous=NORMAL``. A floor for a loader written in Python, not a loader.
* pumpkit: ``pumpkit load --database NEW.db --table t --parms FILE --delimiter '|'
  --checkpoint N --home <fresh dir> --quiet --foreground`` for N = 10,000 (the goal's
  number), 1,000 and 100,000 (the checkpoint cost).
* pumpkit detached (once, N = 10,000): the same without ``--foreground``, so the client starts
  a runner process (``python -m pumpkit.engine.runner``, in a session of its own) and watches
  it; shown to explain what such a measurement does and does not include.

How it measures (the approach of ``bench_sqlite.py``): each command is forked and exec'd by a
minimal launcher (``python -S -I -c ...``) that reaps it with ``os.wait4`` and reports the
exit status, the wall time from fork to reaping and the rusage (user+sys CPU of the command
and of every descendant it waited for; ``ru_maxrss``, the largest single-process peak). The
launcher exists because Linux charges the spawner's peak RSS to a child's ``ru_maxrss`` at
exec; the floor it leaves is printed (measured on ``true``). Here the launcher also makes
itself the *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): a descendant orphaned by
its parent (the detached runner, when the client exits first) is re-parented to the launcher,
which reaps it too and adds its rusage. So every row reports the whole process tree; for the
detached row the client-only figures are shown as well. Python rows include interpreter
start-up and imports in the wall time. MB = 10**6 bytes.

Correctness (not timed): after every run, ``count(*)``, ``sum(id)``, ``sum(d)``,
``total(c)``, the summed text lengths and the number of rows whose six values have the
expected storage classes (integer, text, text, real, integer, text) must equal the values
the generator recorded for the file, and a pumpkit run must leave no rows in
``pumpkit_load_errors``. A run that fails the check gets no ratio.

Statistic: with ``--repeat N`` every path runs N times, rounds alternating the order of the
paths (reference first, then last); the table shows the median wall time (and the best),
and the ratio is median pumpkit (checkpoint 10,000) wall / median ``sqlite3 .import`` wall,
with the goal from the issue: at most 0.8x. The page cache is warm (the input was just made
or read). The load average before every run is recorded, because the machine may be shared;
``--wait-load X`` waits before every run until the 1-minute load average is below X (at
most ``--wait-max`` s of waiting in all; then runs go on whatever the load), and each run's
line shows its wall/CPU ratio (about 1.0-1.1 for a quiet single-threaded run). It is a
measurement, not a test: it exits 0 whatever the numbers are.

``--profile`` also runs ``pumpkit load --foreground`` in-process at checkpoint 10,000 and
1,000 (outside the table) with timers wrapped around the per-batch stages (reading, making
``Record`` objects, decoding, the checkpoint transaction, the control-store writes): the
wrappers cost microseconds per batch, unlike a tracing profiler, whose per-call overhead
would inflate the per-record functions. Names that no longer exist are listed, not timed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import hashlib
import itertools
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_sqlite import MB, TIMED_OUT, tail, tool_version  # noqa: E402

DATA = HERE / "data"
OUT = HERE / "out"

GEN_VERSION = 1  # bump when the file's content changes (the cache is keyed by it)
DEFAULT_SEED = 20261120
ROWS_AT_SCALE_1 = 10_050_000  # about 10**9 bytes at about 99.5 bytes a line
CHUNK_ROWS = 100_000
TABLE = "t"
DDL = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c REAL, d INTEGER, e TEXT)"
GOAL = 0.8  # pumpkit (checkpoint 10,000) wall / sqlite3 .import wall
GOAL_CHECKPOINT = 10_000
DEFAULT_CHECKPOINTS = (10_000, 1_000, 100_000)

# --- the input file ---------------------------------------------------------------------------

_FIRST = (  # noqa: SIM905 (word lists are easier to read as one string)
    "anna ben carla dmitri elena farid greta hiro ines jonas kofi lena marco nadia omar paula"
    " quinn rosa sven tara umar vera wei xena yusuf zoe"
).split()
_LAST = (  # noqa: SIM905
    "smith garcia muller rossi kowalski tanaka okafor silva nguyen jensen ivanova haddad novak"
    " moreau fischer larsen costa patel schmidt romero"
).split()
_WORDS = (  # noqa: SIM905
    "order shipped delayed customer returned package priority standard express invoice paid"
    " pending review damaged replaced warehouse north south east west central fragile heavy"
    " small large blue red green black white steel wood glass paper cotton battery cable"
    " adapter screen keyboard mouse chair table lamp shelf box bag note call back requested"
    " refund partial full credit applied contact email phone address updated verified missing"
    " item extra gift wrap coupon loyalty member"
).split()


def generate(path: Path, scale: float, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Write the input file; returns what the checks need (rows and expected aggregates)."""
    rows = max(1, round(ROWS_AT_SCALE_1 * scale))
    rng = random.Random(seed)
    shorts = [f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(100)}" for _ in range(4096)]
    mediums = [" ".join(rng.choices(_WORDS, k=rng.randint(4, 11))) for _ in range(65536)]
    day0 = datetime.date(2000, 1, 1).toordinal()
    dates = [datetime.date.fromordinal(day0 + i).isoformat() for i in range(9490)]
    line = "{}|{}|{}|{}.{:02d}|{}|{}\n".format
    sum_d = 0
    total_cents = 0
    text_len = 0
    size = 0
    with open(path, "w", encoding="ascii", newline="\n") as f:
        done = 0
        while done < rows:
            k = min(CHUNK_ROWS, rows - done)
            ids = range(done + 1, done + k + 1)
            a = rng.choices(shorts, k=k)
            b = rng.choices(mediums, k=k)
            units = [rng.randrange(100_000) for _ in range(k)]
            cents = [rng.randrange(100) for _ in range(k)]
            d = [rng.randrange(1_000_000) for _ in range(k)]
            e = rng.choices(dates, k=k)
            text = "".join(map(line, ids, a, b, units, cents, d, e))
            f.write(text)
            size += len(text)
            sum_d += sum(d)
            total_cents += 100 * sum(units) + sum(cents)
            text_len += sum(map(len, a)) + sum(map(len, b)) + 10 * k
            done += k
    return {
        "rows": rows,
        "bytes": size,
        "seed": seed,
        "version": GEN_VERSION,
        "sum_id": rows * (rows + 1) // 2,
        "sum_d": sum_d,
        "total_c_cents": total_cents,  # total(c) should be this / 100 (up to float rounding)
        "text_len": text_len,
    }


def input_for(args: argparse.Namespace) -> tuple[Path, dict[str, Any], float | None]:
    """The cached input file for ``--scale`` (made if missing): (path, meta, generation s)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"load-s{args.scale:g}-seed{args.seed}-v{GEN_VERSION}.txt"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and not args.regenerate:
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size:
            with open(path, "rb") as f:  # read it once, so the runs start with a warm cache
                while f.read(1 << 24):
                    pass
            return path, meta, None
    tmp = path.with_name(path.name + ".tmp")
    print(f"generating {path} (scale {args.scale:g}) ...", flush=True)
    t0 = time.perf_counter()
    meta = generate(tmp, args.scale, args.seed)
    took = time.perf_counter() - t0
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"generated {meta['bytes'] / MB:.1f} MB, {meta['rows']} lines in {took:.1f}s")
    return path, meta, took


# --- measuring a child (a launcher that also reaps orphaned descendants) ----------------------

LAUNCHER = """\
import ctypes, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
try:  # PR_SET_CHILD_SUBREAPER: orphaned descendants come to us, so we can reap them too
    subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
except Exception:
    subreaper = False
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
main = (ru.ru_utime, ru.ru_stime, ru.ru_maxrss)
user, system, rss, late = ru.ru_utime, ru.ru_stime, ru.ru_maxrss, 0
while True:
    try:
        p, _, r = os.wait4(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if p == 0:
        time.sleep(0.005)
        continue
    late += 1
    user, system, rss = user + r.ru_utime, system + r.ru_stime, max(rss, r.ru_maxrss)
wall_all = time.perf_counter() - t0
with open(out, "w") as f:
    f.write(repr((os.waitstatus_to_exitcode(status), wall, wall_all, user, system, rss, late,
                  subreaper, main)))
"""


@dataclass
class Measured:
    rc: int
    wall: float  # fork to the last descendant reaped
    user: float
    system: float
    rss_mb: float
    client_wall: float  # fork to the command itself reaped
    client_cpu: float
    client_rss_mb: float
    late_children: int
    subreaper: bool


def measure(argv: list[str], log: Path, timeout: float | None = None) -> Measured:
    """Run ``argv`` under the launcher; after ``timeout`` s its process group gets SIGTERM,
    then SIGKILL (a detached runner has its own session and is not reached: it then ends
    on its own, reaped by the launcher or by init)."""
    result = log.with_suffix(".rusage")
    result.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-I", "-c", LAUNCHER, str(result), *argv]
    timed_out = False
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
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
        outer = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return Measured(TIMED_OUT, outer, 0, 0, 0, outer, 0, 0, 0, False)
    try:
        rc, wall, wall_all, user, system, rss, late, sub, main = ast.literal_eval(
            result.read_text()
        )
    except (OSError, ValueError, SyntaxError):
        return Measured(proc.returncode or 1, outer, 0, 0, 0, outer, 0, 0, 0, False)
    return Measured(
        rc,
        wall_all,
        user,
        system,
        rss * 1024 / MB,
        wall,
        main[0] + main[1],
        main[2] * 1024 / MB,
        late,
        sub,
    )


# --- correctness ------------------------------------------------------------------------------

FINGERPRINT_SQL = (
    "SELECT count(*), sum(id), sum(d), total(c), sum(length(a)) + sum(length(b))"
    " + sum(length(e)), sum(typeof(id) = 'integer' AND typeof(a) = 'text'"
    " AND typeof(b) = 'text' AND typeof(c) = 'real' AND typeof(d) = 'integer'"
    " AND typeof(e) = 'text') FROM t"
)


def check(db: Path, meta: dict[str, Any], pumpkit: bool) -> str:
    """'ok', or what is wrong with the loaded table."""
    if not db.exists():
        return "MISMATCH: no database"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count, sum_id, sum_d, total_c, text_len, typed = con.execute(FINGERPRINT_SQL).fetchone()
        errors = 0
        if pumpkit:
            errors = con.execute("SELECT count(*) FROM pumpkit_load_errors").fetchone()[0]
    except sqlite3.Error as exc:
        return f"MISMATCH: {exc}"
    finally:
        con.close()
    rows = meta["rows"]
    problems = []
    if count != rows:
        problems.append(f"{count} rows, want {rows}")
    if sum_id != meta["sum_id"] or sum_d != meta["sum_d"] or text_len != meta["text_len"]:
        problems.append("sum(id), sum(d) or the text lengths differ from the file's")
    want_c = meta["total_c_cents"] / 100
    if abs((total_c or 0.0) - want_c) > 1e-6 * max(1.0, abs(want_c)):
        problems.append(f"total(c) {total_c} != {want_c}")
    if typed != rows:
        problems.append(f"{rows - (typed or 0)} rows with other storage classes")
    if errors:
        problems.append(f"{errors} rows in pumpkit_load_errors")
    return "ok" if not problems else "MISMATCH: " + "; ".join(problems)


# --- the plain Python loop (a child: --plain-load DB FILE N) ----------------------------------


def plain_load(database: str, data: str, every: int) -> None:
    """The least a Python loader does with pumpkit's transactions: ``every`` lines at a time
    (C-level line iteration), one ``decode`` and ``split`` per line, one ``executemany`` per
    transaction, with a restart-log row (the byte offset) committed with the rows, and
    ``synchronous=NORMAL`` as pumpkit's target has. No NULL mapping (the file has no empty
    fields), no error table, no control store: a floor for Python, not a loader."""
    con = sqlite3.connect(database, isolation_level=None)
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("CREATE TABLE restart_log (checkpoint INTEGER PRIMARY KEY, info BLOB NOT NULL)")
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({TABLE})")]
    sql = f"INSERT INTO {TABLE} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    offset = number = 0
    with open(data, "rb") as f:
        while lines := list(itertools.islice(f, every)):
            text = b"".join(lines)
            rows = [tuple(line.split("|")) for line in text.decode().splitlines()]
            offset += len(text)
            number += 1
            con.execute("BEGIN IMMEDIATE")
            con.executemany(sql, rows)
            con.execute("INSERT INTO restart_log VALUES (?, ?)", (number, str(offset).encode()))
            con.execute("COMMIT")
    con.execute("DROP TABLE restart_log")
    con.close()


# --- the runs ---------------------------------------------------------------------------------


@dataclass
class Run:
    key: str
    label: str
    wall: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0
    client_wall: float = 0.0
    client_cpu: float = 0.0
    client_rss_mb: float = 0.0
    late_children: int = 0
    rc: int | None = None
    check: str = ""
    loadavg: tuple[float, float, float] | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.check == "ok"


@dataclass
class LoadPath:
    key: str
    label: str
    checkpoint: int | None = None
    detached: bool = False
    runs: list[Run] = field(default_factory=list)

    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def median(self) -> Run | None:
        """The run with the median wall time (the lower middle for an even count)."""
        good = sorted(self.good(), key=lambda r: r.wall)
        return good[(len(good) - 1) // 2] if good else None

    def best(self) -> Run | None:
        good = self.good()
        return min(good, key=lambda r: r.wall) if good else None


def pumpkit_command() -> list[str]:
    script = Path(sys.executable).parent / "pumpkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pumpkit"]


class QuietWaiter:
    """Before a run, wait until the 1-minute load average is below ``threshold``; all the
    waits together take at most ``budget`` seconds, then runs start whatever the load."""

    def __init__(self, threshold: float, budget: float) -> None:
        self.threshold = threshold
        self.left = budget
        self.waited = 0.0

    def __call__(self) -> None:
        if self.threshold <= 0:
            return
        announced = False
        while (load := os.getloadavg()[0]) >= self.threshold:
            if self.left <= 0:
                if announced:
                    print(f"    load average still {load:.2f}: going on", flush=True)
                return
            if not announced:
                print(f"    load average {load:.2f} >= {self.threshold:g}: waiting", flush=True)
                announced = True
            step = min(15.0, self.left)
            time.sleep(step)
            self.left -= step
            self.waited += step
        if announced:
            print(f"    load average {load:.2f}: going on", flush=True)


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        data: Path,
        meta: dict[str, Any],
        work: Path,
        wait: QuietWaiter,
    ) -> None:
        self.args = args
        self.wait = wait
        self.data = data
        self.meta = meta
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.paths: dict[str, LoadPath] = {"ref": LoadPath("ref", "sqlite3 .import")}
        if args.plain:
            self.paths["plain"] = LoadPath(
                "plain", f"plain Python loop, {GOAL_CHECKPOINT:,} rows/txn"
            )
        for every in args.checkpoints:
            key = f"pk{every}"
            self.paths[key] = LoadPath(key, f"pumpkit load --checkpoint {every}", every)
        if args.detached:
            self.paths["pk_detached"] = LoadPath(
                "pk_detached",
                f"pumpkit load --checkpoint {GOAL_CHECKPOINT}, detached",
                GOAL_CHECKPOINT,
                detached=True,
            )

    def fresh_db(self, name: str) -> Path:
        db = self.work / f"{name}.db"
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        con = sqlite3.connect(db)
        con.execute(DDL)
        con.commit()
        con.close()
        return db

    def argv(self, path: LoadPath, db: Path, home: Path) -> list[str]:
        if path.key == "ref":
            return [
                "sqlite3",
                "-batch",
                "-bail",
                "-init",
                os.devnull,
                "-cmd",
                ".mode list",
                "-cmd",
                ".separator |",
                str(db),
                f'.import "{self.data}" {TABLE}',
            ]
        if path.key == "plain":
            me = [sys.executable, str(Path(__file__).resolve())]
            return [*me, "--plain-load", str(db), str(self.data), str(GOAL_CHECKPOINT)]
        argv = [
            *pumpkit_command(),
            "load",
            "--database",
            str(db),
            "--table",
            TABLE,
            "--parms",
            str(self.data),
            "--delimiter",
            "|",
            "--checkpoint",
            str(path.checkpoint),
            "--home",
            str(home),
            "--quiet",
        ]
        return argv if path.detached else [*argv, "--foreground"]

    def run_once(self, path: LoadPath, i: int) -> Run:
        db = self.fresh_db(path.key)
        home = Path(tempfile.mkdtemp(prefix=f"home-{path.key}-{i}-", dir=self.work))
        argv = self.argv(path, db, home)
        log = self.logs / f"{path.key}-{i}.log"
        run = Run(path.key, path.label, argv=argv)
        self.wait()
        with contextlib.suppress(OSError):
            run.loadavg = os.getloadavg()
        m = measure(argv, log, self.args.timeout)
        run.rc = m.rc
        run.wall, run.cpu, run.rss_mb = m.wall, m.user + m.system, m.rss_mb
        run.client_wall, run.client_cpu, run.client_rss_mb = (
            m.client_wall,
            m.client_cpu,
            (m.client_rss_mb),
        )
        run.late_children = m.late_children
        if m.rc == TIMED_OUT:
            run.check = f"timed out after {self.args.timeout:g}s"
        elif m.rc != 0:
            run.check = f"exit status {m.rc}"
            print(tail(log), file=sys.stderr)
        else:
            run.check = check(db, self.meta, pumpkit=path.key.startswith("pk"))
        load = ", ".join(f"{x:.2f}" for x in run.loadavg) if run.loadavg else "?"
        extra = (
            f" (client alone {m.client_wall:.2f}s, CPU {m.client_cpu:.2f}s;"
            f" {m.late_children} orphan(s) reaped)"
            if path.detached
            else ""
        )
        print(
            f"  {path.label:<42} run {i + 1}: {run.wall:8.2f}s wall {run.cpu:8.2f}s CPU"
            f" {run.rss_mb:7.1f} MB  {run.check}  [load {load}; wall/CPU"
            f" {run.wall / max(run.cpu, 1e-9):.2f}]{extra}",
            flush=True,
        )
        if not self.args.keep:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            shutil.rmtree(home, ignore_errors=True)
        path.runs.append(run)
        return run

    def run(self) -> None:
        timed = [p for p in self.paths.values() if not p.detached]
        for i in range(self.args.repeat):
            order = timed if i % 2 == 0 else timed[::-1]
            for path in order:
                self.run_once(path, i)
            if i == 0 and "pk_detached" in self.paths:
                self.run_once(self.paths["pk_detached"], i)


# --- reporting --------------------------------------------------------------------------------


def ratio(a: Run | None, b: Run | None) -> float | None:
    return a.wall / b.wall if a and b and b.wall > 0 else None


def fmt_ratio(value: float | None) -> str:
    return f"{value:.3f}x" if value is not None else "-"


def summary(bench: Bench) -> dict[str, Any]:
    rows = bench.meta["rows"]
    ref = bench.paths["ref"]
    goal_path = bench.paths.get(f"pk{GOAL_CHECKPOINT}")
    med = ratio(goal_path.median() if goal_path else None, ref.median())
    best = ratio(goal_path.best() if goal_path else None, ref.best())
    paired = []
    if goal_path:
        for a, b in zip(goal_path.runs, ref.runs, strict=False):
            if a.ok and b.ok:
                paired.append(a.wall / b.wall)
    costs = []
    cks = sorted(
        (p for p in bench.paths.values() if p.checkpoint and not p.detached),
        key=lambda p: p.checkpoint or 0,
    )
    base = cks[-1] if cks else None  # the largest interval: the fewest checkpoints
    for i, p in enumerate(cks):
        m, b = p.median(), base.median() if base else None
        n = -(-rows // (p.checkpoint or 1))
        # the cost of one more checkpoint: against the next larger interval
        nxt = cks[i + 1] if i + 1 < len(cks) else None
        mn = nxt.median() if nxt else None
        nn = -(-rows // (nxt.checkpoint or 1)) if nxt else n
        per = (m.wall - mn.wall) / (n - nn) * 1000 if m and mn and n > nn else None
        costs.append(
            {
                "checkpoint": p.checkpoint,
                "checkpoints": n,
                "wall": m.wall if m else None,
                "cpu": m.cpu if m else None,
                "vs_largest": ratio(m, b),
                "vs_ref": ratio(m, ref.median()),
                "ms_per_extra_checkpoint": per,
                "against": nxt.checkpoint if nxt else None,
            }
        )
    plain = bench.paths.get("plain")
    return {
        "ratio_median": med,
        "ratio_best": best,
        "ratio_paired": paired,
        "plain_vs_ref": ratio(plain.median() if plain else None, ref.median()),
        "pumpkit_vs_plain": ratio(
            goal_path.median() if goal_path else None, plain.median() if plain else None
        ),
        "goal": GOAL,
        "goal_met": None if med is None else med <= GOAL,
        "checkpoint_cost": costs,
        "rows": rows,
    }


def print_report(bench: Bench, floor_mb: float) -> dict[str, Any]:
    rows, size = bench.meta["rows"], bench.meta["bytes"]
    n = bench.args.repeat
    head = (
        f"{'path':<44} {'wall s':>8} {'best s':>8} {'CPU s':>8} {'peak RSS MB':>11}"
        f" {'rows/s':>10} {'MB/s':>7}  check"
    )
    print(head)
    print("-" * len(head))
    for p in bench.paths.values():
        m, b = p.median(), p.best()
        if m is None or b is None:
            bad = next((r.check for r in p.runs if not r.ok), "not run")
            print(f"{p.label:<44} {'-':>8} {'-':>8} {'-':>8} {'-':>11} {'-':>10} {'-':>7}  {bad}")
            continue
        failed = sum(not r.ok for r in p.runs)
        flag = "ok" if not failed else f"ok ({failed} of {len(p.runs)} runs FAILED)"
        print(
            f"{p.label:<44} {m.wall:>8.2f} {b.wall:>8.2f} {m.cpu:>8.2f} {m.rss_mb:>11.1f}"
            f" {rows / m.wall:>10,.0f} {size / MB / m.wall:>7.1f}  {flag}"
        )
        if p.detached:
            print(
                f"{'  (client process alone)':<44} {m.client_wall:>8.2f} {'':>8}"
                f" {m.client_cpu:>8.2f} {m.client_rss_mb:>11.1f}"
                f" {rows / m.client_wall:>10,.0f} {'':>7}  {m.late_children} orphan(s) reaped"
            )
    print(
        f"({rows:,} lines, {size / MB:.1f} MB; wall s = median of {n} run(s) (detached: 1),"
        f" best s = fastest; CPU s and RSS of the median run, whole process tree;"
        f" RSS floor {floor_mb:.1f} MB)"
    )
    s = summary(bench)
    print()
    paired = ", ".join(f"{x:.3f}" for x in s["ratio_paired"])
    print(
        f"pumpkit (checkpoint {GOAL_CHECKPOINT:,}) / sqlite3 .import, wall: median"
        f" {fmt_ratio(s['ratio_median'])}, best {fmt_ratio(s['ratio_best'])}"
        f" (per round: {paired or '-'})"
    )
    verdict = "n/a" if s["goal_met"] is None else ("met" if s["goal_met"] else "NOT met")
    print(f"goal (issue) <= {GOAL}x: {verdict}")
    if "plain" in bench.paths:
        print(
            f"plain Python loop / sqlite3 .import {fmt_ratio(s['plain_vs_ref'])};"
            f" pumpkit / plain Python loop {fmt_ratio(s['pumpkit_vs_plain'])} (medians)"
        )
    print()
    print("checkpoint cost (medians):")
    print(
        f"  {'every':>8} {'checkpoints':>11} {'wall s':>8} {'CPU s':>8} {'vs largest':>10}"
        f" {'vs .import':>10} {'ms per extra ckpt':>17}  (against)"
    )
    for c in s["checkpoint_cost"]:
        per = c["ms_per_extra_checkpoint"]
        per = f"{per:.2f}" if per is not None else "-"
        wall = f"{c['wall']:.2f}" if c["wall"] is not None else "-"
        cpu = f"{c['cpu']:.2f}" if c["cpu"] is not None else "-"
        print(
            f"  {c['checkpoint']:>8,} {c['checkpoints']:>11,} {wall:>8} {cpu:>8}"
            f" {fmt_ratio(c['vs_largest']):>10} {fmt_ratio(c['vs_ref']):>10} {per:>17}"
            f"  {'every ' + format(c['against'], ',') if c['against'] else ''}"
        )
    return s


# --- profiling (outside the timing) -----------------------------------------------------------

PROFILE_CODE = """\
import functools, sys, time
from collections import Counter, defaultdict
t0 = time.perf_counter()
out, argv = sys.argv[1], sys.argv[2:]
spent, calls, missing = defaultdict(float), Counter(), []

def wrap(module, owner, name, label):
    try:
        cls = getattr(__import__(module, fromlist=["_"]), owner)
        f = getattr(cls, name)
    except (ImportError, AttributeError):
        missing.append(f"{module}.{owner}.{name}")
        return
    if getattr(f, "__code__", None) and f.__code__.co_flags & 0x80:  # a coroutine function
        async def timed(*a, **k):
            t = time.perf_counter()
            try:
                return await f(*a, **k)
            finally:
                spent[label] += time.perf_counter() - t
                calls[label] += 1
    else:
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[label] += time.perf_counter() - t
                calls[label] += 1
    setattr(cls, name, functools.wraps(f)(timed))

for spec in (
    ("pumpkit.io.inmods", "LinesFile", "read_many", "read: LinesFile.read_many (+ thread hop)"),
    ("pumpkit.core.inmod", "LoaderProtocol", "accept_many", "LoaderProtocol.accept_many"),
    ("pumpkit.engine.load", "_Batch", "add", "decode: _Batch.add"),
    ("pumpkit.io.connectors.sqlite.target", "_RecordLoad", "_apply",
     "insert: the SQLite record load's checkpoint (its thread)"),
    ("pumpkit.engine.job", "Job", "mark", "control store: Job.mark"),
    ("pumpkit.engine.job", "Job", "log", "control store: Job.log"),
):
    wrap(*spec)
from pumpkit.cli.main import main
t1 = time.perf_counter()
rc = main(argv)
wall = time.perf_counter() - t1
with open(out, "w") as f:
    print(f"exit {rc}; imports {t1 - t0:.3f}s; main() {wall:.3f}s wall,"
          f" process CPU {time.process_time():.3f}s", file=f)
    print(f"  {'s':>8} {'% main':>6} {'calls':>7} {'ms/call':>8}  stage", file=f)
    for label, s in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {s:8.3f} {100 * s / wall:6.1f} {calls[label]:7d}"
              f" {1000 * s / calls[label]:8.3f}  {label}", file=f)
    rest = wall - sum(spent.values())
    print(f"  {rest:8.3f} {100 * rest / wall:6.1f} {'':>7} {'':>8}  everything else", file=f)
    if missing:
        print(f"  (not found, not timed: {', '.join(missing)})", file=f)
"""


def profile(bench: Bench, every: int) -> str:
    path = LoadPath("profile", "profile", every)
    db = bench.fresh_db("profile")
    home = Path(tempfile.mkdtemp(prefix="home-profile-", dir=bench.work))
    argv = bench.argv(path, db, home)[len(pumpkit_command()) :]
    out = bench.work / "profile.txt"
    out.unlink(missing_ok=True)
    log = bench.logs / f"profile-{every}.log"
    with open(log, "wb") as f:
        subprocess.run(
            [sys.executable, "-c", PROFILE_CODE, str(out), *argv], stdout=f, stderr=f, check=False
        )
    ok = check(db, bench.meta, pumpkit=True)
    text = out.read_text() if out.exists() else f"the profile failed:\n{tail(log)}"
    shutil.rmtree(home, ignore_errors=True)
    return f"checkpoint {every:,} (check: {ok}): {text}"


# --- main -------------------------------------------------------------------------------------


def source_digest() -> str:
    """A digest of pumpkit's Python files as they are on disk: the code the runs execute
    (the tree may change under a benchmark on a shared machine; HEAD alone would not say)."""
    root = HERE.parent / "pumpkit"
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def pumpkit_dirty() -> bool | None:
    """Whether ``git status`` shows changes under pumpkit/ (None when git cannot say)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "pumpkit"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return bool(out.stdout.strip())
    return None


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python_sqlite": sqlite3.sqlite_version,
        "sqlite3_cli": tool_version(["sqlite3", "--version"]),
        "pumpkit": tool_version(
            [sys.executable, "-c", "import pumpkit; print(pumpkit.__version__)"]
        ),
        "commit": tool_version(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"]),
        "pumpkit_dirty": pumpkit_dirty(),
        "source_digest": source_digest(),
    }
    with contextlib.suppress(OSError):
        env["loadavg_at_start"] = os.getloadavg()
    return env


def _load(value: Any) -> str:
    return ", ".join(f"{x:.2f}" for x in value) if value else "?"


def parse_checkpoints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if GOAL_CHECKPOINT not in values:
        values.insert(0, GOAL_CHECKPOINT)
    return list(dict.fromkeys(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="input size (1 ~ 10**9 bytes)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data seed")
    parser.add_argument("--regenerate", action="store_true", help="remake the cached input")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path (median reported)")
    parser.add_argument(
        "--checkpoints",
        type=parse_checkpoints,
        default=list(DEFAULT_CHECKPOINTS),
        help="pumpkit checkpoint intervals, comma-separated (10000 is always run)",
    )
    parser.add_argument(
        "--no-detached",
        dest="detached",
        action="store_false",
        help="skip the one run without --foreground",
    )
    parser.add_argument("--timeout", type=float, help="s per run (default max(120, 900*scale))")
    parser.add_argument(
        "--wait-load", type=float, default=0.0, help="before each run, wait for loadavg below X"
    )
    parser.add_argument(
        "--wait-max", type=float, default=600.0, help="s of waiting in all (default 600)"
    )
    parser.add_argument("--profile", action="store_true", help="also profile one pumpkit load")
    parser.add_argument("--keep", action="store_true", help="keep the databases and homes")
    parser.add_argument("--workdir", type=Path, default=OUT, help="where the run directory goes")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--no-plain", dest="plain", action="store_false", help="skip the plain Python loop"
    )
    parser.add_argument(
        "--plain-load", nargs=3, metavar=("DB", "FILE", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.plain_load:  # child mode: errors propagate to the exit status
        plain_load(args.plain_load[0], args.plain_load[1], int(args.plain_load[2]))
        return 0
    args.repeat = max(1, args.repeat)
    if args.timeout is None:
        args.timeout = max(120.0, 900.0 * args.scale)
    try:
        run(args)
    except Exception:
        traceback.print_exc()
        print("bench_load: the measurement failed (exit status stays 0)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    data, meta, gen_seconds = input_for(args)
    waiter = QuietWaiter(args.wait_load, args.wait_max)
    waiter()
    env = environment()
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bench_load-s{args.scale:g}-", dir=args.workdir))
    print(
        f"bench_load: {data} ({meta['bytes'] / MB:.1f} MB, {meta['rows']:,} lines),"
        f" {args.repeat} run(s) per path, warm page cache"
    )
    print(
        f"python {env['python']} (sqlite {env['python_sqlite']}), sqlite3 CLI"
        f" {env['sqlite3_cli'].split(' ')[0]}, {env['cpus']} cpus, commit {env['commit']}"
        f"{' (pumpkit/ has uncommitted changes)' if env['pumpkit_dirty'] else ''},"
        f" pumpkit/*.py digest {env['source_digest']},"
        f" load average {_load(env.get('loadavg_at_start'))}"
    )
    bench = Bench(args, data, meta, work, waiter)
    floor = measure(["true"], bench.logs / "floor.log")
    print(
        f"RSS floor (the launcher, measured on `true`): {floor.rss_mb:.1f} MB;"
        f" child subreaper {'on' if floor.subreaper else 'OFF (orphans are not measured)'}"
    )
    profile_text = None
    try:
        bench.run()
        if args.profile:
            print("timing the stages of pumpkit loads (not part of the table) ...", flush=True)
            profile_text = "\n".join(profile(bench, every) for every in (GOAL_CHECKPOINT, 1_000))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        env["loadavg_at_end"] = os.getloadavg()
    env["commit_at_end"] = tool_version(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"])
    env["source_digest_at_end"] = source_digest()
    print()
    s = print_report(bench, floor.rss_mb)
    if env["source_digest_at_end"] != env["source_digest"]:
        print(
            f"WARNING: pumpkit/ changed during the run (digest {env['source_digest']} ->"
            f" {env['source_digest_at_end']}, commit {env['commit']} -> {env['commit_at_end']}):"
            " the pumpkit runs may have run different code"
        )
    print(
        f"load average at start {_load(env.get('loadavg_at_start'))},"
        f" at end {_load(env.get('loadavg_at_end'))}"
    )
    if profile_text:
        print()
        print(profile_text)
    if args.json:
        doc = {
            "benchmark": "bench_load",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "config": {
                "scale": args.scale,
                "input": str(data),
                "input_meta": meta,
                "generation_seconds": gen_seconds,
                "repeat": args.repeat,
                "checkpoints": args.checkpoints,
                "rss_floor_mb": floor.rss_mb,
                "ddl": DDL,
            },
            "environment": env,
            "paths": {
                k: {
                    "label": p.label,
                    "checkpoint": p.checkpoint,
                    "detached": p.detached,
                    "median_wall": p.median().wall if p.median() else None,
                    "best_wall": p.best().wall if p.best() else None,
                    "walls": [r.wall for r in p.runs],
                    "median_of": statistics.median([r.wall for r in p.good()])
                    if p.good()
                    else None,
                    "runs": [asdict(r) | {"ok": r.ok} for r in p.runs],
                }
                for k, p in bench.paths.items()
            },
            "summary": s,
            "waited_for_load_seconds": waiter.waited,
            "profile": profile_text,
            "total_seconds": time.perf_counter() - started,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
