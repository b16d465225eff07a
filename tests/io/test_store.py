"""The control store's opening: many processes at once on a new store, and a failed opening
that must not leave the process hanging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pumpkit.errors import StoreError
from pumpkit.io.store import open_store
from pumpkit.io.store.sqlite import SCHEMA_VERSION

OPEN_AND_LIST = """
import sys, anyio
from pumpkit.io.store import open_store
async def main():
    store = await open_store(sys.argv[1])
    try:
        await store.jobs()
    finally:
        await store.close()
anyio.run(main)
"""


@pytest.mark.parametrize("round_", range(3))
def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path, round_: int) -> None:
    """Eight processes create the same store together (the runner and its watchers do): the
    first switches it to WAL while the others open it; none may fail with "locked"."""
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_LIST, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for p in procs:
        p.stdout.close()  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert [code for code, _ in results] == [0] * 8, [err for _, err in results if err]


NEWER_STORE = """
import sqlite3, sys, anyio
from pumpkit.io.store import open_store
from pumpkit.errors import StoreError
async def main():
    try:
        await open_store(sys.argv[1])
    except StoreError as exc:
        print(exc)
anyio.run(main)
"""


def test_a_store_from_a_newer_pumpkit_is_refused_and_the_process_still_exits(
    tmp_path: Path,
) -> None:
    """The refusal closes the connection it opened: the process ends instead of waiting on
    aiosqlite's thread (a client printed its error and then hung)."""
    home = tmp_path / "home"
    home.mkdir()
    import sqlite3

    conn = sqlite3.connect(home / "pumpkit.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    done = subprocess.run(
        [sys.executable, "-c", NEWER_STORE, str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"schema version {SCHEMA_VERSION + 1}" in done.stdout, done.stdout


@pytest.mark.asyncio
async def test_opening_an_existing_store_takes_no_write_lock(tmp_path: Path) -> None:
    """A client can open the store while another connection holds its write lock."""
    import sqlite3

    store = await open_store(tmp_path)
    await store.close()
    holder = sqlite3.connect(tmp_path / "pumpkit.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("CREATE TABLE held (x)")
        other = await open_store(tmp_path)
        assert await other.jobs() == []
        await other.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.asyncio
async def test_an_unreadable_store_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "pumpkit.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"pumpkit\.db"):
        await open_store(tmp_path)
