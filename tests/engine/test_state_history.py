"""Every state the store writes for a job is an edge of the state machine, whatever happens
to the job: success, failure, STOP_JOB, STOP_JOB=IMMEDIATE, KILL_JOB, a crash and a restart,
for export, import and load jobs. The store records each state it writes
(``ControlStore.history``); these tests read that record and check it against
``pumpkit.core.states.TRANSITIONS`` and against the path each outcome must take.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import anyio
import pytest
from process_helpers import kill_runner, wait_until

from pumpkit.core.states import TRANSITIONS, JobState
from pumpkit.engine.session import Session

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

D, X, CG, C = "DEFINING", "EXECUTING", "COMPLETING", "COMPLETED"
SP, SG, S, IDLE, NR, U = "STOP PENDING", "STOPPING", "STOPPED", "IDLING", "NOT RUNNING", "UNDEFINED"
DONE = [D, X, CG, C]


def make_source(path: Path, rows: int = 60_000) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b BLOB)")
    conn.execute("CREATE TABLE u (k TEXT PRIMARY KEY, v REAL) WITHOUT ROWID")
    conn.executemany(
        "INSERT INTO t (a, b) VALUES (?, randomblob(200))", ((f"row {i}" * 3,) for i in range(rows))
    )
    conn.executemany("INSERT INTO u VALUES (?, ?)", ((f"k{i}", i / 7) for i in range(1000)))
    conn.commit()
    conn.close()
    return path


async def history(s: Session, name: str) -> list[str]:
    states = [state for _, _, state, _ in await s._store.history(name)]
    pairs = list(itertools.pairwise([U, *states]))
    illegal = [(a, b) for a, b in pairs if JobState(b) not in TRANSITIONS[JobState(a)]]
    assert illegal == [], states
    return states


async def define_export(s: Session, name: str, source: Path, directory: Path, *, level=1):
    h = await s.open("EXPORT", "FULL", job_name=name, database=str(source))
    await s.add_file(h, f"{name}%U.dmp", directory, reusefile=True)
    await s.set_parameter(h, "COMPRESSION_LEVEL", level)
    await s.set_parallel(h, 2)
    return h


async def until_state(s: Session, name: str, *states: str, timeout: float = 60) -> None:
    async def reached() -> bool:
        record = await s._store.job(name)
        return record is None or record.state in states

    assert await wait_until(reached, timeout), await s._store.job(name)


async def some_granule_done(s: Session, name: str) -> bool:
    if not await s._store.has_control_table(name):
        return True
    rows = await s._store.rows(name, object_types=["TABLE_DATA"])
    return any(r.done for r in rows)


async def test_success_failure_and_session_cancel(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src.db", 2000)
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await define_export(s, "OK", source, tmp_path)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
        assert await history(s, "OK") == DONE
        # A failure: the "dump" is not one. The job stops (through STOPPING), restartable.
        (tmp_path / "notes.txt").write_text("not a dump\n")
        h = await s.open("IMPORT", "FULL", job_name="BAD", database=str(tmp_path / "x.db"))
        await s.add_file(h, "notes.txt", tmp_path)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.STOPPED
        assert await history(s, "BAD") == [D, X, SG, S]
    # The session that runs a job in-process is cancelled: the job stops the same way.
    big = make_source(tmp_path / "big.db")
    with anyio.move_on_after(60):
        async with Session(home) as s:
            h = await define_export(s, "CANCELLED", big, tmp_path, level=19)
            await s.start_job(h)
            await wait_until(lambda: some_granule_done(s, "CANCELLED"), 30)
            s._tg.cancel_scope.cancel()  # type: ignore[union-attr]
    async with Session(home) as s:
        assert await history(s, "CANCELLED") == [D, X, SG, S]
        assert (await s._store.job("CANCELLED")).stop_reason.startswith("CANCELLED")


@pytest.mark.parametrize("immediate", [False, True], ids=["graceful", "immediate"])
async def test_stop_then_restart_to_completion(tmp_path: Path, immediate: bool) -> None:
    source = make_source(tmp_path / "src.db")
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await define_export(s, "STOPPED", source, tmp_path, level=19)
        await s.start_job(h, detached=True)
        await wait_until(lambda: some_granule_done(s, "STOPPED"), 60)
        await s.stop_job(h, immediate=immediate)
        await until_state(s, "STOPPED", S, C)
        stopped = await history(s, "STOPPED")
        if stopped[-1] == C:
            pytest.skip("the export finished before the stop reached it")
        assert stopped == ([D, X, SG, S] if immediate else [D, X, SP, SG, S])
        h = await s.attach("STOPPED")
        await s.start_job(h, detached=True)
        await until_state(s, "STOPPED", C, S)
        assert await history(s, "STOPPED") == [*stopped, IDLE, X, CG, C]


async def test_kill_job_and_a_crash_then_restart(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src.db")
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await define_export(s, "KILLED", source, tmp_path, level=19)
        await s.start_job(h, detached=True)
        await wait_until(lambda: some_granule_done(s, "KILLED"), 60)
        await s.stop_job(h, keep_master=False)
        await until_state(s, "KILLED", C)
        states = await history(s, "KILLED")
        assert states[-1] in (U, C)
        if states[-1] == U:
            assert states == [D, X, SG, U]
        # A crash: kill -9 of the job's process; attach finds it NOT RUNNING and restarts it.
        h = await define_export(s, "CRASHED", source, tmp_path, level=19)
        await s.start_job(h, detached=True)
        await wait_until(lambda: some_granule_done(s, "CRASHED"), 60)
        await kill_runner((await s._store.job("CRASHED")).owner_pid)
        assert await s.state(h) in (JobState.NOT_RUNNING, JobState.COMPLETED)
        if await s.state(h) is JobState.COMPLETED:
            pytest.skip("the export finished before the kill")
        await s.release(h)
        h = await s.attach("CRASHED")
        await s.start_job(h, detached=True)
        await until_state(s, "CRASHED", C, S)
        assert await history(s, "CRASHED") == [D, X, NR, IDLE, X, CG, C]


async def test_import_and_load_jobs_move_along_the_edges(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src.db", 5000)
    home = tmp_path / "home"
    data = tmp_path / "in.txt"
    data.write_text("".join(f"{i}|name {i}\n" for i in range(3000)))
    target = tmp_path / "copy.db"
    async with Session(home) as s:
        h = await define_export(s, "EXP", source, tmp_path)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
        h = await s.open("IMPORT", "FULL", job_name="IMP", database=str(target))
        await s.add_file(h, "EXP%U.dmp", tmp_path)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
        assert await history(s, "IMP") == DONE
        conn = sqlite3.connect(target)
        conn.execute("CREATE TABLE loaded (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
        conn.close()
        h = await s.open("LOAD", "TABLE", job_name="LOAD", database=str(target))
        await s.set_parameter(h, "TARGET_TABLE", "loaded")
        await s.set_parameter(h, "INMOD", "pumpkit.io.inmods:DelimitedFile")
        await s.set_parameter(h, "INMOD_PARMS", str(data))
        await s.set_parameter(h, "CHECKPOINT", 500)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
        # A LOAD job wraps up through COMPLETING like the others.
        assert await history(s, "LOAD") == DONE
