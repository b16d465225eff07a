"""The files of a dump-file set as the file system holds them.

What a dump-file name (a template, section 2 of ``formats/dumpfile.md``) names on disk
(``template_paths``, ``existing_set_files``), removing a killed job's files
(``remove_set_files``), and mapping one file to read it (``map_file``, ``access_message``).
Blocking file I/O: async callers run it in a worker thread.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pumpkit.core.header import HEADER_SIZE, decode_header, file_name_fault
from pumpkit.core.templates import expand_template
from pumpkit.errors import DumpError, DumpSetFullError, FileAccessError, UnsafeFileNameError

__all__ = (
    "access_message",
    "existing_set_files",
    "job_set_files",
    "map_file",
    "remove_set_files",
    "set_member",
    "template_paths",
)


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


def set_member(directory: Path, name: str, *, path: Path, offset: int | None = None) -> Path:
    """The file ``name`` of the set whose file ``path`` names it, in ``directory`` and
    nowhere else. Raises ``UnsafeFileNameError`` (with ``path`` and ``offset``) for a name
    that is not a plain file name; a header that holds one is refused when it is decoded, so
    this is the second gate, at the one place a set's file names become paths."""
    fault = file_name_fault(name)
    member = directory / name
    if fault is None and member.parent != directory:
        fault = "does not stay in the set's directory"
    if fault is not None:
        raise UnsafeFileNameError(
            f"the set's file name {name!r} {fault}: a set names its files only inside its"
            " own directory",
            path=str(path),
            offset=offset,
        )
    return member


def existing_set_files(directory: Path, template: str) -> list[Path]:
    """The files a dump-file name names that exist, up to the first missing one (the reader
    then checks the set); for a missing first file, its name, so the error names it."""
    found = list(itertools.takewhile(Path.exists, template_paths(directory, template)))
    return found or [next(template_paths(directory, template))]


def job_set_files(directory: Path, template: str, guid: bytes) -> list[Path]:
    """The files that ``template`` names whose header carries ``guid`` (one job's)."""
    found = []
    for path in template_paths(directory, template):
        if not path.exists():
            break
        try:
            with open(path, "rb") as fh:
                header = decode_header(fh.read(HEADER_SIZE))
        except (OSError, DumpError):
            continue
        if header.guid == guid:
            found.append(path)
    return found


def remove_set_files(directory: Path, template: str, guid: bytes) -> list[Path]:
    """Remove the files that ``template`` names and whose header carries ``guid``."""
    removed = job_set_files(directory, template, guid)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def access_message(path: Path, exc: OSError) -> str:
    """Why ``path`` cannot be opened, as a ``FileAccessError`` says it."""
    if exc.errno == errno.ENOENT:
        return f"{path}: no such file"
    if exc.errno == errno.EISDIR:
        return f"{path}: is a directory, not a dump file"
    return f"{path}: cannot open: {exc.strerror}"


def map_file(path: Path) -> mmap.mmap | None:
    """The whole of ``path`` mapped read-only; ``None`` for an empty file (nothing to map).

    Raises ``FileAccessError`` for a missing or unreadable file and for a directory.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise FileAccessError(access_message(path, exc), path=str(path)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileAccessError(f"{path}: is a directory, not a dump file", path=str(path))
        if st.st_size == 0:
            return None
        return mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
