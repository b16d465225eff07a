"""Jobs in real processes: kill -9 at seeded moments, stop and SET_PARALLEL from another process,
two processes racing to restart one job.

A detached job runs in a runner process of its own (``python -m pumpkit.engine.runner``); the
tests kill it with SIGKILL, and drive the job from client processes (``process_helpers.py``
run as a script): crashes, stops and races are real processes (two interleavings of the race
are also replayed deterministically, with sessions of the test process). After every crash,
stop or race the job is restarted to completion and its result compared with the source row
by row: nothing lost, nothing repeated.

The source is ``benchmarks/gen_sqlite.py`` at scale 0.02 (about 20 MB, some 230,000 rows in
three tables, a view, a trigger, indexes; the export plans about ten granules of it). The
export's duration ``T`` (and the import's) is measured once per module; each seed kills the
job ``random.Random(seed).uniform(0, T)`` after ``start_job`` returned. A high
COMPRESSION_LEVEL makes the export long enough (one to two seconds at parallel 2) for kills to
land before the data, inside granules, between them and in the completing phase, without
making the data (and the comparisons) big.
"""

from __future__ import annotations

import concurrent.futures
import gc
import random
import re
import sqlite3
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from process_helpers import Client, kill_runner, processes_left, wait_until

import pumpkit
from pumpkit.core.states import JobState
from pumpkit.core.status import StatusMask
from pumpkit.engine.progress import pid_alive
from pumpkit.engine.session import Session
from pumpkit.errors import InvalidStateError, JobHeldError
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_sqlite import generate

pytestmark = [pytest.mark.slow]

SCALE = 0.02
SEEDS = range(20)
DEGREE = 2
EXPORT_LEVEL = 17  # zstd level of the killed exports: about a second at parallel 2
SLOW_LEVEL = 19  # for the tests that act on a running job from another process
MIN_MID_JOB = 10  # of the 20 kills of each operation, at least this many must hit a running job
FINAL = (JobState.COMPLETED, JobState.STOPPED, JobState.NOT_RUNNING, JobState.UNDEFINED)


# --- the source, the reference dump and the measured durations -------------------------------------


@dataclass(frozen=True)
class Baseline:
    source: Path
    dumps: tuple[tuple[Path, ...], ...]  # a one-file set, and a set of several files (FILESIZE)
    export_seconds: float  # start_job(detached=True) returned -> COMPLETED, parallel 2
    import_seconds: float


@dataclass(frozen=True)
class Landing:
    """Where a kill landed, as the control store tells right after it."""

    seed: int
    delay: float
    state: str  # the jobs view's state: NOT RUNNING (mid-job) or COMPLETED
    done: int  # TABLE_DATA granules complete
    running: int  # TABLE_DATA granules in flight
    total: int

    @property
    def mid_job(self) -> bool:
        return self.state == JobState.NOT_RUNNING.value


def run_async(fn, *args):
    """Run ``fn(*args)`` in an event loop of its own thread (for module-scoped fixtures)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


async def define_export(
    s, name, source, directory, template, *, level, degree=DEGREE, filesize=None
):
    h = await s.open("EXPORT", "FULL", job_name=name, database=source)
    await s.add_file(h, template, directory, filesize)
    await s.set_parallel(h, degree)
    await s.set_parameter(h, "COMPRESSION_LEVEL", level)
    return h


async def define_import(s, name, dump, target, *, degree=DEGREE):
    h = await s.open("IMPORT", "FULL", job_name=name, database=target)
    for path in dump:
        await s.add_file(h, path.name, path.parent)
    await s.set_parallel(h, degree)
    return h


async def job_log(s, name) -> list[str]:
    return [text for _, _, text in await s._store.log_lines(name)]


async def wait_completed(s, h) -> None:
    """WAIT_FOR_JOB, and the job must complete. A short detached job may end before the call,
    and Table 6-1 refuses WAIT_FOR_JOB in COMPLETED: then its state is what counts."""
    name = s.job_name(h)
    try:
        state = await s.wait_for_job(h)
    except InvalidStateError:
        state = await s.state(h)
        await s.release(h)
    assert state == JobState.COMPLETED, await job_log(s, name)


async def run_detached(s, h) -> float:
    """Start the job in its own process and wait for it; the seconds from start_job's return
    to the job's end."""
    name = s.job_name(h)
    await s.start_job(h, detached=True)
    started = time.monotonic()

    async def ended() -> bool:
        return await s.state(h) in FINAL

    assert await wait_until(ended, 300, interval=0.01)
    seconds = time.monotonic() - started
    assert await s.state(h) == JobState.COMPLETED, await job_log(s, name)
    await s.release(h)
    return seconds


