"""``pumpkit export|import|attach|jobs`` as a user runs them: real processes, the interactive
mode on a pseudo-terminal, the jobs view, parfiles and exit codes.

Every test has its own control store (``--home`` in ``tmp_path``, ``PUMPKIT_HOME`` unset) and
every wait is bounded. Jobs that must still be running when the test acts on them export a
100 MB database (``benchmarks/gen_sqlite.py``, scale 0.1) with zstd level 19, which takes
several seconds even on a fast machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from pumpkit.engine.progress import executing_seconds
from pumpkit.engine.session import Session
from pumpkit.exitcodes import ExitCode
from pumpkit.testing.sqlite_fixtures import compare_databases, table_row_counts

ROOT = Path(__file__).resolve().parents[2]
SLOW = ("--compression-level", "19")  # a job that lasts seconds, not a fraction of one
T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------


def _gen_sqlite() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_sqlite", ROOT / "benchmarks" / "gen_sqlite.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 100 MB, 1.2 million rows: an export at level 19 runs for several seconds."""
    path = tmp_path_factory.mktemp("src") / "big.db"
    _gen_sqlite().generate(path, 0.1)
    return path


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 30 MB: for jobs that only have to finish."""
    path = tmp_path_factory.mktemp("src") / "small.db"
    _gen_sqlite().generate(path, 0.03)
    return path


def _env(term: str = "dumb") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PUMPKIT_HOME", "COLUMNS", "LINES")}
    env["TERM"] = term
    if term != "dumb":
        env["COLUMNS"] = "200"  # room for the whole progress text beside the bar
    return env


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "pumpkit", *map(str, args)]


def pumpkit(
    *args: object, cwd: Path, stdin: str = "", timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run one command to its end; standard input is a pipe (not a terminal)."""
    return subprocess.run(
        command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=timeout,
    )


def jobs(home: Path) -> dict[str, dict[str, Any]]:
    """``pumpkit jobs --json`` by job name."""
    done = pumpkit("jobs", "--json", "--home", home, cwd=home.parent, timeout=30)
    assert done.returncode == ExitCode.OK, done.stderr
    return {view["job_name"]: view for view in json.loads(done.stdout)}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll ``probe`` until it answers something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def wait_executing(home: Path, job: str, timeout: float = 30) -> dict[str, Any]:
    """The job's view once it is EXECUTING with a live owner."""

    def probe() -> dict[str, Any] | None:
        view = jobs(home).get(job)
        if view and view["state"] == "EXECUTING" and view["owner_alive"]:
            return view
        return None

    return wait_for(f"{job} to be EXECUTING", probe, timeout)


def wait_working(home: Path, job: str, timeout: float = 60) -> str:
    """The job's STATUS report (from `pumpkit attach JOB`) once a worker holds a granule."""

    def probe() -> str | None:
        done = pumpkit("attach", job, "--home", home, cwd=home.parent, stdin="STATUS\n")
        assert done.returncode == ExitCode.OK, done.stdout + done.stderr
        return done.stdout if re.search(r"WORKER_\d+: WORKING TABLE_DATA", done.stdout) else None

    return wait_for(f"a worker of {job} to hold a granule", probe, timeout)


