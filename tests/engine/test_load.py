"""LOAD jobs (TPump-style INMOD loads) in real runner processes: kill -9 at seeded moments, a
locked database mid-batch, modules that cannot reposition, modules that break the protocol,
the layouts, UPSERT, ERRLIMIT and ``pumpkit load``.

Every load here runs detached (``start_job(detached=True)``), in a runner process of its own
that imports the input module by name: the test modules are written to a directory that the
tests put on ``PYTHONPATH`` (the runners inherit the environment). After every crash, lock or
stop the target is compared with what the input says: the table holds every good record
exactly once, the error table ``pumpkit_load_errors`` exactly the bad records (by sequence
number, 1-based line numbers, and their bytes), and a completed load leaves no restart log.

The killed load reads a delimited file of 250,000 lines ``id|name|value`` with 60 bad lines
(a wrong field count, bytes that are not UTF-8, an empty NOT NULL name, a duplicate primary
key) into ``t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL)``, a checkpoint every
1,000 records. Its duration ``T`` is measured once; seed ``s`` kills the runner
``random.Random(s).uniform(0, T)`` after ``start_job`` returned.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import random
import re
import sqlite3
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import pytest
from process_helpers import kill_runner, processes_left, wait_until

from pumpkit.core.states import JobState
from pumpkit.engine.session import Session

KEYED = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL)"
PLAIN = "CREATE TABLE t (id INTEGER, name TEXT NOT NULL, value REAL)"  # duplicates would show
DELIMITED = "pumpkit.io.inmods:DelimitedFile"
ERRORS = "pumpkit_load_errors"
RESTART_LOG = "pumpkit_restart_log"
FINAL = (JobState.COMPLETED, JobState.STOPPED, JobState.NOT_RUNNING, JobState.UNDEFINED)

BIG_LINES = 250_000
BIG_BAD = 60
BIG_CHECKPOINT = 1_000
SEEDS = range(20)
MIN_MID_LOAD = 10  # of the 20 kills, at least this many must land while the load runs
LOCK_SECONDS = 3.0  # longer than the load's busy timeout (pumpkit.engine.load: 2 s)

# --- the test input modules (imported by name in the runner processes) -------------------------

MODULE = "pumpkit_test_inmods"
MODULES = {"class": f"{MODULE}:RecordingFile", "classic": f"{MODULE}:recording_entry"}
SMALL_BAD = [5, 150, 333, 600, 1_000]  # the bad lines of the 1,000-line inputs
MODULE_SOURCE = '''\
"""Input modules of tests/engine/test_load.py; a job's runner process imports them by name.