async def measure(source: Path, directory: Path) -> Baseline:
    home = directory / "home"
    async with Session(home) as s:
        export_seconds = []
        for i, filesize in enumerate((None, "3MB")):
            h = await define_export(
                s, f"BASE_EXPORT_{i}", source, directory, f"base{i}_%U.dmp",
                level=EXPORT_LEVEL, filesize=filesize,
            )  # fmt: skip
            export_seconds.append(await run_detached(s, h))
        dumps = tuple(tuple(sorted(directory.glob(f"base{i}_*.dmp"))) for i in range(2))
        assert len(dumps[0]) == 1 and len(dumps[1]) >= 2, dumps
        import_seconds = []
        for i, dump in enumerate(dumps):
            h = await define_import(s, f"BASE_IMPORT_{i}", dump, directory / f"base{i}.db")
            import_seconds.append(await run_detached(s, h))
    for i in range(2):
        assert compare_databases(source, directory / f"base{i}.db") == [], "no crash, yet wrong"
    # Each T is the shorter of two runs, so that most kills land while the job runs even
    # when the machine is busier during the measurement than during the kills.
    return Baseline(source, dumps, min(export_seconds), min(import_seconds))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Baseline:
    directory = tmp_path_factory.mktemp("baseline")
    source = directory / "source.db"
    generate(source, SCALE)
    return run_async(measure, source, directory)


@pytest.fixture(scope="module")
def kills() -> dict[str, dict[int, Landing]]:
    return {"EXPORT": {}, "IMPORT": {}}


# --- kill, restart, compare --------------------------------------------------------------------


async def granule_counts(s, name) -> tuple[int, int, int]:
    """(complete, in flight, all) TABLE_DATA granules of the job's control table."""
    if not await s._store.has_control_table(name):
        return 0, 0, 0
    rows = await s._store.rows(name, object_types=["TABLE_DATA"])
    done = sum(r.processing_state == "C" for r in rows)
    running = sum(r.processing_state == "R" for r in rows)
    return done, running, len(rows)


def _proc_stat(pid: int) -> str:
    """What /proc says of ``pid`` (for a failure's message: which process holds it now)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(errors="replace")[:200]
    except OSError as exc:
        return repr(exc)


async def kill_after(s, name: str, delay: float, seed: int) -> Landing:
    """SIGKILL the job's runner ``delay`` seconds from now; what the store shows after it."""
    pid = (await s._store.job(name)).owner_pid
    assert pid is not None
    await anyio.sleep(delay)
    orphans = await kill_runner(pid)
    assert not orphans, f"processes of the killed runner {pid} still run: {orphans}"
    record = await s._store.job(name)
    assert record is not None, await job_log(s, name)
    done, running, total = await granule_counts(s, name)
    views = {v.job_name: v for v in await s.jobs()}
    if record.state == JobState.COMPLETED.value:
        # The kill came too late: the job had completed (its view row is gone with its
        # control table, or still says COMPLETED).
        assert name not in views or views[name].state == JobState.COMPLETED.value
        return Landing(seed, delay, JobState.COMPLETED.value, done, running, total)
    view = views.get(name)
    assert view is not None, f"job {name} missing from the jobs view: {record}"
    assert view.state == JobState.NOT_RUNNING.value, (
        view,
        pid,
        pid_alive(pid),
        _proc_stat(pid),
        await job_log(s, name),
    )
    assert view.owner_alive is False, view
    assert view.owner_pid == pid, view
    return Landing(seed, delay, view.state, done, running, total)


async def restart_to_completion(home: Path, name: str) -> None:
    """Attach to a NOT RUNNING job (-> IDLING), start it detached, wait: COMPLETED, once."""
    async with Session(home) as s:
        h = await s.attach(name)
        assert await s.state(h) == JobState.IDLING
        await s.start_job(h, detached=True)
        pid = (await s._store.job(name)).owner_pid
        await wait_completed(s, h)
        record = await s._store.job(name)
        assert record.restart_count == 1, record
    left = await processes_left(pid)
    assert not left, f"the restarted runner {pid} left processes behind: {left}"


async def import_and_compare(source: Path, dump: list[Path], home: Path, target: Path) -> None:
    report = verify_paths(dump)
    assert report.sound, [str(f) for f in report.faults]
    status = await pumpkit.import_dump(dump, target, home=home, parallel=DEGREE)
    assert status.state == "COMPLETED", status.errors
    assert compare_databases(source, target) == []