@dataclass
class Background:
    """A ``pumpkit`` command running in the background, its output in files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def finish(self, timeout: float = 90) -> tuple[int, str, str]:
        rc = self.proc.wait(timeout)
        return rc, self.out.read_text(), self.err.read_text()


@dataclass
class Processes:
    """What a test started; the teardown ends what is still running, by pid."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    homes: list[Path] = field(default_factory=list)

    def start(self, *args: object, cwd: Path, name: str) -> Background:
        out, err = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                command(*args), stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=cwd, env=_env()
            )
        self.procs.append(proc)
        return Background(proc, out, err)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    registry = Processes()
    yield registry
    for proc in registry.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for home in registry.homes:
        if not (home / "pumpkit.db").exists():
            continue
        with contextlib.suppress(Exception):
            for view in jobs(home).values():
                # A job's runner (started by one of our clients) that is still at work.
                if view["owner_alive"] and view["owner_pid"] not in (None, os.getpid()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(view["owner_pid"], signal.SIGKILL)


@pytest.fixture
def home(tmp_path: Path, processes: Processes) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    processes.homes.append(path)
    return path


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    path = tmp_path / "dumps"
    path.mkdir()
    return path


def _take_terminal() -> None:  # in the child, after setsid(): the pty becomes its terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A command whose controlling terminal is a pseudo-terminal we hold the master of.

    Ctrl-C written to the master is turned into SIGINT for the command (the foreground
    process group of the terminal); a job's runner is in a session of its own and gets none.
    """

    def __init__(self, *args: object, cwd: Path, term: str = "dumb") -> None:
        master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                command(*args),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=_env(term),
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master
        self.output = bytearray()
        self.seen = 0
        self.eof = False

    def _pump(self, timeout: float) -> None:
        if self.eof:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the slave has gone
            data = b""
        if data:
            self.output += data
        else:
            self.eof = True

    def expect(self, pattern: bytes | re.Pattern[bytes], timeout: float = 30) -> str:
        """Wait for ``pattern`` (bytes, or a compiled regular expression) after what was
        already matched; returns the text up to the end of the match."""
        deadline = time.monotonic() + timeout
        while True:
            if isinstance(pattern, bytes):
                at = self.output.find(pattern, self.seen)
                end = at + len(pattern)
            else:
                match = pattern.search(self.output, self.seen)
                at, end = (match.start(), match.end()) if match else (-1, -1)
            if at >= 0:
                text = bytes(self.output[self.seen : end])
                self.seen = end
                return text.decode(errors="replace")
            if self.eof or time.monotonic() > deadline:
                tail = bytes(self.output[-3000:]).decode(errors="replace")
                raise AssertionError(
                    f"{pattern!r} not seen within {timeout} s (exit {self.proc.poll()}):\n{tail}"
                )
            self._pump(0.1)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 60) -> int:
        """Wait for the command to exit, reading what it writes (so it never blocks)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                tail = bytes(self.output[-3000:]).decode(errors="replace")
                raise AssertionError(f"still running after {timeout} s:\n{tail}")
            self._pump(0.1)
        drain = time.monotonic() + 2
        while not self.eof and time.monotonic() < drain:
            self._pump(0.1)
        return self.proc.returncode

    @property
    def rest(self) -> str:
        """What was written after the last match."""
        return bytes(self.output[self.seen :]).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


@contextlib.contextmanager
def terminal(*args: object, cwd: Path, term: str = "dumb") -> Iterator[Terminal]:
    term_ = Terminal(*args, cwd=cwd, term=term)
    try:
        yield term_
    finally:
        term_.close()


def dump_files(directory: Path, prefix: str) -> list[Path]:
    files = sorted(directory.glob(f"{prefix}*.dmp"))
    assert files, f"no {prefix}*.dmp in {directory}"
    return files


def assert_sound(directory: Path, prefix: str, source: Path) -> None:
    done = pumpkit("verify", "--json", *dump_files(directory, prefix), cwd=directory)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["sound"] is True and report["faults"] == []
    assert report["rows"] == sum(table_row_counts(source).values())


# -- 1. the interactive mode on a terminal -----------------------------------------------------


_PERCENT = re.compile(rb"\[ *(\d+)%\]")


def _percents(screen: bytes) -> list[int]:
    """Every share the progress showed, in order."""
    return [int(m.group(1)) for m in _PERCENT.finditer(screen)]


def _history(home: Path, job: str) -> list[tuple[str, int, str, float]]:
    async def read() -> list[tuple[str, int, str, float]]:
        async with Session(home) as s:
            return await s._store.history(job)

    return anyio.run(read)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("term", ["dumb", "xterm-256color"])
def test_interactive_mode_on_a_terminal_stop_then_attach_and_restart(
    tmp_path: Path, home: Path, dumps: Path, big_db: Path, term: str
) -> None:
    """Export, Ctrl-C, STATUS, PARALLEL, STOP_JOB; attach (its banner), START_JOB,
    CONTINUE_CLIENT to the end: the progress never goes backwards, ends at 100 %, and the last
    line gives the whole job's time over both legs. On a dumb terminal the progress is a line
    redrawn with \\r; on one that can draw, rich's bar."""
    started = time.monotonic()
    with terminal(
        "export",
        "--database",
        big_db,
        "--directory",
        dumps,
        "--dumpfile",
        "e%U.dmp",
        "--parallel",
        2,
        "--home",
        home,
        "--job-name",
        "PTYJOB",
        *SLOW,
        cwd=tmp_path,
        term=term,
    ) as term_:
        term_.expect(b"Starting PTYJOB: EXPORT FULL, parallel 2")
        # The progress line, once rows are moving: workers hold granules and more wait.
        term_.expect(re.compile(rb"%\] executing, rows [1-9][\d,]* of about [1-9]"), timeout=90)
        term_.type(b"\x03")
        term_.expect(b"Export> ")
        term_.type(b"STATUS\r")
        report = term_.expect(b"Export> ")
        assert "Job: PTYJOB" in report
        assert "Operation: EXPORT  Mode: FULL  State: EXECUTING" in report
        assert "Degree: 2" in report
        term_.type(b"PARALLEL=1\r")
        assert "Degree of parallelism set to 1" in term_.expect(b"Export> ")
        term_.type(b"STOP_JOB\r")
        term_.expect(b"Are you sure you wish to stop this job ([yes]/no): ")
        term_.type(b"yes\r")
        assert term_.wait(90) == ExitCode.STOPPED, term_.rest
        assert "Job PTYJOB stopped; restart it with `pumpkit attach PTYJOB`" in term_.rest
        first_leg = bytes(term_.output)
    stopped_after = time.monotonic() - started

    view = wait_for(
        "the PTYJOB runner to be gone",
        lambda: (v := jobs(home)["PTYJOB"]) and not v["owner_alive"] and v,
    )
    assert view["state"] == "STOPPED"
    assert view["stop_reason"] == "STOP_JOB"  # not "ERROR: ...": the stop was an orderly one
    assert view["degree"] == 1
    assert view["owner_alive"] is False
    assert view["attached_sessions"] == 0

    with terminal("attach", "PTYJOB", "--home", home, cwd=tmp_path, term=term) as term_:
        banner = term_.expect(b"Export> ")
        # expdp's ATTACH: the job's status first.
        assert banner.index("Job: PTYJOB") < banner.index("State: IDLING"), banner
        term_.type(b"START_JOB\r")
        assert "Job PTYJOB started" in term_.expect(b"Export> ")
        term_.type(b"CONTINUE_CLIENT\r")
        term_.expect(b"Restart 1: ", timeout=60)
        done_line = term_.expect(
            re.compile(rb"Job PTYJOB successfully completed in [\d.]+ s over 2 runs"), timeout=120
        )
        assert term_.wait(30) == ExitCode.OK, term_.rest
        second_leg = bytes(term_.output)
    assert "PTYJOB" not in jobs(home)  # completed, no KEEP_MASTER: its control table is gone

    # The progress never went backwards, over both legs, and ended at 100 %.
    shown = _percents(first_leg) + _percents(second_leg)
    assert shown and shown == sorted(shown), shown
    assert re.search(rb"\[100%\] completed, rows [1-9]", second_leg), second_leg[-2000:]
    assert "Metadata written for 0 objects" not in second_leg.decode(errors="replace")
    # The last line's time is the whole job's: both legs, as the job's state history has them.
    history = _history(home, "PTYJOB")
    guids = {g for g, _, state, _ in history if state == "EXECUTING"}
    [guid] = guids
    moves = [(state, at) for g, _, state, at in history if g == guid]
    legs = [
        following[1] - at
        for (state, at), following in itertools.pairwise(moves)
        if state == "EXECUTING"
    ]
    assert len(legs) == 2, moves
    said = float(re.search(r"completed in ([\d.]+) s", done_line).group(1))  # type: ignore[union-attr]
    assert said == round(executing_seconds(history, guid, now=moves[-1][1]), 1)
    assert said > max(legs)  # not the last leg only

    copy = tmp_path / "copy.db"
    done = pumpkit(
        "import",
        "--database",
        copy,
        "--directory",
        dumps,
        "--dumpfile",
        "e%U.dmp",
        "--parallel",
        2,
        "--home",
        home,
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert compare_databases(big_db, copy) == []
    print(f"stopped after {stopped_after:.1f} s, all in {time.monotonic() - started:.1f} s")


# -- 2. the jobs view: a killed job and a stopped one ----------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_jobs_view_killed_runner_is_not_running_orderly_stop_is_stopped(
    tmp_path: Path, home: Path, dumps: Path, big_db: Path, processes: Processes
) -> None:
    def export(job: str) -> Background:
        return processes.start(
            "export",
            "--database",
            big_db,
            "--directory",
            dumps,
            "--dumpfile",
            f"{job.lower()}%U.dmp",
            "--parallel",
            2,
            "--home",
            home,
            "--job-name",
            job,
            *SLOW,
            cwd=tmp_path,
            name=job,
        )

    # A runner killed with SIGKILL: its job is NOT RUNNING, its owner dead.
    killed = export("KILLED")
    view = wait_executing(home, "KILLED")
    runner = view["owner_pid"]
    assert runner != killed.proc.pid  # the default: the job runs in a process of its own
    os.kill(runner, signal.SIGKILL)
    rc, out, err = killed.finish(60)
    assert rc == ExitCode.STOPPED, out + err  # NOT RUNNING: it can be restarted
    assert "Traceback" not in err
    view = jobs(home)["KILLED"]
    assert view["state"] == "NOT RUNNING"
    assert view["owner_pid"] == runner
    assert view["owner_alive"] is False
    assert view["stop_reason"] is None

    # A job stopped in order from another client while its workers hold granules (and more
    # granules wait for them): STOPPED by STOP_JOB.
    orderly = export("ORDERLY")
    wait_executing(home, "ORDERLY")
    wait_working(home, "ORDERLY")
    done = pumpkit("attach", "ORDERLY", "--home", home, cwd=tmp_path, stdin="STOP_JOB\nyes\n")
    assert done.returncode == ExitCode.STOPPED, done.stdout + done.stderr
    assert "Job ORDERLY stopped" in done.stdout
    rc, out, err = orderly.finish(60)
    view = wait_for(
        "the ORDERLY runner to be gone",
        lambda: (v := jobs(home)["ORDERLY"]) and not v["owner_alive"] and v,
    )
    assert view["state"] == "STOPPED"
    assert view["owner_alive"] is False
    assert jobs(home)["KILLED"]["state"] == "NOT RUNNING"

    # The text form lists both.
    done = pumpkit("jobs", "--home", home, cwd=tmp_path)
    assert done.returncode == ExitCode.OK, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "JOB_NAME",
        "OPERATION",
        "MODE",
        "STATE",
        "DEGREE",
        "ATTACHED",
        "OWNER",
        "ALIVE",
        "RESTARTS",
        "STOPPED",
    ]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"KILLED", "ORDERLY"}
    assert re.search(rf" EXPORT +FULL +NOT RUNNING +2 +0 +\S+:{runner} +no +0 +-$", rows["KILLED"])
    assert re.search(
        rf" EXPORT +FULL +STOPPED +2 +0 +\S+:{view['owner_pid']} +no +0 ", rows["ORDERLY"]
    )

    # ... and the stop was an orderly one, not a failure.
    assert view["stop_reason"] == "STOP_JOB", out
    assert rc == ExitCode.STOPPED, out + err
    assert rows["ORDERLY"].endswith(" STOP_JOB")


