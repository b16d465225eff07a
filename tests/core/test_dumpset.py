"""The set checks of ``pumpkit.core.dumpset`` (section 9), over headers alone."""

from __future__ import annotations

import pytest

from pumpkit.core.dumpset import SetFault, set_faults
from pumpkit.core.header import OFFSET_FILE_NUMBER, OFFSET_GUID, FileHeader, HeaderBody
from pumpkit.errors import IncompleteSetError

GUID_A = bytes(range(16))
GUID_B = bytes(range(16, 32))
NAMES = ("s-01.dmp", "s-02.dmp", "s-03.dmp")


def header(number: int, *, guid: bytes = GUID_A, closed: bool = True) -> FileHeader:
    body = HeaderBody(set_file_count=3, set_files=NAMES) if closed else HeaderBody()
    return FileHeader(file_number=number, guid=guid, body=body)


def whole(closed: bool = True) -> list[tuple[str, FileHeader]]:
    return [(NAMES[n - 1], header(n, closed=closed)) for n in (1, 2, 3)]


def where(faults: list[SetFault]) -> list[tuple[str, int | None]]:
    return [(f.path, f.offset) for f in faults]


@pytest.mark.parametrize("closed", [True, False])
def test_one_whole_set_has_no_fault(closed: bool) -> None:
    assert set_faults(whole(closed)) == []
    assert set_faults(list(reversed(whole(closed)))) == []
    assert set_faults([]) == []


def test_a_file_of_another_set_is_a_fault_at_the_guid_and_is_left_out() -> None:
    files = [*whole()[:1], ("other.dmp", header(2, guid=GUID_B)), whole()[2]]
    faults = set_faults(files)
    assert where(faults) == [("other.dmp", OFFSET_GUID), ("s-01.dmp", None)]
    assert "two dump-file sets are mixed" in faults[0].reason
    assert "missing s-02.dmp" in faults[1].reason  # the foreign file 2 is not file 2


def test_a_file_number_twice() -> None:
    files = [*whole(), ("copy.dmp", header(2))]
    faults = set_faults(files)
    assert where(faults) == [("copy.dmp", OFFSET_FILE_NUMBER)]
    assert faults[0].reason == "copy.dmp and s-02.dmp are both file number 2 of the set"


def test_headers_that_disagree_on_the_size() -> None:
    files = whole()
    files[1] = (NAMES[1], FileHeader(file_number=2, guid=GUID_A, body=HeaderBody(set_file_count=4)))
    faults = set_faults(files)
    assert where(faults)[0] == ("s-01.dmp", None)
    assert "disagree on its size ([3, 4] files)" in faults[0].reason
    assert all(f.error is IncompleteSetError for f in faults)


def test_every_number_beyond_the_set_is_a_fault() -> None:
    files = [*whole(), ("s-05.dmp", header(5)), ("s-04.dmp", header(4))]
    faults = set_faults(files)
    assert where(faults) == [("s-04.dmp", OFFSET_FILE_NUMBER), ("s-05.dmp", OFFSET_FILE_NUMBER)]
    assert faults[0].reason == "s-04.dmp is file number 4, but the set has only 3 files"


def test_each_missing_file_is_a_fault_of_the_whole_set() -> None:
    faults = set_faults([whole()[0]])
    assert where(faults) == [("s-01.dmp", None), ("s-01.dmp", None)]
    assert [f.reason for f in faults] == [
        f"the dump-file set of s-01.dmp is incomplete: missing {name} (the set has 3 files)"
        for name in NAMES[1:]
    ]


def test_a_set_cut_short_misses_files_below_the_largest_number_only() -> None:
    """Without ``set_file_count`` (a crash), only gaps below the largest number are seen."""
    files = [whole(closed=False)[0], whole(closed=False)[2]]
    faults = set_faults(files)
    assert [f.reason for f in faults] == [
        "the dump-file set of s-01.dmp is incomplete: missing file number 2 (the set has 3 files)"
    ]
    assert set_faults(whole(closed=False)[:2]) == []


def test_the_reader_raises_the_first_fault() -> None:
    files = [*whole()[:1], ("other.dmp", header(2, guid=GUID_B))]
    error = set_faults(files)[0].exception()
    assert isinstance(error, IncompleteSetError)
    assert (error.path, error.offset) == ("other.dmp", OFFSET_GUID)
    assert str(error).startswith("other.dmp: offset 24: other.dmp belongs to job ")
