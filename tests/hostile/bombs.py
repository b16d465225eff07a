"""Memory bombs: real exports whose frames claim (and hold) far more than their size.

Shared by tests/hostile/test_bounded_memory.py and benchmarks/bomb_rss.py. Each bomb is a
real export of a one-table SQLite database (``kv (k INTEGER PRIMARY KEY, v BLOB)``) whose
table's frames are replaced (``craft.DumpCopy.replace_data``), every checksum right. A
measurement runs import, ``verify`` or ``ls`` in a child process of its own and reports the
child's peak resident memory (``VmHWM`` of /proc/self/status: ``ru_maxrss`` would carry the
forking parent's over exec) with what the command said.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from craft import DumpCopy

import pumpkit

MB = 1 << 20


def one_row(key: int, size: int) -> bytes:
    """A msgpack batch of one row ``(key, <size zero bytes>)``: ``size`` bytes of payload that
    zstd stores in a few hundred kilobytes."""
    return b"\x91\x92" + bytes([key]) + b"\xc6" + size.to_bytes(4, "big") + bytes(size)


def batch_size(size: int) -> int:
    return len(one_row(1, 0)) + size


def export_source(directory: Path) -> list[Path]:
    """A real export of a real database with one small table."""
    source = directory / "source.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)")
        conn.executemany("INSERT INTO kv VALUES (?, ?)", [(i, b"x" * 10) for i in range(1, 4)])
        conn.commit()
    status = anyio.run(
        partial(pumpkit.export_database, source, "clean.dmp", directory=directory),
        backend="asyncio",
    )
    assert status.state == "COMPLETED", status.errors
    return [directory / "clean.dmp"]


def bomb(
    exported: list[Path],
    directory: Path,
    frames: int,
    size: int,
    *,
    rows: int = 1,
    make: Callable[[int], bytes] | None = None,
) -> list[Path]:
    """A set whose table ``kv`` has ``frames`` frames of ``size`` row bytes each (one row of
    that size by default), claiming ``rows`` rows each."""
    dump = DumpCopy.read(exported)
    maker = make or (lambda i: one_row(i + 1, size))
    dump.replace_data(
        "kv",
        [(partial(maker, i), rows, batch_size(size)) for i in range(frames)],
    )
    directory.mkdir(parents=True, exist_ok=True)
    return dump.write(directory, "bomb%U.dmp")


_CHILD = r"""
import json, sys
what, path, target, home = sys.argv[1:]
out = {}
try:
    if what == "import":
        import anyio
        from functools import partial
        import pumpkit
        status = anyio.run(partial(pumpkit.import_dump, path, target, home=home))
        out = {"state": status.state, "errors": list(status.errors)}
    elif what == "verify":
        from pumpkit.io.dumpset.verify import verify_paths
        report = verify_paths([path])
        out = {"sound": report.sound, "faults": [str(f) for f in report.faults]}
    elif what == "cat":
        import contextlib, os
        from pumpkit.cli.main import main
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            with contextlib.redirect_stderr(null):
                code = main(["cat", path, "kv", "--format", "jsonl"])
        out = {"exit": code}
    elif what == "ls":
        from pumpkit.io.dumpset.reader import DumpSetReader
        with DumpSetReader.open([path]) as reader:
            out = {"objects": [(o.name, o.rows) for o in reader.objects()]}
except Exception as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forking parent.
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
out["peak_rss"] = peak * 1024  # kilobytes
print(json.dumps(out))
"""


def measure(what: str, path: Path, target: Path, home: Path) -> dict[str, Any]:
    """Run ``what`` (import, verify, ls, cat) of the set of ``path`` in a child process; what it
    said, and its peak RSS in bytes (``peak_rss``)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, what, str(path), str(target), str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def baseline() -> int:
    """The peak RSS of a child that imports pumpkit and does nothing."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pumpkit.engine.importing, pumpkit.io.dumpset.verify;"
            "print(next(int(l.split()[1]) * 1024 for l in open('/proc/self/status')"
            " if l.startswith('VmHWM:')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)