# -- 3. commands on standard input when it is not a terminal ---------------------------------


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_attach_reads_commands_from_a_pipe_and_detaches_leaving_the_job_running(
    tmp_path: Path, home: Path, dumps: Path, big_db: Path, processes: Processes
) -> None:
    exporter = processes.start(
        "export",
        "--database",
        big_db,
        "--directory",
        dumps,
        "--dumpfile",
        "p%U.dmp",
        "--parallel",
        1,
        "--home",
        home,
        "--job-name",
        "PIPED",
        *SLOW,
        cwd=tmp_path,
        name="PIPED",
    )
    before = wait_executing(home, "PIPED")
    assert before["degree"] == 1 and before["attached_sessions"] == 1

    done = pumpkit(
        "attach", "PIPED", "--home", home, cwd=tmp_path, stdin="STATUS\nPARALLEL=2\nEXIT_CLIENT\n"
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert done.stderr == ""
    out = done.stdout
    marks = [
        out.find("Job: PIPED"),
        out.find("State: EXECUTING"),
        out.find("Degree of parallelism set to 2"),
        out.find("Client detached; job PIPED goes on"),
    ]
    assert -1 not in marks and marks == sorted(marks), out
    assert "Export>" not in out  # no prompt when standard input is not a terminal
    view = jobs(home)["PIPED"]
    assert view["state"] == "EXECUTING" and view["owner_alive"] is True
    assert view["owner_pid"] == before["owner_pid"]
    assert view["degree"] == 2
    assert view["attached_sessions"] == 1  # ours went away, the exporting client stays

    # The end of the input without EXIT_CLIENT detaches as well.
    done = pumpkit("attach", "PIPED", "--home", home, cwd=tmp_path, stdin="STATUS\n")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "Client detached; job PIPED goes on" in done.stdout
    view = jobs(home)["PIPED"]
    assert view["state"] == "EXECUTING" and view["owner_alive"] is True
    assert view["attached_sessions"] == 1

    # CONTINUE_CLIENT from a pipe: logging mode, to the end of the job.
    done = pumpkit("attach", "PIPED", "--home", home, cwd=tmp_path, stdin="CONTINUE_CLIENT\n")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "Job PIPED successfully completed" in done.stdout
    rc, out, err = exporter.finish(60)
    assert rc == ExitCode.OK, out + err
    assert "Job PIPED successfully completed" in out
    assert_sound(dumps, "p", big_db)


# -- 4. the client may go away ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_killing_the_client_leaves_the_job_running_to_completion(
    tmp_path: Path, home: Path, dumps: Path, big_db: Path, processes: Processes
) -> None:
    client = processes.start(
        "export",
        "--database",
        big_db,
        "--directory",
        dumps,
        "--dumpfile",
        "bg%U.dmp",
        "--parallel",
        2,
        "--home",
        home,
        "--job-name",
        "BG",
        *SLOW,
        cwd=tmp_path,
        name="BG",
    )
    view = wait_executing(home, "BG")
    runner = view["owner_pid"]
    assert runner != client.proc.pid
    client.proc.send_signal(signal.SIGKILL)
    assert client.proc.wait(10) == -signal.SIGKILL
    view = jobs(home)["BG"]
    assert view["state"] == "EXECUTING", view  # still at work when its client died
    assert view["owner_pid"] == runner and view["owner_alive"] is True
    wait_for("BG to complete and leave the jobs view", lambda: "BG" not in jobs(home), 90)
    assert (home / "runners" / "BG.out").exists()
    assert_sound(dumps, "bg", big_db)