def assert_no_markers(target: Path) -> None:
    with sqlite3.connect(target) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert not [n for n in names if n.startswith("pumpkit_")], names


def summary(landings: dict[int, Landing]) -> str:
    return "\n".join(
        f"seed {x.seed:2d}: kill at {x.delay:.3f} s -> {x.state:11s}"
        f" granules {x.done}/{x.total} done, {x.running} in flight"
        for x in sorted(landings.values(), key=lambda x: x.seed)
    )


# --- 1. kill -9 at seeded moments ---------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("seed", SEEDS)
async def test_export_killed_at_a_seeded_moment_restarts_to_an_exact_dump(
    seed, baseline, kills, tmp_path
):
    delay = random.Random(seed).uniform(0, baseline.export_seconds)
    home = tmp_path / "home"
    name = f"EXPORT_KILLED_{seed:02d}"
    async with Session(home) as s:
        h = await define_export(
            s, name, baseline.source, tmp_path, "exp%U.dmp",
            level=EXPORT_LEVEL, filesize="3MB" if seed % 2 else None,
        )  # fmt: skip
        await s.start_job(h, detached=True)
        landing = await kill_after(s, name, delay, seed)
    kills["EXPORT"][seed] = landing
    if landing.mid_job:
        await restart_to_completion(home, name)
    dump = sorted(tmp_path.glob("exp*.dmp"))
    await import_and_compare(baseline.source, dump, home, tmp_path / "copy.db")


def test_export_kills_landed_mid_job(kills):
    landings = kills["EXPORT"]
    print(f"\nexport kills:\n{summary(landings)}")
    assert sorted(landings) == list(SEEDS), "run the whole module: every seed must have run"
    mid = sum(landing.mid_job for landing in landings.values())
    assert mid >= MIN_MID_JOB, summary(landings)


@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("seed", SEEDS)
async def test_import_killed_at_a_seeded_moment_restarts_to_an_exact_copy(
    seed, baseline, kills, tmp_path
):
    delay = random.Random(seed).uniform(0, baseline.import_seconds)
    home = tmp_path / "home"
    name = f"IMPORT_KILLED_{seed:02d}"
    target = tmp_path / "copy.db"
    async with Session(home) as s:
        h = await define_import(s, name, baseline.dumps[seed % 2], target)
        await s.start_job(h, detached=True)
        landing = await kill_after(s, name, delay, seed)
    kills["IMPORT"][seed] = landing
    if landing.mid_job:
        await restart_to_completion(home, name)
    assert compare_databases(baseline.source, target) == []
    assert_no_markers(target)


def test_import_kills_landed_mid_job(kills):
    landings = kills["IMPORT"]
    print(f"\nimport kills:\n{summary(landings)}")
    assert sorted(landings) == list(SEEDS), "run the whole module: every seed must have run"
    mid = sum(landing.mid_job for landing in landings.values())
    assert mid >= MIN_MID_JOB, summary(landings)


# --- 2. stop from another process ---------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("operation", ["EXPORT", "IMPORT"])
@pytest.mark.parametrize("mode", ["graceful", "immediate"])
async def test_stop_from_another_process_then_restart(operation, mode, baseline, tmp_path):
    home = tmp_path / "home"
    name = f"{operation}_STOPPED_{mode.upper()}"
    target = tmp_path / "copy.db"
    go = tmp_path / "go"
    async with Client("stop", home, name, go, mode) as client, Session(home) as s:
        await client.wait_ready()
        if operation == "EXPORT":
            h = await define_export(
                s, name, baseline.source, tmp_path, "exp%U.dmp", level=SLOW_LEVEL
            )
        else:
            h = await define_import(s, name, baseline.dumps[0], target)
        await s.start_job(h, detached=True)
        pid = (await s._store.job(name)).owner_pid
        # Mid-job, the other process stops the job: once an export granule is done (the
        # export is slow), once the import's data phase began (the import is fast).
        started = _some_done if operation == "EXPORT" else _some_started
        assert await wait_until(lambda: started(s, name), 60), await job_log(s, name)
        go.touch()
        answer = await client.finish()
        assert answer.get("ok"), (answer, client.stderr[-3000:])
        assert answer["state"] == JobState.STOPPED.value, answer
        record = await s._store.job(name)
        log = await job_log(s, name)
        assert record.state == JobState.STOPPED.value, log
        done, running, total = await granule_counts(s, name)
        print(f"\nstopped with {done}/{total} granules done, {running} in flight")
        if operation == "EXPORT":
            assert done < total, f"the stop came after the last granule ({done}/{total}): {log}"
        left = await processes_left(pid)
        assert not left, f"the stopped runner {pid} left processes behind: {left}"
        views = {v.job_name: v for v in await s.jobs()}
        assert views[name].state == JobState.STOPPED.value, views[name]
    await restart_to_completion(home, name)
    if operation == "EXPORT":
        dump = sorted(tmp_path.glob("exp*.dmp"))
        verify = await anyio.run_process(
            [sys.executable, "-m", "pumpkit", "verify", *map(str, dump)], check=False
        )
        assert verify.returncode == 0, (verify.stdout + verify.stderr).decode(errors="replace")
        await import_and_compare(baseline.source, dump, home, target)
    else:
        assert compare_databases(baseline.source, target) == []
        assert_no_markers(target)
    # Last, so that a wrong stop does not hide whether the restart is exact: the job stopped
    # the way it was asked to, not by an error (a graceful stop lets workers finish).
    reason = "STOP_JOB IMMEDIATE" if mode == "immediate" else "STOP_JOB"
    assert record.stop_reason == reason, "\n".join(log)
    if mode == "graceful":
        assert running == 0, f"a graceful stop lets workers finish: {running} in flight"


