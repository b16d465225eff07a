"""Table 6-1 through the real Session: every procedure, in every job state.

``tests/core/test_states.py`` checks the table as data; this module proves that each Session
procedure actually asks it. For every cell (procedure x state) a fresh job is made in a fresh
home, forced into the state through the control store, and the procedure is called with
plausible arguments. The call counts as *refused* if and only if it raises
``InvalidStateError``; anything else (success, a call still waiting after a short bound, or
another ``PumpkitError`` because the forced state is artificial) counts as *allowed*.

The expected table below is copied from the seed (Oracle's Table 6-1), not from
``pumpkit.core.states``, so a wrong entry there is caught here too.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import pytest

import pumpkit
from pumpkit.core.control_table import JobUpdate
from pumpkit.core.states import JobState, Procedure
from pumpkit.io.store import this_host

# --- the seed's Table 6-1, as a literal ---------------------------------------------------------

STATES = (
    "UNDEFINED",
    "DEFINING",
    "EXECUTING",
    "COMPLETING",
    "COMPLETED",
    "STOP PENDING",
    "STOPPING",
    "STOPPED",
    "IDLING",
    "NOT RUNNING",
)
ALL = frozenset(STATES)
ALL_BUT_ENDED = ALL - {"COMPLETED", "NOT RUNNING", "STOPPED", "UNDEFINED"}

TABLE_6_1: dict[str, frozenset[str]] = {
    # Defining (export and import); Executing and Idling only for dump files of export jobs
    # (see FOOTNOTE_ADD_FILE).
    "ADD_FILE": frozenset({"DEFINING"}),
    "ATTACH": frozenset(
        {"DEFINING", "EXECUTING", "IDLING", "STOPPED", "COMPLETED", "COMPLETING", "NOT RUNNING"}
    ),
    "DATA_FILTER": frozenset({"DEFINING"}),
    "DETACH": ALL,
    "GET_DUMPFILE_INFO": ALL,
    "GET_STATUS": ALL_BUT_ENDED,
    "LOG_ENTRY": frozenset({"DEFINING", "EXECUTING", "IDLING", "STOP PENDING", "COMPLETING"}),
    "METADATA_FILTER": frozenset({"DEFINING"}),
    "METADATA_REMAP": frozenset({"DEFINING"}),
    "METADATA_TRANSFORM": frozenset({"DEFINING"}),
    "OPEN": frozenset({"UNDEFINED"}),
    "SET_PARALLEL": frozenset({"DEFINING", "EXECUTING", "IDLING"}),
    # Defining; ENCRYPTION_PASSWORD also Idling (see FOOTNOTE_ENCRYPTION_PASSWORD).
    "SET_PARAMETER": frozenset({"DEFINING"}),
    "START_JOB": frozenset({"DEFINING", "IDLING"}),
    "STOP_JOB": frozenset({"DEFINING", "EXECUTING", "IDLING", "STOP PENDING"}),
    "WAIT_FOR_JOB": ALL_BUT_ENDED,
}
FOOTNOTE_ADD_FILE = frozenset({"EXECUTING", "IDLING"})  # dump files of export jobs
FOOTNOTE_ENCRYPTION_PASSWORD = frozenset({"IDLING"})

JOB = "J"
# How long a call that legitimately waits (wait_for_job, stop_job, ...) may run.
BOUND = 0.5


def test_the_literal_covers_every_procedure() -> None:
    assert set(TABLE_6_1) == {p.value for p in Procedure}
    assert set(STATES) == {s.value for s in pumpkit.JobState}


# --- fixtures -------------------------------------------------------------------------------------


def _make_database(path: Path, rows: int = 200) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount REAL)")
        conn.executemany(
            "INSERT INTO t (name, amount) VALUES (?, ?)",
            [(f"row {i}", i / 7) for i in range(rows)],
        )
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def dump_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dump file, made once per module by an export."""
    base = tmp_path_factory.mktemp("table61_dump")
    source = base / "source.db"
    _make_database(source)
    status = anyio.run(
        lambda: pumpkit.export_database(
            source, "module%U.dmp", directory=base, home=base / "home", job_name="MODULE_EXPORT"
        )
    )
    assert status.state == "COMPLETED", status.errors
    path = base / "module01.dmp"
    assert path.exists()
    return path


