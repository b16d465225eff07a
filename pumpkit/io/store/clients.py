"""Which clients are attached to a job, so that ATTACHED counts the live ones only.

A job's ``attached_sessions`` counter goes up on OPEN and ATTACH and down on DETACH; a client
that is killed never comes down. So each attachment also leaves a marker file in the control
store's directory, ``clients/<job>/<host>_<pid>_<handle>``, removed on DETACH. The jobs view
counts the markers of processes that still run (a marker of another host counts: its process
cannot be asked) and clears the others. Names of jobs are hashed into directory names (a job
name may hold any character). Nothing here depends on a job state.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ("add_client", "live_clients", "remove_client")


def _folder(location: str, job_name: str) -> Path:
    digest = hashlib.sha256(job_name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Path(location) / "clients" / digest


def _marker(location: str, job_name: str, host: str, pid: int, handle: int) -> Path:
    return _folder(location, job_name) / f"{host}_{pid}_{handle}"


def add_client(location: str, job_name: str, host: str, pid: int, handle: int) -> None:
    """Record that process ``pid`` of ``host`` holds ``handle`` to the job (best effort: a
    store directory that cannot take it leaves the counter as the only figure)."""
    path = _marker(location, job_name, host, pid, handle)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def remove_client(location: str, job_name: str, host: str, pid: int, handle: int) -> None:
    with contextlib.suppress(OSError):
        _marker(location, job_name, host, pid, handle).unlink()


def live_clients(
    location: str, job_name: str, host: str, alive: Callable[[int], bool]
) -> int | None:
    """How many attachments to the job are held by processes that run; None when the job has
    no markers at all (a store written before them). ``alive(pid)`` says whether a process of
    this host runs. Markers of dead processes are removed."""
    folder = _folder(location, job_name)
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    live = 0
    for name in names:
        parts = name.rsplit("_", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        marker_host, pid = parts[0], int(parts[1])
        if marker_host != host or alive(pid):
            live += 1
        else:
            with contextlib.suppress(OSError):
                (folder / name).unlink()
    return live
