"""The process a job runs in: ``python -m pumpkit.engine.runner --home H --job NAME``.

The seed's master control process is a process of its own, so that the client may go away:
a session (or ``pumpkit export``) defines the job, then starts this runner detached from its
terminal. The runner takes the job over with a compare-and-set on its state (DEFINING or
IDLING -> EXECUTING, owner = this process), so of two clients racing to start or restart one
job exactly one wins; it then runs the control coroutine until the job ends. Its exit code
says how: 0 completed, 6 stopped, 1 failed, 3 could not take the job.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Sequence

import anyio
import msgspec

from pumpkit.core.states import JobState
from pumpkit.engine.control import run_job
from pumpkit.io.store import ControlStore, this_host

__all__ = ("main", "take_and_run")

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_NOT_TAKEN = 3
EXIT_STOPPED = 6


async def take_and_run(
    home: str, job_name: str, expect_state: str, *, skip_current: bool, password: str | None = None
) -> int:
    """Take the job over (compare-and-set) and run it; returns the exit code."""
    store = await ControlStore.open(home)
    try:
        record = await store.job(job_name)
        if record is None:
            print(f"pumpkit runner: job {job_name} does not exist", file=sys.stderr)
            return EXIT_NOT_TAKEN
        token = secrets.token_hex(8)
        taken = await store.update_job(
            job_name,
            expect_state=expect_state,
            state=JobState.EXECUTING.value,
            owner_host=this_host(),
            owner_pid=os.getpid(),
            owner_token=token,
            heartbeat=time.time(),
            stop_reason=None,
            restart_count=record.restart_count + (1 if expect_state == "IDLING" else 0),
        )
        if not taken:
            print(
                f"pumpkit runner: job {job_name} is no longer {expect_state}: another process"
                " started it",
                file=sys.stderr,
            )
            return EXIT_NOT_TAKEN
        state = await run_job(store, job_name, skip_current=skip_current, password=password)
        if state == JobState.COMPLETED:
            return EXIT_COMPLETED
        final = await store.job(job_name)
        if final is not None and (final.stop_reason or "").startswith("ERROR"):
            return EXIT_FAILED
        return EXIT_STOPPED
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