@pytest.fixture
def source_db(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    _make_database(path)
    return path


# --- forcing a state --------------------------------------------------------------------------------


async def force_state(session: pumpkit.Session, state: str) -> None:
    """Put job ``JOB`` into ``state`` as the registry (and the Session) will read it, by a
    legal path of the state machine from DEFINING."""
    store = session._store
    alive = JobUpdate(owner_pid=os.getpid(), owner_host=this_host(), heartbeat=time.time())
    X, SG = JobState.EXECUTING, JobState.STOPPING
    paths = {
        "EXECUTING": (X,),
        "STOP PENDING": (X, JobState.STOP_PENDING),
        "STOPPING": (X, SG),
        "COMPLETING": (X, JobState.COMPLETING),
        "IDLING": (X, SG, JobState.STOPPED, JobState.IDLING),
        "STOPPED": (JobState.STOPPED,),
        "COMPLETED": (X, JobState.COMPLETING, JobState.COMPLETED),
    }
    if state == "DEFINING":
        return
    if state == "UNDEFINED":
        await store.drop_job(JOB)
    elif state == "NOT RUNNING":
        # Its owner stopped beating an hour ago: nobody serves the job any more.
        stale = msgspec.structs.replace(alive, heartbeat=time.time() - 3600)
        await store.move(JOB, JobState.DEFINING, X, update=stale)
    elif state in ("EXECUTING", "STOP PENDING", "STOPPING", "COMPLETING"):
        await store.move(JOB, JobState.DEFINING, *paths[state], update=alive)
    else:  # IDLING, STOPPED, COMPLETED: no owner needed
        await store.move(JOB, JobState.DEFINING, *paths[state])
    # The Session must see exactly this state.
    record = await store.job(JOB)
    if state == "UNDEFINED":
        assert record is None
    else:
        assert record is not None
        assert session._effective_state(record).value == state


Outcome = tuple[bool, pumpkit.PumpkitError | None]


async def classify(call: Callable[[], Awaitable[object]]) -> Outcome:
    """(refused, the error raised, if any) of one call bounded to BOUND seconds.

    Refused iff InvalidStateError; still waiting at the bound, success, or another
    PumpkitError (the state allowed the call, something else did not) count as allowed.
    """
    try:
        with anyio.move_on_after(BOUND):
            await call()
    except pumpkit.InvalidStateError as exc:
        return True, exc
    except pumpkit.PumpkitError as exc:
        return False, exc
    return False, None


def assert_cell(procedure: str, state: str, expected: frozenset[str], outcome: Outcome) -> None:
    refused, exc = outcome
    should_refuse = state not in expected
    verdict = "refused" if refused else "allowed"
    assert refused == should_refuse, (
        f"{procedure} in {state}: Table 6-1 says {'refused' if should_refuse else 'allowed'},"
        f" the Session {verdict} it"
        + (f" (it raised {type(exc).__name__}: {exc})" if exc is not None else "")
    )
    if refused:
        assert isinstance(exc, pumpkit.InvalidStateError)
        message = str(exc)
        assert procedure in message, message
        assert state in message, message
        assert exc.procedure == procedure
        assert exc.state == state


# --- the matrix ---------------------------------------------------------------------------------


def _call(
    procedure: str, session: pumpkit.Session, h: int, tmp_path: Path, dump_file: Path
) -> Callable[[], Awaitable[object]]:
    s = session
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        # An export job adding a dump file: the footnote's own case.
        "ADD_FILE": lambda: s.add_file(h, "more%U.dmp", directory=tmp_path),
        "ATTACH": lambda: s.attach(JOB),
        "DATA_FILTER": lambda: s.data_filter(h, "SAMPLE", 50, table_name="t"),
        "DETACH": lambda: s.detach(h),
        "GET_DUMPFILE_INFO": lambda: anyio.to_thread.run_sync(pumpkit.get_dumpfile_info, dump_file),
        "GET_STATUS": lambda: s.get_status(h),
        "LOG_ENTRY": lambda: s.log_entry(h, "a line from the test"),
        "METADATA_FILTER": lambda: s.metadata_filter(h, "NAME_LIST", ["t"]),
        "METADATA_REMAP": lambda: s.metadata_remap(h, "REMAP_TABLE", "t", "t2"),
        "METADATA_TRANSFORM": lambda: s.metadata_transform(h, "OMIT_STORAGE", 1),
        "OPEN": lambda: s.open("EXPORT", "FULL", job_name=JOB, database=tmp_path / "source.db"),
        "SET_PARALLEL": lambda: s.set_parallel(h, 2),
        "SET_PARAMETER": lambda: s.set_parameter(h, "KEEP_MASTER", 1),
        "START_JOB": lambda: s.start_job(h),
        "STOP_JOB": lambda: s.stop_job(h),
        "WAIT_FOR_JOB": lambda: s.wait_for_job(h),
    }
    return calls[procedure]


