"""An export's output module (TPump's receiving side: codes 6, 7, then 5)."""

from __future__ import annotations

import sqlite3
import sys
import textwrap

import msgspec
import pytest

import pumpkit
import pumpkit.io.dumpset.reader

MODULE = textwrap.dedent(
    '''
    import msgspec

    CODES = []

    class Collect:
        """The class form: every row it receives goes to a file, with the calls it saw."""
        async def initialize(self, parms):
            self.path = parms
            self.rows = []
            CODES.append(6)
        async def receive(self, record):
            self.rows.append(msgspec.msgpack.decode(record))
            CODES.append(7)
        async def close(self):
            CODES.append(5)
            with open(self.path, "wb") as f:
                f.write(msgspec.msgpack.encode({"rows": self.rows, "codes": CODES}))

    def refuse_third(code, buffer, parms):
        """The classic form: refuses the third row it is given."""
        refuse_third.seen = getattr(refuse_third, "seen", 0) + (code == 7)
        buffer.return_code = 1 if code == 7 and refuse_third.seen == 3 else 0
    '''
)


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "outmods_for_test.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "outmods_for_test"
    sys.modules.pop("outmods_for_test", None)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE b (x, y)")
        conn.executemany("INSERT INTO a VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 1001)])
        conn.executemany("INSERT INTO b VALUES (?, ?)", [(i, None) for i in range(50)])
    return path


async def _export(tmp_path, source, outmod, parms, *, dumpfile=None):
    async with pumpkit.Session(tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", database=source)
        name = s.job_name(h)
        if dumpfile:
            await s.add_file(h, dumpfile, directory=tmp_path)
        await s.set_parameter(h, "OUTMOD", outmod)
        await s.set_parameter(h, "OUTMOD_PARMS", parms)
        await s.start_job(h)
        await s.wait_for_job(h)
        return await s.final_status(name)


@pytest.mark.asyncio
@pytest.mark.parametrize("dumpfile", [None, "beside.dmp"])
async def test_every_row_reaches_the_output_module_beside_or_instead_of_dumps(
    tmp_path, source, module, dumpfile
):
    out = tmp_path / "received.msgpack"
    status = await _export(tmp_path, source, f"{module}:Collect", str(out), dumpfile=dumpfile)
    assert status.state == "COMPLETED", status.errors
    got = msgspec.msgpack.decode(out.read_bytes())
    rows = {(t, tuple(r)) for t, r in got["rows"]}
    assert len(got["rows"]) == len(rows) == 1050
    # b has no INTEGER PRIMARY KEY: its rows carry their rowid first, as in the dump.
    assert ("a", (7, "v7")) in rows and ("b", (4, 3, None)) in rows
    codes = got["codes"]
    assert codes[0] == 6 and codes[-1] == 5 and set(codes[1:-1]) == {7}
    assert (tmp_path / "beside.dmp").exists() == bool(dumpfile)
    if dumpfile:
        with pumpkit.io.dumpset.reader.DumpSetReader.open([tmp_path / "beside.dmp"]) as reader:
            assert sum(o.rows for o in reader.objects()) == 1050


@pytest.mark.asyncio
async def test_a_refusing_output_module_ends_the_export(tmp_path, source, module):
    status = await _export(tmp_path, source, f"{module}:refuse_third", "", dumpfile="x.dmp")
    assert status.state == "STOPPED"
    assert any("code 7" in e and "return code 1" in e for e in status.errors), status.errors
