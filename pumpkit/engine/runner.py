"""The process a job runs in: ``python -m pumpkit.engine.runner --home H --job NAME``.

The seed's master control process is a process of its own, so that the client may go away:
a session (or ``pumpkit export``) defines the job, then starts this runner detached from its
terminal. The runner takes the job (``ControlStore.take_job``: a compare-and-set of its state,
DEFINING or IDLING -> EXECUTING, and its owner), so of two clients racing to start or restart
one job exactly one wins; it then runs the control coroutine until the job ends. Its exit
code (``pumpkit.exitcodes.ExitCode``) says how: OK completed, STOPPED, FAULT failed, KILLED,
JOB_TAKEN when another process had taken the job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio
import msgspec

from pumpkit.core.states import JobState
from pumpkit.engine.control import run_job
from pumpkit.exitcodes import ExitCode
from pumpkit.io.store import ControlStore, new_owner, open_store

__all__ = ("main", "take_and_run")


async def _run(
    store: ControlStore,
    job_name: str,
    expect: JobState,
    *,
    skip_current: bool,
    password: str | None,
) -> int:
    record = await store.job(job_name)
    if record is None:
        print(f"pumpkit runner: job {job_name} does not exist", file=sys.stderr)
        return ExitCode.USAGE
    if await store.take_job(job_name, expect, new_owner()) is None:
        now = await store.job(job_name)
        holder = f"{now.owner_host}:{now.owner_pid}" if now and now.owner_pid else "another process"
        state = now.state if now else "gone"
        print(
            f"pumpkit runner: job {job_name} is no longer {expect.value} ({state}): another"
            f" process started it ({holder} has it)",
            file=sys.stderr,
        )
        return ExitCode.JOB_TAKEN
    state = await run_job(store, job_name, skip_current=skip_current, password=password)
    if state == JobState.COMPLETED:
        return ExitCode.OK
    final = await store.job(job_name)
    if final is None:
        return ExitCode.KILLED
    if (final.stop_reason or "").startswith("ERROR"):
        return ExitCode.FAULT
    return ExitCode.STOPPED


async def take_and_run(
    home: str, job_name: str, expect_state: str, *, skip_current: bool, password: str | None = None
) -> int:
    """Take the job over (compare-and-set) and run it; returns the exit code."""
    store = await open_store(home)
    try:
        return int(
            await _run(
                store,
                job_name,
                JobState(expect_state),
                skip_current=skip_current,
                password=password,
            )
        )
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pumpkit.engine.runner")
    parser.add_argument("--home", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--expect-state", default="DEFINING", choices=("DEFINING", "IDLING"))
    parser.add_argument("--skip-current", action="store_true")
    parser.add_argument(
        "--password-on-stdin",
        action="store_true",
        help="read the ENCRYPTION_PASSWORD from the first line of stdin (never from argv)",
    )
    args = parser.parse_args(argv)
    password = (
        msgspec.json.decode(sys.stdin.buffer.readline(), type=str)
        if args.password_on_stdin
        else None
    )
    return anyio.run(
        lambda: take_and_run(
            args.home,
            args.job,
            args.expect_state,
            skip_current=args.skip_current,
            password=password,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