parms: ``PATH;key=value;...``. Keys: ``codes=FILE`` (append each entry code to FILE);
``hold=POINT``, ``flag=FILE``, ``go=FILE`` (at POINT, once per job: create FLAG, then wait
until GO exists); ``refuse=2,4`` (the classic module answers those codes with 1);
``count=N`` and ``break=RULE`` (the broken modules: N generated records, one rule broken at
record 150 or at the second checkpoint). POINTs: ``recordN`` (before the N-th record),
``checkpointK`` (the K-th code 3), ``close`` (code 5).
"""

import time
from pathlib import Path

import anyio

BREAK_AT = 150


def options(parms):
    path, *rest = parms.split(";")
    return path, dict(option.split("=", 1) for option in rest)


def note(opts, code):
    if "codes" in opts:
        with open(opts["codes"], "a") as fh:
            fh.write(f"{code}\\n")


def held(opts, point):
    """Whether the hold point is here and not passed yet in this job (then: the flag)."""
    if opts.get("hold") != point or Path(opts["flag"]).exists():
        return False
    Path(opts["flag"]).touch()
    return True


def wait_go(opts):
    deadline = time.monotonic() + 60
    while not Path(opts["go"]).exists() and time.monotonic() < deadline:
        time.sleep(0.005)


async def await_go(opts):
    deadline = time.monotonic() + 60
    while not Path(opts["go"]).exists() and time.monotonic() < deadline:
        await anyio.sleep(0.005)


def generated(n):
    return f"{n}|name {n}|{n / 4}\\n".encode()


def parms_text(parms):
    """The classic parameter list: a 2-byte length and the text."""
    return bytes(parms[2 : 2 + int.from_bytes(parms[:2], "little")]).decode()


class _Lines:
    """Lines of a file, checkpointed as the byte offset. It notes the entry code each call
    stands for: 0 the first read after initialize, 1 the others, 3 checkpoint, 5 close, and
    for reposition 2 right after initialize (a client restart) or 4 after reads (a database
    failure)."""

    def __init__(self):
        self.fh = None
        self.opts = {}
        self.fresh = True
        self.records = 0
        self.checkpoints = 0

    async def initialize(self, parms):
        path, self.opts = options(parms)
        self.fh = open(path, "rb")
        self.fresh = True

    async def read(self):
        note(self.opts, 0 if self.fresh else 1)
        self.fresh = False
        if held(self.opts, f"record{self.records + 1}"):
            await await_go(self.opts)
        line = self.fh.readline()
        if not line:
            return None
        self.records += 1
        return line

    async def checkpoint(self):
        note(self.opts, 3)
        self.checkpoints += 1
        if held(self.opts, f"checkpoint{self.checkpoints}"):
            await await_go(self.opts)
        return str(self.fh.tell()).encode()

    async def close(self):
        note(self.opts, 5)
        if held(self.opts, "close"):
            await await_go(self.opts)
        self.fh.close()
        self.fh = None


class RecordingFile(_Lines):
    async def reposition(self, info):
        note(self.opts, 2 if self.fresh else 4)
        self.fresh = False
        self.fh.seek(int(info))


class NoReposition(_Lines):
    """It cannot reposition: it has no ``reposition``."""


class RepositionNotImplemented(_Lines):
    async def reposition(self, info):
        note(self.opts, 2 if self.fresh else 4)
        raise NotImplementedError("this module cannot reposition")


_STATE = {}


def recording_entry(code, buffer, parms):
    """TPump's INMOD entry point over the lines of a file (checkpoint: the byte offset); it
    notes every entry code it gets."""
    path, opts = options(parms_text(parms))
    note(opts, code)
    buffer.return_code = 0
    if str(code) in opts.get("refuse", "").split(","):
        buffer.return_code = 1
        return
    if code in (0, 2):  # a fresh start, or a restarted client: open the file
        if _STATE.get("fh") is not None:
            _STATE["fh"].close()
        _STATE.update(fh=open(path, "rb"), records=0, checkpoints=0)
    fh = _STATE["fh"]
    if code in (0, 1):
        if held(opts, f"record{_STATE['records'] + 1}"):
            wait_go(opts)
        line = fh.readline()
        if not line:
            buffer.return_code = 1
            buffer.length = 0
            return
        _STATE["records"] += 1
        buffer.body = line
        buffer.length = len(line)
    elif code in (2, 4):
        fh.seek(int(bytes(buffer.body[: buffer.length])))
    elif code == 3:
        _STATE["checkpoints"] += 1
        if held(opts, f"checkpoint{_STATE['checkpoints']}"):
            wait_go(opts)
        info = str(fh.tell()).encode()
        buffer.body = info
        buffer.length = len(info)
    elif code == 5:
        if held(opts, "close"):
            wait_go(opts)
        fh.close()
        _STATE["fh"] = None


class Broken:
    """Records 1..count, generated; breaks the rule ``break`` names."""

    async def initialize(self, parms):
        _, self.opts = options(parms)
        self.rule = self.opts["break"]
        self.n = self.checkpoints = 0

    def _next(self):
        if self.n >= int(self.opts.get("count", "1000")):
            return None
        self.n += 1
        if self.rule == "body" and self.n == BREAK_AT:
            return b"x" * 70_000
        if self.rule == "backwards":
            return generated(self.n), self.n if self.n < BREAK_AT else 2
        return generated(self.n)

    async def read(self):
        return self._next()

    async def checkpoint(self):
        self.checkpoints += 1
        if self.rule == "checkpoint" and self.checkpoints == 2:
            return b"9" * 101
        return str(self.n).encode()

    async def reposition(self, info):
        self.n = int(info)

    async def close(self):
        pass


class BrokenMany(Broken):
    """The same, with ``read_many`` (the loader checks the records as one batch)."""

    async def read_many(self, limit):
        out = []
        while len(out) < min(limit, 64) and (item := self._next()) is not None:
            out.append(item)
        return out


def broken_entry(code, buffer, parms):
    """The classic entry point of ``Broken``; rule ``sequence3`` returns a sequence number
    with the second checkpoint's information."""
    _, opts = options(parms_text(parms))
    rule = opts["break"]
    buffer.return_code = 0
    if code == 0:
        _STATE.update(n=0, checkpoints=0)
    if code in (0, 1):
        if _STATE["n"] >= int(opts.get("count", "1000")):
            buffer.return_code = 1
            return
        n = _STATE["n"] = _STATE["n"] + 1
        body = b"x" * 70_000 if rule == "body" and n == BREAK_AT else generated(n)
        buffer.body = body
        buffer.length = len(body)
        if rule == "backwards":
            buffer.sequence = n if n < BREAK_AT else 2
    elif code == 3:
        _STATE["checkpoints"] += 1
        info = str(_STATE["n"]).encode()
        if _STATE["checkpoints"] == 2 and rule == "checkpoint":
            info = b"9" * 101
        if _STATE["checkpoints"] == 2 and rule == "sequence3":
            buffer.sequence = 7
        buffer.body = info
        buffer.length = len(info)
    elif code in (2, 4):
        _STATE["n"] = int(bytes(buffer.body[: buffer.length]))


def decode_commas(body):
    """A user decoder (LAYOUT=module:function): ``id,name,cents``; it refuses a record that
    does not start with a digit, or that has not three fields."""
    text = body.decode().rstrip("\\n")
    if not text[:1].isdigit():
        raise ValueError(f"not a record: {text!r}")
    ident, name, cents = text.split(",")
    return [int(ident), name, int(cents) / 100]