# -- 5. --foreground -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_foreground_runs_the_job_in_the_client(
    tmp_path: Path, home: Path, dumps: Path, big_db: Path, processes: Processes
) -> None:
    client = processes.start(
        "export",
        "--database",
        big_db,
        "--directory",
        dumps,
        "--dumpfile",
        "fg%U.dmp",
        "--parallel",
        2,
        "--home",
        home,
        "--job-name",
        "FG",
        "--foreground",
        *SLOW,
        cwd=tmp_path,
        name="FG",
    )
    view = wait_executing(home, "FG")
    assert view["owner_pid"] == client.proc.pid
    assert not (home / "runners" / "FG.out").exists()  # no runner was started
    rc, out, err = client.finish(90)
    assert rc == ExitCode.OK, out + err
    assert "Job FG successfully completed" in out
    assert "FG" not in jobs(home)
    assert_sound(dumps, "fg", big_db)


# -- 6. --parfile ----------------------------------------------------------------------------


def _good_parfile(path: Path, database: Path, directory: Path) -> None:
    path.write_text(
        "# expdp-style parameters\n"
        f"DATABASE={database}\n"
        f"directory = {directory}\n"
        "DUMPFILE='par%U.dmp'\n"
        "\n"
        "PARALLEL=2\n"
        "JOB_NAME=PARJOB   # the job's name\n"
    )


