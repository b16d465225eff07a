"""A full disk is a wait, not a failure; a set may span directories.

Issue 13: exporting into a directory on an 8 MB file system stopped the job with "No space
left on device", and neither a restart nor ADD_FILE into a directory with room helped. Now
the writer asks the file system for a frame's room (and its file's INDEX and END) before it
writes, so a full disk is found with nothing half-written; the job waits with the reason in
its status and log; ADD_FILE in another directory goes on in a new file there; space freed
plus CONTINUE goes on in place.

Each test mounts its own 8 MB tmpfs (root only: it skips with the reason otherwise) and fills
5 MB of it, so the export of a source of about 5 MB of incompressible rows runs out of room.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from process_helpers import wait_until

from pumpkit.cli.main import main as cli_main
from pumpkit.core.header import HEADER_SIZE, decode_header
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nospace") / "src.db"
    with sqlite3.connect(path) as conn:
        for t in range(4):
            conn.execute(f"CREATE TABLE b{t} (id INTEGER PRIMARY KEY, blob BLOB)")
            conn.executemany(
                f"INSERT INTO b{t} VALUES (?, ?)", ((i, os.urandom(1200)) for i in range(1000))
            )
    conn.close()
    return path


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs with 5 MB of it taken by a filler file (``small / "filler"``)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (.ci/run runs as root)")
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with open(where / "filler", "wb") as fh:
            fh.write(b"\xff" * (5 << 20))
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def _log(s: Session, name: str) -> list[str]:
    return [t for _, _, t in await s._store.log_lines(name)]


async def _waiting_for(s: Session, name: str) -> str | None:
    value = (await s._store.parameters(name)).get("WAITING_FOR")
    return None if value is None else str(value)


def _number(path: Path) -> int:
    with open(path, "rb") as fh:
        return decode_header(fh.read(HEADER_SIZE)).file_number


async def _start(
    s: Session, name: str, source: Path, where: Path, template: str, degree: int
) -> int:
    h = await s.open("EXPORT", "FULL", job_name=name, database=source)
    await s.add_file(h, template, directory=str(where))
    await s.add_file(h, f"{name}.log", directory=str(where.parent), filetype="LOG")
    await s.set_parameter(h, "COMPRESSION", "NONE")
    await s.set_parallel(h, degree)
    await s.start_job(h)

    async def waiting() -> bool:
        return await _waiting_for(s, name) is not None or await s.state(h) != JobState.EXECUTING

    assert await wait_until(waiting, 60, interval=0.02), await _log(s, name)
    assert await s.state(h) == JobState.EXECUTING, await _log(s, name)
    reason = await _waiting_for(s, name)
    assert reason is not None and "no room for dump file" in reason, reason
    assert "No space left on device (ENOSPC)" in reason, reason
    log = await _log(s, name)
    assert any(t.startswith("Waiting: no room for dump file") for t in log), log
    return h


async def _finish(s: Session, h: int, name: str) -> None:
    with anyio.fail_after(60):
        while (state := await s.state(h)) not in (JobState.COMPLETED, JobState.STOPPED):
            await anyio.sleep(0.05)
    assert state == JobState.COMPLETED, await _log(s, name)
    await s.release(h)


async def _import(s: Session, name: str, templates: list[Path], target: Path) -> None:
    hi = await s.open("IMPORT", "FULL", job_name=f"{name}_IMP", database=target)
    for t in templates:
        # Absolute names: each in its own directory, the import's directory being elsewhere.
        await s.add_file(hi, str(t), directory=str(target.parent))
    await s.start_job(hi)
    assert await s.wait_for_job(hi) == JobState.COMPLETED, await _log(s, f"{name}_IMP")


@pytest.mark.asyncio
@pytest.mark.timeout(180)
@pytest.mark.parametrize("degree", [1, 2])
async def test_a_full_disk_waits_and_add_file_elsewhere_finishes_the_set(
    source: Path, small: Path, tmp_path: Path, degree: int
) -> None:
    home = tmp_path / "home"
    big = tmp_path / "big"
    big.mkdir()
    name = f"NOSPACE_ADD{degree}"
    async with Session(home) as s:
        h = await _start(s, name, source, small, "one%U.dmp", degree)
        async with Session(home) as other:
            h2 = await other.attach(name)
            await other.add_file(h2, str(big / "more%U.dmp"))
            await other.release(h2)
        await _finish(s, h, name)

        ones = sorted(small.glob("one*.dmp"))
        mores = sorted(big.glob("more*.dmp"))
        assert ones and mores, (ones, mores)
        files = sorted([*ones, *mores], key=_number)
        assert [_number(f) for f in files] == list(range(1, len(files) + 1))
        report = verify_paths(files)
        assert report.sound, [str(f) for f in report.faults][:5]
        # ls and verify take the set's files from the list given, across directories.
        assert cli_main(["verify", *map(str, files)]) == 0
        assert cli_main(["ls", str(ones[0]), str(mores[0])]) == 0
        target = tmp_path / "copy.db"
        await _import(s, name, [small / "one%U.dmp", big / "more%U.dmp"], target)
    assert compare_databases(source, target) == []
    log = (tmp_path / f"{name}.log").read_text()
    assert "Waiting: no room for dump file" in log and "successfully completed" in log


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_a_full_disk_waits_and_space_freed_with_continue_goes_on_in_place(
    source: Path, small: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    name = "NOSPACE_CONT"
    async with Session(home) as s:
        h = await _start(s, name, source, small, "only.dmp", 1)
        before = (small / "only.dmp").stat().st_size
        (small / "filler").unlink()  # space freed ...
        await s.continue_job(h)  # ... and CONTINUE
        await _finish(s, h, name)
        log = await _log(s, name)
        assert "CONTINUE: the writes waiting for room try the dump file again" in log, log
        assert sorted(p.name for p in small.iterdir()) == ["only.dmp"]
        assert (small / "only.dmp").stat().st_size > before
        assert verify_paths([small / "only.dmp"]).sound
        target = tmp_path / "copy.db"
        await _import(s, name, [small / "only.dmp"], target)
    assert compare_databases(source, target) == []


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_a_job_waiting_on_a_full_disk_stops_and_restarts_once_there_is_room(
    source: Path, small: Path, tmp_path: Path
) -> None:
    """A stop while it waits leaves the file at its last durable point; a restart with room
    (the filler gone) reopens it there and completes."""
    home = tmp_path / "home"
    name = "NOSPACE_STOP"
    async with Session(home) as s:
        h = await _start(s, name, source, small, "only.dmp", 1)
        await s.stop_job(h)
        assert (await s._store.job(name)).state == JobState.STOPPED.value
        (small / "filler").unlink()
        h = await s.attach(name)
        await s.start_job(h)
        assert await s.wait_for_job(h) == JobState.COMPLETED, await _log(s, name)
        assert verify_paths([small / "only.dmp"]).sound
        target = tmp_path / "copy.db"
        await _import(s, name, [small / "only.dmp"], target)
    assert compare_databases(source, target) == []
