"""ADD_FILE hammered while parallel workers roll files over: file numbers are handed out once.

The fault (issue 13): at PARALLEL 2, two workers that found the one file full both rolled once
ADD_FILE gave a template, and both new files were number 2. Here another session adds a file
name every few milliseconds while the export runs, while 2 or 4 workers fill files of
64 kB (two or three frames each), so rolls and ADD_FILEs cross all the time. Every run's set must hold
each number 1..N once, verify sound, and import to an exact copy; 20 runs at each degree.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from pumpkit.core.header import HEADER_SIZE, decode_header
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.errors import PumpkitError
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases

pytestmark = [pytest.mark.slow]

TABLES = 8
ROWS = 300
ADDS = 30  # at most: each is a row of the control table, which one file must hold
RUNS = 20


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hammer") / "small.db"
    with sqlite3.connect(path) as conn:
        for t in range(TABLES):
            conn.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, pad TEXT)")
            conn.executemany(
                f"INSERT INTO t{t} VALUES (?, ?)",
                ((i, f"{t:02d}-{i:05d}-" + "y" * 80) for i in range(ROWS)),
            )
    conn.close()
    return path


def _number(path: Path) -> int:
    with open(path, "rb") as fh:
        return decode_header(fh.read(HEADER_SIZE)).file_number


@pytest.mark.asyncio
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("degree", [2, 4])
async def test_add_file_hammered_while_workers_roll(
    source: Path, tmp_path: Path, degree: int, run: int
) -> None:
    home = tmp_path / "home"
    name = f"HAMMER{degree}_{run}"
    added = 0
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name=name, database=source)
        await s.add_file(h, "first.dmp", directory=str(tmp_path), filesize="64KB")
        await s.set_parameter(h, "COMPRESSION", "NONE")
        await s.set_parallel(h, degree)
        await s.start_job(h)
        async with Session(home) as other:
            h2 = await other.attach(name)
            while added < ADDS and await other.state(h2) == JobState.EXECUTING:
                try:
                    await other.add_file(h2, f"add{added:03d}.dmp", directory=str(tmp_path))
                except PumpkitError:
                    break  # the job is wrapping up: ADD_FILE is no longer valid
                added += 1
                await anyio.sleep(0.003 * (run % 4))
            await other.release(h2)
        with anyio.fail_after(60):
            while (state := await s.state(h)) not in (JobState.COMPLETED, JobState.STOPPED):
                await anyio.sleep(0.05)
        assert state == JobState.COMPLETED, "\n".join(
            t for _, _, t in await s._store.log_lines(name)
        )
        await s.release(h)

        files = sorted(tmp_path.glob("*.dmp"), key=_number)
        numbers = [_number(f) for f in files]
        assert numbers == list(range(1, len(files) + 1)), (numbers, files)
        assert len(files) >= 3, files  # the set did roll over, several times
        report = verify_paths(files)
        assert report.sound, [str(f) for f in report.faults][:5]
        assert report.files == len(files)

        target = tmp_path / "copy.db"
        hi = await s.open("IMPORT", "FULL", job_name=f"{name}_IMP", database=target)
        await s.add_file(hi, "first.dmp", directory=str(tmp_path))
        await s.start_job(hi)
        assert await s.wait_for_job(hi) == JobState.COMPLETED
    assert added >= 1
    assert compare_databases(source, target) == []