async def _some_done(s, name) -> bool:
    done, _, _ = await granule_counts(s, name)
    return done > 0


async def _some_started(s, name) -> bool:
    done, running, _ = await granule_counts(s, name)
    return done + running > 0


# --- 3. SET_PARALLEL from another process ------------------------------------------------------


async def _busy(s, h) -> int | None:
    """WORKER rows WORKING now, or None once the job no longer runs."""
    try:
        status = await s.get_status(h, StatusMask.JOB_STATUS)
    except InvalidStateError:
        return None
    if status.state not in (JobState.EXECUTING.value, JobState.COMPLETING.value):
        return None
    return sum(w.state == "WORKING" for w in status.workers)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_set_parallel_from_another_process_changes_the_busy_workers(baseline, tmp_path):
    home = tmp_path / "home"
    name = "EXPORT_PARALLEL"
    go = tmp_path / "go"
    async with Client("parallel", home, name, go, "2") as client, Session(home) as s:
        await client.wait_ready()
        h = await define_export(
            s, name, baseline.source, tmp_path, "exp%U.dmp", level=SLOW_LEVEL, degree=1
        )
        await s.start_job(h, detached=True)
        before: list[int] = []
        # Before the change: from the first busy worker on, until a granule is done and the
        # worker is busy with the next one (a hand-over, where a second worker would show).
        done_at_first = None
        handed_over = False
        while not handed_over:
            busy = await _busy(s, h)
            assert busy is not None, f"the job ended before SET_PARALLEL: {await job_log(s, name)}"
            before.append(busy)
            done, _, _ = await granule_counts(s, name)
            if busy and done_at_first is None:
                done_at_first = done
            elif busy and done_at_first is not None and done > done_at_first:
                handed_over = True
            await anyio.sleep(0.01)
        done_at_change, _, total = await granule_counts(s, name)
        go.touch()
        answer = await client.finish()
        assert answer.get("ok"), (answer, client.stderr[-3000:])
        # After the change: two workers busy at the same moment.
        after: list[int] = []
        while (busy := await _busy(s, h)) is not None:
            after.append(busy)
            if busy >= 2:
                break
            await anyio.sleep(0.01)
        log = await job_log(s, name)
        print(
            f"\nbusy workers seen before SET_PARALLEL: {sorted(set(before))} ({len(before)} polls),"
            f" after: {sorted(set(after))}; {done_at_change}/{total} granules done at the change"
        )
        assert max(before) == 1, f"at parallel 1, busy workers seen: {sorted(set(before))}"
        assert max(after, default=0) == 2, (
            f"after SET_PARALLEL 2 from another process, busy workers seen: {sorted(set(after))}"
            f" ({done_at_change}/{total} granules were done at the change): {log}"
        )
        assert "Degree of parallelism set to 2" in log
        await wait_completed(s, h)
        assert (await s._store.job(name)).degree == 2
    assert total >= 4, f"the job had only {total} granules"
    assert verify_paths(sorted(tmp_path.glob("exp*.dmp"))).sound


# --- 4. two processes racing to restart one job ------------------------------------------------


