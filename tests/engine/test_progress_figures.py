"""A job's total and share done: the same total from the plan to the last granule (no row at
a time creeping as granules finish), rows where rows are known, bytes where they are not."""

from __future__ import annotations

from pumpkit.core.control_table import ControlRow, ProcessingState
from pumpkit.engine.progress import _progress


def granule(n: int, estimated: int, actual: int | None, size: int = 1000) -> ControlRow:
    return ControlRow(
        process_order=n,
        object_type="TABLE_DATA",
        estimated_rows=estimated,
        completed_rows=actual,
        size_estimate=size,
        processing_state=ProcessingState.COMPLETED if actual is not None else None,
    )


def figures(rows: list[ControlRow], operation: str = "EXPORT"):  # type: ignore[no-untyped-def]
    return _progress(rows, [r for r in rows if r.done], operation)


def test_an_exports_total_stays_the_estimate_until_every_granule_is_done() -> None:
    plan = [(100, 101), (100, 99), (100, 102), (100, 100)]
    totals = []
    shares = []
    for finished in range(len(plan)):
        rows = [
            granule(i, est, actual if i < finished else None)
            for i, (est, actual) in enumerate(plan)
        ]
        f = figures(rows)
        totals.append(f.total_rows)
        shares.append(f.percent)
        assert f.unit == "rows"
    assert totals == [400, 400, 400, 400]
    assert shares == sorted(shares) and shares[0] == 0.0
    done = figures([granule(i, est, actual) for i, (est, actual) in enumerate(plan)])
    assert (done.total_rows, done.percent) == (402, 100.0)


def test_without_row_estimates_the_share_is_in_bytes() -> None:
    rows = [granule(0, 0, 5, size=3000), granule(1, 0, None, size=1000)]
    f = figures(rows)
    assert f.unit == "bytes" and f.percent == 75.0


def test_an_import_counts_the_rows_the_export_recorded() -> None:
    rows = [
        ControlRow(process_order=i, object_type="TABLE_DATA", completed_rows=n, processing_state=s)
        for i, (n, s) in enumerate([(30, ProcessingState.COMPLETED), (10, None)])
    ]
    f = figures(rows, "IMPORT")
    assert (f.total_rows, f.percent, f.unit) == (40, 75.0, "rows")
