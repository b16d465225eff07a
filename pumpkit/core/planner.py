"""Planning: which objects a job handles, in which order, and how big tables split into granules.

Theory of operation: a job's work is a list of *work items*, each one row of the control
table. Export order follows what a restore needs (tables, their data, sequence values, indexes,
views, triggers, database settings); import order is the same, which is
what lets every index and trigger be built once, after the rows, and lets no trigger fire on
loaded rows; views come before triggers, which may be defined on them. A table's data is split into *granules*: contiguous key ranges of about
``target_bytes`` each, so several workers can read one table at once and a restart redoes
at most one granule per worker. Granules of big tables are handed out first so that the last
worker to finish is not the one holding the biggest table. Pure: numbers in, items out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from enum import IntEnum

import msgspec

__all__ = (
    "DEFAULT_GRANULE_BYTES",
    "MAX_GRANULE_ROWS",
    "Granule",
    "Phase",
    "dispatch_order",
    "granule_target",
    "split_key_range",
    "worker_count",
)

#: A granule holds about this many bytes of table data (an estimate: rows x average size).
DEFAULT_GRANULE_BYTES = 64 * 1024 * 1024
#: ... and at most about this many rows: time goes with rows as much as with bytes (a narrow
#: table's 53 MB granule of 2.65 M rows took 1.4 s to export, a wide one's 0.75 s).
MAX_GRANULE_ROWS = 1_000_000


class Phase(IntEnum):
    """The order in which kinds of objects are processed; also their process_order band."""

    SETTINGS_BEFORE = 0
    TABLE = 1
    TABLE_DATA = 2
    SEQUENCE = 3
    INDEX = 4
    VIEW = 5  # views before triggers: an INSTEAD OF trigger is defined on a view
    TRIGGER = 6
    SETTINGS_AFTER = 7


class Granule(msgspec.Struct, frozen=True, array_like=True):
    """One contiguous key range of a table: ``low <= key <= high`` (``None``: unbounded)."""

    number: int
    low: int | None
    high: int | None
    estimated_rows: int
    estimated_bytes: int


def granule_target(total_bytes: int, workers: int) -> int:
    """The granule size for a job: about four granules per worker, so workers stay busy to
    the end and a restart redoes little, but never below 1 MB (per-granule overhead) nor
    above ``DEFAULT_GRANULE_BYTES``."""
    share = total_bytes // max(1, 4 * workers)
    return max(1 << 20, min(DEFAULT_GRANULE_BYTES, share))


def split_key_range(
    low: int | None,
    high: int | None,
    *,
    rows: int,
    bytes_: int,
    target_bytes: int = DEFAULT_GRANULE_BYTES,
    target_rows: int = MAX_GRANULE_ROWS,
    max_granules: int = 4096,
) -> list[Granule]:
    """Split the integer key range ``[low, high]`` into granules of about ``target_bytes``.

    Keys are assumed spread evenly over the range (rowids mostly are); a skewed table only
    gives unevenly sized granules, never wrong ones. The first granule is open below and the
    last open above, so rows outside the range seen at planning time are never lost. An empty
    table (``low``/``high`` ``None``) is one granule covering everything.
    """
    if low is None or high is None or rows <= 0:
        return [Granule(1, None, None, max(rows, 0), max(bytes_, 0))]
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    span = high - low + 1
    wanted = max(1, math.ceil(bytes_ / target_bytes), math.ceil(rows / target_rows))
    count = min(wanted, max_granules, span)
    step = math.ceil(span / count)
    granules = []
    for i in range(count):
        g_low = None if i == 0 else low + i * step
        g_high = None if i == count - 1 else low + (i + 1) * step - 1
        granules.append(Granule(i + 1, g_low, g_high, rows // count, bytes_ // count))
    return granules


def dispatch_order(items: Iterable[tuple[int, int]]) -> Sequence[int]:
    """Order data work items for dispatch: ``(key, estimated_bytes)`` pairs, biggest first.

    Ties keep their given order, so a plan is deterministic.
    """
    indexed = list(items)
    return [key for key, _ in sorted(indexed, key=lambda kb: -kb[1])]


def worker_count(degree: int, cpus: int | None) -> int:
    """How many processes to start: enough for the degree, and for SET_PARALLEL up to the
    number of cores without starting more later."""
    return max(degree, cpus or 1, 1)
