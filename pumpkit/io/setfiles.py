"""The files of a dump-file set on disk, by their names: what a template names, which exist,
and removing a set's files (KILL_JOB). Blocking file I/O: async callers use a thread."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from pumpkit.core.header import HEADER_SIZE, decode_header
from pumpkit.errors import DumpError, DumpSetFullError
from pumpkit.io.dumpfile import expand_template

__all__ = ("existing_set_files", "remove_set_files", "template_paths")


def template_paths(directory: Path, template: str) -> Iterator[Path]:
    """The files ``template`` can name, in order: itself, or 01, 02, ... for %U/%L."""
    if "%" not in template:
        yield directory / template
        return
    for number in range(1, 10_000):
        try:
            yield directory / expand_template(template, number)
        except DumpSetFullError:
            return


def existing_set_files(directory: Path, template: str) -> list[Path]:
    """The files a dump-file name names that exist, up to the first missing one (the reader
    then checks the set); for a missing first file, its name, so the error names it."""
    found = list(itertools.takewhile(Path.exists, template_paths(directory, template)))
    return found or [next(template_paths(directory, template))]


def remove_set_files(directory: Path, template: str, guid: bytes) -> list[Path]:
    """Remove the files that ``template`` names and whose header carries ``guid``."""
    removed = []
    for path in template_paths(directory, template):
        if not path.exists():
            break
        try:
            with open(path, "rb") as fh:
                header = decode_header(fh.read(HEADER_SIZE))
        except (OSError, DumpError):
            continue
        if header.guid == guid:
            path.unlink()
            removed.append(path)
    return removed