def _expected(procedure: str) -> frozenset[str]:
    # The matrix uses an export job and dump files, so ADD_FILE's footnote applies.
    if procedure == "ADD_FILE":
        return TABLE_6_1[procedure] | FOOTNOTE_ADD_FILE
    return TABLE_6_1[procedure]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("procedure", "state"),
    list(itertools.product(sorted(TABLE_6_1), STATES)),
    ids=[f"{p}-{s.replace(' ', '_')}" for p, s in itertools.product(sorted(TABLE_6_1), STATES)],
)
async def test_session_enforces_table_6_1(
    procedure: str, state: str, tmp_path: Path, source_db: Path, dump_file: Path
) -> None:
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open("EXPORT", "FULL", job_name=JOB, database=source_db)
        # A dump file, so that an allowed START_JOB has something to write to.
        await s.add_file(h, "exp%U.dmp", directory=tmp_path)
        await force_state(s, state)
        outcome = await classify(_call(procedure, s, h, tmp_path, dump_file))
    assert_cell(procedure, state, _expected(procedure), outcome)


# --- the footnotes, through the Session -----------------------------------------------------------


async def _footnote_outcome(
    tmp_path: Path, source_db: Path, dump_file: Path, operation: str, state: str, what: str
) -> Outcome:
    database = source_db if operation == "EXPORT" else tmp_path / "target.db"
    async with pumpkit.Session(home=tmp_path / "home") as s:
        h = await s.open(operation, "FULL", job_name=JOB, database=database)
        await force_state(s, state)
        if what == "DUMP" and operation == "EXPORT":
            call = s.add_file(h, "more%U.dmp", directory=tmp_path)
        elif what == "DUMP":
            call = s.add_file(h, dump_file.name, directory=dump_file.parent)
        elif what == "LOG":
            call = s.add_file(h, "job.log", directory=tmp_path, filetype="LOG")
        else:
            call = s.set_parameter(h, what, "secret")

        async def run() -> object:
            return await call

        return await classify(run)


FOOTNOTE_CASES = {
    # (operation, file type or parameter): (procedure, states where it is valid)
    ("EXPORT", "DUMP"): ("ADD_FILE", TABLE_6_1["ADD_FILE"] | FOOTNOTE_ADD_FILE),
    ("IMPORT", "DUMP"): ("ADD_FILE", TABLE_6_1["ADD_FILE"]),
    ("EXPORT", "LOG"): ("ADD_FILE", TABLE_6_1["ADD_FILE"]),
    ("IMPORT", "LOG"): ("ADD_FILE", TABLE_6_1["ADD_FILE"]),
    ("EXPORT", "ENCRYPTION_PASSWORD"): (
        "SET_PARAMETER",
        TABLE_6_1["SET_PARAMETER"] | FOOTNOTE_ENCRYPTION_PASSWORD,
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("operation", "what", "state"),
    [(op, what, state) for (op, what) in FOOTNOTE_CASES for state in STATES],
    ids=[
        f"{op}-{what}-{state.replace(' ', '_')}"
        for (op, what) in FOOTNOTE_CASES
        for state in STATES
    ],
)
async def test_footnotes_through_the_session(
    operation: str, what: str, state: str, tmp_path: Path, source_db: Path, dump_file: Path
) -> None:
    procedure, expected = FOOTNOTE_CASES[(operation, what)]
    outcome = await _footnote_outcome(tmp_path, source_db, dump_file, operation, state, what)
    assert_cell(procedure, state, expected, outcome)


@pytest.mark.asyncio
async def test_add_dump_file_while_executing_export_is_allowed(
    tmp_path: Path, source_db: Path, dump_file: Path
) -> None:
    refused, exc = await _footnote_outcome(
        tmp_path, source_db, dump_file, "EXPORT", "EXECUTING", "DUMP"
    )
    assert not refused, exc


@pytest.mark.asyncio
async def test_add_dump_file_while_executing_import_is_refused(
    tmp_path: Path, source_db: Path, dump_file: Path
) -> None:
    refused, exc = await _footnote_outcome(
        tmp_path, source_db, dump_file, "IMPORT", "EXECUTING", "DUMP"
    )
    assert refused
    assert exc is not None
    assert "ADD_FILE" in str(exc)
    assert "EXECUTING" in str(exc)


@pytest.mark.asyncio
async def test_add_log_file_while_executing_is_refused(
    tmp_path: Path, source_db: Path, dump_file: Path
) -> None:
    refused, exc = await _footnote_outcome(
        tmp_path, source_db, dump_file, "EXPORT", "EXECUTING", "LOG"
    )
    assert refused
    assert exc is not None
    assert "ADD_FILE" in str(exc)
    assert "EXECUTING" in str(exc)