def test_parfile_defines_the_job(tmp_path: Path, home: Path, dumps: Path, small_db: Path) -> None:
    parfile = tmp_path / "exp.par"
    _good_parfile(parfile, small_db, dumps)
    done = pumpkit("export", "--parfile", parfile, "--home", home, cwd=tmp_path)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "Starting PARJOB: EXPORT FULL, parallel 2" in done.stdout
    assert "Job PARJOB successfully completed" in done.stdout
    assert (dumps / "par01.dmp").exists()
    assert_sound(dumps, "par", small_db)


def _bad_parfile(tmp_path: Path, database: Path, directory: Path, line: str) -> Path:
    parfile = tmp_path / "bad.par"
    parfile.write_text(f"DATABASE={database}\nDIRECTORY={directory}\n{line}\nJOB_NAME=BADPAR\n")
    return parfile


@pytest.mark.parametrize("line", ["PARALEL=2", "just some words", "=2"])
def test_parfile_bad_line_is_named_in_one_line(
    tmp_path: Path, home: Path, dumps: Path, small_db: Path, line: str
) -> None:
    parfile = _bad_parfile(tmp_path, small_db, dumps, line)
    done = pumpkit("export", "--parfile", parfile, "--home", home, cwd=tmp_path)
    assert done.returncode in (ExitCode.FAULT, ExitCode.USAGE)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"parfile {parfile} line 3: {line!r}" in lines[0]
    assert "Traceback" not in done.stderr
    assert list(dumps.iterdir()) == []
    assert jobs(home) == {}  # nothing was defined


