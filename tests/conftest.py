from __future__ import annotations

import msgspec
import pytest

from pumpkit.core.frame import FrameKind
from pumpkit.core.header import HeaderBody
from pumpkit.io.dumpset.writer import DumpSetWriter

_encode = msgspec.msgpack.encode


def write_sample_set(directory, *, template="set%U.dmp", filesize=None, tables=2, batches=3):
    """A small clean dump-file set: ``tables`` tables of ``batches`` batches of 50 rows."""
    writer = DumpSetWriter(
        [template],
        directory=directory,
        filesize=filesize,
        body=HeaderBody(
            job_name="SAMPLE",
            operation="EXPORT",
            job_mode="FULL",
            compression="zstd",
            compression_level=3,
            data_compressed=True,
        ),
    )
    rows = {}
    columns = ["object_type", "object_schema", "object_name", "object_number", "frames"]
    control = []
    for t in range(1, tables + 1):
        name = f"t{t}"
        writer.write_frame(
            FrameKind.METADATA,
            _encode({"object_type": "TABLE", "schema": "main", "name": name}),
            object_id=t,
            count=1,
        )
        control.append(["TABLE", "main", name, t, None])
        rows[name] = []
        for b in range(batches):
            batch = [[b * 50 + i, f"row {i} of {name}", i / 3] for i in range(50)]
            rows[name].extend(batch)
            data = _encode(batch)
            loc = writer.write_frame(FrameKind.TABLE_DATA, data, object_id=t, count=50)
            frames = _encode([[loc.fileid, loc.position, loc.length, 50, len(data)]])
            control.append(["TABLE_DATA", "main", name, t, frames])
    doc = {"table": "SAMPLE", "columns": columns, "rows": control}
    writer.write_control_table(_encode(doc), count=len(control))
    return writer.close(), rows


@pytest.fixture
def sample_set(tmp_path):
    return write_sample_set(tmp_path)


def _illegal_moves(home_db) -> list[str]:
    """Every consecutive pair of states some job of this control store was moved through
    that is not an edge of the state machine (the store records each state it writes)."""
    import sqlite3

    from pumpkit.core.states import TRANSITIONS, JobState

    conn = sqlite3.connect(f"file:{home_db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT job_name, guid, state FROM pumpkit_job_states ORDER BY id"
        ).fetchall()
    except sqlite3.Error:
        return []  # not a store of this version (a test's own file, or an older one)
    finally:
        conn.close()
    last: dict[str, JobState] = {}
    bad = []
    for name, guid, state in rows:
        current = last.get(guid, JobState.UNDEFINED)
        new = JobState(state)
        if new not in TRANSITIONS[current]:
            bad.append(f"{home_db}: job {name} moved {current.value} -> {new.value}")
        last[guid] = new
    return bad


@pytest.fixture(autouse=True)
def _every_state_change_is_an_edge(request):
    """After every test that had a tmp_path: each job of each control store under it moved
    only along the edges of ``pumpkit.core.states.TRANSITIONS``, whatever the test did to it
    (stops, kills, crashes, restarts, failures)."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if tmp_path is None:
        return
    bad = [move for db in tmp_path.rglob("pumpkit.db") for move in _illegal_moves(db)]
    assert bad == [], "\n".join(bad)
