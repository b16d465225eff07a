"""KILL_JOB removes an export's dump files in every state where it is valid, or keeps them.

Issue 13: KILL_JOB of a stopped or NOT RUNNING export dropped the control table and left its
dump files (234 MB in the trial); only a running export's were removed. Each case here makes
an export that waits for a dump file (its one file is full), puts it in the state, kills it,
and looks at the directory: no file of the job is left, and another job's file beside them
is not touched. With KEEP_FILES the files stay, and the log says so.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from process_helpers import wait_until

from pumpkit.core.header import HEADER_SIZE, decode_header
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "src.db"
    with sqlite3.connect(path) as conn:
        for t in range(3):
            conn.execute(f"CREATE TABLE k{t} (id INTEGER PRIMARY KEY, pad TEXT)")
            conn.executemany(f"INSERT INTO k{t} VALUES (?, ?)", ((i, "k" * 90) for i in range(300)))
    conn.close()
    return path


async def _log(s: Session, name: str) -> list[str]:
    return [t for _, _, t in await s._store.log_lines(name)]


async def _waiting(s: Session, name: str) -> bool:
    return (await s._store.parameters(name)).get("WAITING_FOR") is not None


def _guid(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return decode_header(fh.read(HEADER_SIZE)).guid


async def _export_in(state: str, home: Path, source: Path, out: Path, name: str) -> None:
    """An export of two files (exp01.dmp, exp02.dmp, 40 kB each), waiting for ADD_FILE, then
    brought to ``state``."""
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name=name, database=source)
        await s.add_file(h, "exp01.dmp", directory=str(out), filesize="40KB")
        await s.add_file(h, "exp02.dmp", directory=str(out), filesize="40KB")
        await s.add_file(h, f"{name}.log", directory=str(out), filetype="LOG")
        await s.set_parameter(h, "COMPRESSION", "NONE")
        await s.start_job(h, detached=True)
        assert await wait_until(lambda: _waiting(s, name), 60, interval=0.02), await _log(s, name)
        record = await s._store.job(name)
        if state == "STOPPED":
            await s.stop_job(h)
        elif state == "NOT RUNNING":
            os.kill(record.owner_pid, signal.SIGKILL)

            async def dead() -> bool:
                return await s.state(h) == JobState.NOT_RUNNING

            assert await wait_until(dead, 60, interval=0.05)
            await s.release(h)
        else:
            await s.release(h)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("keep", [False, True], ids=["removes", "keep_files"])
@pytest.mark.parametrize("state", ["STOPPED", "NOT RUNNING", "EXECUTING"])
async def test_kill_job_of_an_export_removes_its_dump_files(
    source: Path, tmp_path: Path, state: str, keep: bool
) -> None:
    home = tmp_path / "home"
    out = tmp_path / "out"
    out.mkdir()
    name = "KILLED"
    # Another job's file beside them: KILL_JOB must not touch it.
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name="OTHER", database=source)
        await s.add_file(h, "exp03.dmp", directory=str(out))
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED
    other = (out / "exp03.dmp").read_bytes()

    await _export_in(state, home, source, out, name)
    ours = sorted(out.glob("exp0[12].dmp"))
    assert len(ours) == 2, sorted(out.iterdir())
    guid = _guid(ours[0])
    async with Session(home) as s:
        h = await s.attach(name)  # STOPPED, NOT RUNNING -> IDLING; EXECUTING stays
        if state != "EXECUTING":
            assert await s.state(h) == JobState.IDLING
        await s.stop_job(h, keep_master=False, keep_files=keep)
        assert await s._store.job(name) is None
        assert not await s._store.has_control_table(name)
    left = sorted(p.name for p in out.glob("*.dmp"))
    log = (out / f"{name}.log").read_text()
    if keep:
        assert left == sorted([*(p.name for p in ours), "exp03.dmp"]), left
        assert all(_guid(p) == guid for p in ours)
        assert "its dump files are kept (KEEP_FILES)" in log, log
        assert all(str(p) in log for p in ours), log
    else:
        assert left == ["exp03.dmp"], left
        assert f"Job {name} killed; its dump files are removed" in log, log
    assert (out / "exp03.dmp").read_bytes() == other


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["KILL_JOB", "KILL_JOB=KEEP_FILES"])
def test_kill_job_from_the_cli_of_a_stopped_export(
    source: Path, tmp_path: Path, command: str
) -> None:
    home = tmp_path / "home"
    name = "CLI_KILLED"
    anyio.run(_export_in, "STOPPED", home, source, tmp_path, name)
    before = sorted(tmp_path.glob("exp*.dmp"))
    assert before
    p = subprocess.run(
        [sys.executable, "-m", "pumpkit", "attach", name],
        input=f"{command}\nyes\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PUMPKIT_HOME": str(home)},
        timeout=60,
    )
    assert f"Job {name} killed" in p.stdout, p.stdout + p.stderr
    if command == "KILL_JOB":
        assert sorted(tmp_path.glob("exp*.dmp")) == []
    else:
        assert "kept (KEEP_FILES)" in p.stdout
        assert sorted(tmp_path.glob("exp*.dmp")) == before
