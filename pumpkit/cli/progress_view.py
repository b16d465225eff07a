"""The progress a client shows: a share that never goes backwards, a rate and an ETA from a
moving window of what it saw, and on a terminal a bar drawn by rich.

The rate is measured from the client's own samples over the last ``WINDOW`` seconds, so a
client that attaches to a restarted job measures the work of this leg, not the rows of the
last leg divided by a few seconds (77.7 MB/s and "ETA 0:00:00" after a restart). The share is
the job's ``percent_done`` (rows where rows are known, bytes otherwise: ``percent_by``), kept
from going backwards should two reads disagree.
"""

from __future__ import annotations

import collections
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from pumpkit.core.status import Status

__all__ = ("WINDOW", "Meter", "TerminalBar", "progress_text")

#: Seconds of samples the rate is measured over.
WINDOW = 20.0


class Meter:
    """Samples of (time, amount done); the rate over the last ``window`` seconds."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self.percent = 0.0

    def add(self, status: Status, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.percent = max(self.percent, status.percent_done)
        done = status.completed_rows if status.percent_by == "rows" else status.completed_bytes
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # another job's figures, or the job was restarted afresh
        self._samples.append((now, float(done)))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Per second, of rows or bytes (as the job's ``percent_by``); None before two
        samples a moment apart."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 0.5:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta(self, status: Status) -> float | None:
        """Seconds left at the current rate; None when there is no rate yet."""
        rate = self.rate()
        if not rate or rate <= 0:
            return None
        if status.percent_by == "rows":
            left = status.total_rows - status.completed_rows
        else:
            left = status.total_bytes - status.completed_bytes
        return max(0.0, left / rate)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_text(status: Status, meter: Meter) -> str:
    """``[ 42%] executing, rows 1,234 of 2,000, objects 3/10, 12.3 MB, 4,500 rows/s, ETA
    0:00:12`` (``of about`` while an export's total is the plan's estimate; a share counted in
    bytes says ``by bytes``)."""
    unit = status.percent_by or "rows"
    about = "about " if status.operation == "EXPORT" and meter.percent < 100 else ""
    parts = [
        f"[{meter.percent:3.0f}%] {status.state.lower()}",
        f"rows {status.completed_rows:,} of {about}{status.total_rows:,}",
        f"objects {status.completed_objects}/{status.total_objects}",
        f"{status.completed_bytes / 1e6:.1f} MB",
    ]
    if unit == "bytes":
        parts[0] += " by bytes"
    rate = meter.rate()
    if rate is not None:
        parts.append(f"{rate:,.0f} rows/s" if unit == "rows" else f"{rate / 1e6:.1f} MB/s")
    eta = meter.eta(status)
    if eta is not None and meter.percent < 100:
        parts.append(f"ETA {_clock(eta)}")
    return ", ".join(parts)


class TerminalBar:
    """A rich progress bar on a terminal, with the progress text beside it. ``print`` puts a
    line above the bar; ``stop`` takes the bar away (for the interactive prompt)."""

    def __init__(self, err: TextIO) -> None:
        self.console = Console(file=err, highlight=False)
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def show(self, status: Status, meter: Meter) -> None:
        if self._progress is None:
            self._progress = Progress(
                BarColumn(),
                TextColumn("{task.description}"),
                console=self.console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                auto_refresh=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=100.0)
        assert self._task is not None
        self._progress.update(
            self._task, completed=meter.percent, description=progress_text(status, meter)
        )
        self._progress.refresh()

    def print(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
