"""expdp's habits in ``pumpkit``: attach shows the job's status before the prompt; STATUS of
a job waiting for ADD_FILE says that it waits and why; a log file in the dump directory by
default (``--nologfile`` for none); a failed job's message says how to restart or drop it."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio

from pumpkit.engine.session import Session
from pumpkit.exitcodes import ExitCode


def run(*args: object, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pumpkit", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8"},
        timeout=120,
    )


def make_db(path: Path, rows: int = 50, width: int = 10) -> Path:
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?)", ((i, rng.randbytes(width)) for i in range(rows))
        )
    conn.close()
    return path


def test_attach_shows_the_status_before_the_prompt(tmp_path: Path) -> None:
    db = make_db(tmp_path / "src.db")
    home = tmp_path / "home"

    async def define() -> None:
        async with Session(home) as s:
            h = await s.open("EXPORT", "FULL", job_name="BANNER", database=db)
            await s.add_file(h, "b%U.dmp", directory=str(tmp_path))
            await s.stop_job(h, keep_master=True)

    anyio.run(define)
    done = run("attach", "BANNER", "--home", home, cwd=tmp_path, stdin="EXIT_CLIENT\n")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Job: BANNER", done.stdout
    # Attached, a stopped job is IDLING (as in Oracle), waiting for START_JOB.
    assert "Operation: EXPORT  Mode: FULL  State: IDLING" in lines[1]
    assert any("DUMP file:" in line and "b01.dmp" in line for line in lines), done.stdout
    assert "Client detached" in lines[-1]


def test_status_of_a_waiting_job_says_what_it_waits_for(tmp_path: Path) -> None:
    db = make_db(tmp_path / "src.db", rows=3000, width=2000)  # about 6 MB that do not compress
    home = tmp_path / "home"
    export = subprocess.Popen(
        [sys.executable, "-m", "pumpkit", "export", "--database", str(db), "--dumpfile",
         "one.dmp", "--filesize", "2MB", "--job-name", "WAITER", "--home", str(home),
         "--quiet"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # The job says in its log that it waits; wait for that line, not for a time.
        deadline = time.monotonic() + 90
        while True:
            log = (
                (tmp_path / "export.log").read_text() if (tmp_path / "export.log").exists() else ""
            )
            if "Waiting:" in log:
                break
            assert export.poll() is None, export.communicate()
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
        done = run(
            "attach", "WAITER", "--home", home, cwd=tmp_path, stdin="STATUS\nKILL_JOB\nyes\n"
        )
        assert done.returncode == ExitCode.KILLED, done.stdout + done.stderr
        # The banner and the STATUS both say it, with what to do about it.
        waiting = [line for line in done.stdout.splitlines() if line.startswith("  Waiting: ")]
        assert len(waiting) == 2, done.stdout
        assert "ADD_FILE" in waiting[0], waiting
        assert "State: EXECUTING" in done.stdout
    finally:
        if export.poll() is None:
            export.kill()
        export.communicate(timeout=60)


def test_a_log_file_in_the_dump_directory_by_default(tmp_path: Path) -> None:
    db = make_db(tmp_path / "src.db")
    home = tmp_path / "home"
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    done = run("export", "--database", db, "--directory", dumps, "--dumpfile", "e%U.dmp",
               "--home", home, cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    log = (dumps / "export.log").read_text()
    assert "Job SYS_EXPORT_FULL_01 successfully completed" in log
    done = run("import", "--database", tmp_path / "copy.db", "--directory", dumps,
               "--dumpfile", "e%U.dmp", "--home", home, cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "Job SYS_IMPORT_FULL_01 successfully completed" in (dumps / "import.log").read_text()

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    done = run("export", "--database", db, "--directory", quiet, "--dumpfile", "e%U.dmp",
               "--home", home, "--nologfile", cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert sorted(p.name for p in quiet.iterdir()) == ["e01.dmp"]


def test_a_failed_job_says_how_to_restart_or_drop_it(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database\n" * 100)
    home = tmp_path / "home"
    done = run("export", "--database", text, "--dumpfile", "x%U.dmp", "--job-name", "BROKEN",
               "--home", home, cwd=tmp_path)  # fmt: skip
    assert done.returncode == ExitCode.FAULT, done.stdout + done.stderr
    assert "Job BROKEN failed" in done.stdout
    assert "Job BROKEN is kept STOPPED" in done.stdout
    restart = f"pumpkit attach BROKEN --home {home}, then START_JOB"
    drop = f"pumpkit attach BROKEN --home {home}, then KILL_JOB"
    assert restart in done.stdout and drop in done.stdout, done.stdout
    # The second command does what it says.
    killed = run("attach", "BROKEN", "--home", home, cwd=tmp_path, stdin="KILL_JOB\nyes\n")
    assert killed.returncode == ExitCode.KILLED, killed.stdout + killed.stderr
    listed = run("jobs", "--home", home, cwd=tmp_path)
    assert "BROKEN" not in listed.stdout