async def crashed_export(home: Path, source: Path, directory: Path, name: str) -> None:
    """An export killed (SIGKILL) once a granule of it is done: NOT RUNNING."""
    async with Session(home) as s:
        h = await define_export(s, name, source, directory, "exp%U.dmp", level=EXPORT_LEVEL)
        await s.start_job(h, detached=True)
        pid = (await s._store.job(name)).owner_pid
        assert await wait_until(lambda: _some_done(s, name), 60), await job_log(s, name)
        assert not await kill_runner(pid)
        assert await s.state(h) == JobState.NOT_RUNNING, await job_log(s, name)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_two_processes_racing_to_restart_one_job(baseline, tmp_path):
    home = tmp_path / "home"
    name = "EXPORT_RACED"
    go = tmp_path / "go"
    await crashed_export(home, baseline.source, tmp_path, name)
    async with (
        Client("start", home, name, go) as first,
        Client("start", home, name, go) as second,
    ):
        await first.wait_ready()
        await second.wait_ready()
        go.touch()  # both attach and start_job(detached=True) at once
        answers = [await first.finish(), await second.finish()]
    stderr = first.stderr[-2000:] + second.stderr[-2000:]
    print(f"\nrace: {answers}")
    winners = [a for a in answers if a.get("ok")]
    losers = [a for a in answers if not a.get("ok")]
    assert len(winners) == 1, (answers, stderr)
    async with Session(home) as s:
        h = await s.attach(name)
        await wait_completed(s, h)
        record = await s._store.job(name)
        log = await job_log(s, name)
    assert record.restart_count == 1, record
    assert sum(line.startswith(f"Starting {name}:") for line in log) == 2, log
    runners = (home / "runners" / f"{name}.out").read_text(errors="replace")
    assert runners.count("another process started it") <= 1, runners
    dump = sorted(tmp_path.glob("exp*.dmp"))
    await import_and_compare(baseline.source, dump, home, tmp_path / "copy.db")
    # The loser is told, with a pumpkit error, that another session or process started the job.
    (loser,) = losers
    assert loser.get("error") == "JobHeldError", loser
    assert re.search(r"another (session|process)", loser["message"]), loser


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_start_job_of_a_job_another_session_started_says_so(baseline, tmp_path):
    """The interleaving of the race where both attach, one starts, then the other starts."""
    home = tmp_path / "home"
    name = "EXPORT_STARTED_TWICE"
    await crashed_export(home, baseline.source, tmp_path, name)
    async with Session(home) as a, Session(home) as b:
        ha = await a.attach(name)
        hb = await b.attach(name)
        await a.start_job(ha, detached=True)
        with pytest.raises(JobHeldError) as raised:
            await b.start_job(hb, detached=True)
        await wait_completed(a, ha)
    assert re.search(r"another (session|process)", str(raised.value)), str(raised.value)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_two_sessions_attaching_to_a_crashed_job_at_once_both_attach(baseline, tmp_path):
    """The interleaving of the race where both read the NOT RUNNING job, then both try to
    move it to IDLING: the second finds it IDLING, a state ATTACH is valid in.

    Made deterministic in one process: session ``b``'s store lets session ``a`` attach
    between ``b``'s read of the job and ``b``'s compare-and-set.
    """
    home = tmp_path / "home"
    name = "EXPORT_ATTACHED_TWICE"
    await crashed_export(home, baseline.source, tmp_path, name)
    async with Session(home) as a, Session(home) as b:
        move = b._store.move
        raced = []

        async def a_attaches_first(job_name, expect, *path, **fields):
            if not raced:
                raced.append(await a.attach(name))
            return await move(job_name, expect, *path, **fields)

        b._store.move = a_attaches_first
        try:
            hb = await b.attach(name)
        finally:
            b._store.move = move
        assert raced, "session a did not attach in between"
        assert await b.state(hb) == JobState.IDLING
        # Two sessions are attached: one of them leaving must not stop the job (the last
        # DETACH of an IDLING job makes it STOPPED) under the other one.
        await a.release(raced[0])
        assert await b.state(hb) == JobState.IDLING, await b.jobs()
        await b.start_job(hb, detached=True)
        await wait_completed(b, hb)


# --- the runner's Popen ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_detached_start_leaves_no_running_popen_behind(tmp_path):
    source = tmp_path / "small.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(str(i),) for i in range(1000)])
    conn.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Session(tmp_path / "home") as s:
            h = await s.open("EXPORT", "FULL", job_name="SMALL", database=source)
            await s.add_file(h, "small.dmp", tmp_path)
            await s.start_job(h, detached=True)
            gc.collect()
            await wait_completed(s, h)
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    # Under this project's warnings-as-errors (and python -X dev) the dropped Popen of a
    # runner that still runs is an error: "subprocess N is still running".
    assert leaks == [], leaks
