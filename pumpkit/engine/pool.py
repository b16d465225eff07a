"""The worker pool: the seed's worker processes as tasks of the control coroutine's task group.

Work items are handed out through a bounded stream (a worker takes one when it is free), and
at most the job's current degree are busy at once: a worker whose number is at or above the
degree takes nothing new, so SET_PARALLEL changes the number of busy workers while the job
runs. A graceful stop lets every worker finish the item it holds and hands out nothing more;
an immediate stop (``JobStopped`` from the work) leaves the item unfinished, redone on
restart. Export, import and their readers all run through it.

A worker *process* that dies under its worker (``WorkerDiedError``) is replaced by the control
process (``WorkerReplacer``) and the item redone, up to WORKER_REPLACEMENTS per run of the
job; past that the job stops, the reason in its status and log (Oracle's master control
process restarts a failed worker the same way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pumpkit.core.control_table import ControlRow
from pumpkit.engine.job import Job
from pumpkit.errors import JobStopped, WorkerDiedError
from pumpkit.io.connectors.base import GranuleReaders

__all__ = ("Work", "WorkerReplacer", "run_pool")

T = TypeVar("T")
Work = Callable[[str, int, ControlRow], Awaitable[None]]
"""What a worker does with one item: ``work(worker name, worker number, item)``."""


async def run_pool(job: Job, items: Sequence[ControlRow], work: Work, *, max_workers: int) -> None:
    """Hand ``items`` to up to ``max_workers`` workers, at most ``job.degree`` busy at once;
    return when every item is done (or the job stops)."""
    send: MemoryObjectSendStream[ControlRow]
    receive: MemoryObjectReceiveStream[ControlRow]
    send, receive = anyio.create_memory_object_stream[ControlRow](0)
    fed = False

    async def feed() -> None:
        nonlocal fed
        async with send:
            for item in items:
                if job.stopping:
                    break
                try:
                    await send.send(item)
                except anyio.BrokenResourceError:
                    break  # every worker left (an orderly stop): nothing more to hand out
        # Idle workers above the degree must learn that nothing more is coming.
        fed = True
        job.wake()

    async def worker(number: int, stream: MemoryObjectReceiveStream[ControlRow]) -> None:
        name = f"WORKER_{number + 1:02d}"
        async with stream:
            while True:
                while number >= job.degree and not job.stopping and not fed:
                    await job.changed.wait()
                if job.stopping:
                    return
                try:
                    item = await stream.receive()
                except anyio.EndOfStream:
                    break
                await job.set_worker(name, item)
                try:
                    await work(name, number, item)
                except JobStopped:
                    # An immediate stop: the item stays unfinished and is redone on restart.
                    return
                await job.set_worker(name, None)

    # Closed here too: a worker task cancelled before it began never enters its own.
    clones = [receive.clone() for _ in range(max_workers)]
    receive.close()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            for n in range(max_workers):
                tg.start_soon(worker, n, clones[n])
    finally:
        send.close()
        for clone in clones:
            clone.close()


class WorkerReplacer:
    """Replaces dead reader processes of one run of a job, up to the job's
    WORKER_REPLACEMENTS (default 3), and logs each replacement."""

    def __init__(self, job: Job, readers: GranuleReaders) -> None:
        self.job = job
        self.readers = readers
        self.limit = int(job.parameters.get("WORKER_REPLACEMENTS", 3))
        self.replaced = 0

    async def replace(self, reader: int, died: WorkerDiedError) -> None:
        """Replace ``reader`` after ``died``, so that its item can be redone; raises
        ``WorkerDiedError`` (the job then stops with it as the reason) when the limit is
        reached or the readers cannot replace one."""
        if self.replaced >= self.limit:
            raise WorkerDiedError(
                f"{died}; the job stops: {self.replaced} dead worker(s) replaced already,"
                f" the limit (WORKER_REPLACEMENTS) is {self.limit}",
                worker=died.worker,
                table=died.table,
            ) from None
        if not await self.readers.replace(reader):
            raise died
        self.replaced += 1
        await self.job.log(
            f"{died}: replaced by a new worker process ({self.replaced} of"
            f" {self.limit}); its granule is redone"
        )
