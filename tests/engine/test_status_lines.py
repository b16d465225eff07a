"""GET_STATUS hands each log line over once: a line logged while the rest of a status is read
comes with the next call, neither lost nor given twice (a client that counts the lines it
printed printed the last ones again at the end: "successfully completed" twice)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pumpkit.core.status import StatusMask
from pumpkit.engine.session import Session


@pytest.mark.asyncio
async def test_a_line_logged_during_get_status_comes_with_the_next_call(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.close()
    async with Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name="LINES", database=db)
        await s.log_entry(h, "one")
        await s.log_entry(h, "two")
        store = s._store
        real = store.log_lines
        logged: list[str] = []

        async def racing(name: str, after: int = 0):  # type: ignore[no-untyped-def]
            lines = await real(name, after)
            if not logged:
                # Another process logs just after this status read its new lines.
                logged.append("three")
                await store.log(name, "three")
            return lines

        store.log_lines = racing  # type: ignore[method-assign]
        try:
            first = await s.get_status(h, StatusMask.ALL)
        finally:
            store.log_lines = real  # type: ignore[method-assign]
        assert logged == ["three"]
        await s.log_entry(h, "four")
        second = await s.get_status(h, StatusMask.ALL)
        third = await s.get_status(h, StatusMask.ALL)
        seen = [*first.log_lines, *second.log_lines, *third.log_lines]
        everything = [t for _, _, t in await store.log_lines("LINES", 0)]
        assert seen == everything
        assert [t for t in seen if t in ("one", "two", "three", "four")] == [
            "one", "two", "three", "four",
        ]  # fmt: skip
        await s.detach(h)
