"""Several workers find the one dump file full at once; ADD_FILE lets them all go on.

The bug this pins down: with PARALLEL above 1 and a single file, two workers that both found
the file full both rolled once ADD_FILE gave a ``%U`` template, and both new files got the
number 2 (verify: "file number 2 twice in the set"). File numbers are now handed out by the
writer when a file is created, and a worker that finds no room waits outside the writer.

The source is small (eight tables of one granule each, about 30 kB of rows apiece, exported
with COMPRESSION NONE), so that with a FILESIZE of 64 kB the only file fills while every
worker holds a granule. ADD_FILE comes from another session on the same control store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from process_helpers import wait_until

from pumpkit.core.header import HEADER_SIZE, decode_header
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases, table_row_counts

pytestmark = [pytest.mark.slow]

TABLES = 8
ROWS = 300
FILESIZE = "64KB"
RUNS = 10  # per degree: 20 exports, imports and comparisons in all


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parallel_full") / "small.db"
    with sqlite3.connect(path) as conn:
        for t in range(TABLES):
            conn.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, pad TEXT, n REAL)")
            conn.executemany(
                f"INSERT INTO t{t} VALUES (?, ?, ?)",
                ((i, f"{t:02d}-{i:05d}-" + "x" * 80, i / 7) for i in range(ROWS)),
            )
    conn.close()
    return path


async def _log(s: Session, name: str) -> list[str]:
    return [t for _, _, t in await s._store.log_lines(name)]


@pytest.mark.asyncio
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("degree", [2, 4])
async def test_parallel_workers_wait_for_add_file_and_number_files_once(
    source: Path, tmp_path: Path, degree: int, run: int
) -> None:
    home = tmp_path / "home"
    name = f"PFULL{degree}_{run}"
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name=name, database=source)
        await s.add_file(h, "one.dmp", directory=str(tmp_path), filesize=FILESIZE)
        await s.set_parameter(h, "COMPRESSION", "NONE")
        await s.set_parallel(h, degree)
        await s.start_job(h)

        async def waiting() -> bool:
            return any(t.startswith("Waiting:") for t in await _log(s, name)) or (
                await s.state(h) not in (JobState.EXECUTING, JobState.DEFINING)
            )

        assert await wait_until(waiting, 30, interval=0.02), await _log(s, name)
        assert await s.state(h) == JobState.EXECUTING, await _log(s, name)
        # Let the other workers run into the full file too.
        await anyio.sleep(0.2)
        async with Session(home) as other:
            h2 = await other.attach(name)
            await other.add_file(h2, "more%U.dmp", directory=str(tmp_path))
            await other.detach(h2)
        with anyio.fail_after(30):
            state = await s.wait_for_job(h)
        log = await _log(s, name)
        assert state == JobState.COMPLETED, log
        assert "A dump file was added: the job goes on" in log, log

        files = [tmp_path / "one.dmp", *sorted(tmp_path.glob("more*.dmp"))]
        assert len(files) >= 2, (files, log)
        numbers = []
        for f in files:
            with open(f, "rb") as fh:
                numbers.append(decode_header(fh.read(HEADER_SIZE)).file_number)
        assert sorted(numbers) == list(range(1, len(files) + 1)), (numbers, files)
        report = verify_paths(files)
        assert report.sound, [str(f) for f in report.faults]
        assert report.files == len(files)

        target = tmp_path / "copy.db"
        hi = await s.open("IMPORT", "FULL", job_name=f"{name}_IMP", database=target)
        await s.add_file(hi, "one.dmp", directory=str(tmp_path))
        await s.start_job(hi)
        assert await s.wait_for_job(hi) == JobState.COMPLETED, await _log(s, f"{name}_IMP")
    assert table_row_counts(target) == table_row_counts(source)
    assert compare_databases(source, target) == []
