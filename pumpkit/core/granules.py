"""Granules from their frames alone: which TABLE_DATA frames make a whole granule.

Theory of operation: from format 1.3 every TABLE_DATA frame carries a granule tag (its
granule number, its sequence number in that granule, FIRST and LAST; ``pumpkit.core.frame``).
A set cut short by a crash has no control table to say which frames hold a table's data, and
when it was written in parallel the frames of several granules of one table interleave. Taken
in set order (file number, then offset), the frames of one ``(object_id, granule)`` form
*runs*: a run opens with a FIRST frame and goes on with sequence numbers one apart. A run that
a LAST frame closes is *complete*. Anything else is *unfinished*: a run the crash cut before
its LAST, a run a later FIRST of the same granule abandoned (a restarted export redid the
granule), or frames that continue no open run. A granule's data is its last complete run;
unfinished frames are never data (formats/dumpfile.md §8.1). Pure: headers in, runs out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pumpkit.core.frame import FrameHeader, GranuleTag

__all__ = ("GranuleRun", "TaggedFrame", "granule_runs", "granules_of")


@dataclass(frozen=True, slots=True)
class TaggedFrame:
    """A sound, tagged TABLE_DATA frame and the file it lies in."""

    fileid: int
    header: FrameHeader
    tag: GranuleTag


@dataclass(slots=True)
class GranuleRun:
    """Frames of one granule of one table, in order; ``complete`` when FIRST to LAST."""

    object_id: int
    granule: int
    frames: list[TaggedFrame] = field(default_factory=list)
    complete: bool = False

    @property
    def rows(self) -> int:
        return sum(f.header.count for f in self.frames)


def granule_runs(frames: Iterable[TaggedFrame]) -> list[GranuleRun]:
    """Every run of ``frames`` (given in set order), complete or not, in the order each run
    ended (a run still open when the frames end comes last)."""
    runs: list[GranuleRun] = []
    open_runs: dict[tuple[int, int], GranuleRun] = {}
    for frame in frames:
        key = (frame.header.object_id, frame.tag.granule)
        run = open_runs.get(key)
        if frame.tag.first:
            if run is not None:
                runs.append(open_runs.pop(key))  # abandoned: the granule was begun again
            run = GranuleRun(*key)
            open_runs[key] = run
        elif run is None or frame.tag.sequence != run.frames[-1].tag.sequence + 1:
            if run is not None:
                runs.append(open_runs.pop(key))  # a frame is missing: the run is broken
            runs.append(GranuleRun(*key, [frame]))
            continue
        run.frames.append(frame)
        if frame.tag.last:
            run.complete = True
            runs.append(open_runs.pop(key))
    runs.extend(open_runs.values())
    return runs


def granules_of(runs: Iterable[GranuleRun]) -> dict[tuple[int, int], GranuleRun]:
    """The data of each granule: its last complete run, by ``(object_id, granule)``."""
    out: dict[tuple[int, int], GranuleRun] = {}
    for run in runs:
        if run.complete:
            out[(run.object_id, run.granule)] = run
    return dict(sorted(out.items()))
