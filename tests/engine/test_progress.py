"""Whether a job's owner is alive: the answer for processes that died and were reaped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pumpkit.engine.progress import pid_alive


def test_a_live_process_is_alive_and_a_zombie_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
    finally:
        child.kill()
    # Killed, not yet reaped: a zombie.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


def test_a_process_reaped_between_the_signal_and_the_proc_read_is_not_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race that made a killed runner's job show EXECUTING: ``kill(pid, 0)`` still saw the
    zombie, then its parent reaped it before ``/proc/pid/stat`` was read."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    monkeypatch.setattr(os, "kill", lambda pid, sig: None)  # the signal that still succeeded
    assert not pid_alive(child.pid)


@pytest.mark.asyncio
async def test_status_of_a_job_that_drops_its_control_table_meanwhile(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI met: the control table was there when job_status looked for it and gone
    (the job completed) when it read its rows; the final figures answer instead."""
    import sqlite3

    import pumpkit
    from pumpkit.engine.progress import job_status
    from pumpkit.io.store import open_store

    source = tmp_path / "src.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    conn.commit()
    conn.close()
    home = tmp_path / "home"
    status = await pumpkit.export_database(
        source, "s%U.dmp", directory=tmp_path, home=home, job_name="RACE"
    )
    assert status.state == "COMPLETED"
    store = await open_store(home)
    try:
        answers = iter([True])
        real = store.has_control_table

        async def stale(name: str) -> bool:
            return next(answers, None) or await real(name)

        monkeypatch.setattr(store, "has_control_table", stale)
        raced = await job_status(store, "RACE", pumpkit.StatusMask.ALL, after=0)
    finally:
        await store.close()
    assert raced.state == "COMPLETED"
    assert raced.completed_rows == 100
