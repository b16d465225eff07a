"""Race losers are told so, and exit non-zero: exactly one of two restarts starts the job.

Issue 13 (and 12's "one winner"): of two CLI clients restarting one stopped job at once, the
loser printed its message and exited 0; two opens of one job name at once told the loser
"OPEN is not valid in state DEFINING" or "table already exists". Now the loser gets
``JobHeldError`` (both a ``JobTakenOverError`` and Table 6-1's ``InvalidStateError``) naming
the job and the process that holds it, and the CLI exits JOB_TAKEN (8).

The restart race runs 20 times on one export that waits for a dump file (a FILESIZE its one
file fills), so each trial's winner has something to hold, and is stopped for the next trial;
at the end a file is added and the job completes, exact.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from process_helpers import wait_until

from pumpkit.cli.main import main as cli_main
from pumpkit.core.states import JobState
from pumpkit.engine.session import Session
from pumpkit.errors import JobHeldError
from pumpkit.exitcodes import ExitCode
from pumpkit.io.dumpset.verify import verify_paths
from pumpkit.testing.sqlite_fixtures import compare_databases

pytestmark = [pytest.mark.slow]

TRIALS = 20


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("race") / "src.db"
    with sqlite3.connect(path) as conn:
        for t in range(3):
            conn.execute(f"CREATE TABLE r{t} (id INTEGER PRIMARY KEY, pad TEXT)")
            conn.executemany(f"INSERT INTO r{t} VALUES (?, ?)", ((i, "z" * 90) for i in range(300)))
    conn.close()
    return path


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PUMPKIT_HOME": str(home)}


async def _log(s: Session, name: str) -> list[str]:
    return [t for _, _, t in await s._store.log_lines(name)]


async def _waiting_export(home: Path, source: Path, directory: Path, name: str) -> None:
    """An export that runs into its full only file and waits for ADD_FILE, then is stopped."""
    async with Session(home) as s:
        h = await s.open("EXPORT", "FULL", job_name=name, database=source)
        await s.add_file(h, "only.dmp", directory=str(directory), filesize="40KB")
        await s.set_parameter(h, "COMPRESSION", "NONE")
        await s.start_job(h, detached=True)
        assert await wait_until(lambda: _waiting(s, name), 60, interval=0.02), await _log(s, name)
        await s.stop_job(h)
        assert (await s._store.job(name)).state == JobState.STOPPED.value


async def _waiting(s: Session, name: str) -> bool:
    return (await s._store.parameters(name)).get("WAITING_FOR") is not None


def _client(home: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pumpkit", "attach", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(home),
    )


@pytest.mark.asyncio
@pytest.mark.timeout(400)
async def test_two_cli_clients_restart_one_job_exactly_one_starts_it(
    source: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    name = "RACED"
    await _waiting_export(home, source, tmp_path, name)
    outcomes = []
    async with Session(home) as s:
        for trial in range(TRIALS):
            before = await s._store.job(name)
            assert before.state == JobState.STOPPED.value
            starts = sum(t.startswith(f"Starting {name}:") for t in await _log(s, name))
            clients = [_client(home, name), _client(home, name)]

            async def both_attached(n: int = before.attached_sessions) -> bool:
                return (await s._store.job(name)).attached_sessions >= n + 2

            assert await wait_until(both_attached, 60, interval=0.01)
            for c in clients:  # both at once: the race
                assert c.stdin is not None
                c.stdin.write("START_JOB\nEXIT_CLIENT\n")
                c.stdin.flush()
            results = []
            for c in clients:
                out, _ = await anyio.to_thread.run_sync(c.communicate)
                results.append((c.returncode, out))
            codes = sorted(code for code, _ in results)
            outcomes.append(codes)
            assert codes == [ExitCode.OK, ExitCode.JOB_TAKEN], (trial, results)
            (winner,) = [out for code, out in results if code == ExitCode.OK]
            (loser,) = [out for code, out in results if code == ExitCode.JOB_TAKEN]
            assert f"Job {name} started" in winner, winner
            assert f"Job {name} started" not in loser, loser
            record = await s._store.job(name)
            # The loser names the job and the process that holds it.
            assert re.search(rf"job {name} was started by another session or process", loser)
            assert re.search(r"process \d+ on ", loser), loser
            assert record.restart_count == before.restart_count + 1, (trial, record)
            assert await wait_until(lambda: _waiting(s, name), 60, interval=0.02), await _log(
                s, name
            )
            record = await s._store.job(name)
            assert f"process {record.owner_pid} on {record.owner_host}" in loser, loser
            log = await _log(s, name)
            assert sum(t.startswith(f"Starting {name}:") for t in log) == starts + 1, log
            h = await s.attach(name)
            await s.stop_job(h)
        print(f"\nrestart race, {TRIALS} trials: {outcomes}")
        h = await s.attach(name)
        await s.add_file(h, "more%U.dmp", directory=str(tmp_path))
        await s.start_job(h, detached=True)
        with anyio.fail_after(60):
            assert await s.wait_for_job(h) == JobState.COMPLETED, await _log(s, name)
        target = tmp_path / "copy.db"
        hi = await s.open("IMPORT", "FULL", job_name="RACED_IMP", database=target)
        await s.add_file(hi, "only.dmp", directory=str(tmp_path))
        await s.start_job(hi)
        assert await s.wait_for_job(hi) == JobState.COMPLETED
    files = [tmp_path / "only.dmp", *sorted(tmp_path.glob("more*.dmp"))]
    assert verify_paths(files).sound
    assert compare_databases(source, target) == []


_OPENER = """
import json, os, sys, anyio
from pumpkit.engine.session import Session
from pumpkit.errors import PumpkitError
home, name, db, ready, go = sys.argv[1:]
async def main():
    async with Session(home) as s:
        open(ready, "w").close()
        while not os.path.exists(go):
            await anyio.sleep(0.001)
        try:
            await s.open("EXPORT", "FULL", job_name=name, database=db)
            answer = {"ok": True}
        except PumpkitError as exc:
            answer = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(answer), flush=True)
        # The session (and a DEFINING job with it) stays until the test has both answers.
        while not os.path.exists(go + ".end"):
            await anyio.sleep(0.005)
