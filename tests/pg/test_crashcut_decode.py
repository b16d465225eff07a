"""A crash-cut parallel PostgreSQL export, decoded from its frames alone (format 1.3).

kill -9 of a ``--parallel 2`` export leaves a set with no control table, in which the frames
of two granules of one table interleave. The granule tags (formats/dumpfile.md §5.9, §8.1)
say which frame continues which COPY stream and which streams are whole: ``pumpkit ls`` and a
frame-by-frame decode give every row of every complete granule and none of the unfinished.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import msgspec
import pytest

from pumpkit.core.control_table import granule_of, tables_of
from pumpkit.core.frame import FrameKind
from pumpkit.core.granules import granules_of
from pumpkit.core.pgcopy import CopyDecoder
from pumpkit.engine.session import Session
from pumpkit.io.connectors.postgres.common import select_sql
from pumpkit.io.dumpset.reader import DumpSetReader

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))
from process_helpers import kill_runner, wait_until

pytestmark = pytest.mark.postgres


async def fill(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, t text, n numeric(12,2));"
            " INSERT INTO big SELECT g, md5(g::text) || repeat('z', 180), g / 7.0"
            " FROM generate_series(1, 150000) g; ANALYZE"
        )
    finally:
        await conn.close()


def cut_state(files: list[Path]) -> tuple[int, int]:
    """(complete runs, unfinished runs with frames) of the set as it is on disk now."""
    try:
        with DumpSetReader.open(files) as reader:
            runs = reader.granule_runs()
    except Exception:  # the first file's header may not be written yet
        return 0, 0
    return sum(r.complete for r in runs), sum(not r.complete for r in runs)


@pytest.mark.asyncio
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_kill_9_of_a_parallel_export_then_ls_and_decode_without_control_table(
    pg_url, tmp_path
):
    await fill(pg_url)
    home = tmp_path / "home"
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name="CUT", database=pg_url)
        await s.add_file(h, "cut%U.dmp", str(tmp_path))
        await s.set_parallel(h, 2)
        await s.set_parameter(h, "COMPRESSION_LEVEL", 9)  # slower: the kill lands mid-way
        await s.start_job(h, detached=True)
        pid = (await s._store.job("CUT")).owner_pid

        def both_kinds() -> bool:
            done, open_ = cut_state(sorted(tmp_path.glob("cut*.dmp")))
            return done >= 1 and open_ >= 1

        assert await wait_until(both_kinds, 120, 0.2), "never saw a whole and a cut granule"
        assert not await kill_runner(pid)
        control = await s._store.rows("CUT")
    files = sorted(tmp_path.glob("cut*.dmp"))
    table = next(t for t in tables_of(control).values() if t.name == "big")
    granule_rows = {r.duplicate: granule_of(r) for r in control if r.object_type == "TABLE_DATA"}

    with DumpSetReader.open(files) as reader:
        assert reader.control_table() is None, "the crash must leave no control table"
        runs = reader.granule_runs()
        whole = granules_of(runs)
        unfinished = {r.granule for r in runs if not r.complete} - {g for _, g in whole}
        assert whole and unfinished, [(r.granule, r.complete, len(r.frames)) for r in runs]
        # Two granules' frames interleave in one file (parallel 2): one run begins inside
        # another's span.
        spans = [
            (r.frames[0].fileid, r.frames[0].header.offset, r.frames[-1].header.offset)
            for r in runs
        ]
        assert any(
            a[0] == b[0] and a[1] < b[1] < a[2] for a in spans for b in spans if a is not b
        ), spans
        decoded: dict[int, list[int]] = {}
        metadata = {}
        for fileid, frame in reader.frames():
            if frame.header.kind == FrameKind.METADATA and frame.header.encoding == 1:
                meta = msgspec.msgpack.decode(bytes(reader.payload(fileid, frame)))
                metadata[frame.header.object_id] = meta
        for (object_id, granule), run in whole.items():
            definition = metadata[object_id]["definition"]
            assert metadata[object_id]["name"] == "big"
            decoder = CopyDecoder(definition["column_kinds"], definition["columns"])
            ids = []
            for f in run.frames:
                frame = reader.read_frame(f.fileid, f.header.offset, f.header.length)
                ids.extend(row[0] for row in decoder.feed(reader.payload(f.fileid, frame)))
            decoder.finish()
            assert len(ids) == run.rows
            decoded[granule] = ids

    conn = await asyncpg.connect(pg_url)
    try:
        expected = {}
        for granule in list(decoded) + sorted(unfinished):
            sql = select_sql(table, granule_rows[granule])
            expected[granule] = [r[0] for r in await conn.fetch(f"SELECT id FROM ({sql}) q")]
    finally:
        await conn.close()
    for granule, ids in decoded.items():
        assert sorted(ids) == sorted(expected[granule]), f"granule {granule}"
    got = {i for ids in decoded.values() for i in ids}
    for granule in unfinished:
        assert expected[granule], f"unfinished granule {granule} holds rows"
        assert not got & set(expected[granule]), f"rows of unfinished granule {granule}"

    listed = subprocess.run(
        [sys.executable, "-m", "pumpkit", "ls", "--json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    big = [o for o in doc["objects"] if o["name"] == "big" and o["frames"]]
    assert len(big) == 1
    assert big[0]["rows"] == sum(len(ids) for ids in decoded.values())
    assert doc["cut_short"], "ls says the files were cut short"
