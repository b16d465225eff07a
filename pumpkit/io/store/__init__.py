"""The control store: where jobs are recorded (see ``base.ControlStore`` for its verbs).

``open_store(home)`` opens the store a home names: a directory holds the embedded SQLite
store (``pumpkit.db``); the default home is :func:`default_home`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pumpkit.io.store.base import (
    ControlStore,
    StateChange,
    default_home,
    new_owner,
    this_host,
)
from pumpkit.io.store.sqlite import SqliteStore

__all__ = (
    "ControlStore",
    "StateChange",
    "default_home",
    "new_owner",
    "open_store",
    "this_host",
)


async def open_store(home: str | os.PathLike[str] | None = None) -> ControlStore:
    """Open (and create) the control store of ``home`` (default: :func:`default_home`).

    Raises ``StoreError`` when it cannot be opened or was made by a newer pumpkit.
    """
    return await SqliteStore.open(Path(home) if home is not None else default_home())
