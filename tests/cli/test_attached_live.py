"""ATTACHED in ``pumpkit jobs`` counts the clients that still run: one killed while attached
(it never detached) is not counted."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio

from pumpkit.engine.session import Session

ENV = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"}


def attached(home: Path, job: str) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "pumpkit", "jobs", "--json", "--home", str(home)],
        capture_output=True, text=True, env=ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [view] = [v for v in json.loads(done.stdout) if v["job_name"] == job]
    return int(view["attached_sessions"])


def test_a_killed_client_is_not_counted_attached(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.close()
    home = tmp_path / "home"

    async def define() -> None:
        async with Session(home) as s:
            h = await s.open("EXPORT", "FULL", job_name="HELD", database=db)
            await s.add_file(h, "h%U.dmp", directory=str(tmp_path))
            await s.stop_job(h, keep_master=True)

    anyio.run(define)
    assert attached(home, "HELD") == 0
    clients = []
    try:
        for _ in range(2):
            client = subprocess.Popen(
                [sys.executable, "-m", "pumpkit", "attach", "HELD", "--home", str(home)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=ENV,
            )  # fmt: skip
            clients.append(client)
            assert client.stdout is not None
            # Attached once it shows the job's status (it then waits for a command).
            assert client.stdout.readline().startswith("Job: HELD")
        assert attached(home, "HELD") == 2
        clients[0].send_signal(signal.SIGKILL)
        clients[0].wait(30)
        assert attached(home, "HELD") == 1  # the killed one never detached
        out, _ = clients[1].communicate("EXIT_CLIENT\n", timeout=60)
        assert clients[1].returncode == 0, out
        assert attached(home, "HELD") == 0
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
            client.communicate(timeout=30)