anyio.run(main)
"""


@pytest.mark.asyncio
@pytest.mark.timeout(300)
@pytest.mark.parametrize("trial", range(10))
async def test_two_opens_of_one_job_name_at_once_the_loser_is_told_the_name_is_taken(
    source: Path, tmp_path: Path, trial: int
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    name = f"SAME_{trial}"
    go = tmp_path / "go"
    procs = []
    for k in range(2):
        ready = tmp_path / f"ready{k}"
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _OPENER,
                        str(home),
                        name,
                        str(source),
                        str(ready),
                        str(go),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    assert await wait_until(lambda: _all_exist([r for r, _ in procs]), 60, interval=0.005)
    go.touch()
    answers = []
    for _, p in procs:
        assert p.stdout is not None
        line = await anyio.to_thread.run_sync(p.stdout.readline)
        assert line, p.stderr.read() if p.stderr else ""
        answers.append(json.loads(line))
    async with Session(home) as s:
        record = await s._store.job(name)
        assert record is not None and record.state == JobState.DEFINING.value
    (tmp_path / "go.end").touch()
    for _, p in procs:
        _, err = await anyio.to_thread.run_sync(p.communicate)
        assert p.returncode == 0, err
    winners = [a for a in answers if a["ok"]]
    losers = [a for a in answers if not a["ok"]]
    assert len(winners) == 1 and len(losers) == 1, answers
    assert losers[0]["error"] == "JobHeldError", answers
    assert f"job name {name!r} is taken" in losers[0]["message"], answers


async def _all_exist(paths: list[Path]) -> bool:
    return all(p.exists() for p in paths)


# --- the exit codes of race losers, as a table ----------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("open_existing_name", ExitCode.JOB_TAKEN),
        ("start_a_running_job", ExitCode.JOB_TAKEN),
        ("runner_of_a_taken_job", ExitCode.JOB_TAKEN),
        ("attach_a_missing_job", ExitCode.USAGE),
    ],
)
def test_race_losers_exit_codes(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: int
) -> None:
    home = tmp_path / "home"
    name = "HELD"
    anyio.run(_waiting_export, home, source, tmp_path, name)

    async def restart() -> int:
        async with Session(home) as s:
            h = await s.attach(name)
            await s.start_job(h, detached=True)
            assert await wait_until(lambda: _waiting(s, name), 60, interval=0.02)
            return (await s._store.job(name)).owner_pid

    holder = anyio.run(restart)
    if case == "open_existing_name":
        code = cli_main(
            [
                "export",
                "--home",
                str(home),
                "--job-name",
                name,
                "--database",
                str(source),
                "--directory",
                str(tmp_path),
                "--dumpfile",
                "other.dmp",
            ]
        )
        message = capsys.readouterr().err
        assert f"job name {name!r} is taken" in message and f"process {holder}" in message
    elif case == "start_a_running_job":
        p = subprocess.run(
            [sys.executable, "-m", "pumpkit", "attach", name],
            input="START_JOB\n",
            capture_output=True,
            text=True,
            env=_env(home),
            timeout=60,
        )
        code, message = p.returncode, p.stdout + p.stderr
        assert f"job {name} was started by another" in message and f"process {holder}" in message
    elif case == "runner_of_a_taken_job":
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pumpkit.engine.runner",
                "--home",
                str(home),
                "--job",
                name,
                "--expect-state",
                "IDLING",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        code, message = p.returncode, p.stderr
        assert f"{holder}" in message and name in message, message
    else:
        code = cli_main(["attach", "NO_SUCH_JOB", "--home", str(home)])
        message = capsys.readouterr().err
        assert "NO_SUCH_JOB" in message
    assert code == expected, message

    async def stop() -> None:
        async with Session(home) as s:
            h = await s.attach(name)
            await s.stop_job(h, immediate=True)

    anyio.run(stop)


def test_the_error_of_a_lost_race_is_table_6_1s_refusal_and_a_taken_job() -> None:
    import pumpkit

    error = JobHeldError(
        "job J was started by another session or process (process 7 on h has it)",
        procedure="START_JOB",
        state="EXECUTING",
        valid=("DEFINING", "IDLING"),
        holder="process 7 on h",
    )
    assert isinstance(error, pumpkit.InvalidStateError)
    assert isinstance(error, pumpkit.JobTakenOverError)
    assert pumpkit.JobHeldError is JobHeldError
    assert (error.procedure, error.state, error.holder) == (
        "START_JOB",
        "EXECUTING",
        "process 7 on h",
    )
