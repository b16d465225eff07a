"""Granule planning: key ranges that cover everything, sized by bytes and by rows."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pumpkit.core.planner import (
    DEFAULT_GRANULE_BYTES,
    MAX_GRANULE_ROWS,
    dispatch_order,
    granule_target,
    split_key_range,
)


@given(
    low=st.integers(-(2**63), 2**62),
    width=st.integers(0, 2**62),
    rows=st.integers(1, 10**9),
    bytes_=st.integers(1, 10**12),
    target=st.integers(1, 2**30),
)
def test_granules_cover_the_whole_key_space_once(low, width, rows, bytes_, target):
    high = low + width
    granules = split_key_range(low, high, rows=rows, bytes_=bytes_, target_bytes=target)
    assert granules[0].low is None and granules[-1].high is None  # rows outside stay covered
    for before, after in itertools.pairwise(granules):
        assert before.high is not None and after.low == before.high + 1
    assert [g.number for g in granules] == list(range(1, len(granules) + 1))
    assert len(granules) <= min(4096, width + 1)


def test_an_empty_table_is_one_open_granule():
    [g] = split_key_range(None, None, rows=0, bytes_=0)
    assert (g.low, g.high) == (None, None)


def test_granules_are_sized_by_bytes_and_by_rows():
    by_bytes = split_key_range(1, 10**6, rows=10**6, bytes_=10 * DEFAULT_GRANULE_BYTES)
    assert len(by_bytes) == 10
    by_rows = split_key_range(1, 10**7, rows=10**7, bytes_=1)
    assert len(by_rows) == 10**7 // MAX_GRANULE_ROWS


def test_granule_target_gives_each_worker_several_granules_within_bounds():
    assert granule_target(400 << 20, 2) == 50 << 20
    assert granule_target(1 << 10, 2) == 1 << 20  # never below 1 MiB
    assert granule_target(1 << 40, 2) == DEFAULT_GRANULE_BYTES


def test_dispatch_order_is_biggest_first_and_stable():
    assert dispatch_order([(0, 5), (1, 9), (2, 5), (3, 1)]) == [1, 0, 2, 3]
