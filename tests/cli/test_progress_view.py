"""The client's progress: a rate from a moving window (not from the job's whole past, which a
restart made absurd), an ETA from it, a share that never goes backwards, said in rows or
bytes; and the whole job's time over its legs."""

from __future__ import annotations

from pumpkit.cli.progress_view import Meter, progress_text
from pumpkit.core.status import Status
from pumpkit.engine.progress import executing_seconds


def status(done: int, total: int, percent: float, *, by: str = "rows") -> Status:
    return Status(
        job_name="J",
        state="EXECUTING",
        operation="EXPORT",
        percent_done=percent,
        percent_by=by,
        completed_rows=done,
        total_rows=total,
        completed_bytes=done * 100,
        total_bytes=total * 100,
    )


def test_a_restarted_job_is_measured_from_what_this_client_saw() -> None:
    meter = Meter(window=10)
    # Attached to a job whose last leg did 900,000 of 1,000,000 rows: no rate yet.
    meter.add(status(900_000, 1_000_000, 90.0), now=100.0)
    assert meter.rate() is None and meter.eta(status(900_000, 1_000_000, 90.0)) is None
    assert "ETA" not in progress_text(status(900_000, 1_000_000, 90.0), meter)
    # 1,000 rows a second from here on.
    for second in range(1, 6):
        meter.add(status(900_000 + 1000 * second, 1_000_000, 90.5), now=100.0 + second)
    assert meter.rate() == 1000.0
    assert meter.eta(status(905_000, 1_000_000, 90.5)) == 95.0
    text = progress_text(status(905_000, 1_000_000, 90.5), meter)
    assert "1,000 rows/s" in text and "ETA 0:01:35" in text, text


def test_the_rate_is_a_moving_window() -> None:
    meter = Meter(window=10)
    for second in range(0, 31):
        # Fast for 20 s (500/s), then slow (100/s).
        done = 500 * min(second, 20) + 100 * max(0, second - 20)
        meter.add(status(done, 100_000, 10.0), now=float(second))
    assert 100.0 <= meter.rate() <= 100.0 * 11 / 10  # the last ten seconds only


def test_the_share_never_goes_backwards_and_says_its_unit() -> None:
    meter = Meter()
    meter.add(status(10, 100, 40.0), now=0.0)
    meter.add(status(10, 100, 35.0), now=1.0)  # a read that lags behind another
    assert meter.percent == 40.0
    assert progress_text(status(10, 100, 35.0), meter).startswith(
        "[ 40%] executing, rows 10 of about 100"
    )
    bytes_meter = Meter()
    bytes_meter.add(status(10, 0, 12.0, by="bytes"), now=0.0)
    assert "by bytes" in progress_text(status(10, 0, 12.0, by="bytes"), bytes_meter)


def test_the_whole_jobs_time_is_the_sum_of_its_legs() -> None:
    history = [
        ("g", 1, "DEFINING", 0.0),
        ("g", 2, "EXECUTING", 10.0),
        ("g", 3, "STOPPING", 25.0),
        ("g", 4, "STOPPED", 26.0),
        ("other", 5, "EXECUTING", 30.0),
        ("g", 6, "IDLING", 100.0),
        ("g", 7, "EXECUTING", 110.0),
    ]
    assert executing_seconds(history, "g", now=130.0) == 15.0 + 20.0
    assert executing_seconds(history, "other", now=31.0) == 1.0
