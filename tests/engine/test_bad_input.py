"""Bad input: each mistake gives a clear error, and nothing is left half-done and unmarked.

For every case the test checks the exception class (or, for errors met by a running job, the
job's final state and its error lines), that the message names the thing at fault (the file,
the table, the directory, the valid values), that the control store still tells the truth
about the job, and that no file is left that a user could take for a good dump.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import anyio
import pytest

import pumpkit
import pumpkit.io.store.sqlite as sqlite_store
from pumpkit.io.dumpset.verify import verify_paths

# --- helpers -----------------------------------------------------------------------------------


def make_database(path: Path, *, tables: int = 1, rows: int = 300, width: int = 20) -> None:
    """A small database: ``tables`` tables t0, t1, ... of ``rows`` rows of random text."""
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    conn = sqlite3.connect(path)
    try:
        for k in range(tables):
            conn.execute(f"CREATE TABLE t{k} (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)")
            conn.executemany(
                f"INSERT INTO t{k} (name, n) VALUES (?, ?)",
                [("".join(rng.choice(alphabet) for _ in range(width)), i) for i in range(rows)],
            )
        conn.commit()
    finally:
        conn.close()


def schema_and_counts(path: Path) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    """``sqlite_master`` and the row count of every table, to compare before and after."""
    conn = sqlite3.connect(path)
    try:
        master = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        counts = {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for (type_, name, _, _) in master
            if type_ == "table"
        }
    finally:
        conn.close()
    return master, counts


def user_tables(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
    finally:
        conn.close()


async def job_view(home: Path, job_name: str) -> pumpkit.JobView | None:
    async with pumpkit.Session(home=home) as s:
        return next((v for v in await s.jobs() if v.job_name == job_name), None)


def assert_stopped_with(status: pumpkit.Status, *needles: str) -> str:
    """The job stopped on an error whose line holds every needle; returns that line."""
    assert status.state == "STOPPED", (status.state, status.errors)
    assert status.errors, status
    matching = [e for e in status.errors if all(n in e for n in needles)]
    assert matching, f"no error line names {needles}: {status.errors}"
    return matching[0]


def assert_no_good_looking_dump(directory: Path, pattern: str) -> None:
    """Every file left that matches ``pattern`` is visibly unfinished."""
    for path in sorted(directory.glob(pattern)):
        info = pumpkit.get_dumpfile_info(path)
        assert not info.clean_close, f"{path} looks like a finished dump"
        assert not verify_paths([path]).sound, f"`pumpkit verify {path}` calls it sound"


# --- a source that is not a SQLite database -----------------------------------------------------


@pytest.mark.asyncio
async def test_export_from_a_text_file_stops_naming_the_file(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("this is not a database\n" * 20)
    home = tmp_path / "home"

    status = await pumpkit.export_database(
        source, "x%U.dmp", directory=tmp_path, home=home, job_name="TXT"
    )

    line = assert_stopped_with(status, str(source), "not a SQLite database")
    # A ConnectorError's message, not a crash's traceback.
    assert "Traceback" not in line
    assert not any("Traceback" in text for text in status.log_lines)
    assert_no_good_looking_dump(tmp_path, "x*.dmp")
    view = await job_view(home, "TXT")
    assert view is not None
    assert view.state == "STOPPED"
    assert view.stop_reason is not None
    assert view.stop_reason.startswith("ERROR")
    assert str(source) in view.stop_reason


@pytest.mark.asyncio
async def test_export_from_a_text_file_through_the_session(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="TXT", database=source)
        await s.add_file(h, "x%U.dmp", directory=tmp_path)
        await s.start_job(h)
        assert await s.wait_for_job(h) == pumpkit.JobState.STOPPED
        status = await s.final_status("TXT")
        assert_stopped_with(status, str(source), "not a SQLite database")
        # The control table is kept (the job can be attached and looked at).
        assert await s._store.has_control_table("TXT")
        [view] = [v for v in await s.jobs() if v.job_name == "TXT"]
        assert view.state == "STOPPED"
    assert_no_good_looking_dump(tmp_path, "x*.dmp")


# --- a source locked by another writer -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
async def test_export_from_a_locked_source_stops_and_leaves_no_good_looking_dump(
    tmp_path: Path, journal_mode: str
) -> None:
    source = tmp_path / "busy.db"
    make_database(source)
    setup = sqlite3.connect(source)
    try:
        setup.execute(f"PRAGMA journal_mode = {journal_mode}")
    finally:
        setup.close()
    home = tmp_path / "home"
    out = tmp_path / "out"
    out.mkdir()

    writer = sqlite3.connect(source, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO t0 (name, n) VALUES ('uncommitted', -1)")
        status = await pumpkit.export_database(
            source, "busy%U.dmp", directory=out, home=home, job_name="BUSY"
        )
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    # After the lock is gone: nothing a user would take for a good dump.
    assert_no_good_looking_dump(out, "busy*.dmp")
    view = await job_view(home, "BUSY")
    assert view is not None
    assert view.state == "STOPPED"
    # The error says what happened: the source is locked (not some follow-on failure).
    assert_stopped_with(status, "locked", str(source))
    assert view.stop_reason is not None
    assert "locked" in view.stop_reason


# --- add_file mistakes ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_add_file_in_a_missing_directory_names_the_directory(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    make_database(source)
    missing = tmp_path / "no" / "such" / "dir"
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=source)
        with pytest.raises(pumpkit.FileAccessError) as info:
            await s.add_file(h, "exp%U.dmp", directory=missing)
        assert str(missing) in str(info.value)
        assert "does not exist" in str(info.value)
        assert info.value.path == str(missing)
        # The job is still DEFINING and holds no file row for the refused file.
        [view] = await s.jobs()
        assert view.state == "DEFINING"
        assert await s._store.rows("J", object_types=["FILE"]) == []
        # A log file in a missing directory: the same.
        with pytest.raises(pumpkit.FileAccessError) as info:
            await s.add_file(h, "exp.log", directory=missing, filetype="LOG")
        assert str(missing) in str(info.value)
        assert await s._store.rows("J", object_types=["FILE"]) == []
        await s.detach(h)
    assert not missing.exists()


@pytest.mark.asyncio
async def test_add_file_of_an_existing_dump_needs_reusefile(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    make_database(source)
    existing = tmp_path / "exp01.dmp"
    existing.write_bytes(b"an older file that must not be overwritten silently")
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=source)
        with pytest.raises(pumpkit.FileAccessError) as info:
            await s.add_file(h, "exp%U.dmp", directory=tmp_path)
        assert str(existing) in str(info.value)
        assert "reusefile" in str(info.value)
        assert info.value.path == str(existing)
        assert await s._store.rows("J", object_types=["FILE"]) == []
        assert existing.read_bytes().startswith(b"an older file")

        await s.add_file(h, "exp%U.dmp", directory=tmp_path, reusefile=True)
        await s.start_job(h)
        assert await s.wait_for_job(h) == pumpkit.JobState.COMPLETED
        status = await s.final_status("J")
    assert status.state == "COMPLETED", status.errors
    assert status.completed_rows == 300
    info_after = pumpkit.get_dumpfile_info(existing)
    assert info_after.file_type == "pumpkit"
    assert info_after.clean_close
    assert verify_paths([existing]).sound


# --- import mistakes ----------------------------------------------------------------------------------


@pytest.fixture
def exported_set(tmp_path: Path) -> tuple[Path, Path]:
    """(source database, directory) of a source with tables t0..t2 (made by the test)."""
    source = tmp_path / "src.db"
    make_database(source, tables=3, rows=200)
    directory = tmp_path / "dump"
    directory.mkdir()
    return source, directory


@pytest.mark.asyncio
async def test_import_into_a_target_holding_a_table_skips_it_and_says_so(
    tmp_path: Path, exported_set: tuple[Path, Path]
) -> None:
    """TABLE_EXISTS_ACTION defaults to SKIP, as impdp's: the target's own table, rows and
    all, is left alone, the log names it, and the other tables are imported."""
    source, directory = exported_set
    home = tmp_path / "home"
    status = await pumpkit.export_database(
        source, "set%U.dmp", directory=directory, home=home, job_name="EXP"
    )
    assert status.state == "COMPLETED", status.errors

    target = tmp_path / "target.db"
    conn = sqlite3.connect(target)
    try:
        conn.execute("CREATE TABLE t1 (other TEXT)")
        conn.executemany("INSERT INTO t1 VALUES (?)", [("mine",), ("keep me",)])
        conn.execute("CREATE TABLE unrelated (x)")
        conn.commit()
    finally:
        conn.close()

    status = await pumpkit.import_dump(directory / "set01.dmp", target, home=home, job_name="IMP")

    assert status.state == "COMPLETED", status.errors
    assert any("t1" in line and "TABLE_EXISTS_ACTION=SKIP" in line for line in status.log_lines)
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("SELECT other FROM t1 ORDER BY rowid").fetchall() == [
            ("mine",),
            ("keep me",),
        ]
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 't1'").fetchone() == (
            "CREATE TABLE t1 (other TEXT)",
        )
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "unrelated" in names and len(names) > 2, names


@pytest.mark.asyncio
async def test_import_of_a_set_with_a_missing_file_names_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "dump"
    directory.mkdir()
    # Wide rows, uncompressed, small files: the set needs three files or more.
    make_database(tmp_path / "wide.db", tables=5, rows=60, width=100)
    home = tmp_path / "home"
    async with pumpkit.Session(home=home) as s:
        h = await s.open("EXPORT", "FULL", job_name="EXP", database=tmp_path / "wide.db")
        await s.add_file(h, "set%U.dmp", directory=directory, filesize="12KB")
        await s.set_parameter(h, "COMPRESSION", "NONE")
        await s.start_job(h)
        assert await s.wait_for_job(h) == pumpkit.JobState.COMPLETED
    files = sorted(directory.glob("set*.dmp"))
    assert len(files) >= 3, files
    second = directory / "set02.dmp"
    second.unlink()

    target = tmp_path / "target.db"
    status = await pumpkit.import_dump(directory / "set01.dmp", target, home=home, job_name="IMP")

    assert_stopped_with(status, "set02.dmp", "missing")
    # Nothing was loaded: the target holds no table (if it was created at all).
    if target.exists():
        assert user_tables(target) == []
    view = await job_view(home, "IMP")
    assert view is not None
    assert view.state == "STOPPED"


@pytest.mark.asyncio
async def test_a_job_failing_at_once_is_recorded_every_time(tmp_path: Path) -> None:
    """The same failure, twenty times: each run must end STOPPED with its error, never crash.

    The job's control coroutine polls for commands while the import opens the set; an error
    that arrives during that poll must still be logged and recorded.
    """
    directory = tmp_path / "dump"
    directory.mkdir()
    make_database(tmp_path / "wide.db", tables=5, rows=60, width=100)
    status = await pumpkit.export_database(
        tmp_path / "wide.db",
        "set%U.dmp",
        directory=directory,
        home=tmp_path / "home",
        filesize="12KB",
        compression="NONE",
    )
    assert status.state == "COMPLETED", status.errors
    (directory / "set02.dmp").unlink()
    outcomes = []
    for attempt in range(20):
        home = tmp_path / f"home{attempt}"
        try:
            status = await pumpkit.import_dump(
                directory / "set01.dmp", tmp_path / f"target{attempt}.db", home=home
            )
        except Exception as exc:  # an ExceptionGroup out of the session's task group
            outcomes.append(f"attempt {attempt}: raised {exc!r}")
            continue
        if status.state != "STOPPED" or not any("set02.dmp" in e for e in status.errors):
            outcomes.append(f"attempt {attempt}: {status.state} {status.errors}")
    assert outcomes == []


@pytest.mark.asyncio
async def test_a_cancelled_store_call_leaves_the_store_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store call cancelled mid-transaction must not leave the connection in it.

    (This is how a job's failure gets lost: the control coroutine's command poll is
    cancelled when the job fails, and the next store call, the failure's log line, raises.)
    The store's wait for a lock is made short: the cancelled call's thread waits it out
    (30 s by default) before the next call can run.
    """
    monkeypatch.setattr(sqlite_store, "OPEN_TIMEOUT", 2.0)
    source = tmp_path / "src.db"
    make_database(source, rows=10)
    home = tmp_path / "home"
    async with pumpkit.Session(home=home) as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=source)
        other = sqlite3.connect(home / "pumpkit.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the store is busy for a moment
            with anyio.move_on_after(0.3):
                await s._store.take_commands("J")
        finally:
            other.execute("ROLLBACK")
            other.close()
        # The next calls work, and what they write is committed.
        await s._store.log("J", "after the cancelled call")
        await s.log_entry(h, "a line from the user")
        lines = [text for _, _, text in await s._store.log_lines("J")]
        assert lines == ["after the cancelled call", "a line from the user"]
        await s.detach(h)


# --- handles, operations, modes and parameters --------------------------------------------------


HANDLE_CALLS = {
    "add_file": lambda s, h, tmp: s.add_file(h, "exp%U.dmp", directory=tmp),
    "data_filter": lambda s, h, tmp: s.data_filter(h, "SAMPLE", 50),
    "detach": lambda s, h, tmp: s.detach(h),
    "get_status": lambda s, h, tmp: s.get_status(h),
    "log_entry": lambda s, h, tmp: s.log_entry(h, "hello"),
    "metadata_filter": lambda s, h, tmp: s.metadata_filter(h, "NAME_LIST", ["t0"]),
    "metadata_remap": lambda s, h, tmp: s.metadata_remap(h, "REMAP_TABLE", "t0", "u0"),
    "metadata_transform": lambda s, h, tmp: s.metadata_transform(h, "OMIT_STORAGE", 1),
    "set_parallel": lambda s, h, tmp: s.set_parallel(h, 2),
    "set_parameter": lambda s, h, tmp: s.set_parameter(h, "KEEP_MASTER", 1),
    "start_job": lambda s, h, tmp: s.start_job(h),
    "stop_job": lambda s, h, tmp: s.stop_job(h),
    "wait_for_job": lambda s, h, tmp: s.wait_for_job(h),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("procedure", sorted(HANDLE_CALLS))
async def test_an_invalid_handle_is_refused(tmp_path: Path, procedure: str) -> None:
    source = tmp_path / "src.db"
    make_database(source, rows=10)
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=source)
        with pytest.raises(pumpkit.InvalidHandleError, match="999"):
            await HANDLE_CALLS[procedure](s, 999, tmp_path)
        # A handle once valid, then detached, is refused the same way.
        await s.detach(h)
        with pytest.raises(pumpkit.InvalidHandleError, match=str(h)):
            await HANDLE_CALLS[procedure](s, h, tmp_path)
        assert await s.jobs() == []


@pytest.mark.asyncio
async def test_open_with_an_unknown_operation_or_mode_lists_the_valid_ones(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src.db"
    make_database(source, rows=10)
    async with pumpkit.Session(home=tmp_path / "home") as s:
        with pytest.raises(pumpkit.InvalidArgumentError) as info:
            await s.open("EXPLODE", "FULL", job_name="J", database=source)
        message = str(info.value)
        assert "EXPLODE" in message
        for valid in ("EXPORT", "IMPORT"):
            assert valid in message
        with pytest.raises(pumpkit.InvalidArgumentError) as info:
            await s.open("EXPORT", "EVERYTHING", job_name="J", database=source)
        message = str(info.value)
        assert "EVERYTHING" in message
        for valid in ("FULL", "SCHEMA", "TABLE"):
            assert valid in message
        # A refused OPEN creates nothing.
        assert await s.jobs() == []
        assert not await s._store.has_control_table("J")


@pytest.mark.asyncio
async def test_set_parameter_refusals_list_the_valid_names_and_values(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    make_database(source, rows=10)
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=source)
        before = await s._store.rows("J", object_types=["PARAMETER"])

        with pytest.raises(pumpkit.InvalidArgumentError) as info:
            await s.set_parameter(h, "TURBO", 1)
        message = str(info.value)
        assert "TURBO" in message
        for name in ("COMPRESSION", "COMPRESSION_LEVEL", "KEEP_MASTER"):
            assert name in message

        with pytest.raises(pumpkit.InvalidArgumentError) as info:
            await s.set_parameter(h, "COMPRESSION", "FAST")
        message = str(info.value)
        assert "COMPRESSION" in message
        assert "FAST" in message
        for value in ("ALL", "DATA_ONLY", "METADATA_ONLY", "NONE"):
            assert value in message

        with pytest.raises(pumpkit.InvalidArgumentError) as info:
            await s.set_parameter(h, "KEEP_MASTER", 5)
        message = str(info.value)
        assert "KEEP_MASTER" in message
        assert "0" in message
        assert "1" in message

        with pytest.raises(pumpkit.InvalidArgumentError) as info:
            await s.set_parameter(h, "COMPRESSION_LEVEL", "high")
        message = str(info.value)
        assert "COMPRESSION_LEVEL" in message
        assert "1 to 22" in message

        # Nothing was stored by the refused calls; the job is still DEFINING.
        assert await s._store.rows("J", object_types=["PARAMETER"]) == before
        [view] = await s.jobs()
        assert view.state == "DEFINING"
        await s.detach(h)


# --- the last detach of a DEFINING job -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_detaching_the_only_handle_of_a_defining_job_removes_it(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    make_database(source, rows=10)
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="J", database=source)
        await s.add_file(h, "exp%U.dmp", directory=tmp_path)
        assert [v.job_name for v in await s.jobs()] == ["J"]
        await s.detach(h)
        assert await s.jobs() == []
        assert not await s._store.has_control_table("J")
        with pytest.raises(pumpkit.InvalidStateError) as info:
            await s.attach("J")
        assert "'J'" in str(info.value)
        assert "does not exist" in str(info.value)
        assert info.value.procedure == "ATTACH"
        assert info.value.state == "UNDEFINED"
        # The name is free again.
        h2 = await s.open("EXPORT", "FULL", job_name="J", database=source)
        await s.detach(h2)
    assert not list(tmp_path.glob("exp*.dmp"))