def test_parfile_bad_line_exits_with_the_usage_code(
    tmp_path: Path, home: Path, dumps: Path, small_db: Path
) -> None:
    # README's table: 2 is "bad usage: unknown option, bad value"; `--paralel 2` gives 2, and
    # PARALEL=2 in a parfile is the same unknown option. 1 is "damage found, or the job failed".
    parfile = _bad_parfile(tmp_path, small_db, dumps, "PARALEL=2")
    done = pumpkit("export", "--parfile", parfile, "--home", home, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE, done.stderr


def test_parfile_bad_value_is_a_one_line_usage_error(
    tmp_path: Path, home: Path, dumps: Path, small_db: Path
) -> None:
    # `--parallel abc` is refused by the parser (exit 2); PARALLEL=abc must not do worse.
    parfile = _bad_parfile(tmp_path, small_db, dumps, "PARALLEL=abc")
    done = pumpkit("export", "--parfile", parfile, "--home", home, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "abc" in done.stderr
    assert done.returncode == ExitCode.USAGE
    assert jobs(home) == {}


def test_parfile_missing_exits_no_input(tmp_path: Path, home: Path) -> None:
    # README's table: 3 is "a named file or directory is missing or cannot be read".
    missing = tmp_path / "missing.par"
    done = pumpkit("export", "--parfile", missing, "--home", home, cwd=tmp_path)
    assert len(done.stderr.splitlines()) == 1 and str(missing) in done.stderr, done.stderr
    assert done.returncode == ExitCode.NO_INPUT


# -- 7. exit codes ---------------------------------------------------------------------------


def test_exit_codes_completed_and_failed(
    tmp_path: Path, home: Path, dumps: Path, small_db: Path
) -> None:
    done = pumpkit(
        "export", "--database", small_db, "--directory", dumps, "--home", home, cwd=tmp_path
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "SYS_EXPORT_FULL_01 successfully completed" in done.stdout

    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database\n" * 100)
    done = pumpkit(
        "export",
        "--database",
        text,
        "--directory",
        dumps,
        "--dumpfile",
        "text.dmp",
        "--job-name",
        "TEXTSRC",
        "--home",
        home,
        cwd=tmp_path,
    )
    assert done.returncode == ExitCode.FAULT, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "Job TEXTSRC failed" in done.stdout and "not a SQLite database" in done.stdout
    view = jobs(home)["TEXTSRC"]  # a failed job keeps its control table
    assert view["state"] == "STOPPED"
    assert view["stop_reason"].startswith("ERROR")
    assert view["owner_alive"] is False


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["export", "--no-such-option"], id="unknown-option"),
        pytest.param(["export"], id="no-database"),
        pytest.param(["import"], id="import-no-database"),
        pytest.param(["export", "--database", "{db}", "--parallel", "abc"], id="parallel-abc"),
        pytest.param(["export", "--database", "{db}", "--compression", "ZIP"], id="bad-choice"),
        pytest.param(["attach"], id="attach-no-job"),
        pytest.param(["export", "--database", "{db}", "--filesize", "abc"], id="filesize-abc"),
    ],
)
def test_exit_code_bad_usage(tmp_path: Path, home: Path, small_db: Path, args: list[str]) -> None:
    argv = [a.replace("{db}", str(small_db)) for a in args]
    done = pumpkit(*argv, "--home", home, cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip(), "a usage error says what is wrong"
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert list(tmp_path.glob("*.dmp")) == []
