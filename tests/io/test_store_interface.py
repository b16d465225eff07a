"""The control store's verbs, written against the interface: every implementation of
``ControlStore`` runs these (the ``store`` fixture is parametrized over them)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
import pytest_asyncio

from pumpkit.core.control_table import (
    ControlRow,
    ExistsAction,
    FileEntry,
    FrameRef,
    JobRecord,
    JobUpdate,
    Owner,
    ProcessingState,
    RowKind,
    RowUpdate,
    WorkerEntry,
    encode_frames,
)
from pumpkit.core.states import JobState
from pumpkit.errors import InvalidTransitionError
from pumpkit.io.store import ControlStore, open_store

IMPLEMENTATIONS = ["sqlite"]


@pytest_asyncio.fixture(params=IMPLEMENTATIONS)
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[ControlStore]:
    opened = await open_store(tmp_path / "home")
    try:
        yield opened
    finally:
        await opened.close()


def record(name: str, state: JobState = JobState.DEFINING) -> JobRecord:
    now = time.time()
    return JobRecord(
        job_name=name,
        guid=str(uuid.uuid4()),
        operation="EXPORT",
        job_mode="FULL",
        state=state.value,
        degree=1,
        attached_sessions=1,
        owner_host=None,
        owner_pid=None,
        owner_token=None,
        heartbeat=None,
        stop_reason=None,
        restart_count=0,
        created=now,
        updated=now,
    )


def job_row() -> ControlRow:
    return ControlRow(process_order=RowKind.JOB, object_type="JOB", state="DEFINING")


def table_rows() -> list[ControlRow]:
    return [
        ControlRow(
            process_order=1_000_001,
            object_type="TABLE",
            object_name="t",
            processing_state=ProcessingState.PENDING,
        ),
        ControlRow(
            process_order=2_000_001,
            duplicate=1,
            object_type="TABLE_DATA",
            object_name="t",
            processing_state=ProcessingState.PENDING,
        ),
    ]


pytestmark = pytest.mark.asyncio


async def test_a_new_job_is_defining_with_its_control_table(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row(), *table_rows()])
    assert (await store.job("J")).state == "DEFINING"
    assert await store.has_control_table("J")
    assert await store.job_names() == {"J"}
    assert [s for _, _, s, _ in await store.history("J")] == ["DEFINING"]


async def test_move_follows_the_edges_and_records_each_state(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    owner = Owner(host="h", pid=1, token="tok")
    taken = await store.take_job("J", JobState.DEFINING, owner)
    assert taken is not None and taken.owner_token == "tok" and taken.state == "EXECUTING"
    assert await store.move(
        "J", JobState.EXECUTING, JobState.STOPPING, JobState.STOPPED, token="tok"
    )
    history = [s for _, _, s, _ in await store.history("J")]
    assert history == ["DEFINING", "EXECUTING", "STOPPING", "STOPPED"]
    # The JOB row of the control table says it too.
    job = next(r for r in await store.rows("J") if r.kind is RowKind.JOB)
    assert job.state == "STOPPED"


async def test_an_illegal_move_is_refused_before_anything_is_written(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    with pytest.raises(InvalidTransitionError, match="DEFINING to COMPLETED"):
        await store.move("J", JobState.DEFINING, JobState.COMPLETED)
    with pytest.raises(InvalidTransitionError):
        await store.move("J", JobState.DEFINING, JobState.EXECUTING, JobState.IDLING)
    assert (await store.job("J")).state == "DEFINING"
    assert [s for _, _, s, _ in await store.history("J")] == ["DEFINING"]


async def test_move_is_compare_and_set_on_state_and_token(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    assert not await store.move("J", JobState.IDLING, JobState.EXECUTING)
    await store.take_job("J", JobState.DEFINING, Owner(host="h", pid=1, token="a"))
    assert not await store.move("J", JobState.EXECUTING, JobState.COMPLETING, token="b")
    assert (await store.job("J")).state == "EXECUTING"
    assert await store.move("J", JobState.EXECUTING, JobState.COMPLETING, token="a")


async def test_of_many_takers_exactly_one_gets_the_job(store: ControlStore, tmp_path) -> None:
    await store.create_job(record("J"), [job_row()])
    stores = [await open_store(tmp_path / "home") for _ in range(6)]
    won: list[str] = []

    async def take(s: ControlStore, n: int) -> None:
        if await s.take_job("J", JobState.DEFINING, Owner(host="h", pid=n, token=f"t{n}")):
            won.append(f"t{n}")

    try:
        async with anyio.create_task_group() as tg:
            for n, s in enumerate(stores):
                tg.start_soon(take, s, n)
    finally:
        for s in stores:
            await s.close()
    assert len(won) == 1
    assert (await store.job("J")).owner_token == won[0]


async def test_beat_only_for_the_owner(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    await store.take_job("J", JobState.DEFINING, Owner(host="h", pid=1, token="a"))
    assert await store.beat("J", "a")
    assert not await store.beat("J", "someone else")


async def test_restart_count_grows_when_an_idling_job_is_taken(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    await store.take_job("J", JobState.DEFINING, Owner(host="h", pid=1, token="a"))
    await store.move("J", JobState.EXECUTING, JobState.STOPPING, JobState.STOPPED)
    await store.move("J", JobState.STOPPED, JobState.IDLING)
    again = await store.take_job("J", JobState.IDLING, Owner(host="h", pid=2, token="b"))
    assert again is not None and again.restart_count == 1


async def test_drop_job_records_undefined_and_forgets_the_rest(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    await store.log("J", "hello")
    await store.post_command("J", "STOP")
    await store.drop_job("J")
    assert await store.job("J") is None
    assert not await store.has_control_table("J")
    assert await store.log_lines("J") == []
    assert await store.take_commands("J") == []
    assert [s for _, _, s, _ in await store.history("J")] == ["DEFINING", "UNDEFINED"]


async def test_object_rows_typed_in_and_out(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row(), *table_rows()])
    frames = [FrameRef(1, 4096, 100, 10, 500), FrameRef(2, 4096, 90, 9, 450)]
    data = next(r for r in await store.rows("J", object_types=["TABLE_DATA"]))
    assert data.processing_state is ProcessingState.PENDING
    await store.update_rows(
        "J",
        [
            (
                data.key,
                RowUpdate(
                    processing_state=ProcessingState.COMPLETED,
                    completed_rows=19,
                    frames=encode_frames(frames),
                ),
            )
        ],
    )
    done = await store.rows("J", states=[ProcessingState.COMPLETED])
    assert [r.object_type for r in done] == ["TABLE_DATA"]
    assert done[0].completed_rows == 19 and done[0].frame_refs() == frames
    # Fields not given are left alone.
    assert done[0].object_name == "t"
    table = ControlRow(
        process_order=1_000_002,
        object_type="TABLE",
        object_name="u",
        exists_action=ExistsAction.APPEND,
    )
    await store.insert_rows("J", [table])
    got = next(r for r in await store.rows("J", object_types=["TABLE"]) if r.object_name == "u")
    assert got.exists_action is ExistsAction.APPEND


async def test_parameters_keep_their_types(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    await store.set_parameter("J", "TEXT", "x")
    await store.set_parameter("J", "NUMBER", 3)
    await store.set_parameter("J", "HALF", 0.5)
    await store.set_parameter("J", "LIST", ["a", "b"])
    await store.set_parameter("J", "NOTHING", None)
    await store.set_parameter("J", "TEXT", "y")  # replaced, not added
    assert await store.parameters("J") == {
        "TEXT": "y",
        "NUMBER": 3,
        "HALF": 0.5,
        "LIST": ["a", "b"],
        "NOTHING": None,
    }


async def test_files_workers_and_filters(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    entry = FileEntry(
        file_type="DUMP", directory="/d", file_name="x%U.dmp", first_path="/d/x01.dmp", max_size=9
    )
    await store.add_file("J", entry)
    await store.add_file("J", entry)  # the same file again: one row
    await store.add_file(
        "J", FileEntry(file_type="LOG", directory="/d", file_name="x.log", first_path="/d/x.log")
    )
    assert [f.file_type for f in await store.files("J")] == ["DUMP", "LOG"]
    assert (await store.files("J"))[0] == entry
    await store.set_worker("J", WorkerEntry(name="WORKER_01", state="WORKING", object_name="t"))
    await store.set_worker("J", WorkerEntry(name="WORKER_01", state="IDLE"))
    assert [(w.name, w.state) for w in await store.workers("J")] == [("WORKER_01", "IDLE")]
    await store.add_filter(
        "J", "METADATA_FILTER:NAME_EXPR", "IN ('A')", target="TABLE", schema=None
    )
    await store.add_filter("J", "DATA_FILTER:SAMPLE", 12.5, target="t", schema="main")
    filters = await store.filters("J")
    assert [(f.seq, f.name, f.value, f.target) for f in filters] == [
        (1, "METADATA_FILTER:NAME_EXPR", "IN ('A')", "TABLE"),
        (2, "DATA_FILTER:SAMPLE", 12.5, "t"),
    ]


async def test_update_job_degree_reaches_the_job_row(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    await store.take_job("J", JobState.DEFINING, Owner(host="h", pid=1, token="a"))
    assert await store.update_job("J", JobUpdate(degree=3), token="a")
    assert not await store.update_job("J", JobUpdate(degree=4), token="b")
    assert (await store.job("J")).degree == 3
    job = next(r for r in await store.rows("J") if r.kind is RowKind.JOB)
    assert job.degree == 3


async def test_log_and_commands_in_order(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    assert [await store.log("J", t) for t in ("a", "b", "c")] == [1, 2, 3]
    assert [t for _, _, t in await store.log_lines("J", after=1)] == ["b", "c"]
    await store.post_command("J", "PARALLEL", "2")
    await store.post_command("J", "STOP", "{}")
    assert await store.take_commands("J") == [("PARALLEL", "2"), ("STOP", "{}")]
    assert await store.take_commands("J") == []


async def test_attached_sessions_count_without_lost_updates(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row()])
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(store.change_attached, "J", 1)
    assert (await store.job("J")).attached_sessions == 11
    assert await store.change_attached("gone", 1) is None


async def test_table_dump_has_every_column(store: ControlStore) -> None:
    await store.create_job(record("J"), [job_row(), *table_rows()])
    columns, rows = await store.table_dump("J")
    assert columns == ControlRow.__struct_fields__
    assert len(rows) == 3 and all(len(r) == len(columns) for r in rows)
