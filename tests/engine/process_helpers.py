"""Helpers for ``test_processes.py``: processes to kill, watch and wait for, and client scripts.

Run as a script, this module is a pumpkit client in a process of its own::

    python process_helpers.py ACTION HOME JOB READY GO [ARG]

It opens a ``Session`` on HOME, creates the file READY, waits for the file GO to appear (the
barrier that lets a test line several processes up, or fire one at a chosen moment), then
does ACTION on job JOB and prints one JSON line: ``{"ok": true, ...}`` or ``{"ok": false,
"step": ..., "error": <pumpkit exception class>, "message": ...}``. ACTIONs:

* ``stop`` (ARG ``immediate`` or ``graceful``): attach, ``stop_job``;
* ``parallel`` (ARG the degree): attach, ``set_parallel``, detach;
* ``start``: attach, ``start_job(detached=True)`` (the restart race).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from pumpkit.core.states import JobState
from pumpkit.engine.progress import pid_alive
from pumpkit.engine.session import Session
from pumpkit.errors import PumpkitError

HELPER = Path(__file__).resolve()
_BARRIER_POLL = 0.002


# --- processes ---------------------------------------------------------------------------------


def session_members(sid: int) -> list[int]:
    """The live (not zombie) processes of session ``sid`` (Linux ``/proc``).

    A detached job's runner is started with ``start_new_session``, so its session id is its
    pid and every process it starts (export workers) belongs to that session too.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
        fields = data.rsplit(b")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


async def wait_until(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float,
    interval: float = 0.02,
) -> bool:
    """Poll ``predicate`` (sync or async) until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return True
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(interval)


async def kill_runner(pid: int) -> list[int]:
    """SIGKILL process ``pid`` (a job's runner), wait until it is dead, then give the
    processes it started a few seconds to notice; return those still alive (orphans)."""
    with contextlib.suppress(ProcessLookupError):  # it may have ended (and been reaped) first
        os.kill(pid, signal.SIGKILL)
    assert await wait_until(lambda: not pid_alive(pid), 10), f"runner {pid} survived SIGKILL"
    await wait_until(lambda: not session_members(pid), 10)
    return session_members(pid)


async def processes_left(sid: int, timeout: float = 10) -> list[int]:
    """The processes of session ``sid`` still alive after waiting up to ``timeout``."""
    await wait_until(lambda: not session_members(sid), timeout)
    return session_members(sid)


class Client:
    """A client script (see the module doc) in a process of its own; use ``async with``."""

    def __init__(self, action: str, home: Path, job: str, go: Path, *args: str) -> None:
        self.ready = go.with_name(f"{go.name}.ready.{action}.{id(self)}")
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER), action, str(home), job, str(self.ready), str(go), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = ""
        self.stderr = ""

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        await self.finish(timeout=30)

    async def wait_ready(self, timeout: float = 60) -> None:
        ok = await wait_until(
            lambda: self.ready.exists() or self.process.poll() is not None, timeout
        )
        if not self.ready.exists():
            await self.finish(timeout=5)
            raise AssertionError(
                f"client did not get ready (ok={ok}): {self.stdout!r} {self.stderr[-2000:]!r}"
            )

    async def finish(self, timeout: float = 90) -> dict[str, Any]:
        """Wait for the client to end; its JSON answer (``{}`` if it printed none)."""
        await wait_until(lambda: self.process.poll() is not None, timeout, interval=0.01)
        if self.process.poll() is None:
            self.process.kill()
        out, err = await anyio.to_thread.run_sync(self.process.communicate)
        self.stdout += out or ""
        self.stderr += err or ""
        lines = self.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else {}


# --- the client script -------------------------------------------------------------------------


async def _client(action: str, home: str, job: str, ready: str, go: str, arg: str | None) -> dict:
    async with Session(home) as session:
        Path(ready).touch()
        while True:
            if os.path.exists(go):
                break
            await anyio.sleep(_BARRIER_POLL)
        step = "attach"
        try:
            h = await session.attach(job)
            if action == "stop":
                step = "stop_job"
                started = time.monotonic()
                await session.stop_job(h, immediate=arg == "immediate")
                record = await session._store.job(job)
                return {
                    "ok": True,
                    "state": record.state if record else JobState.UNDEFINED.value,
                    "seconds": time.monotonic() - started,
                }
            if action == "parallel":
                step = "set_parallel"
                await session.set_parallel(h, int(arg or "1"))
                await session.release(h)
                return {"ok": True}
            if action == "start":
                step = "start_job"
                await session.start_job(h, detached=True)
                record = await session._store.job(job)
                return {"ok": True, "owner_pid": record.owner_pid if record else None}
            raise SystemExit(f"unknown action {action!r}")
        except PumpkitError as exc:
            return {"ok": False, "step": step, "error": type(exc).__name__, "message": str(exc)}


def main(argv: list[str]) -> None:
    action, home, job, ready, go, *rest = argv
    answer = anyio.run(_client, action, home, job, ready, go, rest[0] if rest else None)
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
