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