'''


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("inmods")
    (directory / f"{MODULE}.py").write_text(MODULE_SOURCE)
    return directory


@pytest.fixture(autouse=True)
def inmods_on_path(module_dir, monkeypatch) -> None:
    """Detached runners inherit the environment: they find the test modules by name."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(module_dir), os.environ.get("PYTHONPATH")]))
    )


# --- inputs and what the target must hold ------------------------------------------------------

Row = tuple[int, str, float | None]


@dataclass(frozen=True)
class Input:
    """A delimited input file and what a load of it must leave."""

    path: Path
    rows: frozenset[Row]  # the good records' rows: the table holds exactly these
    bad: dict[int, tuple[str, bytes]]  # sequence (line) -> (what is wrong, the line)

    def rows_upto(self, sequence: int) -> set[Row]:
        """The rows of the good records among lines 1..sequence (ids are line numbers)."""
        return {r for r in self.rows if r[0] <= sequence}

    def bad_upto(self, sequence: int) -> dict[int, tuple[str, bytes]]:
        return {s: b for s, b in self.bad.items() if s <= sequence}


BAD_KINDS = ("fields", "null", "duplicate", "utf8", "fields4")


def good_line(i: int) -> tuple[bytes, Row]:
    value = None if i % 997 == 0 else (i % 1000) / 4  # some NULL values (an empty field)
    line = f"{i}|name {i}|{'' if value is None else value}\n".encode()
    return line, (i, f"name {i}", value)


def bad_line(kind: str, i: int, duplicate_of: int) -> bytes:
    if kind == "fields":
        return f"{i}|only two fields\n".encode()
    if kind == "fields4":
        return f"{i}|four|1.5|fields\n".encode()
    if kind == "null":
        return f"{i}||2.5\n".encode()  # name is NOT NULL
    if kind == "duplicate":
        return f"{duplicate_of}|duplicate of {duplicate_of}|3.5\n".encode()
    return b"\xff\xfe|not utf-8|1\n"


def write_input(path: Path, lines: int, bad: Iterable[int] = (), *, seed: int = 0) -> Input:
    """``lines`` lines ``i|name i|value``; the lines numbered in ``bad`` are bad ones, of the
    kinds of ``BAD_KINDS`` in turn (a duplicate repeats the id of an earlier good line)."""
    rng = random.Random(seed)
    bad_lines = sorted(set(bad))
    assert not bad_lines or bad_lines[0] > 1
    kinds = {line: BAD_KINDS[k % len(BAD_KINDS)] for k, line in enumerate(bad_lines)}
    out: list[bytes] = []
    rows: set[Row] = set()
    faults: dict[int, tuple[str, bytes]] = {}
    for i in range(1, lines + 1):
        kind = kinds.get(i)
        if kind is None:
            line, row = good_line(i)
            rows.add(row)
        else:
            j = rng.randint(1, i - 1)
            while j in kinds:
                j = rng.randint(1, i - 1)
            line = bad_line(kind, i, j)
            faults[i] = (kind, line)
        out.append(line)
    path.write_bytes(b"".join(out))
    return Input(path, frozenset(rows), faults)


def new_target(path: Path, schema: str = KEYED) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(schema)
        conn.commit()
    return path


def query(db: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db, timeout=20)) as conn:
        return conn.execute(sql, args).fetchall()


def has_table(db: Path, name: str) -> bool:
    return bool(query(db, "SELECT 1 FROM sqlite_master WHERE name = ?", (name,)))


def committed(db: Path) -> tuple[int, int]:
    """(last checkpoint, last sequence) of the target's restart log; (0, 0) when it has none."""
    if not has_table(db, RESTART_LOG):
        return 0, 0
    row = query(db, f"SELECT max(checkpoint), max(last_sequence) FROM {RESTART_LOG}")[0]
    return (row[0] or 0, row[1] or 0)


def diff(name: str, got: list, want: set | dict) -> str:
    got_set = set(got)
    missing = sorted(set(want) - got_set)
    extra = sorted(got_set - set(want))
    dupes = len(got) - len(got_set)
    return (
        f"{name}: {len(got)} held, {len(want)} expected; {len(missing)} missing {missing[:5]},"
        f" {len(extra)} unexpected {extra[:5]}, {dupes} duplicates"
    )


def assert_target(
    db: Path,
    rows: set[Row] | frozenset[Row],
    bad: dict[int, tuple[str, bytes]],
    *,
    completed: bool = True,
) -> None:
    """The table holds exactly ``rows`` (each once), the error table exactly ``bad``; a
    completed load has no restart log left."""
    held = query(db, "SELECT id, name, value FROM t")
    assert len(held) == len(rows) and set(held) == rows, diff("table t", held, rows)
    errors = query(db, f"SELECT sequence, error, record FROM {ERRORS} ORDER BY sequence")
    sequences = [e[0] for e in errors]
    assert sequences == sorted(bad), diff("error table", sequences, bad)
    for sequence, error, record in errors:
        kind, line = bad[sequence]
        assert record == line, (sequence, record, line)
        expected = "IntegrityError" if kind in ("null", "duplicate") else "layout:"
        assert expected in error, (sequence, kind, error)
    if completed:
        assert not has_table(db, RESTART_LOG), query(db, f"SELECT * FROM {RESTART_LOG}")


# --- jobs ----------------------------------------------------------------------------------------


async def define_load(
    s: Session, name: str, db: Path, parms: str, inmod: str = DELIMITED, **settings: object
) -> int:
    h = await s.open("LOAD", "TABLE", job_name=name, database=str(db))
    values = {"TARGET_TABLE": "t", "INMOD": inmod, "INMOD_PARMS": parms, **settings}
    for key, value in values.items():
        await s.set_parameter(h, key, value)
    return h


async def job_log(s: Session, name: str) -> list[str]:
    return [text for _, _, text in await s._store.log_lines(name)]


async def wait_end(s: Session, h: int, timeout: float = 90) -> JobState:
    """Poll until the job ends; its final state (then the handle is released)."""

    async def ended() -> bool:
        return await s.state(h) in FINAL

    if not await wait_until(ended, timeout, interval=0.01):
        # A runaway load must not outlive its test.
        pid = (await s._store.job(s.job_name(h))).owner_pid
        assert pid is not None
        await kill_runner(pid)
        log = await job_log(s, s.job_name(h))
        raise AssertionError(f"the job did not end within {timeout} s: {log[-5:]}")
    state = await s.state(h)
    await s.release(h)
    return state


async def run_load(s: Session, h: int) -> tuple[JobState, float]:
    """Start the job detached and wait for it; its state and the seconds from start_job's
    return to its end."""
    await s.start_job(h, detached=True)
    started = time.monotonic()
    state = await wait_end(s, h)
    return state, time.monotonic() - started


async def restart(home: Path, name: str, expect: JobState = JobState.COMPLETED) -> list[str]:
    """Attach to a NOT RUNNING job (-> IDLING), start it detached, wait; its log."""
    async with Session(home) as s:
        h = await s.attach(name)
        assert await s.state(h) == JobState.IDLING
        await s.start_job(h, detached=True)
        pid = (await s._store.job(name)).owner_pid
        state = await wait_end(s, h)
        log = await job_log(s, name)
        assert state == expect, log
        assert (await s._store.job(name)).restart_count == 1
    assert not await processes_left(pid), f"the restarted runner {pid} left processes behind"
    return log


async def kill_now(s: Session, name: str) -> str:
    """SIGKILL the job's runner; the state the jobs view shows afterwards."""
    pid = (await s._store.job(name)).owner_pid
    assert pid is not None
    assert not await kill_runner(pid)
    record = await s._store.job(name)
    views = {v.job_name: v for v in await s.jobs()}
    if record is not None and record.state == JobState.COMPLETED.value:
        assert name not in views or views[name].state == JobState.COMPLETED.value
        return JobState.COMPLETED.value
    view = views[name]
    assert view.state == JobState.NOT_RUNNING.value, (view, await job_log(s, name))
    assert view.owner_alive is False and view.owner_pid == pid, view
    return view.state


async def stop_reason(s: Session, name: str) -> str:
    record = await s._store.job(name)
    return record.stop_reason or ""


@contextlib.asynccontextmanager
async def locked(db: Path):
    """Another connection holds the target's exclusive lock while the block runs; it yields
    that connection (the only one that can read the target meanwhile)."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        await anyio.to_thread.run_sync(conn.execute, "BEGIN EXCLUSIVE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def codes_seen(path: Path) -> list[int]:
    return [int(c) for c in path.read_text().split()]


def calls_but_reads(codes: list[int]) -> list[int]:
    """The entry codes a module got, without the code 1 reads."""
    return [c for c in codes if c != 1]


# --- 1. kill -9 at seeded moments --------------------------------------------------------------


@dataclass(frozen=True)
class Landing:
    seed: int
    delay: float
    state: str  # NOT RUNNING (mid-load) or COMPLETED
    checkpoints: int  # committed when the runner died
    sequence: int  # the last record they cover

    @property
    def mid_load(self) -> bool:
        return self.state == JobState.NOT_RUNNING.value


def run_async(fn, *args):
    """Run ``fn(*args)`` in an event loop of its own thread (for module-scoped fixtures)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Input:
    directory = tmp_path_factory.mktemp("big")
    bad = random.Random(2024).sample(range(2, BIG_LINES + 1), BIG_BAD)
    return write_input(directory / "input.txt", BIG_LINES, bad, seed=1)


@pytest.fixture(scope="module")
def load_seconds(big, tmp_path_factory) -> float:
    """T: the shorter of two whole loads (start_job returned -> the job ended), each exact."""
    directory = tmp_path_factory.mktemp("baseline")

    async def measure() -> float:
        seconds = []
        async with Session(directory / "home") as s:
            for i in range(2):
                db = new_target(directory / f"base{i}.db")
                h = await define_load(s, f"BASE_{i}", db, str(big.path), CHECKPOINT=BIG_CHECKPOINT)
                state, took = await run_load(s, h)
                assert state == JobState.COMPLETED, await job_log(s, f"BASE_{i}")
                assert_target(db, big.rows, big.bad)
                seconds.append(took)
        return min(seconds)

    return run_async(measure)


@pytest.fixture(scope="module")
def landings() -> dict[int, Landing]:
    return {}


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("seed", SEEDS)
async def test_load_killed_at_a_seeded_moment_restarts_to_every_good_record_once(
    seed, big, load_seconds, landings, tmp_path
):
    delay = random.Random(seed).uniform(0, load_seconds)
    home = tmp_path / "home"
    name = f"LOAD_KILLED_{seed:02d}"
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(s, name, db, str(big.path), CHECKPOINT=BIG_CHECKPOINT)
        await s.start_job(h, detached=True)
        await anyio.sleep(delay)
        state = await kill_now(s, name)
    checkpoints, sequence = committed(db)
    landings[seed] = Landing(seed, delay, state, checkpoints, sequence)
    # What the killed load committed is exact up to its last checkpoint.
    if state != JobState.COMPLETED.value:
        assert_target(db, big.rows_upto(sequence), big.bad_upto(sequence), completed=False)
        log = await restart(home, name)
        resumed = [line for line in log if line.startswith("Restarting the load")]
        if checkpoints:
            after = f"Restarting the load after checkpoint {checkpoints} ("
            assert len(resumed) == 1 and resumed[0].startswith(after), log
        else:
            assert resumed == ["Restarting the load from the start (no checkpoint was written)"]
    assert_target(db, big.rows, big.bad)


def test_load_kills_landed_mid_load(landings, load_seconds):
    lines = "\n".join(
        f"seed {x.seed:2d}: kill at {x.delay:.3f} s of {load_seconds:.3f} s -> {x.state:11s}"
        f" after checkpoint {x.checkpoints} (sequence {x.sequence})"
        for x in sorted(landings.values(), key=lambda x: x.seed)
    )
    print(f"\nload kills:\n{lines}")
    assert sorted(landings) == list(SEEDS), "run the whole module: every seed must have run"
    assert sum(x.mid_load for x in landings.values()) >= MIN_MID_LOAD, lines


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["class", "classic"])
@pytest.mark.parametrize("hold", ["record1", "checkpoint3"])
async def test_kill_at_a_chosen_moment_restarts_with_the_right_codes(kind, hold, tmp_path):
    """Killed while the recording module waits before its first record (nothing committed:
    the restart initialises it again, code 0) or in its third code 3 (two checkpoints
    committed: the restart repositions it there, code 2)."""
    home = tmp_path / "home"
    name = "LOAD_KILLED_HELD"
    data = write_input(tmp_path / "input.txt", 1_000, SMALL_BAD, seed=5)
    db = new_target(tmp_path / "target.db")
    flag, go, codes = tmp_path / "flag", tmp_path / "go", tmp_path / "codes"
    parms = f"{data.path};codes={codes};hold={hold};flag={flag};go={go}"
    async with Session(home) as s:
        h = await define_load(s, name, db, parms, MODULES[kind], CHECKPOINT=100)
        await s.start_job(h, detached=True)
        assert await wait_until(flag.exists, 60), await job_log(s, name)
        assert await kill_now(s, name) == JobState.NOT_RUNNING.value
    first = codes_seen(codes)
    log = await restart(home, name)
    again = codes_seen(codes)[len(first) :]
    if hold == "record1":
        assert committed(db) == (0, 0) and first == [0]
        assert "Restarting the load from the start (no checkpoint was written)" in log, log
        assert calls_but_reads(again) == [0, *[3] * 10, 5], calls_but_reads(again)
        assert again.count(1) == 999 + 1
    else:
        assert calls_but_reads(first) == [0, 3, 3, 3] and first.count(1) == 299, first
        assert any(line.startswith("Restarting the load after checkpoint 2 (") for line in log)
        assert calls_but_reads(again) == [2, *[3] * 8, 5], calls_but_reads(again)
        assert again.count(1) == 800 + 1
    assert_target(db, data.rows, data.bad)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("immediate", [False, True], ids=["graceful", "immediate"])
async def test_stop_job_mid_load_then_restart(immediate, big, tmp_path):
    home = tmp_path / "home"
    name = "LOAD_STOPPED"
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(s, name, db, str(big.path), CHECKPOINT=BIG_CHECKPOINT)
        await s.start_job(h, detached=True)
        assert await wait_until(lambda: committed(db)[0] >= 5, 60, interval=0.005)
        await s.stop_job(h, immediate=immediate)
        record = await s._store.job(name)
        log = await job_log(s, name)
    assert record.state == JobState.STOPPED.value, log
    assert record.stop_reason == ("STOP_JOB IMMEDIATE" if immediate else "STOP_JOB"), log
    checkpoints, sequence = committed(db)
    assert 5 <= checkpoints < BIG_LINES // BIG_CHECKPOINT, log
    assert_target(db, big.rows_upto(sequence), big.bad_upto(sequence), completed=False)
    log = await restart(home, name)
    assert any(f"after checkpoint {checkpoints} (" in line for line in log), log
    assert_target(db, big.rows, big.bad)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_kill_between_completion_and_dropping_the_restart_log_loads_nothing_twice(
    tmp_path,
):
    """The last moments of a load: the module was told code 5 and the control table says the
    load completed, but the restart log is not dropped yet (the target is held locked from
    that moment on, so the kill lands there every time; a slow disk or a crash puts it there
    in real life). The restart must find the load complete and add nothing."""
    home = tmp_path / "home"
    name = "LOAD_KILLED_AT_THE_END"
    data = write_input(tmp_path / "input.txt", 2_000, [10, 700, 1_400, 1_999], seed=3)
    db = new_target(tmp_path / "target.db")
    flag, go = tmp_path / "flag", tmp_path / "go"
    parms = f"{data.path};codes={tmp_path / 'codes'};hold=close;flag={flag};go={go}"
    async with Session(home) as s:
        h = await define_load(s, name, db, parms, f"{MODULE}:RecordingFile", CHECKPOINT=500)
        await s.start_job(h, detached=True)
        pid = (await s._store.job(name)).owner_pid
        assert await wait_until(flag.exists, 60), await job_log(s, name)
        target = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            target.execute("BEGIN IMMEDIATE")  # the runner's dropping of the restart log waits
            go.touch()

            def completed() -> bool:
                with sqlite3.connect(home / "pumpkit.db", timeout=30) as store:
                    states = store.execute(
                        f'SELECT processing_state FROM "{name}" WHERE object_type = ?',
                        ("TABLE_DATA",),
                    ).fetchall()
                return states == [("C",)]

            assert await wait_until(completed, 30, interval=0.002)
            assert not await kill_runner(pid)
        finally:
            target.execute("ROLLBACK")
            target.close()
        assert has_table(db, RESTART_LOG)
        views = {v.job_name: v for v in await s.jobs()}
        assert views[name].state == JobState.NOT_RUNNING.value, views[name]
    # What the killed load left is exact (its restart log is still there).
    assert_target(db, data.rows, data.bad, completed=False)
    await restart(home, name)
    # ... and so must the restart: every record was loaded (or refused) once already.
    assert_target(db, data.rows, data.bad)


# --- 1b. a database failure mid-batch -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_database_locked_mid_load_rolls_back_repositions_and_retries(big, tmp_path):
    """The built-in DelimitedFile (read_many): once a checkpoint is committed, another
    connection holds the target's exclusive lock for 3 s; the next checkpoint's transaction
    fails after the 2 s busy timeout ("database is locked"), rolls back, the module is
    repositioned (code 4) and the checkpoint is retried."""
    home = tmp_path / "home"
    name = "LOAD_LOCKED"
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(s, name, db, str(big.path), CHECKPOINT=BIG_CHECKPOINT)
        await s.start_job(h, detached=True)
        assert await wait_until(lambda: committed(db)[0] >= 1, 60, interval=0.005)
        async with locked(db) as conn:
            (at_lock,) = conn.execute(f"SELECT max(checkpoint) FROM {RESTART_LOG}").fetchone()
            await anyio.sleep(LOCK_SECONDS)
        state = await wait_end(s, h)
        log = await job_log(s, name)
    assert state == JobState.COMPLETED, log
    failures = [line for line in log if line.startswith("Database failure")]
    assert len(failures) == 1, failures
    match = re.match(
        r"Database failure at checkpoint (\d+) \(database is locked\); repositioning the input"
        r" and retrying in 0.5 s",
        failures[0],
    )
    assert match and int(match.group(1)) == at_lock + 1, (at_lock, failures)
    print(f"\n{failures[0]}")
    assert_target(db, big.rows, big.bad)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", MODULES)
@pytest.mark.parametrize("when", ["after the first checkpoint", "before the first checkpoint"])
async def test_database_failure_repositions_the_module_with_the_right_codes(kind, when, tmp_path):
    """A recording module (class or classic entry point) notes the entry codes it gets. The
    lock is taken while the module waits at a hold point: at the third checkpoint (CHECKPOINT
    100: the failure is after a checkpoint, code 4) or at the first read (CHECKPOINT larger
    than the input: the first checkpoint fails, codes 5 then 0)."""
    home = tmp_path / "home"
    name = "LOAD_FAILED_DB"
    data = write_input(tmp_path / "input.txt", 1_000, SMALL_BAD, seed=5)
    db = new_target(tmp_path / "target.db")
    flag, go, codes = tmp_path / "flag", tmp_path / "go", tmp_path / "codes"
    after = when.startswith("after")
    hold = "checkpoint3" if after else "record1"
    parms = f"{data.path};codes={codes};hold={hold};flag={flag};go={go}"
    async with Session(home) as s:
        h = await define_load(
            s, name, db, parms, MODULES[kind], CHECKPOINT=100 if after else 100_000
        )
        await s.start_job(h, detached=True)
        assert await wait_until(flag.exists, 60), await job_log(s, name)
        async with locked(db):
            go.touch()
            await anyio.sleep(LOCK_SECONDS)
        state = await wait_end(s, h)
        log = await job_log(s, name)
    assert state == JobState.COMPLETED, log
    failures = [line for line in log if line.startswith("Database failure")]
    number = 3 if after else 1
    assert len(failures) == 1 and failures[0].startswith(
        f"Database failure at checkpoint {number} (database is locked); repositioning"
    ), failures
    seen = codes_seen(codes)
    if after:
        # 0, 99 reads, 3; 100 reads, 3; 100 reads, 3 (fails); 4; 100 reads again, 3 (again);
        # 7 more checkpoints; the read that finds the end; 5.
        assert calls_but_reads(seen) == [0, 3, 3, 3, 4, *[3] * 8, 5], seen
        assert seen.count(1) == 999 + 100 + 1, seen.count(1)
    else:
        # 0, 999 reads, the end, 3 (fails); 5 then 0 again: everything again; 3; 5.
        assert calls_but_reads(seen) == [0, 3, 5, 0, 3, 5], calls_but_reads(seen)
        assert seen.count(1) == 2 * 1_000, seen.count(1)
    assert_target(db, data.rows, data.bad)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_target_locked_as_the_load_starts_is_retried_too(tmp_path):
    """The lock taken right at the start (before the runner opens the target) and held 3 s,
    CHECKPOINT larger than the input: a database failure like any other, retried; the load
    completes exactly."""
    home = tmp_path / "home"
    name = "LOAD_LOCKED_AT_START"
    data = write_input(tmp_path / "input.txt", 1_000, SMALL_BAD, seed=5)
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(s, name, db, str(data.path), CHECKPOINT=100_000)
        async with locked(db):
            await s.start_job(h, detached=True)
            await anyio.sleep(LOCK_SECONDS)
        state = await wait_end(s, h)
        log = await job_log(s, name)
    assert state == JobState.COMPLETED, log
    assert_target(db, data.rows, data.bad)


# --- 2. modules that cannot reposition ----------------------------------------------------------


NO_REPOSITION = {
    "class without reposition": (f"{MODULE}:NoReposition", ""),
    "class raising NotImplementedError": (f"{MODULE}:RepositionNotImplemented", ""),
    "classic refusing 2 and 4": (f"{MODULE}:recording_entry", ";refuse=2,4"),
}


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("module", NO_REPOSITION)
async def test_a_module_that_cannot_reposition_ends_the_restart_without_duplicates(
    module, tmp_path
):
    """Killed after its third checkpoint (the module waits before record 301), the load is
    restarted: the module cannot reposition (code 2), the job ends STOPPED naming the code, and
    the table (no key: duplicates would show) holds exactly the three checkpoints' rows."""
    inmod, extra = NO_REPOSITION[module]
    home = tmp_path / "home"
    name = "LOAD_NO_REPOSITION"
    data = write_input(tmp_path / "input.txt", 1_000, [150], seed=7)
    db = new_target(tmp_path / "target.db", PLAIN)
    flag, go, codes = tmp_path / "flag", tmp_path / "go", tmp_path / "codes"
    parms = f"{data.path};codes={codes};hold=record301;flag={flag};go={go}{extra}"
    async with Session(home) as s:
        h = await define_load(s, name, db, parms, inmod, CHECKPOINT=100)
        await s.start_job(h, detached=True)
        assert await wait_until(flag.exists, 60), await job_log(s, name)
        assert committed(db) == (3, 300)
        assert await kill_now(s, name) == JobState.NOT_RUNNING.value
    async with Session(home) as s:
        h = await s.attach(name)
        await s.start_job(h, detached=True)
        state = await wait_end(s, h)
        log = await job_log(s, name)
        reason = await stop_reason(s, name)
        status = await s.final_status(name)
        views = {v.job_name: v for v in await s.jobs()}
    assert state == JobState.STOPPED, log
    assert views[name].state == JobState.STOPPED.value
    assert "code 2" in reason and "cannot reposition" in reason, reason
    assert any("code 2" in e for e in status.errors), status.errors
    if "classic" in module:
        assert codes_seen(codes)[-1] == 2  # the restarted module got code 2 and refused it
    assert_target(db, data.rows_upto(300), data.bad_upto(300), completed=False)
    assert committed(db) == (3, 300)  # still restartable from there


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_classic_module_refusing_code_3_ends_the_job_at_the_first_checkpoint(tmp_path):
    home = tmp_path / "home"
    name = "LOAD_NO_CHECKPOINT"
    data = write_input(tmp_path / "input.txt", 1_000)
    db = new_target(tmp_path / "target.db", PLAIN)
    codes = tmp_path / "codes"
    parms = f"{data.path};codes={codes};refuse=2,3,4"
    async with Session(home) as s:
        h = await define_load(s, name, db, parms, f"{MODULE}:recording_entry", CHECKPOINT=100)
        state, _ = await run_load(s, h)
        log = await job_log(s, name)
        reason = await stop_reason(s, name)
    assert state == JobState.STOPPED, log
    assert "code 3" in reason and "cannot reposition" in reason, reason
    assert calls_but_reads(codes_seen(codes)) == [0, 3]
    assert_target(db, set(), {}, completed=False)
    assert committed(db) == (0, 0)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_class_module_without_reposition_ends_the_job_on_a_database_failure(tmp_path):
    """Code 4 to a module that cannot reposition: the job ends, the two committed
    checkpoints' rows stay, nothing twice."""
    home = tmp_path / "home"
    name = "LOAD_NO_REPOSITION_DB"
    data = write_input(tmp_path / "input.txt", 1_000, [150], seed=7)
    db = new_target(tmp_path / "target.db", PLAIN)
    flag, go = tmp_path / "flag", tmp_path / "go"
    parms = f"{data.path};hold=checkpoint3;flag={flag};go={go}"
    async with Session(home) as s:
        h = await define_load(s, name, db, parms, f"{MODULE}:NoReposition", CHECKPOINT=100)
        await s.start_job(h, detached=True)
        assert await wait_until(flag.exists, 60), await job_log(s, name)
        async with locked(db):
            go.touch()
            await anyio.sleep(LOCK_SECONDS)
        state = await wait_end(s, h)
        log = await job_log(s, name)
        reason = await stop_reason(s, name)
    assert state == JobState.STOPPED, log
    assert any(line.startswith("Database failure at checkpoint 3") for line in log), log
    assert "code 4" in reason and "cannot reposition" in reason, reason
    assert_target(db, data.rows_upto(200), data.bad_upto(200), completed=False)


# --- 3. protocol breaks ------------------------------------------------------------------------


BREAKS = [
    ("checkpoint", "Broken", "at most 100"),
    ("checkpoint", "broken_entry", "at most 100"),
    ("body", "Broken", "63488"),
    ("body", "BrokenMany", "63488"),
    ("body", "broken_entry", "63488"),
    ("sequence3", "broken_entry", "code 3"),
    ("backwards", "Broken", "backwards"),
    ("backwards", "broken_entry", "backwards"),
]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("rule", "module", "named"), BREAKS)
async def test_a_protocol_break_ends_the_job_naming_the_rule(rule, module, named, tmp_path):
    """The break comes after the first checkpoint (at record 150, or at the second
    checkpoint): the job ends STOPPED with an error naming the rule, the first checkpoint's
    100 rows stay."""
    home = tmp_path / "home"
    name = "LOAD_BROKEN"
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(
            s, name, db, f"-;break={rule};count=1000", f"{MODULE}:{module}", CHECKPOINT=100
        )
        state, _ = await run_load(s, h)
        log = await job_log(s, name)
        status = await s.final_status(name)
        reason = await stop_reason(s, name)
    assert state == JobState.STOPPED, log
    assert named in reason, reason
    assert any(named in e for e in status.errors), status.errors
    if rule == "sequence3":
        assert "sequence number 7" in reason, reason
    rows = {(n, f"name {n}", n / 4) for n in range(1, 101)}
    assert_target(db, rows, {}, completed=False)
    assert committed(db) == (1, 100)


# --- 4. layouts and UPSERT -----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_json_lines_arrays_and_objects(tmp_path):
    lines = []
    rows = set()
    for i in range(1, 1_001):
        if i % 2:
            lines.append(msgspec.json.encode([i, f"name {i}", i / 4]))
        else:
            record = {"id": i, "name": f"name {i}"} | ({"value": i / 4} if i % 3 else {})
            lines.append(msgspec.json.encode(record))
        rows.add((i, f"name {i}", i / 4 if i % 2 or i % 3 else None))
    bad = {
        1_001: ("layout", b'{"id": 1001, "nme": "typo"}'),  # an unknown field
        1_002: ("layout", b"[1002, 2]"),  # two fields for three columns
        1_003: ("layout", b"not json at all"),
        1_004: ("layout", b'"a string"'),  # neither an array nor an object
        1_005: ("null", b'{"id": 1005, "value": 1.5}'),  # name is NOT NULL
        1_006: ("duplicate", b'[7, "again", 1]'),
    }
    lines += [line for _, line in bad.values()]
    lines.append(b'{"value": 2.5, "name": "last", "id": 1007}')
    rows.add((1_007, "last", 2.5))
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    bad = {s: (k, line + b"\n") for s, (k, line) in bad.items()}
    db = new_target(tmp_path / "target.db")
    async with Session(tmp_path / "home") as s:
        h = await define_load(
            s, "LOAD_JSON", db, str(path), "pumpkit.io.inmods:JsonLinesFile", LAYOUT="JSON",
            CHECKPOINT=300,
        )  # fmt: skip
        state, _ = await run_load(s, h)
        assert state == JobState.COMPLETED, await job_log(s, "LOAD_JSON")
    assert_target(db, rows, bad)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_msgpack_records_from_a_dump_set(tmp_path):
    source = tmp_path / "source.db"
    rows = {(i, f"name {i} ü", None if i % 7 == 0 else i / 8) for i in range(1, 50_001)}
    with contextlib.closing(sqlite3.connect(source)) as conn:
        conn.execute(KEYED.replace(" t ", " src "))
        conn.execute("CREATE TABLE other (x)")
        conn.executemany("INSERT INTO src VALUES (?, ?, ?)", sorted(rows))
        conn.executemany("INSERT INTO other VALUES (?)", [(i,) for i in range(100)])
        conn.commit()
    home = tmp_path / "home"
    # pumpkit.export_database in a process of its own, as a user's script would call it.
    script = (
        "import anyio, pumpkit, sys\n"
        "status = anyio.run(lambda: pumpkit.export_database(sys.argv[1], 'src.dmp',"
        " directory=sys.argv[2], home=sys.argv[3]))\n"
        "print(status.state, status.errors)\n"
    )
    done = await anyio.run_process(
        [sys.executable, "-c", script, str(source), str(tmp_path), str(home)], check=False
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0 and output.startswith("COMPLETED"), output
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(
            s, "LOAD_MSGPACK", db, f"{tmp_path / 'src.dmp'};table=src",
            "pumpkit.io.inmods:DumpSetRecords", LAYOUT="MSGPACK", CHECKPOINT=3_000,
        )  # fmt: skip
        state, _ = await run_load(s, h)
        log = await job_log(s, "LOAD_MSGPACK")
    assert state == JobState.COMPLETED, log
    assert_target(db, rows, {})
    assert f"Loaded {len(rows)} rows into t; 0 in the error table" in log


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_user_decoder(tmp_path):
    lines = [f"{i},name {i},{i * 25}\n".encode() for i in range(1, 501)]
    rows = {(i, f"name {i}", i / 4) for i in range(1, 501)}
    bad = {
        501: ("layout", b"# a comment line\n"),
        502: ("layout", b"502,two fields\n"),
        503: ("layout", b"503,name,not a number\n"),
    }
    path = tmp_path / "input.csv"
    path.write_bytes(b"".join(lines + [line for _, line in bad.values()]))
    db = new_target(tmp_path / "target.db")
    async with Session(tmp_path / "home") as s:
        h = await define_load(
            s, "LOAD_USER", db, str(path), LAYOUT=f"{MODULE}:decode_commas", CHECKPOINT=128
        )
        state, _ = await run_load(s, h)
        assert state == JobState.COMPLETED, await job_log(s, "LOAD_USER")
    assert_target(db, rows, bad)
    errors = query(db, f"SELECT error FROM {ERRORS} ORDER BY sequence")
    assert all("the decoder refused it" in e for (e,) in errors), errors


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_upsert_loads_the_same_file_twice_into_one_copy_with_updated_values(tmp_path):
    first = tmp_path / "first.txt"
    first.write_text("".join(f"{i}|name {i}|{i / 4}\n" for i in range(1, 501)))
    second = tmp_path / "second.txt"
    second.write_text("".join(f"{i}|renamed {i}|{i / 2}\n" for i in range(251, 751)))
    db = new_target(tmp_path / "target.db")
    async with Session(tmp_path / "home") as s:
        for n, path in enumerate([first, first, second, second]):
            h = await define_load(
                s, f"LOAD_UPSERT_{n}", db, str(path), LOAD_MODE="UPSERT", UPSERT_KEY="id",
                CHECKPOINT=100,
            )  # fmt: skip
            state, _ = await run_load(s, h)
            assert state == JobState.COMPLETED, await job_log(s, f"LOAD_UPSERT_{n}")
            if n == 1:
                assert_target(db, {(i, f"name {i}", i / 4) for i in range(1, 501)}, {})
    rows = {(i, f"name {i}", i / 4) for i in range(1, 251)}
    rows |= {(i, f"renamed {i}", i / 2) for i in range(251, 751)}
    assert_target(db, rows, {})


# --- 5. ERRLIMIT ---------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_errlimit_stops_the_job_after_a_checkpoint_restartable(tmp_path):
    """ERRLIMIT 3, five bad lines, the third in the second checkpoint: the job stops after
    that checkpoint; the rows up to it are exact, the job can be restarted from it."""
    home = tmp_path / "home"
    name = "LOAD_ERRLIMIT"
    data = write_input(tmp_path / "input.txt", 1_000, [20, 120, 170, 450, 800], seed=11)
    db = new_target(tmp_path / "target.db")
    async with Session(home) as s:
        h = await define_load(s, name, db, str(data.path), CHECKPOINT=100, ERRLIMIT=3)
        state, _ = await run_load(s, h)
        log = await job_log(s, name)
        reason = await stop_reason(s, name)
        status = await s.final_status(name)
        views = {v.job_name: v for v in await s.jobs()}
    assert state == JobState.STOPPED, log
    assert "ERRLIMIT" in reason, reason
    assert any("ERRLIMIT" in e for e in status.errors), status.errors
    assert views[name].state == JobState.STOPPED.value
    assert committed(db) == (2, 200)
    assert_target(db, data.rows_upto(200), data.bad_upto(200), completed=False)
    # Restartable: it resumes right after checkpoint 2 (and ERRLIMIT, still reached, stops
    # it again after the next checkpoint): nothing lost, nothing twice.
    async with Session(home) as s:
        h = await s.attach(name)
        assert await s.state(h) == JobState.IDLING
        await s.start_job(h, detached=True)
        state = await wait_end(s, h)
        log = await job_log(s, name)
    assert "Restarting the load after checkpoint 2 (197 rows applied)" in log, log
    assert state == JobState.STOPPED, log
    assert committed(db) == (3, 300)
    assert_target(db, data.rows_upto(300), data.bad_upto(300), completed=False)


# --- 6. pumpkit load ---------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize(("bad", "exit_code"), [((), 0), ((7, 300, 555), 5)])
async def test_pumpkit_load_command(bad, exit_code, tmp_path):
    data = write_input(tmp_path / "input.txt", 3_000, bad, seed=13)
    db = new_target(tmp_path / "target.db")
    done = await anyio.run_process(
        [
            sys.executable, "-m", "pumpkit", "load", "--database", str(db), "--table", "t",
            "--parms", str(data.path), "--checkpoint", "500", "--home", str(tmp_path / "home"),
            "--job-name", "CLI_LOAD", "--quiet",
        ],
        check=False,
    )  # fmt: skip
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == exit_code, output
    assert f"Loaded {len(data.rows)} rows into t; {len(bad)} in the error table" in output, output
    assert_target(db, data.rows, data.bad)
